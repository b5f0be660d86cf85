package leader

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/internal/store"
)

// handOuter is an outer lock handed out by the test, an honest in-memory
// stand-in for the Kubernetes Lease: Grant starts a term, Expire makes its
// Until pass without ending the term's context (client-go has not given up
// yet), End ends it.
type handOuter struct {
	grant chan struct{}
	mu    sync.Mutex
	until time.Time
	end   context.CancelFunc
}

func newHandOuter() *handOuter { return &handOuter{grant: make(chan struct{})} }

func (o *handOuter) Name() string { return "hand lock" }

func (o *handOuter) Until() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.until
}

func (o *handOuter) Run(ctx context.Context, held func(context.Context)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.grant:
		}
		tctx, cancel := context.WithCancel(ctx)
		o.mu.Lock()
		o.until, o.end = time.Now().Add(time.Hour), cancel
		o.mu.Unlock()
		held(tctx)
		o.Expire()
		cancel()
	}
}

func (o *handOuter) Grant() { o.grant <- struct{}{} }

func (o *handOuter) Expire() {
	o.mu.Lock()
	o.until = time.Time{}
	o.mu.Unlock()
}

func (o *handOuter) End() {
	o.mu.Lock()
	end := o.end
	o.mu.Unlock()
	end()
}

// TestOuterLock: with an outer lock only its holder takes the store lease;
// a standby reports the leader and epoch it reads; the moment the holder's
// outer Until passes its Gate refuses, even while its store lease is still
// renewed; the next holder of the outer lock takes the store lease over at
// once (epoch + 1, no waiting for the TTL), which fences the old term's
// store writes.
func TestOuterLock(t *testing.T) {
	st := openStore(t)
	c1, c2 := fast, fast
	c1.ID, c2.ID = "a", "b"
	o1, o2 := newHandOuter(), newHandOuter()
	c1.Outer, c2.Outer = o1, o2
	e1, e2 := New(c1, st, logger), New(c2, st, logger)
	var t1, t2 term
	stop1 := run(t, e1, &t1)
	defer stop1()
	stop2 := run(t, e2, &t2)
	defer stop2()

	// Nobody holds the outer lock: nobody leads, for longer than a TTL.
	time.Sleep(fast.TTL)
	if e1.Status().Leader || e2.Status().Leader {
		t.Fatalf("a manager leads without the outer lock: %+v %+v", e1.Status(), e2.Status())
	}
	o1.Grant()
	waitFor(t, "a leads", 2*time.Second, func() bool { return e1.Status().Leader })
	waitFor(t, "b sees a", 2*time.Second, func() bool { s := e2.Status(); return s.LeaderID == "a" && s.Epoch == 1 })
	if e2.Status().Leader {
		t.Fatal("b leads without the outer lock")
	}
	ctx1, _ := t1.last()
	if err := e1.Gate(ctx1, "op", func() error { return nil }); err != nil {
		t.Fatalf("gate of a's term: %v", err)
	}

	// a's outer term runs out by its own clock; client-go has not ended it.
	o1.Expire()
	if err := e1.Gate(ctx1, "op after expiry", func() error { return nil }); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("gate after the outer lock's Until: %v, want ErrNotLeader", err)
	}
	if e1.Status().Leader {
		t.Fatal("a still says it leads past the outer lock's Until")
	}
	// a still renews its store lease (its term's context is alive).
	time.Sleep(2 * fast.RenewEvery)
	if _, ended := t1.last(); ended != 0 {
		t.Fatal("a's term ended without its outer term ending")
	}

	start := time.Now()
	o2.Grant()
	waitFor(t, "b leads", 2*time.Second, func() bool { return e2.Status().Leader })
	if took := time.Since(start); took > fast.TTL/2 {
		t.Errorf("b took the store lease over after %s: it waited for a's lease to expire", took)
	}
	if s := e2.Status(); s.Epoch != 2 || s.LeaderID != "b" {
		t.Errorf("b after takeover: %+v, want epoch 2", s)
	}
	if err := st.AddEvent(context.WithoutCancel(ctx1), apiEvent()); !errors.Is(err, store.ErrFenced) {
		t.Errorf("store write of a's term after b took over: %v, want ErrFenced", err)
	}
	// a's term ends once its store renewal sees epoch 2; then a stands by
	// and reports b.
	waitFor(t, "a's term ends", 2*time.Second, func() bool { _, ended := t1.last(); return ended == 1 })
	o1.End()
	waitFor(t, "a sees b", 2*time.Second, func() bool { s := e1.Status(); return s.LeaderID == "b" && s.Epoch == 2 && !s.Leader })

	// b's outer term ends (a graceful stop of its lock): its term ends at
	// once and its store lease is released.
	o2.End()
	waitFor(t, "b's term ends", 2*time.Second, func() bool { _, ended := t2.last(); return ended == 1 })
	l, err := st.GetLease(t.Context(), LeaseName)
	if err != nil || l.Holder != "" {
		t.Errorf("store lease after b's outer term ended: %+v %v, want released", l, err)
	}
}
