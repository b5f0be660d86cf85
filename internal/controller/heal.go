package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// healPlan is what the control loop decides to do about a cluster's
// failures. It is computed by planHeal, a pure function.
type healPlan struct {
	// Restart lists lost instances (process gone) that can start again:
	// their boot role is decided from Sentinel at boot.
	Restart []store.Instance
	// Waiting lists lost masters Sentinel still names: starting one again
	// before the failover could make it master with old or no data, so the
	// failover (fast path or Sentinel's own) goes first.
	Waiting []store.Instance
	// Demote lists instances in the master role that Sentinel does not name:
	// a second master, fenced at once.
	Demote []demotion
}

type demotion struct {
	In     store.Instance
	Master string
}

// sentinelNames returns, per shard, every address an answering Sentinel
// names as master, and whether the Sentinels are settled: a quorum of them
// answers, all name the same master, and none is failing it over or sees it
// down.
func sentinelNames(s api.ClusterSpec, cluster string, obs observation) (names map[int]map[string]bool, settled map[int]bool) {
	names, settled = map[int]map[string]bool{}, map[int]bool{}
	for shard := 0; shard < s.Shards; shard++ {
		names[shard] = map[string]bool{}
		answers, calm := 0, true
		for _, so := range obs.Sentinels {
			m, ok := so.View[spec.MasterName(cluster, shard)]
			if !ok || !so.Up {
				continue
			}
			answers++
			names[shard][m.Addr] = true
			for _, f := range m.Flags {
				if f == "failover_in_progress" || f == "o_down" || f == "s_down" || f == "promoted" {
					calm = false
				}
			}
		}
		settled[shard] = calm && len(names[shard]) == 1 && answers >= spec.Quorum(s.Sentinels)
	}
	return names, settled
}

// planHeal decides what to restart, what waits for a failover and what to
// demote. running tells which instances' processes the platform runs.
func planHeal(s api.ClusterSpec, cluster string, obs observation, running map[string]bool) healPlan {
	var p healPlan
	names, settled := sentinelNames(s, cluster, obs)
	// The one master all Sentinels agree on, up and in the master role.
	agreed := map[int]string{}
	for _, ro := range obs.Redis {
		if sh := ro.In.Shard; settled[sh] && names[sh][addr(ro.In)] && ro.Up && ro.Info["role"] == "master" {
			agreed[sh] = addr(ro.In)
		}
	}
	for _, ro := range obs.Redis {
		a, sh := addr(ro.In), ro.In.Shard
		switch {
		case !ro.Up && !running[ro.In.Name]:
			// Any Sentinel still naming it master means its failover is
			// not over: it waits (with no replica there is nothing to
			// fail over to, and it restarts with its own data).
			if names[sh][a] && s.Replicas > 0 {
				p.Waiting = append(p.Waiting, ro.In)
			} else {
				p.Restart = append(p.Restart, ro.In)
			}
		case ro.Up && ro.Info["role"] == "master" && agreed[sh] != "" && agreed[sh] != a:
			// Demote only against a settled Sentinel majority; while they
			// disagree or fail over, Sentinel itself decides.
			p.Demote = append(p.Demote, demotion{In: ro.In, Master: agreed[sh]})
		}
	}
	for _, so := range obs.Sentinels {
		if !so.Up && !running[so.In.Name] {
			p.Restart = append(p.Restart, so.In)
		}
	}
	return p
}

// heal acts on a cluster's observation when no job runs on it.
func (c *Controller) heal(ctx context.Context, cl store.Cluster, obs observation) {
	list, err := c.platform.List(ctx, cl.Name)
	if err != nil {
		return
	}
	running := map[string]bool{}
	for _, pi := range list {
		running[pi.ID.Name] = pi.Running
	}
	p := planHeal(cl.Spec, cl.Name, obs, running)
	if len(p.Restart)+len(p.Waiting)+len(p.Demote) > 0 {
		c.log.Debug("heal plan", "cluster", cl.Name, "restart", names(p.Restart), "waiting", names(p.Waiting), "demote", len(p.Demote))
	}
	for _, d := range p.Demote {
		c.demote(ctx, cl, d)
	}
	for _, in := range append(append([]store.Instance{}, p.Restart...), p.Waiting...) {
		c.markLost(ctx, cl, in)
	}
	if len(p.Restart) == 0 {
		return
	}
	params, _ := json.Marshal(replaceParams{Instances: names(p.Restart)})
	job := newJob(api.JobReplaceInstance, cl.Name, time.Now().UTC())
	job.Params = params
	if err := c.store.CreateJob(ctx, job); err != nil {
		if !errors.Is(err, store.ErrConflict) {
			c.log.Error("store replace job", "cluster", cl.Name, "err", err)
		}
		return
	}
	c.log.Info("replacing lost instances", "cluster", cl.Name, "instances", names(p.Restart), "job", job.ID)
	c.Kick()
}

