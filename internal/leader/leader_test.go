package leader

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/store/storetest"
)

var fast = Config{RenewEvery: 100 * time.Millisecond, TTL: 600 * time.Millisecond, Deadline: 400 * time.Millisecond, RetryEvery: 50 * time.Millisecond}

func openStore(t *testing.T) store.Store {
	t.Helper()
	dir := t.TempDir()
	st := storetest.SQLite(t, dir)
	return st
}

var logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// term records one elector's terms.
type term struct {
	mu    sync.Mutex
	ctxs  []context.Context
	ended int
}

func (tr *term) lead(ctx context.Context) {
	tr.mu.Lock()
	tr.ctxs = append(tr.ctxs, ctx)
	tr.mu.Unlock()
	<-ctx.Done()
	tr.mu.Lock()
	tr.ended++
	tr.mu.Unlock()
}

func (tr *term) last() (context.Context, int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.ctxs) == 0 {
		return nil, tr.ended
	}
	return tr.ctxs[len(tr.ctxs)-1], tr.ended
}

func waitFor(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(t *testing.T, e *Elector, tr *term) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx, tr.lead, nil) }()
	return func() { cancel(); <-done }
}

// TestTakeoverAndGate: one of two electors leads; the other takes over at
// the next epoch once the first stops (released lease); the first term's
// actions are refused from then on, counted, and a context without a fence
// is never gated.
func TestTakeoverAndGate(t *testing.T) {
	st := openStore(t)
	c1, c2 := fast, fast
	c1.ID, c2.ID = "a", "b"
	e1, e2 := New(c1, st, logger), New(c2, st, logger)
	var t1, t2 term
	stop1 := run(t, e1, &t1)
	waitFor(t, "a leads", 2*time.Second, func() bool { return e1.Status().Leader })
	stop2 := run(t, e2, &t2)
	defer stop2()
	waitFor(t, "b sees a", 2*time.Second, func() bool { return e2.Status().LeaderID == "a" })
	if s := e2.Status(); s.Leader || s.Epoch != 1 {
		t.Fatalf("b: %+v, want a standby seeing epoch 1", s)
	}
	// a keeps leading across many renewals.
	time.Sleep(5 * fast.TTL / 2)
	if s := e1.Status(); !s.Leader || s.Epoch != 1 {
		t.Fatalf("a after renewals: %+v", s)
	}
	ctx1, _ := t1.last()
	ran := 0
	if err := e1.Gate(ctx1, "op", func() error { ran++; return nil }); err != nil || ran != 1 {
		t.Fatalf("gate of the leader's term: %v, ran %d", err, ran)
	}
	stop1()
	if _, ended := t1.last(); ended != 1 {
		t.Fatalf("a's term did not end with its Run")
	}
	// Released: b takes over without waiting for the TTL.
	start := time.Now()
	waitFor(t, "b leads", time.Second, func() bool { return e2.Status().Leader })
	if took := time.Since(start); took > fast.TTL {
		t.Errorf("takeover after a release took %s, more than the TTL", took)
	}
	if s := e2.Status(); s.Epoch != 2 || s.LeaderID != "b" {
		t.Errorf("b after takeover: %+v, want epoch 2", s)
	}
	if err := e1.Gate(ctx1, "late op", func() error { ran++; return nil }); !errors.Is(err, ErrNotLeader) || ran != 1 {
		t.Errorf("gate of a's ended term: %v, ran %d", err, ran)
	}
	if n := e1.Counters(); n.Refused != 1 || n.Performed != 1 {
		t.Errorf("a's counters %+v, want 1 performed, 1 refused", n)
	}
	if err := e1.Gate(context.Background(), "api read", func() error { ran++; return nil }); err != nil || ran != 2 {
		t.Errorf("gate without a fence: %v", err)
	}
	// The store refuses a's writes too: its fence is stale.
	if err := st.AddEvent(context.WithoutCancel(ctx1), apiEvent()); !errors.Is(err, store.ErrFenced) {
		t.Errorf("store write of a's ended term: %v, want ErrFenced", err)
	}
	if n := e1.Counters(); n.Refused != 2 {
		t.Errorf("a's refused count after a fenced write: %d, want 2", n.Refused)
	}
}

// stalling is a store that stops answering lease calls when told (a
// database that hangs), until the caller's context ends.
type stalling struct {
	Leases
	mu    sync.Mutex
	stall bool
}

func (s *stalling) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (store.Lease, bool, error) {
	s.mu.Lock()
	stall := s.stall
	s.mu.Unlock()
	if stall {
		<-ctx.Done()
		return store.Lease{}, false, ctx.Err()
	}
	return s.Leases.AcquireLease(ctx, name, holder, ttl)
}

// TestDeadline: a leader whose renewals hang stops acting at its own
// deadline, before its lease expires in the database: its term ends and
// its gate refuses; a standby takes over only after the TTL.
func TestDeadline(t *testing.T) {
	st := openStore(t)
	slow := &stalling{Leases: st}
	c1, c2 := fast, fast
	c1.ID, c2.ID = "a", "b"
	e1, e2 := New(c1, slow, logger), New(c2, st, logger)
	var t1, t2 term
	stop1 := run(t, e1, &t1)
	defer stop1()
	waitFor(t, "a leads", 2*time.Second, func() bool { return e1.Status().Leader })
	stop2 := run(t, e2, &t2)
	defer stop2()
	ctx1, _ := t1.last()

	slow.mu.Lock()
	slow.stall = true
	slow.mu.Unlock()
	stalled := time.Now()
	waitFor(t, "a's term ends", 2*fast.Deadline, func() bool { _, ended := t1.last(); return ended == 1 })
	stoppedAfter := time.Since(stalled)
	if e1.Status().Leader {
		t.Error("a still says it leads after its deadline")
	}
	if err := e1.Gate(ctx1, "op", func() error { return nil }); !errors.Is(err, ErrNotLeader) {
		t.Errorf("gate after the deadline: %v", err)
	}
	waitFor(t, "b leads", 3*fast.TTL, func() bool { return e2.Status().Leader })
	tookOver := time.Since(stalled)
	if stoppedAfter >= tookOver {
		t.Errorf("a stopped %s after its renewals hung, b took over after %s: a acted while b led", stoppedAfter, tookOver)
	}
	if stoppedAfter > fast.Deadline+fast.RenewEvery {
		t.Errorf("a stopped %s after its renewals hung, deadline %s", stoppedAfter, fast.Deadline)
	}
	if e2.Status().Epoch != 2 {
		t.Errorf("b's epoch %d, want 2", e2.Status().Epoch)
	}
}

func apiEvent() api.Event { return api.Event{Cluster: "c", Type: "t", Message: "m"} }
