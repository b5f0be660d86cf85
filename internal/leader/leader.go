package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis-manager/redis-manager/internal/store"
)

// Timing of the lease. A leader renews every RenewEvery; the lease lasts
// TTL past each renewal by the database's clock; the leader itself stops
// acting Deadline after the start of its last successful renewal, by its
// monotonic clock. Deadline < TTL, so a leader that cannot renew (paused,
// cut off from the database, a slow disk) has stopped before the lease can
// expire and a standby take over; the 2 s between them absorb clock rate
// differences and scheduling delays. A standby tries every RetryEvery, so
// after a leader dies a standby leads within TTL + RetryEvery (7 s).
const (
	RenewEvery = 2 * time.Second
	TTL        = 6 * time.Second
	Deadline   = 4 * time.Second
	RetryEvery = time.Second
)

// LeaseName is the name of the leader lease in the store.
const LeaseName = "leader"

// ErrNotLeader is returned by Gate for an action of a term that is over or
// whose deadline has passed.
var ErrNotLeader = errors.New("not the leader: leadership lost or not renewed in time")

// Leases is what the elector needs of the store.
type Leases interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (store.Lease, bool, error)
	ReleaseLease(ctx context.Context, name, holder string, epoch int64) error
	GetLease(ctx context.Context, name string) (store.Lease, error)
}

// Outer is a lock the store lease is taken under: the Kubernetes Lease
// (package kubelease). Only its holder campaigns for the store lease, and
// it takes the store lease over at once (the next epoch) from a holder that
// has not released it: that holder has lost the outer lock, and its own
// Until has passed before anyone else could win the lock. Losing the outer
// lock ends the term at once, and Gate refuses every action past Until
// even before the term's context ends.
type Outer interface {
	// Run competes for the lock until ctx ends. Each time it wins, it
	// calls held with a context that ends once the lock is lost or ctx
	// ends; it releases the lock (if at all) only after held returned.
	Run(ctx context.Context, held func(ctx context.Context))
	// Until is when this process stops holding the lock by its own
	// monotonic clock unless it renews it first (zero when not held).
	Until() time.Time
	// Name describes the lock for logs and refusals.
	Name() string
}

// Config tunes an Elector. Zero values take the constants above.
type Config struct {
	ID         string // this manager's id, unique among managers sharing the database
	RenewEvery time.Duration
	TTL        time.Duration
	Deadline   time.Duration
	RetryEvery time.Duration
	// Exclusive says no other manager can use this store (SQLite, whose
	// data dir is locked): a lease left by a previous run of this manager
	// is taken over at once instead of waiting for it to expire.
	Exclusive bool
	// Outer, when set, is the lock this manager must hold before it
	// campaigns for the store lease (--leader-election kubernetes).
	Outer Outer
}

// Status is what /api/v1/health reports.
type Status struct {
	Leader   bool   // this manager leads now
	LeaderID string // the holder of the lease, as last read ("" if none)
	Epoch    int64  // the lease's epoch, as last read
}

// Elector competes for the leader lease and runs the leader's work while
// it holds it.
type Elector struct {
	cfg Config
	st  Leases
	log *slog.Logger

	mu         sync.Mutex
	held       bool
	epoch      int64
	validUntil time.Time // monotonic: the end of this leader's own deadline
	leaderID   string
	seenEpoch  int64

	performed atomic.Int64
	refused   atomic.Int64
	lastAct   atomic.Int64 // unix nanoseconds when the last action was allowed
}

// New returns an elector for the manager cfg.ID.
func New(cfg Config, st Leases, log *slog.Logger) *Elector {
	if cfg.RenewEvery == 0 {
		cfg.RenewEvery = RenewEvery
	}
	if cfg.TTL == 0 {
		cfg.TTL = TTL
	}
	if cfg.Deadline == 0 {
		cfg.Deadline = Deadline
	}
	if cfg.RetryEvery == 0 {
		cfg.RetryEvery = RetryEvery
	}
	return &Elector{cfg: cfg, st: st, log: log.With("component", "leader", "id", cfg.ID)}
}

// ID is this manager's id.
func (e *Elector) ID() string { return e.cfg.ID }

// Status tells whether this manager leads, and who holds the lease at
// which epoch as last read.
func (e *Elector) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	leads := e.held && now.Before(e.validUntil) && (e.cfg.Outer == nil || now.Before(e.cfg.Outer.Until()))
	return Status{Leader: leads, LeaderID: e.leaderID, Epoch: e.seenEpoch}
}

// Counters are the elector's action counts since start.
type Counters struct {
	Performed int64 // actions Gate allowed
	Refused   int64 // actions Gate or a store fence refused
	// LastAction is when the last action was allowed, right before it
	// was sent (zero if none).
	LastAction time.Time
}

