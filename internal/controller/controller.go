package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/alerts"
	"github.com/redis-manager/redis-manager/internal/autoscale"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/leader"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/store"
)

// DefaultObserveEvery is the observe loop's period (Config.ObserveEvery).
const DefaultObserveEvery = 2 * time.Second

// Config holds the controller's settings.
type Config struct {
	ObserveEvery  time.Duration
	StepTimeout   time.Duration // upper bound of one waiting step
	SentinelReady time.Duration // how long to wait for Sentinels to agree
	// BackupTarget is the file:// or s3:// URL new backups go to.
	BackupTarget string
	// ScratchDir holds the temporary copies of backups being verified.
	ScratchDir string
	// Leader elects this manager among those sharing the store; nil
	// builds one with a random id (a single manager).
	Leader *leader.Elector
	// Alerts evaluates the alert rules after each observe round; nil:
	// no alerts.
	Alerts *alerts.Engine
	// ObserveConcurrency bounds the instance reads (INFO, a Sentinel's
	// view) in flight at once over every cluster an observe round reads
	// (default DefaultObserveConcurrency).
	ObserveConcurrency int
	// InstanceTimeout bounds one instance's read in an observation, from
	// when it gets its slot: an instance that does not answer within it
	// is reported down, and the others of its cluster are not held up
	// longer (default DefaultInstanceTimeout).
	InstanceTimeout time.Duration
	// Autoscale runs the autoscaling policies after each observe round,
	// after the alert rules; nil: no autoscaling.
	Autoscale *autoscale.Engine
}

// DefaultObserveConcurrency is Config.ObserveConcurrency's default: four
// reads per core the manager may use (at least 8). A read is CPU work here
// too (the reply read and parsed, the status evaluated): more at once than
// the cores can take only queues the API's requests behind them. With
// 1,020 instances on 2 cores, 64 reads at once gave GET /api/v1/clusters a
// p99 of 113 ms, 16 gave 60 ms and 8 gave 38, 128 and 94 ms in three runs
// (bench/scale; docs/monitoring.md).
var DefaultObserveConcurrency = max(8, 4*runtime.GOMAXPROCS(0))

// DefaultInstanceTimeout is Config.InstanceTimeout's default.
const DefaultInstanceTimeout = 2 * time.Second

// Store is what the controller needs of the metadata store.
type Store = store.Store

// Controller runs jobs and the control loop.
type Controller struct {
	cfg      Config
	store    Store
	platform platform.Platform
	pool     *redisclient.Pool
	log      *slog.Logger
	leader   *leader.Elector

	// tasks owns the goroutines leader work starts on the side (platform
	// event handlers, fast failovers, Sentinel watchers): a term ends only
	// once they all returned.
	tasks sync.WaitGroup

	wake chan struct{}
	kick chan struct{}

	running    locked[string, bool]          // job ids being run
	watchers   locked[string, *watcher]      // Sentinel address -> event subscription
	failovers  locked[string, bool]          // shards with a fast failover in flight
	floors     locked[string, ackFloor]      // shard -> offset its last fast failover promoted
	deaths     locked[string, []masterDeath] // shard -> recent deaths of its master
	crashLoops locked[string, time.Time]     // shard -> last crash-loop event
	lost       locked[string, time.Time]     // instance -> when it was seen lost
	observed   locked[string, time.Time]     // cluster -> start of the last stored observation
	// commands: cluster -> instance -> INFO commandstats of the last
	// stored observation, kept out of the stored status (Commands).
	commands locked[string, map[string]map[string]api.CommandStat]
	// reads holds one token per instance read in flight in observations
	// (Config.ObserveConcurrency).
	reads   chan struct{}
	tracker *tracker
	metrics *metrics
	portMu  sync.Mutex // serialises endpoint reservation and recording

	// ordered: the platform removes only the highest ordinals
	// (platform.OrderedRemoval).
	ordered bool
	// dial reaches instances outside the pool (the platform's Dialer, if
	// it has one).
	dial redisclient.DialFunc
	// namesMove: instances are addressed by names whose address changes
	// when the platform makes them again (a platform.Dialer: pod names),
	// so a Sentinel may hold a replica's old address (stuckReplicas).
	namesMove bool
	// startTogether: the platform starts instances slowly (pods), so a
	// create starts redis-servers and Sentinels at once
	// (platform.SlowStart).
	startTogether bool
	// selfRestart: the platform restarts a dead instance by itself
	// (platform.SelfRestart).
	selfRestart bool
	// departed: the platform remembers where a deleted instance's last
	// process may still run (platform.Departed); nil when it does not.
	departed platform.Departed
	// pointer, when the platform has one, points clients that do not
	// speak Sentinel at each shard's master (platform.MasterPointer).
	pointer platform.MasterPointer
}

