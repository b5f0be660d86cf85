package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// heal acts on a cluster's observation when no job runs on it. It returns
// an error, and does nothing, when it cannot tell what runs.
func (c *Controller) heal(ctx context.Context, cl store.Cluster, obs topology.Observation) error {
	list, err := c.platform.List(ctx, cl.Name)
	if err != nil {
		return fmt.Errorf("list what the platform runs: %w", err)
	}
	running := map[string]bool{}
	for _, pi := range list {
		running[pi.ID.Name] = pi.Running
	}
	p := topology.PlanHeal(cl.Spec, cl.Name, obs, running)
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
		return nil
	}
	params, _ := json.Marshal(replaceParams{Instances: names(p.Restart)})
	job := newJob(api.JobReplaceInstance, cl.Name, time.Now().UTC())
	job.Params = params
	if err := c.store.CreateJob(ctx, job); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil // a job took the lane since the observation; it owns the cluster
		}
		return fmt.Errorf("store replace job: %w", err)
	}
	c.log.Info("replacing lost instances", "cluster", cl.Name, "instances", names(p.Restart), "job", job.ID)
	c.Kick()
	return nil
}

// markLost records an instance-lost event once per loss.
func (c *Controller) markLost(ctx context.Context, cl store.Cluster, in store.Instance) {
	if !c.lost.claim(in.Name, time.Now().UTC()) {
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
func (c *Controller) demote(ctx context.Context, cl store.Cluster, d topology.Demotion) {
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
					lostAt, ok := r.c.lost.remove(in.Name)
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
	conn := c.pool.Sentinel(addr(s), cl.SentinelPassword)
	for shard := 0; shard < cl.Spec.Shards; shard++ {
		name := spec.MasterName(cl.Name, shard)
		m, err := sentinel.GetMaster(ctx, conn, name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s: %v", s.Name, name, err))
			continue
		}
		var others []store.Instance
		for _, o := range sentinels {
			if o.Name != s.Name {
				others = append(others, o)
			}
		}
		want := topology.Majority(c.sentinelMasterAnswers(ctx, cl, name, others))
		if got := m.Addr; want != "" && got != want {
			problems = append(problems, fmt.Sprintf("%s names %s master of %s, the others %s", s.Name, got, name, want))
		}
		if m.NumOtherSentinels != len(sentinels)-1 {
			problems = append(problems, fmt.Sprintf("%s knows %d other Sentinels for %s, expected %d", s.Name, m.NumOtherSentinels, name, len(sentinels)-1))
		}
	}
	return problems
}
