package topology

import (
	"net"
	"strconv"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// Observation is the raw material of a status: what each instance and each
// Sentinel said.
type Observation struct {
	At        time.Time
	Redis     []RedisObs
	Sentinels []SentinelObs
}

// RedisObs is what one redis-server answered (Up false: it did not).
type RedisObs struct {
	In      store.Instance
	Details platform.Details // what the platform says of it (local: pid)
	Up      bool
	Info    redisclient.Info
	Master  string // address of its master, for a replica
}

// SentinelObs is what one Sentinel answered: every shard it monitors.
type SentinelObs struct {
	In      store.Instance
	Details platform.Details
	Up      bool
	View    map[string]sentinel.Master
	Tilt    bool // INFO sentinel: sentinel_tilt
}

// Addr is the address of an instance.
func Addr(in store.Instance) string { return net.JoinHostPort(in.Host, strconv.Itoa(in.Port)) }

// Majority returns the address most answers name (the lowest on a tie, so
// the result does not flip between calls), "" for no answers. It is the one
// vote over what Sentinels name master.
func Majority(answers []string) string {
	counts := map[string]int{}
	best, bestN := "", 0
	for _, a := range answers {
		counts[a]++
		if n := counts[a]; n > bestN || (n == bestN && a < best) {
			best, bestN = a, n
		}
	}
	return best
}

// failoverFlags are the flags of a master entry in SENTINEL MASTERS that
// mean its failover has begun or is about to: the Sentinel sees it down
// (s_down, which turns into o_down once a quorum agrees), a quorum sees it
// down (o_down), or the failover runs (failover_in_progress). Redis sets
// "promoted" on the replica being promoted rather than on the master entry;
// it is kept for safety, as earlier definitions had it.
var failoverFlags = map[string]bool{"s_down": true, "o_down": true, "failover_in_progress": true, "promoted": true}

// SentinelFailingOver tells whether one Sentinel's entry for a shard says
// the shard is failing over.
func SentinelFailingOver(m sentinel.Master) bool {
	for _, f := range m.Flags {
		if failoverFlags[f] {
			return true
		}
	}
	return false
}

// FailingOver tells whether a shard is failing over: an answering Sentinel
// flags its master down or in failover (SentinelFailingOver), or the master
// the Sentinels name is an instance of the shard that does not answer while
// the shard has replicas to promote. It is the one definition used for the
// phase (Evaluate), for holding off demotions (PlanHeal) and for refusing a
// spec change.
func FailingOver(s api.ClusterSpec, cluster string, obs Observation, shard int) bool {
	name := spec.MasterName(cluster, shard)
	var answers []string
	for _, so := range obs.Sentinels {
		m, ok := so.View[name]
		if !ok || !so.Up {
			continue
		}
		if SentinelFailingOver(m) {
			return true
		}
		answers = append(answers, m.Addr)
	}
	if s.Replicas == 0 {
		return false
	}
	named := Majority(answers)
	for _, ro := range obs.Redis {
		if ro.In.Shard == shard && !ro.Up && Addr(ro.In) == named {
			return true
		}
	}
	return false
}

// FailingOverShard returns the lowest shard of the spec that is failing
// over.
func FailingOverShard(s api.ClusterSpec, cluster string, obs Observation) (int, bool) {
	for shard := 0; shard < s.Shards; shard++ {
		if FailingOver(s, cluster, obs, shard) {
			return shard, true
		}
	}
	return 0, false
}
