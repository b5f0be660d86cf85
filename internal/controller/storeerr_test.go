package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/platform/local"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// The tests in this file check that a failing store (or platform) read is
// returned or retried, never taken for an empty answer that leads to a
// different decision. The store is the real SQLite store; failingStore
// makes chosen reads fail the way a lost database connection does.

var errStoreDown = errors.New("store down (test)")

type failingStore struct {
	store.Store
	unfinishedDown  atomic.Bool
	getClusterFails atomic.Int32 // fail this many GetCluster calls, then answer
	getClusterCalls atomic.Int32
}

func (s *failingStore) UnfinishedJobs(ctx context.Context) ([]store.Job, error) {
	if s.unfinishedDown.Load() {
		return nil, errStoreDown
	}
	return s.Store.UnfinishedJobs(ctx)
}

func (s *failingStore) GetCluster(ctx context.Context, name string) (store.Cluster, error) {
	s.getClusterCalls.Add(1)
	if s.getClusterFails.Add(-1) >= 0 {
		return store.Cluster{}, errStoreDown
	}
	return s.Store.GetCluster(ctx, name)
}

// failingPlatform is the local platform whose List fails.
type failingPlatform struct {
	platform.Platform
}

func (failingPlatform) List(context.Context, string) ([]platform.Instance, error) {
	return nil, errors.New("platform down (test)")
}

// syncBuffer is a log sink safe for the controller's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type fixture struct {
	c    *Controller
	st   *failingStore
	logs *syncBuffer
	cl   store.Cluster
	recs []store.Instance
}

// newFixture stores a cluster "orders" (1 shard, 1 replica) with a job of
// the given kind in its lane (none for "") and records of its two
// redis-servers at the given ports (free ports when 0).
func newFixture(t *testing.T, jobKind string, ports ...int) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	real, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "manager.db"), filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { real.Close() })
	st := &failingStore{Store: real}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := local.New(filepath.Join(dir, "instances"), "", local.Options{}, log)
	if err != nil {
		t.Fatal(err)
	}
	c := New(Config{ObserveEvery: time.Hour}, st, p, log)
	t.Cleanup(c.pool.Close)
	cl := store.Cluster{Name: "orders", CreatedAt: time.Now().UTC(),
		Spec: api.ClusterSpec{Shards: 1, Replicas: 1, Sentinels: 1, Persistence: "none",
			Sentinel: api.SentinelSettings{DownAfterMs: 5000, FailoverTimeoutMs: 10000, ParallelSyncs: 1}}}
	job := newJob(api.JobScale, cl.Name, time.Now().UTC())
	if err := st.CreateClusterWithJob(ctx, cl, job); err != nil {
		t.Fatal(err)
	}
	if jobKind == "" {
		job.State = api.StateSucceeded
		now := time.Now().UTC()
		job.FinishedAt = &now
		if err := st.UpdateJob(ctx, job); err != nil {
			t.Fatal(err)
		}
	} else if jobKind != api.JobScale {
		t.Fatalf("fixture: job kind %s not supported", jobKind)
	}
	f := &fixture{c: c, st: st, logs: logs, cl: cl}
	for o := 0; o < 2; o++ {
		port := 0
		if o < len(ports) {
			port = ports[o]
		}
		if port == 0 {
			port = testenv.FreePort(t)
		}
		in := store.Instance{Name: fmt.Sprintf("orders-0-%d", o), Cluster: "orders", Kind: store.KindRedis, Shard: 0, Ordinal: o,
			Host: "127.0.0.1", Port: port, CreatedAt: time.Now().UTC()}
		if err := st.PutInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
		f.recs = append(f.recs, in)
	}
	return f
}