// Counters returns the action counts.
func (e *Elector) Counters() Counters {
	c := Counters{Performed: e.performed.Load(), Refused: e.refused.Load()}
	if n := e.lastAct.Load(); n > 0 {
		c.LastAction = time.Unix(0, n)
	}
	return c
}

// Gate runs an action on Redis, Sentinel or the platform under ctx. An
// action of leader work (ctx carries a fence) runs only while that term is
// the current one and its deadline has not passed; otherwise it is refused
// with ErrNotLeader, counted and logged. Actions outside leader work (an
// API request validating against Sentinel) run as they are.
func (e *Elector) Gate(ctx context.Context, op string, act func() error) error {
	f, ok := store.FenceFrom(ctx)
	if !ok {
		return act()
	}
	if err := e.check(f, op); err != nil {
		return err
	}
	e.performed.Add(1)
	e.lastAct.Store(time.Now().UnixNano())
	return act()
}

func (e *Elector) check(f store.Fence, op string) error {
	e.mu.Lock()
	held, epoch, until := e.held, e.epoch, e.validUntil
	e.mu.Unlock()
	now := time.Now()
	var why string
	switch {
	case !held || epoch != f.Epoch:
		why = "term over"
	case !now.Before(until):
		why = fmt.Sprintf("deadline passed %s ago without a renewal", now.Sub(until).Round(time.Millisecond))
	case e.cfg.Outer != nil && !now.Before(e.cfg.Outer.Until()):
		why = e.cfg.Outer.Name() + " not held or not renewed in time"
	default:
		return nil
	}
	e.refuse(op, f.Epoch, why)
	return fmt.Errorf("%s: %w (%s)", op, ErrNotLeader, why)
}

// refuse counts and logs a refused action. The message is stable: tests
// and operators grep for it.
func (e *Elector) refuse(op string, epoch int64, why string) {
	e.refused.Add(1)
	e.log.Warn("leader action refused", "op", op, "epoch", epoch, "reason", why)
}

// Run competes for the lease until ctx ends. Each time it wins, it calls
// lead with a context that carries the term's fence and ends when the term
// does (lost lease, missed deadline, or ctx done); Run waits for lead to
// return before it competes again, so two terms' work never overlap in
// this process. standby is called each time another manager holds the
// lease. On the way out a held lease is released, so a standby takes over
// at once.
//
// With an Outer lock, only a term of the outer lock campaigns for the
// store lease (taking it over from whoever still has it); between terms
// this manager stands by and reads the store lease every RetryEvery, so
// Status names the leader and its epoch on every manager.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context), standby func()) {
	if e.cfg.Outer == nil {
		e.runStore(ctx, lead, standby, false)
		return
	}
	var leading atomic.Bool
	outerDone := make(chan struct{})
	go func() {
		defer close(outerDone)
		e.cfg.Outer.Run(ctx, func(octx context.Context) {
			leading.Store(true)
			defer leading.Store(false)
			e.log.Info("outer lock acquired; taking the store lease", "lock", e.cfg.Outer.Name())
			e.runStore(octx, lead, nil, true)
		})
	}()
	for ctx.Err() == nil {
		if sleep(ctx, e.cfg.RetryEvery) != nil {
			break
		}
		if leading.Load() {
			continue
		}
		if standby != nil {
			standby()
		}
		rctx, cancel := context.WithTimeout(ctx, e.cfg.RetryEvery)
		l, err := e.st.GetLease(rctx, LeaseName)
		cancel()
		if err == nil || errors.Is(err, store.ErrNotFound) {
			e.mu.Lock()
			if !e.held {
				e.leaderID, e.seenEpoch = l.Holder, l.Epoch
			}
			e.mu.Unlock()
		}
	}
	<-outerDone
}

// runStore competes for the store lease until ctx ends (see Run).
// takeOver: the caller holds the Outer lock, so a store lease another
// manager still holds is taken over at once.
func (e *Elector) runStore(ctx context.Context, lead func(ctx context.Context), standby func(), takeOver bool) {
	for ctx.Err() == nil {
		if takeOver && !time.Now().Before(e.cfg.Outer.Until()) {
			// The outer term ran out by this process's clock: another
			// manager may hold the lock already; never take over from it.
			_ = sleep(ctx, e.cfg.RetryEvery)
			continue
		}
		l, ok := e.campaign(ctx, takeOver)
		if !ok {
			if standby != nil {
				standby()
			}
			_ = sleep(ctx, e.cfg.RetryEvery)
			continue
		}
		e.hold(ctx, l, lead)
	}
}

