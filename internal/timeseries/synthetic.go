package timeseries

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// Typical returns a generator of a moderately busy master's figures for
// sample i (about 2,000 ops/s ± 20 %, 1 GB of memory moving by some
// hundred KB, 50 clients, a growing key count, a hit ratio near 0.9, a
// few % CPU): what the bench and the tests measure memory with.
func Typical(r *rand.Rand) func(i int, is *api.InstanceStatus) {
	var hits, misses int64
	var cpu float64
	return func(i int, is *api.InstanceStatus) {
		ops := 2000 + r.Int64N(800) - 400
		is.OpsPerSec = ops
		is.UsedMemoryBytes = 1<<30 + int64(i)*1000 + r.Int64N(400_000)
		is.ConnectedClients = 50 + r.Int64N(5)
		is.Keys = 1_000_000 + int64(i)*10 + r.Int64N(50)
		reads := ops * 10 * 8 / 10
		h := reads * (85 + r.Int64N(10)) / 100
		hits, misses = hits+h, misses+reads-h
		is.KeyspaceHits, is.KeyspaceMisses = hits, misses
		cpu += 0.3 + r.Float64()*0.2
		is.UsedCPUSeconds = cpu
	}
}

// Worst returns a generator where every figure is random over a wide range
// at every sample: no difference is small.
func Worst(r *rand.Rand) func(i int, is *api.InstanceStatus) {
	var hits, misses int64
	var cpu float64
	return func(i int, is *api.InstanceStatus) {
		is.OpsPerSec = r.Int64N(1 << 30)
		is.UsedMemoryBytes = r.Int64N(1 << 46)
		is.ConnectedClients = r.Int64N(1 << 20)
		is.Keys = r.Int64N(1 << 40)
		is.LagBytes = r.Int64N(1 << 40)
		hits += r.Int64N(1 << 30)
		misses += r.Int64N(1 << 30)
		is.KeyspaceHits, is.KeyspaceMisses = hits, misses
		cpu += r.Float64() * 40
		is.UsedCPUSeconds = cpu
	}
}

// Fill adds 24 h of samples ending now for n synthetic masters, 10 per
// cluster ("bench-000", …; instances "bench-000-<k>-0"), each drawn from
// profile (Typical or Worst) with its own seeded source, and returns the
// clusters' names: what the bench and the benchfill build measure memory
// with.
func Fill(s *Series, n int, profile func(*rand.Rand) func(int, *api.InstanceStatus)) []string {
	now := time.Now().Truncate(Step)
	first := now.Add(-Window + Step)
	var names []string
	for c := 0; c*10 < n; c++ {
		name := fmt.Sprintf("bench-%03d", c)
		names = append(names, name)
		var gens []func(int, *api.InstanceStatus)
		for k := 0; k < 10 && c*10+k < n; k++ {
			gens = append(gens, profile(rand.New(rand.NewPCG(uint64(c), uint64(k)))))
		}
		i := 0
		for at := first; !at.After(now); at = at.Add(Step) {
			st := api.ClusterStatus{ObservedAt: &at}
			for k, gen := range gens {
				is := api.InstanceStatus{Name: fmt.Sprintf("%s-%d-0", name, k), Role: "master", Up: true}
				gen(i, &is)
				st.Shards = append(st.Shards, api.ShardStatus{Index: k, Master: &is})
			}
			s.Add(name, st, at)
			i++
		}
	}
	return names
}