// New assembles a controller. Run starts it.
func New(cfg Config, st Store, p platform.Platform, log *slog.Logger) *Controller {
	if cfg.ObserveEvery == 0 {
		cfg.ObserveEvery = DefaultObserveEvery
	}
	if cfg.ObserveConcurrency <= 0 {
		cfg.ObserveConcurrency = DefaultObserveConcurrency
	}
	if cfg.InstanceTimeout <= 0 {
		cfg.InstanceTimeout = DefaultInstanceTimeout
	}
	if cfg.StepTimeout == 0 {
		cfg.StepTimeout = 10 * time.Minute
	}
	if cfg.SentinelReady == 0 {
		cfg.SentinelReady = 60 * time.Second
	}
	if cfg.Leader == nil {
		cfg.Leader = leader.New(leader.Config{ID: jobspec.NewID("manager")}, st, log)
	}
	pool := redisclient.NewPool()
	pool.SetGate(cfg.Leader.Gate, "redis-manager:"+cfg.Leader.ID())
	dial := (&net.Dialer{}).DialContext
	d, namesMove := p.(platform.Dialer)
	if namesMove {
		pool.SetDialer(d.DialContext)
		dial = d.DialContext
	}
	var ordered bool
	if o, ok := p.(platform.OrderedRemoval); ok {
		ordered = o.RemovesHighestOrdinalFirst()
	}
	var pointer platform.MasterPointer
	if mp, ok := p.(platform.MasterPointer); ok {
		pointer = gatedPointer{MasterPointer: mp, gate: cfg.Leader.Gate}
	}
	slow, _ := p.(platform.SlowStart)
	self, _ := p.(platform.SelfRestart)
	departed, _ := p.(platform.Departed)
	return &Controller{
		departed:      departed,
		selfRestart:   self != nil && self.RestartsOnItsOwn(),
		dial:          dial,
		namesMove:     namesMove,
		startTogether: slow != nil && slow.StartsSlowly(),
		ordered:       ordered,
		pointer:       pointer,
		cfg:           cfg,
		store:         st,
		platform:      gatedPlatform{Platform: p, gate: cfg.Leader.Gate},
		pool:          pool,
		log:           log,
		leader:        cfg.Leader,
		wake:          make(chan struct{}, 1),
		kick:          make(chan struct{}, 1),
		tracker:       newTracker(),
		metrics:       newMetrics(),
		reads:         make(chan struct{}, cfg.ObserveConcurrency),
	}
}

func (c *Controller) getCluster(ctx context.Context, name string) (store.Cluster, error) {
	cl, err := c.store.GetCluster(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return cl, jobspec.NotFound("cluster %q not found", name)
	}
	return cl, err
}

func (c *Controller) getBackup(ctx context.Context, id string) (store.Backup, error) {
	b, err := c.store.GetBackup(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return b, jobspec.NotFound("backup %q not found", id)
	}
	return b, err
}

// newJob returns a pending job (jobspec.New) for leader work that stores
// one itself: healing and the end of a password rotation's grace period.
func newJob(kind, cluster string, now time.Time) store.Job { return jobspec.New(kind, cluster, now) }

// Run serves until ctx ends: it competes for leadership and, while this
// manager leads, runs the leader's work (lead). ready is closed once the
// API may answer: at once on a standby, after the first observation on a
// leader. It returns once every goroutine it started stopped, and only then
// closes the connection pool.
func (c *Controller) Run(ctx context.Context, ready chan<- struct{}) error {
	events, err := c.platform.Watch(ctx)
	if err != nil {
		return fmt.Errorf("watch platform: %w", err)
	}
	var once sync.Once
	readyNow := func() { once.Do(func() { close(ready) }) }
	c.leader.Run(ctx, func(lctx context.Context) { c.lead(lctx, events, readyNow) }, readyNow)
	readyNow()
	c.pool.Close()
	return nil
}

