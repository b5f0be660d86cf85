package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/store"
)

// Config holds the controller's settings.
type Config struct {
	ObserveEvery  time.Duration
	StepTimeout   time.Duration // upper bound of one waiting step
	SentinelReady time.Duration // how long to wait for Sentinels to agree
	// BackupTarget is the file:// or s3:// URL new backups go to.
	BackupTarget string
	// ImportRoots are target URLs, besides BackupTarget, that imports may
	// read under (serve --import-root).
	ImportRoots []string
	// ScratchDir holds the temporary copies of backups being verified.
	ScratchDir string
}

// Store is what the controller needs of the metadata store.
type Store = store.Store

// Controller runs jobs and the control loop.
type Controller struct {
	cfg      Config
	store    Store
	platform platform.Platform
	pool     *redisclient.Pool
	log      *slog.Logger

	wake chan struct{}
	kick chan struct{}

	mu        sync.Mutex
	running   map[string]bool      // job ids being run
	watchers  map[string]*watcher  // Sentinel address -> event subscription
	failovers map[string]bool      // shards with a fast failover in flight
	lost      map[string]time.Time // instance -> when it was seen lost
	tracker   *tracker
	observed  map[string]time.Time // cluster -> start of the last stored observation
	portMu    sync.Mutex           // serialises endpoint reservation and recording
}

// New assembles a controller. Run starts it.
func New(cfg Config, st Store, p platform.Platform, log *slog.Logger) *Controller {
	if cfg.ObserveEvery == 0 {
		cfg.ObserveEvery = 2 * time.Second
	}
	if cfg.StepTimeout == 0 {
		cfg.StepTimeout = 10 * time.Minute
	}
	if cfg.SentinelReady == 0 {
		cfg.SentinelReady = 60 * time.Second
	}
	return &Controller{
		cfg:       cfg,
		store:     st,
		platform:  p,
		pool:      redisclient.NewPool(),
		log:       log,
		wake:      make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		running:   map[string]bool{},
		watchers:  map[string]*watcher{},
		failovers: map[string]bool{},
		lost:      map[string]time.Time{},
		tracker:   newTracker(),
		observed:  map[string]time.Time{},
	}
}

// Error is an error the API shows to users as is. Kind is store.ErrNotFound
// or store.ErrConflict, so callers map it with errors.Is.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func notFound(format string, a ...any) error {
	return &Error{Kind: store.ErrNotFound, Msg: fmt.Sprintf(format, a...)}
}

func conflict(format string, a ...any) error {
	return &Error{Kind: store.ErrConflict, Msg: fmt.Sprintf(format, a...)}
}

// Run adopts running instances and observes every cluster once (then closes
// ready), resumes unfinished jobs, and runs the job runner, the control loop,
// the backup scheduler and the platform watcher until ctx ends. It returns once they stopped.
func (c *Controller) Run(ctx context.Context, ready chan<- struct{}) error {
	events, err := c.platform.Watch(ctx)
	if err != nil {
		return fmt.Errorf("watch platform: %w", err)
	}
	if err := c.adopt(ctx); err != nil {
		c.log.Warn("adopting instances", "err", err)
	}
	// The stored status is as old as the last run: observe once before the
	// API answers, so nobody reads a stale Ready.
	c.observeAll(ctx)
	close(ready)
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); c.runJobs(ctx) }()
	go func() { defer wg.Done(); c.controlLoop(ctx) }()
	go func() { defer wg.Done(); c.runScheduler(ctx) }()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				c.log.Info("platform event", "type", ev.Type, "instance", ev.ID.Name, "certain", ev.Certain, "pid", ev.Details.Pid)
				go c.onExit(ctx, ev)
			}
		}
	}()
	c.Kick()
	wg.Wait()
	c.pool.Close()
	return nil
}

// adopt re-attaches to the instances recorded in the store that still run,
// so their exits are watched. Instances are never started here: a job or the
// control loop decides that.
func (c *Controller) adopt(ctx context.Context) error {
	insts, err := c.store.ListAllInstances(ctx)
	if err != nil {
		return err
	}
	n := 0
	for _, in := range insts {
		pi, err := c.platform.Recover(ctx, id(in), in.Handle)
		if err != nil {
			return err
		}
		if pi.Running {
			n++
		}
		if len(pi.Handle) > 0 {
			if err := c.recordHandle(ctx, in, pi); err != nil {
				return err
			}
		}
	}
	c.log.Info("adopted running instances", "count", n, "recorded", len(insts))
	return nil
}

// Wake makes the control loop observe now.
func (c *Controller) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Kick makes the job runner look for pending jobs now.
func (c *Controller) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// sleep waits d or until ctx ends.
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

// poll calls check until it reports done, returns an error, or
// the timeout; the last reason for not being done is in the timeout error.
func poll(ctx context.Context, timeout, every time.Duration, check func() (done bool, why string, err error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, why, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s: %s", timeout, why)
		}
		if err := sleep(ctx, every); err != nil {
			return err
		}
	}
}
