package timeseries

import (
	"math/rand/v2"

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
