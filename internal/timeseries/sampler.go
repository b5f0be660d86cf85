package timeseries

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis-manager/redis-manager/internal/store"
)

// Lister is what the sampler reads: the clusters with the statuses the
// leader's control loop stored.
type Lister interface {
	ListClusters(ctx context.Context) ([]store.Cluster, error)
}

// Run samples every cluster's stored status every Step until ctx ends,
// and drops the series of deleted clusters and of instances gone for 24 h.
// Every manager runs it, leader or standby: they all read the same store.
func (s *Series) Run(ctx context.Context, st Lister, log *slog.Logger) {
	t := time.NewTicker(Step)
	defer t.Stop()
	for {
		s.sample(ctx, st, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Series) sample(ctx context.Context, st Lister, log *slog.Logger) {
	cls, err := st.ListClusters(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("time series: list clusters", "err", err)
		}
		return
	}
	now := time.Now()
	names := make([]string, 0, len(cls))
	for _, cl := range cls {
		names = append(names, cl.Name)
		s.Add(cl.Name, cl.Status, now)
	}
	s.Retain(names, now)
}