// campaign tries once to take the lease.
func (e *Elector) campaign(ctx context.Context, takeOver bool) (store.Lease, bool) {
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, e.cfg.Deadline)
	defer cancel()
	l, held, err := e.st.AcquireLease(actx, LeaseName, e.cfg.ID, e.cfg.TTL)
	if err == nil && !held && (e.cfg.Exclusive || takeOver) && l.Holder != "" {
		// Exclusive: only this process can use this store, the holder is
		// a previous run of this manager, dead. takeOver: this manager
		// holds the outer lock, which the holder lost; the holder's Gate
		// refuses since its Until passed, and the next epoch fences its
		// store writes.
		e.log.Info("taking over the store lease", "holder", l.Holder, "epoch", l.Epoch, "outer", takeOver)
		if err = e.st.ReleaseLease(actx, LeaseName, l.Holder, l.Epoch); err == nil {
			l, held, err = e.st.AcquireLease(actx, LeaseName, e.cfg.ID, e.cfg.TTL)
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("leader lease: acquire failed", "err", err)
		}
		return store.Lease{}, false
	}
	e.mu.Lock()
	e.leaderID, e.seenEpoch = l.Holder, l.Epoch
	if held {
		e.held, e.epoch, e.validUntil = true, l.Epoch, start.Add(e.cfg.Deadline)
	}
	e.mu.Unlock()
	return l, held
}

// hold runs one term: lead runs while renewals succeed in time.
func (e *Elector) hold(ctx context.Context, l store.Lease, lead func(ctx context.Context)) {
	fence := store.Fence{Name: LeaseName, Holder: e.cfg.ID, Epoch: l.Epoch, Refused: func(op string) {
		e.refuse(op, l.Epoch, "store fence: the lease moved on")
	}}
	lctx, cancel := context.WithCancel(store.WithFence(ctx, fence))
	done := make(chan struct{})
	e.log.Info("leadership acquired", "epoch", l.Epoch)
	go func() {
		defer close(done)
		lead(lctx)
	}()
	why := e.keep(ctx, l.Epoch, done)
	// revokeLeadership: stop acting first, then stop and wait for the work.
	e.mu.Lock()
	e.held, e.validUntil = false, time.Time{}
	e.mu.Unlock()
	cancel()
	<-done
	e.log.Warn("leadership lost", "epoch", l.Epoch, "reason", why)
	if ctx.Err() != nil {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer rcancel()
		if err := e.st.ReleaseLease(rctx, LeaseName, e.cfg.ID, l.Epoch); err != nil {
			e.log.Warn("leader lease: release failed; a standby takes over once it expires", "err", err)
		} else {
			e.log.Info("leader lease released", "epoch", l.Epoch)
		}
	}
}

// keep renews the lease until a renewal is refused, the deadline passes
// without one, lead returns, or ctx ends; it returns why it stopped.
//
// A leader that wakes up past its deadline (paused, starved) still tries
// one renewal: if the lease is still its own at the same epoch, nobody else
// can have led meanwhile and the term goes on. Until that renewal returns,
// Gate refuses every action (the deadline has passed).
func (e *Elector) keep(ctx context.Context, epoch int64, done <-chan struct{}) string {
	next := e.cfg.RenewEvery
	for {
		e.mu.Lock()
		until := e.validUntil
		e.mu.Unlock()
		t := time.NewTimer(max(min(next, time.Until(until)), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return "shutting down"
		case <-done:
			t.Stop()
			return "leader work ended"
		case <-t.C:
		}
		start := time.Now()
		// Bounded by the deadline; past it, one short attempt.
		rctx, cancel := context.WithDeadline(ctx, maxTime(until, start.Add(e.cfg.RenewEvery/2)))
		l, held, err := e.st.AcquireLease(rctx, LeaseName, e.cfg.ID, e.cfg.TTL)
		cancel()
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return "shutting down"
			}
			if !time.Now().Before(until) {
				return fmt.Sprintf("deadline passed without a renewal (%v)", err)
			}
			e.log.Warn("leader lease: renewal failed; retrying until the deadline", "err", err, "left", time.Until(until).Round(time.Millisecond))
			next = e.cfg.RenewEvery / 4
			continue
		case !held || l.Epoch != epoch:
			e.mu.Lock()
			e.leaderID, e.seenEpoch = l.Holder, l.Epoch
			e.mu.Unlock()
			return fmt.Sprintf("lease held by %q at epoch %d", l.Holder, l.Epoch)
		}
		if late := start.Sub(until); late >= 0 {
			e.log.Warn("leader lease renewed after the deadline; the term goes on", "late", late.Round(time.Millisecond))
		}
		e.mu.Lock()
		e.validUntil = start.Add(e.cfg.Deadline)
		e.leaderID, e.seenEpoch = l.Holder, l.Epoch
		e.mu.Unlock()
		next = e.cfg.RenewEvery
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
