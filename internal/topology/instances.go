package topology

import (
	"sort"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// Planned is an instance the spec asks for, before it has a port.
type Planned struct {
	Name    string
	Kind    string
	Shard   int
	Ordinal int
}

// PlanAdditions lists the instances the spec needs beyond the existing
// records: missing Sentinels and members of each shard, each with the lowest
// ordinal not in use (after a scale-in that kept a promoted replica,
// ordinals can have gaps). With no existing records it lists every instance
// of the spec: Sentinels first, then each shard's ordinal 0 (its first
// master) and replicas. It is pure.
func PlanAdditions(cl store.Cluster, existing []store.Instance) []Planned {
	used := map[int]map[int]bool{} // shard (-1: Sentinels) -> ordinals
	for _, in := range existing {
		if used[in.Shard] == nil {
			used[in.Shard] = map[int]bool{}
		}
		used[in.Shard][in.Ordinal] = true
	}
	var out []Planned
	add := func(shard, want int, name func(ordinal int) string, kind string) {
		have := len(used[shard])
		for o := 0; have < want; o++ {
			if used[shard][o] {
				continue
			}
			out = append(out, Planned{Name: name(o), Kind: kind, Shard: shard, Ordinal: o})
			have++
		}
	}
	add(-1, cl.Spec.Sentinels, func(o int) string { return spec.SentinelInstanceName(cl.Name, o) }, store.KindSentinel)
	for s := 0; s < cl.Spec.Shards; s++ {
		add(s, 1+cl.Spec.Replicas, func(o int) string { return spec.InstanceName(cl.Name, s, o) }, store.KindRedis)
	}
	return out
}

// PlanRemovals lists the existing instances the spec no longer has room
// for: Sentinels and replicas with the highest ordinals, never a shard's
// current master (masters maps shard to its master's address), and every
// member of shards beyond the spec. With ordered (a platform that removes
// only the highest ordinals, a StatefulSet) the highest ordinals go even
// when the master is among them: the caller moves the master away first.
// It is pure.
func PlanRemovals(s api.ClusterSpec, existing []store.Instance, masters map[int]string, ordered bool) []store.Instance {
	byShard := map[int][]store.Instance{}
	for _, in := range existing {
		byShard[in.Shard] = append(byShard[in.Shard], in)
	}
	var out []store.Instance
	for shard, ins := range byShard {
		sort.Slice(ins, func(i, j int) bool { return ins[i].Ordinal > ins[j].Ordinal })
		want := 1 + s.Replicas
		switch {
		case shard == -1:
			want = s.Sentinels
		case shard >= s.Shards:
			want = 0
		}
		excess := len(ins) - want
		for _, in := range ins {
			if excess <= 0 {
				break
			}
			if !ordered && want > 0 && shard >= 0 && Addr(in) == masters[shard] {
				continue
			}
			out = append(out, in)
			excess--
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
