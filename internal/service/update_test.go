package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/platform/fake"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// liveAnswers is an in-memory Live: what the running cluster would answer,
// per shard. It records which shards were asked for.
type liveAnswers struct {
	failing int // the shard failing over, -1 for none
	masters map[int]redisclient.Info
	asked   []int
}

func (l *liveAnswers) FailingOver(context.Context, store.Cluster) (int, bool, error) {
	return l.failing, l.failing >= 0, nil
}

func (l *liveAnswers) MasterInfo(_ context.Context, _ store.Cluster, shard int, _ ...string) (string, redisclient.Info, error) {
	l.asked = append(l.asked, shard)
	info, ok := l.masters[shard]
	if !ok {
		return "", nil, nil
	}
	return fmt.Sprintf("orders-%d-0.orders.fake:6379", shard), info, nil
}

type kickCounter struct{ n atomic.Int32 }

func (k *kickCounter) Kick() { k.n.Add(1) }

// A spec change asks the running cluster (through Live) before it stores
// a scale job: a shard failing over refuses it (409), removing a shard
// that holds keys needs force (409), maxmemory under a master's
// used_memory needs force (422); only an accepted change stores a job and
// wakes the runner.
func TestUpdateClusterAsksTheLiveCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "manager.db"), filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	two := 2
	s, err := spec.FromCreateRequest(api.CreateClusterRequest{Name: "orders", Shards: &two})
	if err != nil {
		t.Fatal(err)
	}
	cl := store.Cluster{Name: "orders", Spec: s, CreatedAt: time.Now().UTC()}
	create := jobspec.New(api.JobCreate, cl.Name, time.Now().UTC())
	if err := st.CreateClusterWithJob(ctx, cl, create); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateJob(ctx, finished(create)); err != nil {
		t.Fatal(err)
	}
	live := &liveAnswers{failing: 1, masters: map[int]redisclient.Info{
		0: {"db0": "keys=0,expires=0,avg_ttl=0", "used_memory": "1000"},
		1: {"db0": "keys=5,expires=0,avg_ttl=0", "used_memory": "10000000"},
	}}
	kicks := &kickCounter{}
	svc := New(Config{}, st, fake.New(fake.Options{Limit: 100}), live, kicks, slog.New(slog.DiscardHandler))

	one := 1
	_, _, err = svc.UpdateCluster(ctx, "orders", api.UpdateClusterRequest{Shards: &one})
	if !errors.Is(err, store.ErrConflict) || err.Error() != `shard 1 of cluster "orders" is failing over; retry once it is done` {
		t.Fatalf("update while shard 1 fails over: %v, want a 409 naming shard 1", err)
	}
	if len(live.asked) != 0 {
		t.Errorf("masters read while failing over: %v", live.asked)
	}

	live.failing = -1
	_, _, err = svc.UpdateCluster(ctx, "orders", api.UpdateClusterRequest{Shards: &one})
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "shard 1 holds 5 keys") {
		t.Fatalf("removing a shard with keys: %v, want a 409 with the count", err)
	}
	mem := "1mb"
	_, _, err = svc.UpdateCluster(ctx, "orders", api.UpdateClusterRequest{Maxmemory: &mem})
	var fe *spec.FieldError
	if !errors.As(err, &fe) || fe.Kind != spec.Unprocessable || fe.Field != "maxmemory" || !strings.Contains(fe.Message, "below the 10000000 bytes shard 1 already uses") {
		t.Fatalf("maxmemory under used_memory: %v, want a 422 on maxmemory with both figures", err)
	}
	if n := kicks.n.Load(); n != 0 {
		t.Fatalf("runner woken %d times by refused changes", n)
	}
	if jobs, err := st.ListJobs(ctx, "orders"); err != nil || len(jobs) != 1 {
		t.Fatalf("jobs after refusals: %d, %v; want only the create", len(jobs), err)
	}

	live.asked = nil
	view, job, err := svc.UpdateCluster(ctx, "orders", api.UpdateClusterRequest{Shards: &one, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(live.asked) != 0 {
		t.Errorf("masters read with force: %v", live.asked)
	}
	if job.Kind != api.JobScale || job.State != api.StatePending || view.Spec.Shards != 1 || view.Status.Phase != api.PhaseScaling {
		t.Errorf("accepted change: job %s %s, view shards %d phase %s", job.Kind, job.State, view.Spec.Shards, view.Status.Phase)
	}
	if n := kicks.n.Load(); n != 1 {
		t.Errorf("runner woken %d times, want 1", n)
	}
	stored, err := st.GetJob(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	var p jobspec.ScaleParams
	if err := json.Unmarshal(stored.Params, &p); err != nil || p.From.Shards != 2 || p.To.Shards != 1 {
		t.Errorf("stored scale parameters %s (%v), want from 2 shards to 1", stored.Params, err)
	}
}
