package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// scaleSteps is the plan of a scale job. Each step compares what runs with
// the target and does only what is missing, so any step can be re-run after
// a crash. Additions come before removals: Sentinels first (a new Sentinel
// watches every shard before quorum rises), then shards, replicas, config;
// then replicas, shards and Sentinels go, and Sentinel's memory of them is
// cleaned one Sentinel at a time.
func scaleSteps() []step {
	return []step{
		{"allocate-ports", scaleStep((*Controller).allocateScale)},
		{"add-sentinels", scaleStep((*Controller).addSentinels)},
		{"add-shards", scaleStep((*Controller).addShards)},
		{"add-replicas", scaleStep((*Controller).addReplicas)},
		{"apply-config", scaleStep((*Controller).applyConfig)},
		{"remove-replicas", scaleStep((*Controller).removeReplicas)},
		{"remove-shards", scaleStep((*Controller).removeShards)},
		{"remove-sentinels", scaleStep((*Controller).removeSentinels)},
		{"wait-ready", scaleStep((*Controller).finishScale)},
	}
}

// scaleFunc is one step of a scale job: the cluster carries the target
// spec, p the spec it started from.
type scaleFunc func(c *Controller, ctx context.Context, r *jobRun, cl store.Cluster, p jobspec.ScaleParams, redis, sentinels []store.Instance) error

// scaleStep runs f with the job's target and the cluster's instances.
func scaleStep(f scaleFunc) func(ctx context.Context, r *jobRun) error {
	return func(ctx context.Context, r *jobRun) error {
		return r.scale(ctx, func(cl store.Cluster, p jobspec.ScaleParams, redis, sentinels []store.Instance) error {
			return f(r.c, ctx, r, cl, p, redis, sentinels)
		})
	}
}

// allocateScale records ports for every instance the target adds.
func (c *Controller) allocateScale(ctx context.Context, _ *jobRun, cl store.Cluster, _ jobspec.ScaleParams, _, _ []store.Instance) error {
	_, err := c.allocate(ctx, cl)
	return err
}

// scale loads the cluster with the job's target spec and its instances.
func (r *jobRun) scale(ctx context.Context, f func(cl store.Cluster, p jobspec.ScaleParams, redis, sentinels []store.Instance) error) error {
	var p jobspec.ScaleParams
	if err := json.Unmarshal(r.job.Params, &p); err != nil {
		return fmt.Errorf("read job parameters: %w", err)
	}
	return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
		cl.Spec = p.To
		return f(cl, p, redis, sentinels)
	})
}

// addSentinels starts the Sentinels the target adds, registers every
// running shard in them, waits until all Sentinels know each other, and
// only then sets the target quorum everywhere.
func (c *Controller) addSentinels(ctx context.Context, _ *jobRun, cl store.Cluster, p jobspec.ScaleParams, redis, sentinels []store.Instance) error {
	if p.To.Sentinels <= p.From.Sentinels {
		return nil
	}
	shards := min(p.From.Shards, p.To.Shards)
	if err := parallel(sentinels, func(s store.Instance) error { return c.ensureSentinel(ctx, cl, s) }); err != nil {
		return err
	}
	masters := map[int]string{}
	for shard := 0; shard < shards; shard++ {
		if masters[shard] = c.currentMaster(ctx, cl, shard, redis, sentinels); masters[shard] == "" {
			return fmt.Errorf("no master known for shard %d", shard)
		}
	}
	register := func(onlyNew bool) error {
		return parallel(sentinels, func(s store.Instance) error {
			return c.registerShards(ctx, cl, s, 0, shards, func(shard int) string { return masters[shard] }, onlyNew)
		})
	}
	// The new Sentinels watch every shard first; the old ones keep their
	// quorum until every Sentinel knows every other.
	if err := register(true); err != nil {
		return err
	}
	c.introduceSentinels(ctx, cl, sentinels, 0, shards)
	view := cl
	view.Spec.Shards = shards
	view.Spec.Replicas = p.From.Replicas
	err := poll(ctx, c.cfg.SentinelReady, 50*time.Millisecond, func() (bool, string, error) {
		problems := c.sentinelProblems(ctx, view, sentinels)
		return len(problems) == 0, strings.Join(problems, "; "), nil
	})
	if err != nil {
		return err
	}
	return register(false)
}

