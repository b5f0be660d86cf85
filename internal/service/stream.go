package service

import (
	"context"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// JobsSince returns the pending and running jobs and those that finished
// at or after since, oldest first (for the live stream).
func (svc *Service) JobsSince(ctx context.Context, since time.Time) ([]api.Job, error) {
	js, err := svc.store.JobsSince(ctx, since)
	if err != nil {
		return nil, err
	}
	out := make([]api.Job, 0, len(js))
	for _, j := range js {
		out = append(out, j.Job)
	}
	return out, nil
}

// UnfinishedJobs returns the pending and running jobs, oldest first.
func (svc *Service) UnfinishedJobs(ctx context.Context) ([]api.Job, error) {
	js, err := svc.store.UnfinishedJobs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Job, 0, len(js))
	for _, j := range js {
		out = append(out, j.Job)
	}
	return out, nil
}

// RecentEvents returns a cluster's newest events, newest first, at most
// limit, whichever cluster of that name they belong to (the live stream
// keeps those of the current one).
func (svc *Service) RecentEvents(ctx context.Context, cluster string, limit int) ([]api.Event, error) {
	return svc.store.ListEvents(ctx, cluster, limit)
}
