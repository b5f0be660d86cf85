package controller

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
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
	cls, err := c.store.ListClusters(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("list clusters", "err", err)
		}
		return
	}
	// Jobs from the store, not memory: a job stored but not started yet
	// already owns the phase. Jobs that do not change the cluster (backups)
	// neither set the phase nor hold off healing.
	active := map[string]string{}
	if jobs, err := c.store.UnfinishedJobs(ctx); err == nil {
		for _, j := range jobs {
			if store.JobLock(j.Kind, j.Cluster) == j.Cluster {
				active[j.Cluster] = j.Kind
			}
		}
	}
	var wg sync.WaitGroup
	for _, cl := range cls {
		wg.Add(1)
		go func(cl store.Cluster) {
			defer wg.Done()
			if _, obs, ok := c.observeAndStore(ctx, cl, active[cl.Name]); ok && active[cl.Name] == "" && ctx.Err() == nil {
				c.heal(ctx, cl, obs)
			}
		}(cl)
	}
	wg.Wait()
	c.syncWatchers(ctx, cls)
}

// observeCluster reads the cluster's instances and Sentinels and stores its
// status.
func (c *Controller) observeCluster(ctx context.Context, cl store.Cluster, activeJob string) api.ClusterStatus {
	st, _, _ := c.observeAndStore(ctx, cl, activeJob)
	return st
}

// observeAndStore observes a cluster, stores its status and returns it with
// the raw observation; ok is false when nothing could be observed.
func (c *Controller) observeAndStore(ctx context.Context, cl store.Cluster, activeJob string) (api.ClusterStatus, observation, bool) {
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	redis, sentinels, err := c.instancesOf(octx, cl.Name)
	if err != nil {
		return api.ClusterStatus{}, observation{}, false
	}
	started := time.Now()
	obs := c.observe(octx, cl, redis, sentinels)
	status := evaluate(cl.Spec, cl.Name, obs, activeJob)
	if ctx.Err() != nil {
		return status, obs, false
	}
	// Observations run concurrently (the loop, jobs); one that started
	// before the last stored must not overwrite it with older news.
	c.mu.Lock()
	stale := started.Before(c.observed[cl.Name])
	if !stale {
		c.observed[cl.Name] = started
	}
	c.mu.Unlock()
	if stale {
		return status, obs, true
	}
	if err := c.store.UpdateClusterStatus(ctx, cl.Name, status); err != nil && ctx.Err() == nil {
		c.log.Debug("store status", "cluster", cl.Name, "err", err)
	}
	return status, obs, true
}

// observation is the raw material of a status: what each instance and each
// Sentinel said.
type observation struct {
	At        time.Time
	Redis     []redisObs
	Sentinels []sentinelObs
}

type redisObs struct {
	In      store.Instance
	Details platform.Details // what the platform says of it (local: pid)
	Up      bool
	Info    redisclient.Info
	Master  string // address of its master, for a replica
}

type sentinelObs struct {
	In      store.Instance
	Details platform.Details
	Up      bool
	View    map[string]sentinel.Master
}

func (c *Controller) observe(ctx context.Context, cl store.Cluster, redis, sentinels []store.Instance) observation {
	obs := observation{At: time.Now().UTC(), Redis: make([]redisObs, len(redis)), Sentinels: make([]sentinelObs, len(sentinels))}
	var wg sync.WaitGroup
	for i, in := range redis {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := redisObs{In: in, Details: c.platform.Describe(in.Handle)}
			if info, err := redisclient.GetInfo(ctx, c.pool.Redis(addr(in), cl.Password), "replication", "keyspace", "memory", "server"); err == nil {
				o.Up, o.Info = true, info
				if info["role"] == "slave" {
					o.Master = net.JoinHostPort(info["master_host"], info["master_port"])
				}
			}
			obs.Redis[i] = o
		}()
	}
	for i, in := range sentinels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := sentinelObs{In: in, Details: c.platform.Describe(in.Handle)}
			if v, err := sentinel.View(ctx, c.pool.Sentinel(addr(in), cl.SentinelPassword)); err == nil {
				o.Up, o.View = true, v
			}
			obs.Sentinels[i] = o
		}()
	}
	wg.Wait()
	return obs
}

