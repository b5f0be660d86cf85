package kubelease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Defaults of client-go's core clients (kube-controller-manager,
// kube-scheduler).
const (
	LeaseDuration = 15 * time.Second
	RenewDeadline = 10 * time.Second
	RetryPeriod   = 2 * time.Second
)

// Config names the Lease and its timing. Zero durations take the defaults.
type Config struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string // the Lease's name
	Identity  string // this manager's id (its pod's name)
	// LeaseDuration: how long a candidate waits without seeing a renewal
	// before it takes the Lease over. RenewDeadline: how long the holder
	// tries to renew before it gives up (its own term ends RenewDeadline
	// after the start of its last successful renewal). RetryPeriod: how
	// often candidates try and the holder renews.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Lock competes for the Lease. It implements leader.Outer.
type Lock struct {
	cfg  Config
	log  *slog.Logger
	lock rl.Interface

	mu      sync.Mutex
	holder  string             // as last observed
	until   time.Time          // monotonic; zero when not held
	term    chan struct{}      // closed once the current term's work returned
	endTerm context.CancelFunc // ends the current term's context
}

// New checks cfg and builds the lock.
func New(cfg Config, log *slog.Logger) (*Lock, error) {
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = LeaseDuration
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = RenewDeadline
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = RetryPeriod
	}
	if cfg.Client == nil || cfg.Namespace == "" || cfg.Name == "" || cfg.Identity == "" {
		return nil, errors.New("kubernetes lease: client, namespace, name and identity are required")
	}
	// The Lease record holds whole seconds.
	if cfg.LeaseDuration%time.Second != 0 {
		return nil, fmt.Errorf("--lease-duration %s: whole seconds only (the Lease holds seconds)", cfg.LeaseDuration)
	}
	l := &Lock{cfg: cfg, log: log.With("component", "leader", "lease", cfg.Namespace+"/"+cfg.Name, "id", cfg.Identity)}
	lock := &tracked{
		Interface: &rl.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
			Client:     cfg.Client.CoordinationV1(),
			LockConfig: rl.ResourceLockConfig{Identity: cfg.Identity},
		},
		l: l,
	}
	l.lock = lock
	if _, err := l.elector(func(context.Context) {}, func() {}); err != nil {
		return nil, err
	}
	return l, nil
}

// elector is client-go's elector for one term.
func (l *Lock) elector(started func(context.Context), stopped func()) (*leaderelection.LeaderElector, error) {
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            l.lock,
		LeaseDuration:   l.cfg.LeaseDuration,
		RenewDeadline:   l.cfg.RenewDeadline,
		RetryPeriod:     l.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            l.cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{OnStartedLeading: started, OnStoppedLeading: stopped, OnNewLeader: func(id string) {
			l.mu.Lock()
			l.holder = id
			l.mu.Unlock()
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("kubernetes lease: %w", err)
	}
	return le, nil
}

// Name describes the lock.
func (l *Lock) Name() string { return "kubernetes lease " + l.cfg.Namespace + "/" + l.cfg.Name }

// Until is when this process's term ends unless it renews first: the start
// of its last successful create or update of the Lease as holder plus
// RenewDeadline, by the monotonic clock. Zero when not held.
func (l *Lock) Until() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

// Holder is the holder of the Lease as last observed ("" if none).
func (l *Lock) Holder() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder
}

// Run competes for the Lease until ctx ends, calling held for each term
// with a context that ends when the term does (a renewal not done within
// RenewDeadline, or ctx). When ctx ends during a term the Lease is released
// (client-go's ReleaseOnCancel), after held has returned.
func (l *Lock) Run(ctx context.Context, held func(ctx context.Context)) {
	for ctx.Err() == nil {
		term := make(chan struct{})
		// client-go cancels the term's context only after its release
		// attempt; a release ends the term itself first (beforeRelease).
		endCtx, end := context.WithCancel(ctx)
		l.mu.Lock()
		l.term, l.endTerm = term, end
		l.mu.Unlock()
		// One client-go elector per term: its callbacks are fixed at
		// construction. A new one observes the Lease afresh, so after a
		// lost term it waits a whole LeaseDuration without a renewal by
		// the new holder before it may take over.
		le, err := l.elector(func(ctx context.Context) {
			defer close(term)
			tctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stop := context.AfterFunc(endCtx, cancel)
			defer stop()
			l.log.Info("kubernetes lease acquired")
			held(tctx)
		}, l.drop)
		if err != nil { // checked by New
			l.log.Error("kubernetes lease", "err", err)
			return
		}
		le.Run(ctx)
		end()
		if ctx.Err() == nil {
			l.log.Warn("kubernetes lease lost; campaigning again")
			// A term that ended on its own: wait for its work before the
			// next one can start (it never overlaps itself).
			select {
			case <-term:
			case <-ctx.Done():
			}
		}
	}
}

// drop ends the term by this process's clock at once.
func (l *Lock) drop() {
	l.mu.Lock()
	l.until = time.Time{}
	l.mu.Unlock()
}

// renewed records a successful renewal begun at start.
func (l *Lock) renewed(start time.Time) {
	l.mu.Lock()
	l.until = start.Add(l.cfg.RenewDeadline)
	l.mu.Unlock()
}

// beforeRelease ends the term and waits until its work returned; false if
// it did not within ctx (then the Lease is left to expire).
func (l *Lock) beforeRelease(ctx context.Context) bool {
	l.drop()
	l.mu.Lock()
	term, end := l.term, l.endTerm
	l.mu.Unlock()
	if term == nil {
		return true
	}
	end()
	select {
	case <-term:
		return true
	case <-ctx.Done():
		return false
	}
}

// tracked wraps the Lease lock to learn each successful renewal and each
// sign that the Lease is someone else's.
type tracked struct {
	rl.Interface
	l *Lock
}

func (t *tracked) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	rec, raw, err := t.Interface.Get(ctx)
	if err == nil && rec.HolderIdentity != t.Identity() {
		t.l.drop()
	}
	return rec, raw, err
}

func (t *tracked) Create(ctx context.Context, rec rl.LeaderElectionRecord) error {
	return t.write(ctx, rec, t.Interface.Create)
}

func (t *tracked) Update(ctx context.Context, rec rl.LeaderElectionRecord) error {
	return t.write(ctx, rec, t.Interface.Update)
}

func (t *tracked) write(ctx context.Context, rec rl.LeaderElectionRecord, do func(context.Context, rl.LeaderElectionRecord) error) error {
	if rec.HolderIdentity != t.Identity() {
		// client-go releases the Lease (an empty holder): only once the
		// term's work is over, else two leaders could overlap.
		if !t.l.beforeRelease(ctx) {
			t.l.log.Warn("kubernetes lease: the leader's work did not stop in time; the lease is left to expire")
			return errors.New("leader work still running")
		}
		err := do(ctx, rec)
		if err == nil {
			t.l.log.Info("kubernetes lease released")
		}
		return err
	}
	start := time.Now()
	err := do(ctx, rec)
	switch {
	case err == nil:
		t.l.renewed(start)
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		// Someone else wrote or removed the Lease: not ours any more.
		t.l.drop()
	}
	return err
}
