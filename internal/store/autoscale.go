package store

import (
	"context"

	"github.com/redis-manager/redis-manager/api"
)

// Autoscaling is the autoscaler's part of the store (migration 11): one
// policy per cluster (API writes), the engine's state per cluster (leader
// writes, with its fence) and the decisions, which are events.
type Autoscaling interface {
	// GetAutoscalePolicy returns the cluster's policy. ErrNotFound when it
	// has none.
	GetAutoscalePolicy(ctx context.Context, cluster string) (api.AutoscalePolicy, error)
	// ListAutoscalePolicies returns every policy, by cluster.
	ListAutoscalePolicies(ctx context.Context) (map[string]api.AutoscalePolicy, error)
	// PutAutoscalePolicy inserts or replaces the cluster's policy.
	PutAutoscalePolicy(ctx context.Context, cluster string, p api.AutoscalePolicy) error
	// DeleteAutoscalePolicy removes the policy and the engine's state.
	// ErrNotFound when there was no policy.
	DeleteAutoscalePolicy(ctx context.Context, cluster string) error
	// GetAutoscaleState returns the engine's state (zero when none).
	GetAutoscaleState(ctx context.Context, cluster string) (api.AutoscaleState, error)
	// PutAutoscaleState inserts or replaces the engine's state.
	PutAutoscaleState(ctx context.Context, cluster string, st api.AutoscaleState) error
	// ListEventsOfType lists the cluster's events of one type, newest
	// first, at most limit (<= 0: all).
	ListEventsOfType(ctx context.Context, cluster, typ string, limit int) ([]api.Event, error)
}