// evaluate turns an observation into a status with a phase. It is pure.
//
// Ready means: every shard has exactly one master that every Sentinel
// agrees on, the spec's number of replicas with their link up, and every
// Sentinel up and monitoring every shard with exactly those replicas.
func evaluate(s api.ClusterSpec, cluster string, obs observation, activeJob string) api.ClusterStatus {
	at := obs.At
	st := api.ClusterStatus{ObservedAt: &at, Shards: []api.ShardStatus{}, Sentinels: []api.SentinelStatus{}}
	var problems []string
	failingOver := false

	for _, so := range obs.Sentinels {
		ss := api.SentinelStatus{Name: so.In.Name, Address: addr(so.In), Up: so.Up, Pid: so.Details.Pid, Monitors: []string{}}
		for name := range so.View {
			if strings.HasPrefix(name, cluster+"-") {
				ss.Monitors = append(ss.Monitors, name)
			}
		}
		sort.Strings(ss.Monitors)
		if !so.Up {
			problems = append(problems, so.In.Name+" is down")
		}
		st.Sentinels = append(st.Sentinels, ss)
	}
	if len(obs.Sentinels) != s.Sentinels {
		problems = append(problems, fmt.Sprintf("%d Sentinels, spec wants %d", len(obs.Sentinels), s.Sentinels))
	}

	for shard := 0; shard < s.Shards; shard++ {
		name := spec.MasterName(cluster, shard)
		ss := api.ShardStatus{Index: shard, SentinelName: name, Replicas: []api.InstanceStatus{}}
		// The master is who the Sentinels name; they must all agree.
		named := map[string]int{} // address → how many Sentinels name it
		for _, so := range obs.Sentinels {
			if !so.Up {
				continue
			}
			m, ok := so.View[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s does not monitor %s", so.In.Name, name))
				continue
			}
			named[m.Addr]++
			for _, f := range m.Flags {
				if f == "failover_in_progress" || f == "o_down" || f == "s_down" {
					failingOver = true
				}
			}
			up := 0
			for _, r := range m.Replicas {
				if !sentinel.Down(r.Flags) {
					up++
				}
			}
			if len(m.Replicas) != s.Replicas || up != s.Replicas {
				problems = append(problems, fmt.Sprintf("%s lists %d replicas of %s (%d up), spec wants %d", so.In.Name, len(m.Replicas), name, up, s.Replicas))
			}
		}
		if len(named) > 1 {
			problems = append(problems, fmt.Sprintf("Sentinels disagree on the master of %s", name))
		}
		// When they disagree, show the one most name (the lowest address on
		// a tie), so the status does not flip between observations.
		var masterAddr string
		for a, n := range named {
			if masterAddr == "" || n > named[masterAddr] || (n == named[masterAddr] && a < masterAddr) {
				masterAddr = a
			}
		}
		var masterOffset int64
		var masters []string
		for _, ro := range obs.Redis {
			if ro.In.Shard == shard && ro.Up && ro.Info["role"] == "master" {
				masters = append(masters, addr(ro.In))
				if masterAddr == "" || addr(ro.In) == masterAddr {
					masterOffset = ro.Info.Int("master_repl_offset")
				}
			}
		}
		if len(masters) > 1 {
			problems = append(problems, fmt.Sprintf("shard %d has %d instances in the master role: %s", shard, len(masters), strings.Join(masters, ", ")))
		}
		if masterAddr == "" && len(masters) == 1 {
			masterAddr = masters[0]
		}
		linked := 0
		for _, ro := range obs.Redis {
			if ro.In.Shard != shard {
				continue
			}
			is := api.InstanceStatus{Name: ro.In.Name, Address: addr(ro.In), Up: ro.Up, Pid: ro.Details.Pid}
			if ro.Up {
				is.Role = roleName(ro.Info["role"])
				is.Keys = ro.Info.Keys()
				is.UsedMemoryBytes = ro.Info.Int("used_memory")
				if pid := ro.Info.Int("process_id"); pid > 0 {
					is.Pid = int(pid)
				}
			}
			if addr(ro.In) == masterAddr {
				if !ro.Up {
					failingOver = failingOver || s.Replicas > 0
					problems = append(problems, fmt.Sprintf("master %s of shard %d is down", ro.In.Name, shard))
				} else if is.Role != "master" {
					problems = append(problems, fmt.Sprintf("%s is named master of shard %d but runs as %s", ro.In.Name, shard, is.Role))
				}
				m := is
				ss.Master = &m
				continue
			}
			if ro.Up {
				is.MasterLinkStatus = ro.Info["master_link_status"]
				if off := ro.Info.Int("slave_repl_offset"); masterOffset > off {
					is.LagBytes = masterOffset - off
				}
				switch {
				case is.Role != "replica":
					// A second master is reported with the shard's masters.
				case masterAddr == "":
					// "has no master" is reported below.
				case ro.Master != masterAddr:
					problems = append(problems, fmt.Sprintf("%s replicates %s, not the master %s", ro.In.Name, ro.Master, masterAddr))
				case is.MasterLinkStatus != "up":
					problems = append(problems, fmt.Sprintf("%s has its master link %s", ro.In.Name, orUnknown(is.MasterLinkStatus)))
				default:
					linked++
				}
			} else {
				problems = append(problems, ro.In.Name+" is down")
			}
			ss.Replicas = append(ss.Replicas, is)
		}
		if ss.Master == nil {
			problems = append(problems, fmt.Sprintf("shard %d has no master", shard))
		}
		if linked != s.Replicas {
			problems = append(problems, fmt.Sprintf("shard %d has %d replicas with link up, spec wants %d", shard, linked, s.Replicas))
		}
		st.Shards = append(st.Shards, ss)
	}

	switch activeJob {
	case api.JobCreate, api.JobRestore:
		st.Phase = api.PhaseCreating
	case api.JobDelete:
		st.Phase = api.PhaseDeleting
	case api.JobScale:
		st.Phase = api.PhaseScaling
	case api.JobFailover:
		st.Phase = api.PhaseFailingOver
	default:
		switch {
		case len(problems) == 0:
			st.Phase = api.PhaseReady
		case failingOver:
			st.Phase = api.PhaseFailingOver
		default:
			st.Phase = api.PhaseDegraded
		}
	}
	if len(problems) > 0 {
		st.Reason = strings.Join(problems, "; ")
	}
	return st
}

func roleName(r string) string {
	if r == "slave" {
		return "replica"
	}
	return r
}
