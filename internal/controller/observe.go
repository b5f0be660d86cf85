package controller

import (
	"context"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/alerts"
	"github.com/redis-manager/redis-manager/internal/autoscale"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// controlLoop observes every cluster every few seconds, and at once when
// woken (a job changed something, the platform saw an exit).
func (c *Controller) controlLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.ObserveEvery)
	defer t.Stop()
	for {
		c.observeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
		}
	}
}

func (c *Controller) observeAll(ctx context.Context) {
	start := time.Now()
	// Without the stored statuses: this round replaces them. A cluster
	// that could not be observed reads its stored one below.
	cls, err := c.store.ListClustersWithoutStatus(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("list clusters", "err", err)
		}
		return
	}
	// Jobs from the store, not memory: a job stored but not started yet
	// already owns the phase. Jobs that do not change the cluster (backups)
	// neither set the phase nor hold off healing.
	// Without them neither the phase nor whether healing may act is known:
	// this round is skipped and the next one tries again.
	jobs, err := c.store.UnfinishedJobs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("list unfinished jobs; observing again next round", "err", err)
		}
		return
	}
	active, activeID := map[string]string{}, map[string]string{}
	for _, j := range jobs {
		if store.JobLock(j.Kind, j.Cluster) == j.Cluster {
			active[j.Cluster], activeID[j.Cluster] = j.Kind, j.ID
		}
	}
	var wg sync.WaitGroup
	observed := make([]alerts.Cluster, len(cls))
	scaling := make([]autoscale.Cluster, len(cls))
	for i, cl := range cls {
		wg.Add(1)
		go func(cl store.Cluster) {
			defer wg.Done()
			st, obs, ok := c.observeAndStore(ctx, cl, active[cl.Name])
			observed[i] = alerts.Cluster{Name: cl.Name, Spec: cl.Spec, Status: st}
			if !ok {
				// The alert rules and the autoscaler go on from what was
				// stored last (nothing when that read fails too).
				stored, _ := c.store.GetCluster(ctx, cl.Name)
				observed[i].Status = stored.Status
			}
			scaling[i] = autoscale.Cluster{Name: cl.Name, Spec: cl.Spec, Phase: observed[i].Status.Phase, Obs: obs, Observed: ok,
				JobID: activeID[cl.Name], JobKind: active[cl.Name]}
			if ok && active[cl.Name] == "" && ctx.Err() == nil {
				if err := c.heal(ctx, cl, obs); err != nil && ctx.Err() == nil {
					c.log.Error("heal; trying again next round", "cluster", cl.Name, "err", err)
				}
			}
		}(cl)
	}
	wg.Wait()
	names := make([]string, 0, len(cls))
	for _, cl := range cls {
		names = append(names, cl.Name)
	}
	c.metrics.knownClusters(names)
	c.commands.with(func(m map[string]map[string]map[string]api.CommandStat) {
		for n := range m {
			if !slices.Contains(names, n) {
				delete(m, n)
			}
		}
	})
	c.metrics.observeDuration.Observe(time.Since(start).Seconds())
	c.syncWatchers(ctx, cls)
	// The alert rules read what was just observed; the engine writes
	// with this term's fence.
	if c.cfg.Alerts != nil && ctx.Err() == nil {
		if err := c.cfg.Alerts.Evaluate(ctx, observed); err != nil && ctx.Err() == nil {
			c.log.Error("evaluate alert rules; trying again next round", "err", err)
		}
	}
	// The autoscaler reads the same observation; its changes are scale
	// jobs, which the runner picks up like any other.
	if c.cfg.Autoscale != nil && ctx.Err() == nil {
		if err := c.cfg.Autoscale.Evaluate(ctx, scaling); err != nil && ctx.Err() == nil {
			c.log.Error("evaluate autoscaling policies; trying again next round", "err", err)
		}
	}
}

// observeCluster reads the cluster's instances and Sentinels and stores its
// status.
func (c *Controller) observeCluster(ctx context.Context, cl store.Cluster, activeJob string) api.ClusterStatus {
	st, _, _ := c.observeAndStore(ctx, cl, activeJob)
	return st
}