// addShards creates the shards the target adds, like a create does.
func (c *Controller) addShards(ctx context.Context, r *jobRun, cl store.Cluster, p jobspec.ScaleParams, redis, sentinels []store.Instance) error {
	if p.To.Shards <= p.From.Shards {
		return nil
	}
	var fresh []store.Instance
	for _, in := range redis {
		if in.Shard >= p.From.Shards && in.Shard < p.To.Shards {
			fresh = append(fresh, in)
		}
	}
	err := parallel(fresh, func(in store.Instance) error {
		return c.ensureRedis(ctx, cl, in, plannedMaster(redis, in.Shard), sentinels)
	})
	if err != nil {
		return err
	}
	if err := c.waitReplication(ctx, r, cl, fresh); err != nil {
		return err
	}
	err = parallel(sentinels, func(s store.Instance) error {
		return c.registerShards(ctx, cl, s, p.From.Shards, p.To.Shards, plannedMasters(redis), false)
	})
	if err != nil {
		return err
	}
	c.introduceSentinels(ctx, cl, sentinels, p.From.Shards, p.To.Shards)
	return c.waitSentinelsAgree(ctx, r, cl, sentinels)
}

// addReplicas starts the replicas the target adds to existing shards as
// replicas of the master Sentinel names now, and waits until they are in
// sync and every Sentinel lists them.
func (c *Controller) addReplicas(ctx context.Context, r *jobRun, cl store.Cluster, p jobspec.ScaleParams, redis, sentinels []store.Instance) error {
	shards := min(p.From.Shards, p.To.Shards)
	var members []store.Instance
	for _, in := range redis {
		if in.Shard < shards {
			members = append(members, in)
		}
	}
	if p.To.Replicas <= p.From.Replicas {
		return nil
	}
	masters := map[int]string{}
	for shard := 0; shard < shards; shard++ {
		if masters[shard] = c.currentMaster(ctx, cl, shard, redis, sentinels); masters[shard] == "" {
			return fmt.Errorf("no master known for shard %d", shard)
		}
	}
	err := parallel(members, func(in store.Instance) error {
		return c.ensureRedis(ctx, cl, in, masters[in.Shard], sentinels)
	})
	if err != nil {
		return err
	}
	var replicas []store.Instance
	for _, in := range members {
		if addr(in) != masters[in.Shard] {
			replicas = append(replicas, in)
		}
	}
	if err := c.waitReplication(ctx, r, cl, replicas); err != nil {
		return err
	}
	view := cl
	view.Spec.Shards = shards
	// Sentinels may remember replicas that are gone (or were never ours);
	// they would never match the spec.
	if err := c.cleanSentinels(ctx, r, view, sentinels); err != nil {
		return err
	}
	return c.waitSentinelsAgree(ctx, r, view, sentinels)
}

// applyConfig applies memory and config changes online: CONFIG SET on
// every instance, replicas first and the master last, then CONFIG REWRITE so
// the file it boots from agrees; Sentinel options with SENTINEL SET.
func (c *Controller) applyConfig(ctx context.Context, _ *jobRun, cl store.Cluster, p jobspec.ScaleParams, redis, sentinels []store.Instance) error {
	if changes := topology.ConfigChanges(p.From, p.To); len(changes) > 0 {
		for shard := 0; shard < min(p.From.Shards, p.To.Shards); shard++ {
			master := c.currentMaster(ctx, cl, shard, redis, sentinels)
			var order []store.Instance
			for _, in := range redis {
				if in.Shard == shard && addr(in) != master {
					order = append(order, in)
				}
			}
			for _, in := range redis {
				if in.Shard == shard && addr(in) == master {
					order = append(order, in)
				}
			}
			for _, in := range order {
				rc := c.pool.Redis(addr(in), cl.Password)
				for _, kv := range changes {
					if err := rc.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
						return fmt.Errorf("CONFIG SET %s on %s: %w", kv[0], in.Name, err)
					}
				}
				if err := rc.ConfigRewrite(ctx).Err(); err != nil {
					return fmt.Errorf("CONFIG REWRITE on %s: %w", in.Name, err)
				}
			}
		}
	}
	if p.From.Sentinel != p.To.Sentinel {
		err := parallel(sentinels, func(s store.Instance) error {
			return c.registerShards(ctx, cl, s, 0, min(p.From.Shards, p.To.Shards), plannedMasters(redis), false)
		})
		if err != nil {
			return err
		}
	}
	if len(topology.ConfigChanges(p.From, p.To)) == 0 {
		return nil
	}
	// The platform keeps what an instance boots with next time (Kubernetes:
	// the ConfigMap, the pods' memory).
	return c.keepBootConfig(ctx, cl, redis, sentinels, min(p.From.Shards, p.To.Shards))
}

