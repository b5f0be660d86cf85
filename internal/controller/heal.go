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

// namedMasters returns, per shard, the address most Sentinels that answer
// name as master.
func namedMasters(s api.ClusterSpec, cluster string, obs observation) map[int]string {
	out := map[int]string{}
	for shard := 0; shard < s.Shards; shard++ {
		var answers []string
		for _, so := range obs.Sentinels {
			if m, ok := so.View[spec.MasterName(cluster, shard)]; ok && so.Up {
				answers = append(answers, m.Addr)
			}
		}
		if len(answers) > 0 {
			out[shard] = bootRole(answers, "", "")
		}
	}
	return out
}

// planHeal decides what to restart, what waits for a failover and what to
// demote. running tells which instances' processes the platform runs.
func planHeal(s api.ClusterSpec, cluster string, obs observation, running map[string]bool) healPlan {
	var p healPlan
	named := namedMasters(s, cluster, obs)
	masterUp := map[int]bool{}
	for _, ro := range obs.Redis {
		if ro.Up && ro.Info["role"] == "master" && addr(ro.In) == named[ro.In.Shard] {
			masterUp[ro.In.Shard] = true
		}
	}
	for _, ro := range obs.Redis {
		a := addr(ro.In)
		switch {
		case !ro.Up && !running[ro.In.Name]:
			if named[ro.In.Shard] == a && s.Replicas > 0 {
				p.Waiting = append(p.Waiting, ro.In)
			} else {
				p.Restart = append(p.Restart, ro.In)
			}
		case ro.Up && ro.Info["role"] == "master" && named[ro.In.Shard] != "" && named[ro.In.Shard] != a && masterUp[ro.In.Shard]:
			p.Demote = append(p.Demote, demotion{In: ro.In, Master: named[ro.In.Shard]})
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
		running[pi.Name] = pi.Running
	}
	p := planHeal(cl.Spec, cl.Name, obs, running)
	for _, d := range p.Demote {
		c.demote(ctx, cl, d)
	}
	var names []string
	for _, in := range append(append([]store.Instance{}, p.Restart...), p.Waiting...) {
		c.markLost(ctx, cl, in)
	}
	for _, in := range p.Restart {
		names = append(names, in.Name)
	}
	if len(names) == 0 {
		return
	}
	params, _ := json.Marshal(replaceParams{Instances: names})
	job := newJob(api.JobReplaceInstance, cl.Name, time.Now().UTC())
	job.Params = params
	if err := c.store.CreateJob(ctx, job); err != nil {
		if !errors.Is(err, store.ErrConflict) {
			c.log.Error("store replace job", "cluster", cl.Name, "err", err)
		}
		return
	}
	c.log.Info("replacing lost instances", "cluster", cl.Name, "instances", names, "job", job.ID)
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
				return r.c.waitReplication(ctx, r, cl, replicas)
			})
		}},
		{"clean-sentinels", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, _, sentinels []store.Instance) error {
				return r.c.cleanSentinels(ctx, r, cl, sentinels)
			})
		}},
		{"wait-ready", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
				if err := r.c.waitReady(ctx, r, cl); err != nil {
					return err
				}
				rs, ss, _ := targets(r, redis, sentinels)
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
	conn := c.pool.Redis(addr(s), cl.SentinelPassword)
	for shard := 0; shard < cl.Spec.Shards; shard++ {
		name := spec.MasterName(cl.Name, shard)
		if !sentinel.IsNoSuchMaster(conn.Do(ctx, "sentinel", "master", name).Err()) {
			continue
		}
		var others []store.Instance
		for _, o := range sentinels {
			if o.Name != s.Name {
				others = append(others, o)
			}
		}
		master := c.currentMaster(ctx, cl, shard, redis, others)
		if master == "" {
			return fmt.Errorf("no master known for %s", name)
		}
		if err := sentinel.Register(ctx, conn, name, master, sentinelSettings(cl)); err != nil {
			return err
		}
		c.introduceSentinels(ctx, cl, sentinels, shard, shard+1)
	}
	return nil
}