// readyWithin is how long a job's last step gives a cluster to be observed
// Ready. One observation reads an instance as down when its INFO misses
// --instance-timeout; on a loaded host that happens to an instance that is
// fine (a create on the test Kubernetes node at load average ~60 failed
// its record-ready step so: one Sentinel's read took over 2 s).
const readyWithin = 15 * time.Second

// observeReady observes the cluster once a second until it is Ready or
// within has passed, and returns the last status.
func (c *Controller) observeReady(ctx context.Context, cl store.Cluster, within time.Duration) api.ClusterStatus {
	deadline := time.Now().Add(within)
	for {
		st := c.observeCluster(ctx, cl, "")
		if st.Phase == api.PhaseReady || !time.Now().Before(deadline) {
			return st
		}
		select {
		case <-ctx.Done():
			return st
		case <-time.After(time.Second):
		}
	}
}

// observeAndStore observes a cluster, stores its status and returns it with
// the raw observation; ok is false when nothing could be observed.
func (c *Controller) observeAndStore(ctx context.Context, cl store.Cluster, activeJob string) (api.ClusterStatus, topology.Observation, bool) {
	// The instance reads have their own timeout (read); this bounds
	// the store read and the wait for read slots when many instances
	// hang at once.
	octx, cancel := context.WithTimeout(ctx, max(3*time.Second, 2*c.cfg.InstanceTimeout))
	defer cancel()
	redis, sentinels, err := c.instancesOf(octx, cl.Name)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("list instances; observing again next round", "cluster", cl.Name, "err", err)
		}
		return api.ClusterStatus{}, topology.Observation{}, false
	}
	started := time.Now()
	obs := c.observe(octx, cl, redis, sentinels)
	status := topology.Evaluate(cl.Spec, cl.Name, obs, activeJob)
	commands := takeCommands(&status)
	if ctx.Err() != nil {
		return status, obs, false
	}
	// Observations run concurrently (the loop, jobs); one that started
	// before the last stored must not overwrite it with older news.
	var stale bool
	c.observed.with(func(observed map[string]time.Time) {
		stale = started.Before(observed[cl.Name])
		if !stale {
			observed[cl.Name] = started
		}
	})
	if stale {
		return status, obs, true
	}
	c.commands.set(cl.Name, commands)
	if err := c.store.UpdateClusterStatus(ctx, cl.Name, status); err != nil && ctx.Err() == nil {
		c.log.Debug("store status", "cluster", cl.Name, "err", err)
	}
	c.pointMasters(ctx, cl, obs)
	return status, obs, true
}

// takeCommands moves each instance's per-command figures (INFO
// commandstats) out of status and returns them by instance name. They
// were over half of the stored status (15 commands: 700 of an instance's
// 1,282 bytes), written every round and decoded by every read of the
// clusters (GET /api/v1/clusters, /metrics, the time-series sampler),
// and only /metrics uses them: the leader keeps them in memory
// (Commands).
func takeCommands(status *api.ClusterStatus) map[string]map[string]api.CommandStat {
	out := map[string]map[string]api.CommandStat{}
	take := func(in *api.InstanceStatus) {
		if in.Commands != nil {
			out[in.Name] = in.Commands
			in.Commands = nil
		}
	}
	for i := range status.Shards {
		if status.Shards[i].Master != nil {
			take(status.Shards[i].Master)
		}
		for j := range status.Shards[i].Replicas {
			take(&status.Shards[i].Replicas[j])
		}
	}
	return out
}

// Commands returns the per-command figures (INFO commandstats) of the
// cluster's instances from this manager's last stored observation, by
// instance name; nil on a standby or before the first round. The maps
// are not changed after they are returned.
func (c *Controller) Commands(cluster string) map[string]map[string]api.CommandStat {
	m, _ := c.commands.get(cluster)
	return m
}