// markLost records an instance-lost event once per loss.
func (c *Controller) markLost(ctx context.Context, cl store.Cluster, in store.Instance) {
	c.mu.Lock()
	_, known := c.lost[in.Name]
	if !known {
		c.lost[in.Name] = time.Now().UTC()
	}
	c.mu.Unlock()
	if known {
		return
	}
	var shard *int
	if in.Shard >= 0 {
		s := in.Shard
		shard = &s
	}
	c.event(ctx, cl.Name, shard, "instance-lost", fmt.Sprintf("%s (%s) is gone", in.Name, addr(in)), map[string]any{"instance": in.Name, "address": addr(in)})
}

// demote fences a second master: it becomes a replica of the master
// Sentinel names, and the event says how far it had diverged.
func (c *Controller) demote(ctx context.Context, cl store.Cluster, d demotion) {
	rc := c.pool.Redis(addr(d.In), cl.Password)
	details := map[string]any{"instance": d.In.Name, "address": addr(d.In), "master": d.Master}
	if info, err := redisclient.GetInfo(ctx, rc, "replication", "keyspace"); err == nil {
		details["offset"], details["keys"] = info.Int("master_repl_offset"), info.Keys()
	}
	if info, err := redisclient.GetInfo(ctx, c.pool.Redis(d.Master, cl.Password), "replication", "keyspace"); err == nil {
		details["masterOffset"], details["masterKeys"] = info.Int("master_repl_offset"), info.Keys()
	}
	h, p := hostPort(d.Master)
	if err := rc.Do(ctx, "replicaof", h, p).Err(); err != nil {
		c.log.Error("demote second master", "instance", d.In.Name, "err", err)
		return
	}
	_ = rc.ConfigRewrite(ctx).Err()
	shard := d.In.Shard
	c.event(ctx, cl.Name, &shard, "split-brain-fenced",
		fmt.Sprintf("%s ran as a second master; demoted to a replica of %s", d.In.Name, d.Master), details)
	c.log.Warn("demoted a second master", "cluster", cl.Name, "instance", d.In.Name, "master", d.Master)
}

// replaceParams name the instances a replace-instance job brings back.
type replaceParams struct {
	Instances []string `json:"instances"`
}

// replaceSteps is the plan of a replace-instance job: start each lost
// instance again in its data dir (a replica of the master Sentinel names;
// a Sentinel re-registered for every shard), wait until replicas are in
// sync, clean Sentinels' stale entries one at a time, and wait for Ready.
func replaceSteps() []step {
	targets := func(r *jobRun, redis, sentinels []store.Instance) (rs, ss []store.Instance, err error) {
		var p replaceParams
		if err := json.Unmarshal(r.job.Params, &p); err != nil {
			return nil, nil, fmt.Errorf("read job parameters: %w", err)
		}
		want := strings.Join(p.Instances, " ") + " "
		for _, in := range redis {
			if strings.Contains(want, in.Name+" ") {
				rs = append(rs, in)
			}
		}
		for _, in := range sentinels {
			if strings.Contains(want, in.Name+" ") {
				ss = append(ss, in)
			}
		}
		return rs, ss, nil
	}
	return []step{
		{"restart", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
				rs, ss, err := targets(r, redis, sentinels)
				if err != nil {
					return err
				}
				err = parallel(ss, func(s store.Instance) error { return r.c.restoreSentinel(ctx, cl, s, redis, sentinels) })
				if err != nil {
					return err
				}
				return parallel(rs, func(in store.Instance) error {
					master := r.c.currentMaster(ctx, cl, in.Shard, redis, sentinels)
					if master == "" {
						master = plannedMaster(redis, in.Shard)
					}
					return r.c.ensureRedis(ctx, cl, in, master, sentinels)
				})
			})
		}},
		{"wait-sync", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
				rs, _, err := targets(r, redis, sentinels)
				if err != nil {
					return err
				}
				var replicas []store.Instance
				for _, in := range rs {
					if r.c.currentMaster(ctx, cl, in.Shard, redis, sentinels) != addr(in) {
						replicas = append(replicas, in)
					}
				}
				// Bounded: a repair must not hold the cluster for long if the
				// master is itself waiting for its failover.
				wctx, cancel := context.WithTimeout(ctx, r.c.cfg.SentinelReady)
				defer cancel()
				return r.c.waitReplication(wctx, r, cl, replicas)
			})
		}},
		{"clean-sentinels", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, _, sentinels []store.Instance) error {
				return r.c.cleanSentinels(ctx, r, cl, sentinels)
			})
		}},
		{"wait-instances", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
				rs, ss, err := targets(r, redis, sentinels)
				if err != nil {
					return err
				}
				// Only the instances brought back: the rest of the cluster is
				// the control loop's business, and waiting on it here would
				// block the next repair.
				err = poll(ctx, r.c.cfg.SentinelReady, 50*time.Millisecond, func() (bool, string, error) {
					var problems []string
					for _, s := range ss {
						problems = append(problems, r.c.sentinelPeerProblems(ctx, cl, s, sentinels)...)
					}
					for _, in := range rs {
						info, err := redisclient.GetInfo(ctx, r.c.pool.Redis(addr(in), cl.Password), "replication")
						switch {
						case err != nil:
							problems = append(problems, fmt.Sprintf("%s: %v", in.Name, err))
						case info["role"] == "slave" && info["master_link_status"] != "up":
							problems = append(problems, in.Name+" is not in sync yet")
						}
					}
					r.progress(ctx, 0.5, "waiting for "+strings.Join(problems, "; "))
					return len(problems) == 0, strings.Join(problems, "; "), nil
				})
				if err != nil {
					return err
				}
				for _, in := range append(rs, ss...) {
					r.c.mu.Lock()
					lostAt, ok := r.c.lost[in.Name]
					delete(r.c.lost, in.Name)
					r.c.mu.Unlock()
					details := map[string]any{"instance": in.Name, "address": addr(in)}
					if ok {
						details["lostAt"] = lostAt
						details["restoredMs"] = time.Since(lostAt).Milliseconds()
					}
					var shard *int
					if in.Shard >= 0 {
						s := in.Shard
						shard = &s
					}
					r.c.event(ctx, cl.Name, shard, "instance-replaced", fmt.Sprintf("%s is back (restarted in its data dir)", in.Name), details)
				}
				r.c.observeCluster(ctx, cl, "")
				return nil
			})
		}},
	}
}

