package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// TestLeases runs the lease cases against every engine.
func TestLeases(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"acquire, renew, refuse, take over", testLeaseLifecycle},
		{"fenced writes refused after takeover", testLeaseFence},
		{"one winner among concurrent acquirers", testLeaseConcurrent},
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, newEnv(t, eng))
				})
			}
		})
	}
}

func acquire(t *testing.T, e *env, holder string, ttl time.Duration) (Lease, bool) {
	t.Helper()
	l, held, err := e.s.AcquireLease(t.Context(), "leader", holder, ttl)
	if err != nil {
		t.Fatalf("AcquireLease(%s): %v", holder, err)
	}
	return l, held
}

func testLeaseLifecycle(t *testing.T, e *env) {
	ctx := t.Context()
	if _, err := e.s.GetLease(ctx, "leader"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetLease before any acquire: %v, want ErrNotFound", err)
	}
	const ttl = 800 * time.Millisecond
	l, held := acquire(t, e, "a", ttl)
	if !held || l.Holder != "a" || l.Epoch != 1 {
		t.Fatalf("first acquire: %+v held=%v, want a at epoch 1", l, held)
	}
	// Renewals keep the epoch and push the expiry: a renews for longer
	// than one TTL and b never gets it.
	for i := 0; i < 4; i++ {
		time.Sleep(ttl / 3)
		if l, held = acquire(t, e, "a", ttl); !held || l.Epoch != 1 {
			t.Fatalf("renewal %d: %+v held=%v, want a at epoch 1", i, l, held)
		}
		if l, held := acquire(t, e, "b", ttl); held || l.Holder != "a" || l.Epoch != 1 || l.TTL <= 0 || l.TTL > ttl {
			t.Fatalf("b while a's lease is valid: %+v held=%v, want a's lease with a TTL in (0, %s]", l, held, ttl)
		}
	}
	got, err := e.s.GetLease(ctx, "leader")
	if err != nil || got.Holder != "a" || got.Epoch != 1 || got.TTL <= 0 {
		t.Fatalf("GetLease: %+v %v", got, err)
	}
	// a stops renewing: once the TTL has passed by the database's clock,
	// b takes over at the next epoch.
	time.Sleep(ttl + 200*time.Millisecond)
	if l, held := acquire(t, e, "b", ttl); !held || l.Holder != "b" || l.Epoch != 2 {
		t.Fatalf("takeover after expiry: %+v held=%v, want b at epoch 2", l, held)
	}
	if l, held := acquire(t, e, "a", ttl); held || l.Holder != "b" || l.Epoch != 2 {
		t.Fatalf("a after b took over: %+v held=%v, want b at epoch 2", l, held)
	}
	// A release hands it over at once, at the next epoch; a release by a
	// non-holder or at an old epoch does nothing.
	if err := e.s.ReleaseLease(ctx, "leader", "a", 1); err != nil {
		t.Fatal(err)
	}
	if l, held := acquire(t, e, "a", ttl); held || l.Holder != "b" {
		t.Fatalf("a after a stale release: %+v held=%v, want b's lease", l, held)
	}
	if err := e.s.ReleaseLease(ctx, "leader", "b", 2); err != nil {
		t.Fatal(err)
	}
	if l, held := acquire(t, e, "a", ttl); !held || l.Holder != "a" || l.Epoch != 3 {
		t.Fatalf("a after b released: %+v held=%v, want a at epoch 3", l, held)
	}
	// The same holder after its own lease lapsed starts a new term too.
	time.Sleep(ttl + 200*time.Millisecond)
	if l, held := acquire(t, e, "a", ttl); !held || l.Epoch != 4 {
		t.Fatalf("a again after its lease lapsed: %+v held=%v, want epoch 4", l, held)
	}
}