// pointMasters has the platform point clients that do not speak Sentinel
// at each shard's master, as every answering Sentinel names it (a quorum of
// them, all agreeing). The platform only acts where its pointer is wrong
// (a switch, a new or recreated replica without its label).
func (c *Controller) pointMasters(ctx context.Context, cl store.Cluster, obs topology.Observation) {
	if c.pointer == nil {
		return
	}
	for shard := 0; shard < cl.Spec.Shards; shard++ {
		name := spec.MasterName(cl.Name, shard)
		var answers []string
		for _, so := range obs.Sentinels {
			if m, ok := so.View[name]; so.Up && ok && m.Addr != "" {
				answers = append(answers, m.Addr)
			}
		}
		master := topology.Majority(answers)
		if len(answers) < spec.Quorum(cl.Spec.Sentinels) || slices.ContainsFunc(answers, func(a string) bool { return a != master }) {
			continue
		}
		redis := make([]store.Instance, 0, len(obs.Redis))
		for _, ro := range obs.Redis {
			redis = append(redis, ro.In)
		}
		c.pointMaster(ctx, cl, shard, master, redis)
	}
}

// pointMaster points the shard's clients at the instance at address master.
func (c *Controller) pointMaster(ctx context.Context, cl store.Cluster, shard int, master string, redis []store.Instance) {
	for _, in := range redis {
		if in.Shard != shard || addr(in) != master {
			continue
		}
		if err := c.pointer.PointMaster(ctx, cl.Name, shard, id(in)); err != nil && ctx.Err() == nil {
			c.log.Warn("point clients at the master", "cluster", cl.Name, "shard", shard, "master", in.Name, "err", err)
		}
		return
	}
}

func (c *Controller) observe(ctx context.Context, cl store.Cluster, redis, sentinels []store.Instance) topology.Observation {
	obs := topology.Observation{At: time.Now().UTC(), Redis: make([]topology.RedisObs, len(redis)), Sentinels: make([]topology.SentinelObs, len(sentinels))}
	var wg sync.WaitGroup
	for i, in := range redis {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := topology.RedisObs{In: in, Details: c.platform.Describe(in.Handle)}
			c.read(ctx, func(ctx context.Context) {
				if info, err := redisclient.GetInfo(ctx, c.pool.Redis(addr(in), cl.Password), "replication", "keyspace", "memory", "server", "stats", "clients", "cpu", "persistence", "commandstats"); err == nil {
					o.Up, o.Info = true, info
					if info["role"] == "slave" {
						o.Master = net.JoinHostPort(info["master_host"], info["master_port"])
					}
				}
			})
			obs.Redis[i] = o
		}()
	}
	for i, in := range sentinels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := topology.SentinelObs{In: in, Details: c.platform.Describe(in.Handle)}
			sc := c.pool.Sentinel(addr(in), cl.SentinelPassword)
			c.read(ctx, func(ctx context.Context) {
				// A plain client to the Sentinel pipelines the view's
				// SENTINEL REPLICAS (sentinel.View).
				if v, err := sentinel.View(ctx, c.pool.Redis(addr(in), cl.SentinelPassword)); err == nil {
					o.Up, o.View = true, v
					// TILT for /metrics and the alert: one INFO sentinel
					// more per Sentinel per round; unknown counts as not.
					o.Tilt, _ = sentinel.Tilted(ctx, sc)
				}
			})
			obs.Sentinels[i] = o
		}()
	}
	wg.Wait()
	return obs
}

// read runs one instance's read of an observation with one of the
// manager's Config.ObserveConcurrency slots and Config.InstanceTimeout
// from when it got it: a stopped or slow instance holds one slot for at
// most that long and delays only its own cluster's status, by at most
// that long. Without a slot before ctx ends the read is not made (the
// instance counts as not answering this round).
func (c *Controller) read(ctx context.Context, f func(ctx context.Context)) {
	select {
	case c.reads <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-c.reads }()
	rctx, cancel := context.WithTimeout(ctx, c.cfg.InstanceTimeout)
	defer cancel()
	f(rctx)
}
