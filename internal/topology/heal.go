package topology

import (
	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// HealPlan is what the control loop decides to do about a cluster's
// failures. It is computed by PlanHeal, a pure function.
type HealPlan struct {
	// Restart lists lost instances (process gone) that can start again:
	// their boot role is decided from Sentinel at boot.
	Restart []store.Instance
	// Waiting lists lost masters Sentinel still names: starting one again
	// before the failover could make it master with old or no data, so the
	// failover (fast path or Sentinel's own) goes first.
	Waiting []store.Instance
	// Demote lists instances in the master role that Sentinel does not name:
	// a second master, fenced at once.
	Demote []Demotion
}

// Demotion is a second master and the master it must replicate.
type Demotion struct {
	In     store.Instance
	Master string
}

// sentinelNames returns, per shard, every address an answering Sentinel
// names as master, and whether the Sentinels are settled: a quorum of them
// answers, all name the same master, and the shard is not failing over
// (FailingOver).
func sentinelNames(s api.ClusterSpec, cluster string, obs Observation) (names map[int]map[string]bool, settled map[int]bool) {
	names, settled = map[int]map[string]bool{}, map[int]bool{}
	for shard := 0; shard < s.Shards; shard++ {
		names[shard] = map[string]bool{}
		answers := 0
		for _, so := range obs.Sentinels {
			m, ok := so.View[spec.MasterName(cluster, shard)]
			if !ok || !so.Up {
				continue
			}
			answers++
			names[shard][m.Addr] = true
		}
		calm := !FailingOver(s, cluster, obs, shard)
		settled[shard] = calm && len(names[shard]) == 1 && answers >= spec.Quorum(s.Sentinels)
	}
	return names, settled
}

// PlanHeal decides what to restart, what waits for a failover and what to
// demote. running tells which instances' processes the platform runs.
func PlanHeal(s api.ClusterSpec, cluster string, obs Observation, running map[string]bool) HealPlan {
	var p HealPlan
	names, settled := sentinelNames(s, cluster, obs)
	// The one master all Sentinels agree on, up and in the master role.
	agreed := map[int]string{}
	for _, ro := range obs.Redis {
		if sh := ro.In.Shard; settled[sh] && names[sh][Addr(ro.In)] && ro.Up && ro.Info["role"] == "master" {
			agreed[sh] = Addr(ro.In)
		}
	}
	for _, ro := range obs.Redis {
		a, sh := Addr(ro.In), ro.In.Shard
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
			p.Demote = append(p.Demote, Demotion{In: ro.In, Master: agreed[sh]})
		}
	}
	for _, so := range obs.Sentinels {
		if !so.Up && !running[so.In.Name] {
			p.Restart = append(p.Restart, so.In)
		}
	}
	return p
}