func testLeaseFence(t *testing.T, e *env) {
	ctx := t.Context()
	const ttl = 800 * time.Millisecond
	mustCreate(t, e, testCluster("c"))
	la, held := acquire(t, e, "a", ttl)
	if !held {
		t.Fatal("a did not get the lease")
	}
	var refused atomic.Int64
	var ops sync.Map
	fa := WithFence(ctx, Fence{Name: "leader", Holder: "a", Epoch: la.Epoch, Refused: func(op string) {
		refused.Add(1)
		ops.Store(op, true)
	}})

	job, err := e.s.GetJob(ctx, "create-c")
	if err != nil {
		t.Fatal(err)
	}
	// While a holds the lease, its fenced writes go through.
	job.State, job.Message = api.StateRunning, "under epoch 1"
	if err := e.s.UpdateJob(fa, job); err != nil {
		t.Fatalf("fenced UpdateJob by the holder: %v", err)
	}
	if err := e.s.AddEvent(fa, api.Event{Cluster: "c", Type: "t", Message: "by a"}); err != nil {
		t.Fatalf("fenced AddEvent by the holder: %v", err)
	}
	if err := e.s.PutInstance(fa, Instance{Name: "c-0-0", Cluster: "c", Kind: KindRedis, Host: "127.0.0.1", Port: 7001}); err != nil {
		t.Fatalf("fenced PutInstance by the holder: %v", err)
	}
	if refused.Load() != 0 {
		t.Fatalf("%d refusals while a held the lease", refused.Load())
	}

	// a pauses past its TTL: even before anyone takes over, its writes
	// are refused (the database's clock says the lease expired).
	time.Sleep(ttl + 200*time.Millisecond)
	job.Message = "after expiry"
	if err := e.s.UpdateJob(fa, job); !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced UpdateJob after expiry: %v, want ErrFenced", err)
	}

	lb, held := acquire(t, e, "b", ttl)
	if !held || lb.Epoch != la.Epoch+1 {
		t.Fatalf("b's takeover: %+v held=%v", lb, held)
	}
	// Every write of a, the deposed holder, is refused and stores nothing.
	before := refused.Load()
	writes := map[string]func() error{
		"UpdateJob": func() error { job.Message = "deposed"; return e.s.UpdateJob(fa, job) },
		"AddEvent": func() error {
			return e.s.AddEvent(fa, api.Event{Cluster: "c", Type: "t", Message: "deposed"})
		},
		"PutInstance": func() error {
			return e.s.PutInstance(fa, Instance{Name: "c-0-1", Cluster: "c", Kind: KindRedis, Host: "127.0.0.1", Port: 7002})
		},
		"DeleteInstance":      func() error { return e.s.DeleteInstance(fa, "c-0-0") },
		"UpdateClusterStatus": func() error { return e.s.UpdateClusterStatus(fa, "c", api.ClusterStatus{Phase: "deposed"}) },
		"CreateJob":           func() error { return e.s.CreateJob(fa, testJob("j2", "c2", api.JobCreate, base)) },
		"DeleteCluster":       func() error { return e.s.DeleteCluster(fa, "c") },
	}
	for name, w := range writes {
		if err := w(); !errors.Is(err, ErrFenced) {
			t.Errorf("%s by the deposed holder: %v, want ErrFenced", name, err)
		}
	}
	if n := refused.Load() - before; n != int64(len(writes)) {
		t.Errorf("Refused called %d times for %d refused writes", n, len(writes))
	}
	if _, ok := ops.Load("update job"); !ok {
		t.Errorf("Refused did not name the operation \"update job\"")
	}
	got, err := e.s.GetJob(ctx, "create-c")
	if err != nil || got.Message != "under epoch 1" {
		t.Errorf("job after refused writes: %q %v, want the last accepted message", got.Message, err)
	}
	evs, _ := e.s.ListEvents(ctx, "c", 0)
	if len(evs) != 1 || evs[0].Message != "by a" {
		t.Errorf("events after refused writes: %+v, want only a's accepted one", evs)
	}
	ins, _ := e.s.ListInstances(ctx, "c")
	if len(ins) != 1 || ins[0].Name != "c-0-0" {
		t.Errorf("instances after refused writes: %+v", ins)
	}
	cl, err := e.s.GetCluster(ctx, "c")
	if err != nil || cl.Status.Phase == "deposed" {
		t.Errorf("cluster after refused writes: %+v %v", cl.Status, err)
	}
	if _, err := e.s.GetJob(ctx, "j2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("job created by the deposed holder: %v, want ErrNotFound", err)
	}

	// The new holder's fenced writes and unfenced writes (API requests)
	// go through.
	fb := WithFence(ctx, Fence{Name: "leader", Holder: "b", Epoch: lb.Epoch})
	job.Message = "under epoch 2"
	if err := e.s.UpdateJob(fb, job); err != nil {
		t.Errorf("fenced UpdateJob by the new holder: %v", err)
	}
	if err := e.s.CreateJob(ctx, testJob("j3", "c3", api.JobCreate, base)); err != nil {
		t.Errorf("unfenced CreateJob: %v", err)
	}
	// A fence on a lease nobody ever took refuses too.
	fx := WithFence(ctx, Fence{Name: "other", Holder: "b", Epoch: 1})
	if err := e.s.AddEvent(fx, api.Event{Cluster: "c", Type: "t"}); !errors.Is(err, ErrFenced) {
		t.Errorf("write fenced by an unknown lease: %v, want ErrFenced", err)
	}
}