// Leader is this manager's elector (health, metrics).
func (c *Controller) Leader() *leader.Elector { return c.leader }

// lead is one term of leadership, as one unit (Nomad's establishLeadership
// and revokeLeadership): it adopts the running instances, observes every
// cluster once, then runs the job runner (which resumes every unfinished
// job, a job the previous leader was running included), the control loop,
// the backup scheduler and the platform event handler, with the Sentinel
// watchers and fast failovers they start, until ctx ends; it returns only
// once all of them returned.
func (c *Controller) lead(ctx context.Context, events <-chan platform.InstanceEvent, ready func()) {
	// Exits seen while standing by are old news: the adoption and the
	// first observation below see what they left.
	for drained := false; !drained; {
		select {
		case <-events:
		default:
			drained = true
		}
	}
	if err := c.adopt(ctx); err != nil {
		c.log.Warn("adopting instances", "err", err)
	}
	// The stored status is as old as the last run: observe once before the
	// API answers, so nobody reads a stale Ready.
	c.observeAll(ctx)
	ready()
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
				c.goTask(func() { c.onExit(ctx, ev) })
			}
		}
	}()
	c.Kick()
	wg.Wait()
	c.tasks.Wait()
	// The next term starts its own watchers and failovers.
	c.watchers.reset()
	c.failovers.reset()
	// Per-command figures are this leader's; a standby serves none.
	c.commands.reset()
}

// goTask runs f on a goroutine the current term waits for. Call it only
// from leader work that is itself running (so the term has not ended).
func (c *Controller) goTask(f func()) {
	c.tasks.Add(1)
	go func() {
		defer c.tasks.Done()
		f()
	}()
}

// gatedPointer passes the platform's master pointer through the leader's
// gate, like every platform action.
type gatedPointer struct {
	platform.MasterPointer
	gate func(ctx context.Context, what string, f func() error) error
}

func (g gatedPointer) PointMaster(ctx context.Context, cluster string, shard int, master platform.ID) error {
	return g.gate(ctx, "platform point master "+master.Name, func() error {
		return g.MasterPointer.PointMaster(ctx, cluster, shard, master)
	})
}

// gatedPlatform passes every platform action of leader work through the
// elector's gate: a leader whose term is over or whose deadline passed
// starts, stops, recovers or seeds nothing.
type gatedPlatform struct {
	platform.Platform
	gate func(ctx context.Context, op string, act func() error) error
}

func (g gatedPlatform) Ensure(ctx context.Context, s platform.InstanceSpec) (pi platform.Instance, err error) {
	err = g.gate(ctx, "platform ensure "+s.ID.Name, func() error {
		pi, err = g.Platform.Ensure(ctx, s)
		return err
	})
	return pi, err
}

func (g gatedPlatform) Recover(ctx context.Context, id platform.ID, handle []byte) (pi platform.Instance, err error) {
	err = g.gate(ctx, "platform recover "+id.Name, func() error {
		pi, err = g.Platform.Recover(ctx, id, handle)
		return err
	})
	return pi, err
}

func (g gatedPlatform) Remove(ctx context.Context, id platform.ID) error {
	return g.gate(ctx, "platform remove "+id.Name, func() error { return g.Platform.Remove(ctx, id) })
}

func (g gatedPlatform) Seed(ctx context.Context, id platform.ID, src platform.SeedSource) error {
	return g.gate(ctx, "platform seed "+id.Name, func() error { return g.Platform.Seed(ctx, id, src) })
}

func (g gatedPlatform) RunTask(ctx context.Context, t platform.Task, progress func(platform.TaskProgress)) (res platform.TaskResult, err error) {
	err = g.gate(ctx, "platform task "+string(t.Kind), func() error {
		res, err = g.Platform.RunTask(ctx, t, progress)
		return err
	})
	return res, err
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
