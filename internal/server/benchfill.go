//go:build benchfill

package server

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

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
		names := timeseries.Fill(s, n, timeseries.Typical)
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