func testLeaseConcurrent(t *testing.T, e *env) {
	for round := 0; round < 2; round++ {
		exactlyOneWins(t, fmt.Sprintf("acquirers (round %d)", round), func(i int) error {
			_, held, err := e.s.AcquireLease(context.WithoutCancel(t.Context()), "leader", fmt.Sprintf("m%d-%d", round, i), 500*time.Millisecond)
			if err != nil {
				return err
			}
			if !held {
				return ErrConflict
			}
			return nil
		})
		time.Sleep(700 * time.Millisecond) // expire, so the next round is a takeover race
	}
	l, err := e.s.GetLease(t.Context(), "leader")
	if err != nil || l.Epoch != 2 {
		t.Errorf("after two races: %+v %v, want epoch 2", l, err)
	}
}

// TestLeaseNotBlockedByAStalledTransaction: on MariaDB, a holder stalled in
// the middle of a fenced write (paused with the lease row locked) blocks a
// takeover no longer than the session's idle timeout: the server closes
// its connection and rolls the transaction back.
func TestLeaseNotBlockedByAStalledTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engines[1])
	ctx := t.Context()
	la, held := acquire(t, e, "a", 500*time.Millisecond)
	if !held {
		t.Fatal("a did not get the lease")
	}
	tx, err := e.s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := e.s.checkFence(WithFence(ctx, Fence{Name: "leader", Holder: "a", Epoch: la.Epoch}), tx, "stalled write"); err != nil {
		t.Fatal(err)
	}
	// a stalls here, holding the row lock. b tries once the lease expired.
	time.Sleep(600 * time.Millisecond)
	start := time.Now()
	var l Lease
	for time.Since(start) < 3*idleSessionTimeout {
		if l, held, err = e.s.AcquireLease(ctx, "leader", "b", time.Second); err == nil && held {
			break
		}
	}
	took := time.Since(start)
	if !held || l.Epoch != la.Epoch+1 {
		t.Fatalf("b after a stalled in a transaction: %+v held=%v err=%v after %s", l, held, err, took)
	}
	if took > idleSessionTimeout+2*time.Second {
		t.Errorf("takeover waited %s on a stalled transaction, the idle timeout is %s", took, idleSessionTimeout)
	}
	t.Logf("takeover %s after the holder stalled in a transaction", took.Round(time.Millisecond))
}