// removeReplicas stops the replicas the target no longer has room for
// (highest ordinals, never the master), then makes the Sentinels forget
// them one Sentinel at a time.
func (c *Controller) removeReplicas(ctx context.Context, r *jobRun, cl store.Cluster, p jobspec.ScaleParams, redis, sentinels []store.Instance) error {
	shards := min(p.From.Shards, p.To.Shards)
	masters := map[int]string{}
	var members []store.Instance
	for shard := 0; shard < shards; shard++ {
		masters[shard] = c.currentMaster(ctx, cl, shard, redis, sentinels)
	}
	for _, in := range redis {
		if in.Shard < shards {
			members = append(members, in)
		}
	}
	victims := topology.PlanRemovals(cl.Spec, members, masters, c.ordered)
	if err := c.moveMastersOff(ctx, r, cl, victims, masters, sentinels); err != nil {
		return err
	}
	if err := c.removeInstances(ctx, cl.Name, victims); err != nil {
		return err
	}
	view := cl
	view.Spec.Shards = shards
	return c.cleanSentinels(ctx, r, view, sentinels)
}

// moveMastersOff fails over every shard whose master is to be removed (a
// platform that removes only the highest ordinals), the way a planned
// failover does, losing no acknowledged write; the other instances to be
// removed get replica-priority 0 first, so Sentinel promotes one that stays.
func (c *Controller) moveMastersOff(ctx context.Context, r *jobRun, cl store.Cluster, victims []store.Instance, masters map[int]string, sentinels []store.Instance) error {
	for shard, master := range masters {
		var leaving []store.Instance
		moving := false
		for _, v := range victims {
			if v.Shard != shard {
				continue
			}
			if addr(v) == master {
				moving = true
			} else {
				leaving = append(leaving, v)
			}
		}
		if !moving {
			continue
		}
		for _, v := range leaving {
			if err := c.pool.Redis(addr(v), cl.Password).ConfigSet(ctx, "replica-priority", "0").Err(); err != nil {
				return fmt.Errorf("keep %s from being promoted: %w", v.Name, err)
			}
		}
		name := spec.MasterName(cl.Name, shard)
		// Sentinel picks the replica to promote by the priority of its
		// last INFO of each (every 10 s): the failover waits until every
		// Sentinel has seen the 0s, else it may promote an instance that
		// is about to be removed.
		r.progress(ctx, 0.4, fmt.Sprintf("waiting for the Sentinels of %s to see replica-priority 0 on the replicas to be removed", name))
		if err := c.waitPriorityZero(ctx, cl, name, leaving, sentinels); err != nil {
			return fmt.Errorf("fail over %s before removing its master: %w", name, err)
		}
		r.progress(ctx, 0.5, fmt.Sprintf("failing over %s: its master %s is removed", name, master))
		c.tracker.update(name, func(t *failoverTrack) { t.Planned = true })
		requested := time.Now().UTC()
		if err := c.requestFailover(ctx, cl, name, master, sentinels); err != nil {
			return fmt.Errorf("fail over %s before removing its master: %w", name, err)
		}
		newMaster, promotedAt, err := c.waitSwitch(ctx, r, cl, name, master, sentinels)
		if err != nil {
			return fmt.Errorf("fail over %s before removing its master: %w", name, err)
		}
		for _, v := range leaving {
			if addr(v) == newMaster {
				return fmt.Errorf("fail over %s before removing its master: Sentinel promoted %s, which is to be removed", name, v.Name)
			}
		}
		// The Sentinel running the failover names the promoted replica
		// before its failover ends; removing instances (or a RESET) before
		// it ends would leave that Sentinel watching the removed master.
		err = poll(ctx, time.Duration(cl.Spec.Sentinel.FailoverTimeoutMs)*time.Millisecond*3, 50*time.Millisecond, func() (bool, string, error) {
			for _, s := range sentinels {
				m, err := sentinel.GetMaster(ctx, c.pool.Sentinel(addr(s), cl.SentinelPassword), name)
				if err != nil {
					return false, s.Name + ": " + err.Error(), nil
				}
				if m.Addr != newMaster || topology.SentinelFailingOver(m) {
					return false, fmt.Sprintf("%s: master %s, flags %v", s.Name, m.Addr, m.Flags), nil
				}
			}
			return true, "", nil
		})
		if err != nil {
			return fmt.Errorf("failover of %s before removing its master did not end on every Sentinel: %w", name, err)
		}
		s := shard
		c.event(ctx, cl.Name, &s, "failover", fmt.Sprintf("planned failover of %s before scaling in: %s → %s", name, master, newMaster),
			map[string]any{"oldMaster": master, "newMaster": newMaster, "planned": true, "requestedAt": requested,
				"promotedAt": promotedAt, "switchMs": promotedAt.Sub(requested).Milliseconds()})
		masters[shard] = newMaster
	}
	return nil
}

