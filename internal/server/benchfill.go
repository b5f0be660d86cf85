//go:build benchfill

package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/timeseries"
)

// Only in binaries built with -tags benchfill (bench/timeseries): before
// the manager listens, fill its time series with 24 h of synthetic
// samples of REDIS_MANAGER_BENCH_FILL_INSTANCES instances (10 per
// cluster, timeseries.Typical), so the process's memory can be measured
// as it is after a day of 1,000 instances. The sampler keeps the
// synthetic clusters as if the store listed them.
func init() {
	benchSeries = func(s *timeseries.Series, l timeseries.Lister) timeseries.Lister {
		n, _ := strconv.Atoi(os.Getenv("REDIS_MANAGER_BENCH_FILL_INSTANCES"))
		if n <= 0 {
			return l
		}
		start := time.Now()
		now := time.Now().Truncate(timeseries.Step)
		first := now.Add(-timeseries.Window + timeseries.Step)
		var names []string
		for c := 0; c*10 < n; c++ {
			name := fmt.Sprintf("bench-%03d", c)
			names = append(names, name)
			var gens []func(int, *api.InstanceStatus)
			for k := 0; k < 10 && c*10+k < n; k++ {
				gens = append(gens, timeseries.Typical(rand.New(rand.NewPCG(uint64(c), uint64(k)))))
			}
			i := 0
			for at := first; !at.After(now); at = at.Add(timeseries.Step) {
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
		runtime.GC()
		debug.FreeOSMemory()
		fmt.Fprintf(os.Stderr, "bench: filled 24 h of series for %d instances in %s\n", n, time.Since(start).Round(time.Millisecond))
		return benchLister{l, names}
	}
}

// benchLister lists the synthetic clusters besides the store's, so the
// sampler does not drop their series as deleted.
type benchLister struct {
	timeseries.Lister
	names []string
}

func (b benchLister) ListClusters(ctx context.Context) ([]store.Cluster, error) {
	cls, err := b.Lister.ListClusters(ctx)
	for _, n := range b.names {
		cls = append(cls, store.Cluster{Name: n})
	}
	return cls, err
}