func (f *fixture) events(t *testing.T, typ string) int {
	t.Helper()
	evs, err := f.st.ListEvents(context.Background(), "orders", 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// A failed UnfinishedJobs used to leave the loop believing no job owns the
// cluster: it stored a phase without the job and healed a cluster a scale
// job owns (instance-lost events, a replace job attempt).
func TestObserveAllWithoutJobsDoesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, api.JobScale) // nothing listens on the recorded ports: both look lost

	f.st.unfinishedDown.Store(true)
	f.c.observeAll(ctx)
	if n := f.events(t, "instance-lost"); n != 0 {
		t.Fatalf("%d instance-lost events recorded while the store could not say which job owns the cluster", n)
	}
	cl, err := f.st.GetCluster(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if cl.Status.Phase != "" {
		t.Fatalf("phase %q stored without knowing the cluster's job", cl.Status.Phase)
	}
	if !strings.Contains(f.logs.String(), "list unfinished jobs") || !strings.Contains(f.logs.String(), errStoreDown.Error()) {
		t.Fatalf("the store error is not logged:\n%s", f.logs.String())
	}

	// With the store back, the scale job owns the phase and nothing heals.
	f.st.unfinishedDown.Store(false)
	f.c.observeAll(ctx)
	if cl, _ := f.st.GetCluster(ctx, "orders"); cl.Status.Phase != api.PhaseScaling {
		t.Fatalf("phase %q with the scale job pending, want %s", cl.Status.Phase, api.PhaseScaling)
	}
	if n := f.events(t, "instance-lost"); n != 0 {
		t.Fatalf("%d instance-lost events recorded on a cluster a scale job owns", n)
	}
}

// Heal acts only on what the platform says runs; when the platform cannot
// say, it returns an error (logged by the loop) and does nothing. Without a
// job in the lane and a working platform the same observation heals: the
// test would pass for a heal that never acts otherwise.
func TestHealNeedsThePlatformList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "")
	redis, sentinels, err := f.c.instancesOf(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	obs := f.c.observe(ctx, f.cl, redis, sentinels)

	working := f.c.platform
	f.c.platform = failingPlatform{working}
	if err := f.c.heal(ctx, f.cl, obs); err == nil || !strings.Contains(err.Error(), "platform down") {
		t.Fatalf("heal with a failing platform List: %v, want the platform's error", err)
	}
	if n := f.events(t, "instance-lost"); n != 0 {
		t.Fatalf("%d instance-lost events recorded without knowing what runs", n)
	}
	if jobs, _ := f.st.UnfinishedJobs(ctx); len(jobs) != 0 {
		t.Fatalf("jobs stored without knowing what runs: %+v", jobs)
	}
	// Deleting must not skip instances it cannot see either.
	r := &jobRun{c: f.c, job: store.Job{Job: api.Job{ID: "j", Cluster: "orders"}}, log: f.c.log, nSteps: 1}
	if err := f.c.removeAll(ctx, r, "orders"); err == nil {
		t.Fatal("removeAll with a failing platform List succeeded")
	}
	if ins, _ := f.st.ListInstances(ctx, "orders"); len(ins) != 2 {
		t.Fatalf("%d instance records left after a refused removeAll, want 2", len(ins))
	}

	f.c.platform = working
	if err := f.c.heal(ctx, f.cl, obs); err != nil {
		t.Fatalf("heal: %v", err)
	}
	if n := f.events(t, "instance-lost"); n != 2 {
		t.Fatalf("%d instance-lost events, want 2 (both instances are gone)", n)
	}
	jobs, _ := f.st.UnfinishedJobs(ctx)
	if len(jobs) != 1 || jobs[0].Kind != api.JobReplaceInstance {
		t.Fatalf("jobs after heal: %+v, want one replace-instance job", jobs)
	}
}

// startRedis runs a plain redis-server on a free port until the test ends.
func startRedis(t *testing.T) int {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed (CI must install it)")
		}
		t.Skip("redis-server not installed")
	}
	port := testenv.FreePort(t)
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 100*time.Millisecond); err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not listen")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// onExit used to drop a failed store read: the master's loss was never
// tracked and no fast failover started. Now the read is retried.
func TestOnExitRetriesTheStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	master := startRedis(t) // in the master role: currentMaster names it
	f := newFixture(t, "", master)
	lostAt := time.Now().UTC().Truncate(time.Millisecond)
	ev := platform.InstanceEvent{Type: "exited", ID: platform.ID{Cluster: "orders", Name: "orders-0-0"}, Certain: true, At: lostAt}
	lost := func() time.Time {
		f.c.tracker.mu.Lock()
		defer f.c.tracker.mu.Unlock()
		if tr := f.c.tracker.shards["orders-0"]; tr != nil {
			return tr.LostAt
		}
		return time.Time{}
	}

	// Down for good: given up after a bounded time, logged, nothing tracked.
	f.st.getClusterFails.Store(1000)
	start := time.Now()
	f.c.onExit(ctx, ev)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("onExit took %s with the store down; the fast path it feeds must stay fast", took)
	}
	if n := f.st.getClusterCalls.Load(); n != storeAttempts {
		t.Fatalf("GetCluster called %d times, want %d attempts", n, storeAttempts)
	}
	if !lost().IsZero() || !strings.Contains(f.logs.String(), "cannot read the store") {
		t.Fatalf("store down: lostAt %v, logs:\n%s", lost(), f.logs.String())
	}

	// Down for two reads: retried, and the master's loss is tracked.
	f.st.getClusterFails.Store(2)
	f.st.getClusterCalls.Store(0)
	f.c.onExit(ctx, ev)
	if n := f.st.getClusterCalls.Load(); n != 3 {
		t.Fatalf("GetCluster called %d times, want 3", n)
	}
	if got := lost(); !got.Equal(lostAt) {
		t.Fatalf("lostAt = %v, want %v: the exit of the master was not tracked after the store came back", got, lostAt)
	}

	// A deleted cluster is an answer: no retry.
	f.st.getClusterFails.Store(0)
	f.st.getClusterCalls.Store(0)
	f.c.onExit(ctx, platform.InstanceEvent{Type: "exited", ID: platform.ID{Cluster: "gone", Name: "gone-0-0"}, Certain: true, At: lostAt})
	if n := f.st.getClusterCalls.Load(); n != 1 {
		t.Fatalf("GetCluster called %d times for a deleted cluster, want 1", n)
	}
}
