package kubelease

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The client is client-go's fake clientset: an in-memory object store
// answering Get, Create and Update of the Lease as the API server does.
// The real API server is in internal/e2ek8s (TestManagerTakeover).

var logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// The Lease record's renew time has whole seconds (client-go compares the
// record's JSON): renewals within one second look alike to a candidate, so
// it may count the lease duration from up to a second before the last
// renewal. The real timing (15 s / 10 s / 2 s) leaves 5 s between the
// holder's Until and a takeover; here dur - renew = 2 s.
const (
	dur   = 3 * time.Second
	renew = time.Second
	retry = 200 * time.Millisecond
)

type candidate struct {
	l      *Lock
	stop   context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	terms  int
	ended  time.Time // when the last term's work returned
	active bool
}

func start(t *testing.T, cs *fake.Clientset, id string, work func(ctx context.Context)) *candidate {
	t.Helper()
	l, err := New(Config{Client: cs, Namespace: "ns", Name: "lease", Identity: id, LeaseDuration: dur, RenewDeadline: renew, RetryPeriod: retry}, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{l: l, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		l.Run(ctx, func(tctx context.Context) {
			c.mu.Lock()
			c.terms++
			c.active = true
			c.mu.Unlock()
			work(tctx)
			c.mu.Lock()
			c.active, c.ended = false, time.Now()
			c.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

func (c *candidate) state() (terms int, active bool, ended time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.terms, c.active, c.ended
}

func waitFor(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func holder(t *testing.T, cs *fake.Clientset) string {
	l, err := cs.CoordinationV1().Leases("ns").Get(context.Background(), "lease", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// TestGracefulRelease: a stopped holder's work ends before the Lease is
// released (the holder is still named while the work winds down), and the
// other candidate leads well before a lease duration.
func TestGracefulRelease(t *testing.T) {
	cs := fake.NewClientset()
	var heldDuringWindDown []string
	var mu sync.Mutex
	a := start(t, cs, "a", func(ctx context.Context) {
		<-ctx.Done()
		// Winding down: the Lease must still be ours.
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		heldDuringWindDown = append(heldDuringWindDown, holder(t, cs))
		mu.Unlock()
	})
	waitFor(t, "a leads", 2*time.Second, func() bool { n, active, _ := a.state(); return n == 1 && active })
	if until := a.l.Until(); !time.Now().Before(until) || time.Until(until) > renew {
		t.Fatalf("a's Until %s from now, want within the renew deadline", time.Until(until))
	}
	b := start(t, cs, "b", func(ctx context.Context) { <-ctx.Done() })
	time.Sleep(dur + 2*retry)
	if n, _, _ := b.state(); n != 0 || holder(t, cs) != "a" {
		t.Fatalf("b led (%d terms) while a renewed; holder %q", n, holder(t, cs))
	}
	stopped := time.Now()
	a.stop()
	<-a.done
	mu.Lock()
	if len(heldDuringWindDown) != 1 || heldDuringWindDown[0] != "a" {
		t.Errorf("holder while a's work wound down: %v, want a (released only after the work)", heldDuringWindDown)
	}
	mu.Unlock()
	if !a.l.Until().IsZero() {
		t.Error("a's Until is set after it stopped")
	}
	if h := holder(t, cs); h == "a" {
		t.Errorf("the Lease is still a's after a stopped")
	}
	waitFor(t, "b leads", dur, func() bool { _, active, _ := b.state(); return active })
	if took := time.Since(stopped); took > dur {
		t.Errorf("b led %s after a stopped: the Lease was not released", took)
	}
	if !time.Now().Before(b.l.Until()) {
		t.Error("b leads but its Until has passed")
	}
}

// TestLostLease: a holder that cannot renew stops by its own Until (the
// start of its last renewal + the renew deadline), its term's context
// ends, and the other candidate leads only after a lease duration without
// a renewal, after the first one's Until.
func TestLostLease(t *testing.T) {
	cs := fake.NewClientset()
	var mu sync.Mutex
	failA := false
	cs.PrependReactor("update", "leases", func(action k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		// a's writes fail, its renewals and its release alike: a is cut
		// off from the API server. b's go through.
		l, ok := action.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		if ok && failA && (l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "b") {
			return true, nil, errors.New("a is cut off")
		}
		return false, nil, nil
	})
	a := start(t, cs, "a", func(ctx context.Context) { <-ctx.Done() })
	waitFor(t, "a leads", 2*time.Second, func() bool { _, active, _ := a.state(); return active })
	b := start(t, cs, "b", func(ctx context.Context) { <-ctx.Done() })
	time.Sleep(3 * retry)
	mu.Lock()
	failA = true
	mu.Unlock()
	cut := time.Now()
	// a's Until as it last stood: a renewal in flight at the cut may
	// still have moved it.
	var untilA time.Time
	waitFor(t, "a's term ends", renew+2*retry+time.Second, func() bool {
		if u := a.l.Until(); u.After(untilA) {
			untilA = u
		}
		_, active, ended := a.state()
		return !active && !ended.IsZero()
	})
	_, _, endedA := a.state()
	if untilA.Sub(cut) > renew {
		t.Errorf("a's Until %s after the cut, beyond the renew deadline", untilA.Sub(cut))
	}
	waitFor(t, "b leads", 2*dur+time.Second, func() bool { _, active, _ := b.state(); return active })
	led := time.Now()
	if !led.After(untilA) || !led.After(endedA) {
		t.Errorf("b led %s after the cut, a's Until was %s and its work ended %s after it", led.Sub(cut), untilA.Sub(cut), endedA.Sub(cut))
	}
	// b waited a lease duration without seeing a renewal, counted from
	// a's last renewal (Until - renew) less the record's second.
	if lastRenewal := untilA.Add(-renew); led.Sub(lastRenewal) < dur-time.Second {
		t.Errorf("b led %s after a's last renewal began, before a lease duration (%s) less a second", led.Sub(lastRenewal), dur)
	}
}