// waitPriorityZero waits until every Sentinel that answers lists each of
// the replicas with slave-priority 0 (or not at all).
func (c *Controller) waitPriorityZero(ctx context.Context, cl store.Cluster, name string, replicas, sentinels []store.Instance) error {
	return poll(ctx, 30*time.Second, 100*time.Millisecond, func() (bool, string, error) {
		for _, s := range sentinels {
			reps, err := sentinel.Replicas(ctx, c.pool.Sentinel(addr(s), cl.SentinelPassword), name)
			if err != nil {
				continue // it cannot run the failover either
			}
			for _, rep := range reps {
				for _, v := range replicas {
					if rep.Addr == addr(v) && rep.Priority != 0 {
						return false, fmt.Sprintf("%s still sees replica-priority %d on %s", s.Name, rep.Priority, v.Name), nil
					}
				}
			}
		}
		return true, "", nil
	})
}

// removeShards makes every Sentinel forget the shards beyond the target
// (highest first), then removes their instances.
func (c *Controller) removeShards(ctx context.Context, _ *jobRun, cl store.Cluster, p jobspec.ScaleParams, redis, sentinels []store.Instance) error {
	var victims []store.Instance
	for _, in := range redis {
		if in.Shard >= p.To.Shards {
			victims = append(victims, in)
		}
	}
	if len(victims) == 0 {
		return nil
	}
	err := parallel(sentinels, func(s store.Instance) error {
		sc := c.pool.Sentinel(addr(s), cl.SentinelPassword)
		for shard := max(p.From.Shards, p.To.Shards) - 1; shard >= p.To.Shards; shard-- {
			if err := sentinel.Unregister(ctx, sc, spec.MasterName(cl.Name, shard)); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.removeInstances(ctx, cl.Name, victims)
}

// removeSentinels removes the Sentinels beyond the target (highest
// ordinals), sets the target quorum on the rest, and cleans the rest's
// memory of the removed ones one Sentinel at a time.
func (c *Controller) removeSentinels(ctx context.Context, r *jobRun, cl store.Cluster, p jobspec.ScaleParams, redis, sentinels []store.Instance) error {
	// Decided by the job's parameters, not by what is left to remove: a
	// step run again (after a timeout, a restart) whose Sentinels are
	// already gone must still set the quorum and clean the rest.
	if p.To.Sentinels >= p.From.Sentinels {
		return nil
	}
	victims := topology.PlanRemovals(cl.Spec, sentinels, nil, c.ordered)
	if err := c.removeInstances(ctx, cl.Name, victims); err != nil {
		return err
	}
	var rest []store.Instance
	for _, s := range sentinels {
		if !slices.ContainsFunc(victims, func(v store.Instance) bool { return v.Name == s.Name }) {
			rest = append(rest, s)
		}
	}
	err := parallel(rest, func(s store.Instance) error {
		return c.registerShards(ctx, cl, s, 0, cl.Spec.Shards, plannedMasters(redis), false)
	})
	if err != nil {
		return err
	}
	return c.cleanSentinels(ctx, r, cl, rest)
}

// removeInstances stops instances, deletes their data and records.
func (c *Controller) removeInstances(ctx context.Context, cluster string, victims []store.Instance) error {
	return parallel(victims, func(in store.Instance) error {
		if err := c.platform.Remove(ctx, id(in)); err != nil {
			return err
		}
		c.pool.Forget(addr(in))
		if err := c.store.DeleteInstance(ctx, in.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		c.log.Info("removed instance", "instance", in.Name)
		return nil
	})
}

// cleanSentinels makes Sentinels forget replicas and Sentinels that no
// longer exist. Sentinel forgets only with SENTINEL RESET, which also drops
// what it knows of healthy peers; so it is sent to one Sentinel at a time,
// only to a Sentinel that lists a stale entry, and the next waits until that
// one has rediscovered every live replica and Sentinel. A blanket RESET on
// every Sentinel at once is what caused failover outages elsewhere.
func (c *Controller) cleanSentinels(ctx context.Context, r *jobRun, cl store.Cluster, sentinels []store.Instance) error {
	redis, _, err := c.instancesOf(ctx, cl.Name)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, in := range append(append([]store.Instance{}, redis...), sentinels...) {
		live[addr(in)] = true
	}
	for i, s := range sentinels {
		conn := c.pool.Sentinel(addr(s), cl.SentinelPassword)
		for shard := 0; shard < cl.Spec.Shards; shard++ {
			name := spec.MasterName(cl.Name, shard)
			// (A Sentinel that stalls for a moment times this out: the job
			// runs a step that timed out again.)
			stale, reps, err := staleEntries(ctx, conn, name, live)
			if err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			if len(stale) == 0 && c.namesMove {
				stale = c.stuckReplicas(ctx, cl, conn, name, live, reps)
			}
			if len(stale) == 0 {
				continue
			}
			r.progress(ctx, float64(i)/float64(len(sentinels)), fmt.Sprintf("%s forgets %s", s.Name, strings.Join(stale, ", ")))
			c.log.Info("resetting one Sentinel to forget stale entries", "sentinel", s.Name, "shard", name, "stale", stale)
			if _, err := sentinel.Reset(ctx, conn, name); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			c.introduceSentinels(ctx, cl, sentinels, shard, shard+1)
			one := []store.Instance{s}
			err = poll(ctx, c.cfg.SentinelReady, 50*time.Millisecond, func() (bool, string, error) {
				problems := c.sentinelShardProblems(ctx, cl, one, len(sentinels), shard)
				return len(problems) == 0, strings.Join(problems, "; "), nil
			})
			if err != nil {
				return fmt.Errorf("%s after reset: %w", s.Name, err)
			}
		}
	}
	return nil
}

// stuckReplicas lists the live replicas a Sentinel still flags as down or
// disconnected although they answer the manager, and still does a moment
// later (Sentinel pings every second). Sentinel resolves a replica's name
// once, when it adds the entry, and reconnects to that address ever after:
// a pod that came back at a new address (Kubernetes) while the Sentinel
// had just re-added it from the old name stays down in that Sentinel until
// it is reset. Only SENTINEL RESET makes it resolve the name again.
// reps is the Sentinel's list of replicas as just read.
func (c *Controller) stuckReplicas(ctx context.Context, cl store.Cluster, conn sentinel.Conn, name string, live map[string]bool, reps []sentinel.Replica) []string {
	down := func(reps []sentinel.Replica) map[string]bool {
		out := map[string]bool{}
		for _, r := range reps {
			if live[r.Addr] && (slices.Contains(r.Flags, "s_down") || slices.Contains(r.Flags, "disconnected")) {
				out[r.Addr] = true
			}
		}
		return out
	}
	first := down(reps)
	if len(first) == 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(stuckConfirm):
	}
	again, err := sentinel.Replicas(ctx, conn, name)
	if err != nil {
		return nil
	}
	var stuck []string
	for a := range down(again) {
		if !first[a] {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.pool.Redis(a, cl.Password).Ping(pctx).Err()
		cancel()
		if err == nil {
			stuck = append(stuck, a+" (down in this Sentinel, answers the manager)")
		}
	}
	sort.Strings(stuck)
	return stuck
}

// stuckConfirm is how long a replica that answers must stay flagged down in
// a Sentinel before that Sentinel is reset: longer than Sentinel's ping
// period and its reconnect period (1 s each).
var stuckConfirm = 3 * time.Second

// staleEntries lists the replicas and Sentinels a Sentinel knows for a
// shard that are not live instances of the cluster, and the replicas it
// knows.
func staleEntries(ctx context.Context, conn sentinel.Conn, name string, live map[string]bool) (stale []string, reps []sentinel.Replica, err error) {
	reps, err = sentinel.Replicas(ctx, conn, name)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range reps {
		if !live[r.Addr] {
			stale = append(stale, r.Addr)
		}
	}
	peers, err := sentinel.Sentinels(ctx, conn, name)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range peers {
		if a := net.JoinHostPort(p.Host, p.Port); !live[a] {
			stale = append(stale, a)
		}
	}
	return stale, reps, nil
}

// finishScale waits until the cluster is Ready under the target spec, then
// records the target as the cluster's spec and the change as an event.
func (c *Controller) finishScale(ctx context.Context, r *jobRun, cl store.Cluster, p jobspec.ScaleParams, _, _ []store.Instance) error {
	if err := c.waitReady(ctx, r, cl); err != nil {
		return err
	}
	if err := c.store.UpdateClusterSpec(ctx, cl.Name, p.To); err != nil {
		return err
	}
	c.observeCluster(ctx, cl, "")
	c.event(ctx, cl.Name, nil, "scaled", describeScale(p.From, p.To), map[string]any{"before": p.From, "after": p.To})
	return nil
}

// waitReady waits until the cluster is observed Ready under cl.Spec.
func (c *Controller) waitReady(ctx context.Context, r *jobRun, cl store.Cluster) error {
	return poll(ctx, c.cfg.SentinelReady, 100*time.Millisecond, func() (bool, string, error) {
		redis, sentinels, err := c.instancesOf(ctx, cl.Name)
		if err != nil {
			return false, "", err
		}
		st := topology.Evaluate(cl.Spec, cl.Name, c.observe(ctx, cl, redis, sentinels), "")
		r.progress(ctx, 0.5, "waiting for the cluster to be Ready: "+st.Reason)
		return st.Phase == api.PhaseReady, st.Reason, nil
	})
}

func describeScale(from, to api.ClusterSpec) string {
	var parts []string
	add := func(what string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			parts = append(parts, fmt.Sprintf("%s %v → %v", what, a, b))
		}
	}
	add("shards", from.Shards, to.Shards)
	add("replicas", from.Replicas, to.Replicas)
	add("sentinels", from.Sentinels, to.Sentinels)
	add("maxmemory", from.Maxmemory, to.Maxmemory)
	add("maxmemoryPolicy", from.MaxmemoryPolicy, to.MaxmemoryPolicy)
	add("persistence", from.Persistence, to.Persistence)
	add("config", from.Config, to.Config)
	add("sentinel", from.Sentinel, to.Sentinel)
	add("fastFailover", from.FastFailover, to.FastFailover)
	add("minReplicasToWrite", from.MinReplicasToWrite, to.MinReplicasToWrite)
	if len(parts) == 0 {
		return "scaled: no change"
	}
	return "scaled: " + strings.Join(parts, ", ")
}
