package jobspec

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
)

// listJobsStore is the real SQLite store whose ListJobs fails, the way a
// lost database connection does, while down is set.
type listJobsStore struct {
	store.Store
	down atomic.Bool
}

func (s *listJobsStore) ListJobs(ctx context.Context, cluster string) ([]store.Job, error) {
	if s.down.Load() {
		return nil, errors.New("store down (test)")
	}
	return s.Store.ListJobs(ctx, cluster)
}

// A failed job list must not let a backup start beside a create, restore
// or delete: it is an error, not "not busy".
func TestNotBackupableNeedsTheJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	real, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "manager.db"), filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { real.Close() })
	st := &listJobsStore{Store: real}
	cl := store.Cluster{Name: "orders", CreatedAt: time.Now().UTC(),
		Spec: api.ClusterSpec{Shards: 1, Replicas: 1, Sentinels: 1, Persistence: "none",
			Sentinel: api.SentinelSettings{DownAfterMs: 5000, FailoverTimeoutMs: 10000, ParallelSyncs: 1}}}
	job := New(api.JobCreate, cl.Name, time.Now().UTC())
	if err := st.CreateClusterWithJob(ctx, cl, job); err != nil {
		t.Fatal(err)
	}
	// The create in progress keeps the cluster from being backed up.
	if busy, err := NotBackupable(ctx, st, "orders"); err != nil || busy == "" {
		t.Fatalf("NotBackupable during a create = %q, %v; want busy", busy, err)
	}
	job.State = api.StateSucceeded
	now := time.Now().UTC()
	job.FinishedAt = &now
	if err := st.UpdateJob(ctx, job); err != nil {
		t.Fatal(err)
	}

	st.down.Store(true)
	if busy, err := NotBackupable(ctx, st, "orders"); err == nil {
		t.Fatalf("NotBackupable with the store down = %q, nil; want an error", busy)
	}
	st.down.Store(false)
	if busy, err := NotBackupable(ctx, st, "orders"); err != nil || busy != "" {
		t.Fatalf("NotBackupable = %q, %v; want not busy", busy, err)
	}
}