// restoreSentinel starts a lost Sentinel again; one that lost its config
// (data dir gone) is registered again for every shard, at the master the
// other Sentinels name.
func (c *Controller) restoreSentinel(ctx context.Context, cl store.Cluster, s store.Instance, redis, sentinels []store.Instance) error {
	if err := c.ensureSentinel(ctx, cl, s); err != nil {
		return err
	}
	var others []store.Instance
	for _, o := range sentinels {
		if o.Name != s.Name {
			others = append(others, o)
		}
	}
	masterOf := func(shard int) string { return c.currentMaster(ctx, cl, shard, redis, others) }
	if err := c.registerShards(ctx, cl, s, 0, cl.Spec.Shards, masterOf, true); err != nil {
		return err
	}
	c.introduceSentinels(ctx, cl, sentinels, 0, cl.Spec.Shards)
	return nil
}

func names(ins []store.Instance) []string {
	out := make([]string, 0, len(ins))
	for _, in := range ins {
		out = append(out, in.Name)
	}
	return out
}

// sentinelPeerProblems checks that a Sentinel is back in its set: it
// monitors every shard at the master the other Sentinels name and knows
// every other Sentinel. Replica lists are not its concern here: they may
// wait on other repairs.
func (c *Controller) sentinelPeerProblems(ctx context.Context, cl store.Cluster, s store.Instance, sentinels []store.Instance) []string {
	var problems []string
	conn := c.pool.Redis(addr(s), cl.SentinelPassword)
	for shard := 0; shard < cl.Spec.Shards; shard++ {
		name := spec.MasterName(cl.Name, shard)
		m, err := conn.Do(ctx, "sentinel", "master", name).Slice()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s: %v", s.Name, name, err))
			continue
		}
		f := redisclient.Pairs(m)
		var others []store.Instance
		for _, o := range sentinels {
			if o.Name != s.Name {
				others = append(others, o)
			}
		}
		want := majorityAnswer(c.sentinelMasterAnswers(ctx, cl, name, others))
		if got := net.JoinHostPort(f["ip"], f["port"]); want != "" && got != want {
			problems = append(problems, fmt.Sprintf("%s names %s master of %s, the others %s", s.Name, got, name, want))
		}
		if f["num-other-sentinels"] != fmt.Sprint(len(sentinels)-1) {
			problems = append(problems, fmt.Sprintf("%s knows %s other Sentinels for %s, expected %d", s.Name, f["num-other-sentinels"], name, len(sentinels)-1))
		}
	}
	return problems
}
