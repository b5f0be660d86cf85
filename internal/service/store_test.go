package service

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/platform/fake"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/store/storetest"
)

// The store is the real SQLite store; failingStore makes chosen reads fail
// the way a lost database connection does.

var errStoreDown = errors.New("store down (test)")

type failingStore struct {
	store.Store
	getJobDown atomic.Bool
}

func (s *failingStore) GetJob(ctx context.Context, id string) (store.Job, error) {
	if s.getJobDown.Load() {
		return store.Job{}, errStoreDown
	}
	return s.Store.GetJob(ctx, id)
}

// newService returns a service on a fresh SQLite store and the fake
// platform with room for limit instances. Live and Runner are nil: the
// tests here call nothing that reaches the running cluster or the runner.
func newService(t *testing.T, limit int) (*Service, *failingStore) {
	t.Helper()
	dir := t.TempDir()
	real := storetest.SQLite(t, dir)
	st := &failingStore{Store: real}
	return New(Config{}, st, fake.New(fake.Options{Limit: limit}), nil, nil, slog.New(slog.DiscardHandler)), st
}

// On a platform that names instances by DNS and gives every redis-server
// the same port (as Kubernetes will), capacity is the platform's: the
// recorded endpoints count against its limit.
func TestCapacityOnDNSPlatform(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, st := newService(t, 10)
	// A 2×1×3 cluster's records, as the create job's allocation stores them.
	cl := api.ClusterSpec{Shards: 2, Replicas: 1, Sentinels: 3}
	var names []string
	for shard := 0; shard < cl.Shards; shard++ {
		for o := 0; o <= cl.Replicas; o++ {
			names = append(names, spec.InstanceName("orders", shard, o))
		}
	}
	for o := 0; o < cl.Sentinels; o++ {
		names = append(names, spec.SentinelInstanceName("orders", o))
	}
	for _, name := range names {
		in := store.Instance{Name: name, Cluster: "orders", Kind: store.KindRedis, Host: name + ".orders.fake", Port: fake.RedisPort, CreatedAt: time.Now().UTC()}
		if strings.Contains(name, "sentinel") {
			in.Kind, in.Port = store.KindSentinel, fake.SentinelPort
		}
		if err := st.PutInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(names); n != spec.InstanceCount(cl) || n != 7 {
		t.Fatalf("stored %d records, want 7", n)
	}

	// 7 of 10 taken: a cluster of 4 is refused with the platform's words.
	err := svc.checkCapacity(ctx, 4)
	var fe *spec.FieldError
	if !errors.As(err, &fe) || fe.Field != "shards" || !strings.Contains(fe.Message, "needs 4 instances") || !strings.Contains(fe.Message, "only 3 of the 10") {
		t.Errorf("checkCapacity(4) = %v", err)
	}
	if err := svc.checkCapacity(ctx, 3); err != nil {
		t.Errorf("checkCapacity(3) = %v", err)
	}
}

// A restore set is completed from the backup job's parameters; a failed
// read of the job must not make an incomplete set look complete.
func TestRestoreSetNeedsTheJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, st := newService(t, 10)
	cl := store.Cluster{Name: "orders", CreatedAt: time.Now().UTC(),
		Spec: api.ClusterSpec{Shards: 1, Replicas: 1, Sentinels: 1, Persistence: "none",
			Sentinel: api.SentinelSettings{DownAfterMs: 5000, FailoverTimeoutMs: 10000, ParallelSyncs: 1}}}
	create := jobspec.New(api.JobCreate, cl.Name, time.Now().UTC())
	if err := st.CreateClusterWithJob(ctx, cl, create); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateJob(ctx, finished(create)); err != nil {
		t.Fatal(err)
	}
	job := jobspec.New(api.JobBackup, "orders", time.Now().UTC())
	b0 := store.Backup{Backup: api.Backup{ID: "b0", Cluster: "orders", Shard: 0, State: api.StateSucceeded, StartedAt: time.Now().UTC(), Job: job.ID}}
	b1 := b0
	b1.ID, b1.Shard = "b1", 1
	job.Params = []byte(`{"backups":["b0","b1"]}`)
	if err := st.CreateBackupJob(ctx, job, []store.Backup{b0, b1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteBackup(ctx, "b1"); err != nil {
		t.Fatal(err)
	}
	st.getJobDown.Store(true)
	if set, err := svc.restoreSet(ctx, b0, false); err == nil {
		t.Fatalf("restoreSet with the job unreadable = %d backups, nil; want an error", len(set))
	}
	st.getJobDown.Store(false)
	if _, err := svc.restoreSet(ctx, b0, false); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("restoreSet of a set missing b1: %v, want incomplete", err)
	}
}

func finished(j store.Job) store.Job {
	j.State = api.StateSucceeded
	now := time.Now().UTC()
	j.FinishedAt = &now
	return j
}
