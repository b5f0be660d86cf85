package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// failoverTrack is what the manager learns about one shard's failover as it
// happens, from the platform and from Sentinel's events.
type failoverTrack struct {
	LostAt     time.Time // the platform saw the master process exit
	DetectedAt time.Time // first +sdown/+odown of the master
	ForcedAt   time.Time // the fast path asked for SENTINEL FAILOVER
	PromotedAt time.Time // +promoted-slave
	Planned    bool      // a planned failover job records its own event
}

// tracker holds failovers in progress, keyed by Sentinel master name.
type tracker struct {
	mu       sync.Mutex
	shards   map[string]*failoverTrack
	epochs   map[string]int64     // Sentinel address -> epoch of its last +new-epoch
	runs     map[string]forcedRun // "<name>@<Sentinel address>" -> what that Sentinel said of its failover
	recorded map[string]time.Time // "<name> <old master> <new master>" of recorded switches
}

func newTracker() *tracker {
	return &tracker{shards: map[string]*failoverTrack{}, recorded: map[string]time.Time{}, epochs: map[string]int64{}, runs: map[string]forcedRun{}}
}

// update changes the track of a shard under the lock.
func (t *tracker) update(name string, f func(*failoverTrack)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr, ok := t.shards[name]
	if !ok {
		tr = &failoverTrack{}
		t.shards[name] = tr
		// A new failover of the shard: its switch is recorded even if it
		// goes between the same two instances as a recent one (a master
		// and its successor killed over and over).
		for k := range t.recorded {
			if strings.HasPrefix(k, name+" ") {
				delete(t.recorded, k)
			}
		}
	}
	f(tr)
}

// updateIfTracked changes the track of a shard's failover only if one is
// in progress (a late update must not start the next one's track).
func (t *tracker) updateIfTracked(name string, f func(*failoverTrack)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr, ok := t.shards[name]; ok {
		f(tr)
	}
}

// forcedRun is what one Sentinel announced of a failover it runs: the
// epoch it took (+new-epoch right before +try-failover, both from
// sentinelStartFailover) and the replica it selected (+selected-slave).
type forcedRun struct {
	Epoch    int64
	Selected string
}

// resetRun forgets what a Sentinel said of a shard's failover, before the
// manager asks it for a new one.
func (t *tracker) resetRun(name, sentinelAddr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.runs, name+"@"+sentinelAddr)
}

// run returns what a Sentinel said of the failover of a shard it runs.
func (t *tracker) run(name, sentinelAddr string) forcedRun {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runs[name+"@"+sentinelAddr]
}

// finish returns and forgets the track of a switch, once per switch: every
// Sentinel announces the same +switch-master.
func (t *tracker) finish(name, oldMaster, newMaster string) (failoverTrack, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := name + " " + oldMaster + " " + newMaster
	if at, ok := t.recorded[key]; ok && time.Since(at) < time.Minute {
		return failoverTrack{}, false
	}
	t.recorded[key] = time.Now()
	tr := t.shards[name]
	delete(t.shards, name)
	if tr == nil {
		return failoverTrack{}, true
	}
	return *tr, true
}

// watcher is one Sentinel's event subscription.
type watcher struct {
	cancel context.CancelFunc
}

// syncWatchers keeps one event subscription per running Sentinel of every
// cluster, and ends those of Sentinels that are gone.
func (c *Controller) syncWatchers(ctx context.Context, cls []store.Cluster) {
	byName := map[string]store.Cluster{}
	for _, cl := range cls {
		byName[cl.Name] = cl
	}
	all, err := c.store.ListAllInstances(ctx) // one query for every cluster
	if err != nil {
		// The watchers stay as they are until the next round reads again.
		if ctx.Err() == nil {
			c.log.Error("list instances for the Sentinel watchers", "err", err)
		}
		return
	}
	want := map[string]store.Cluster{}
	wantIn := map[string]store.Instance{}
	for _, in := range all {
		if cl, ok := byName[in.Cluster]; ok && in.Kind == store.KindSentinel {
			want[addr(in)], wantIn[addr(in)] = cl, in
		}
	}
	c.watchers.with(func(watchers map[string]*watcher) {
		for a, w := range watchers {
			if _, ok := want[a]; !ok {
				w.cancel()
				delete(watchers, a)
			}
		}
		for a, cl := range want {
			if _, ok := watchers[a]; ok {
				continue
			}
			wctx, cancel := context.WithCancel(ctx)
			watchers[a] = &watcher{cancel: cancel}
			cl, s := cl, wantIn[a]
			c.goTask(func() { c.watchSentinel(wctx, cl, s) })
		}
	})
}

// watchSentinel subscribes to every event a Sentinel publishes and reacts:
// any event wakes the control loop; failover events are tracked and
// recorded. go-redis re-subscribes after a lost connection.
func (c *Controller) watchSentinel(ctx context.Context, cl store.Cluster, s store.Instance) {
	// A client of its own (redisclient.Pool.PSubscribe): the pool may
	// retire a client whose dials fail while this Sentinel is down, and the
	// subscription must outlive that.
	ps := c.pool.PSubscribe(ctx, addr(s), cl.SentinelPassword, sentinel.EventPattern)
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			c.sentinelEvent(ctx, cl, s, msg.Channel, msg.Payload)
		}
	}
}

// sentinelEvent handles one Sentinel event.
func (c *Controller) sentinelEvent(ctx context.Context, cl store.Cluster, s store.Instance, channel, payload string) {
	if channel == "__sentinel__:hello" {
		return
	}
	f := strings.Fields(payload)
	c.log.Debug("sentinel event", "cluster", cl.Name, "sentinel", s.Name, "event", channel, "payload", payload)
	now := time.Now().UTC()
	switch channel {
	case "+sdown", "+odown":
		// "<type> <name> <ip> <port> ..." for the master itself.
		if len(f) >= 4 && f[0] == "master" {
			c.tracker.update(f[1], func(t *failoverTrack) {
				if t.DetectedAt.IsZero() {
					t.DetectedAt = now
				}
			})
		}
	case "+new-epoch":
		// "<epoch>": the Sentinel took (or learnt) a new current epoch.
		if len(f) == 1 {
			if e, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				c.tracker.mu.Lock()
				c.tracker.epochs[addr(s)] = e
				c.tracker.mu.Unlock()
			}
		}
	case "+try-failover":
		// "master <name> <ip> <port>", right after the +new-epoch of the
		// epoch this failover runs in.
		if len(f) >= 2 && f[0] == "master" {
			c.tracker.mu.Lock()
			r := c.tracker.runs[f[1]+"@"+addr(s)]
			r.Epoch = c.tracker.epochs[addr(s)]
			c.tracker.runs[f[1]+"@"+addr(s)] = r
			c.tracker.mu.Unlock()
		}
	case "+selected-slave":
		// "slave <ip:port> <ip> <port> @ <name> <mip> <mport>"
		if len(f) >= 6 && f[4] == "@" {
			c.tracker.mu.Lock()
			r := c.tracker.runs[f[5]+"@"+addr(s)]
			r.Selected = net.JoinHostPort(f[2], f[3])
			c.tracker.runs[f[5]+"@"+addr(s)] = r
			c.tracker.mu.Unlock()
		}
	case "+promoted-slave":
		// "slave <ip:port> <ip> <port> @ <name> <mip> <mport>"
		if len(f) >= 6 {
			c.tracker.update(f[5], func(t *failoverTrack) { t.PromotedAt = now })
		}
	case "+switch-master":
		// "<name> <oldip> <oldport> <newip> <newport>"
		if len(f) == 5 {
			c.recordSwitch(ctx, cl, f[0], net.JoinHostPort(f[1], f[2]), net.JoinHostPort(f[3], f[4]), now)
			if shard := shardOf(cl.Name, f[0]); shard != nil && c.pointer != nil {
				master := net.JoinHostPort(f[3], f[4])
				c.goTask(func() {
					if redis, _, err := c.instancesOf(ctx, cl.Name); err == nil {
						c.pointMaster(ctx, cl, *shard, master, redis)
					}
				})
			}
		}
	}
	c.Wake()
}

// recordSwitch records a failover event once per switch. The event waits
// (on a task of its own, so the watcher goes on reading events) until every
// Sentinel answers the new master, up to everySentinelWait: that moment,
// not the first +switch-master, is when a Sentinel-aware client can no
// longer be sent to the old master, whichever Sentinel it asks.
func (c *Controller) recordSwitch(ctx context.Context, cl store.Cluster, name, oldMaster, newMaster string, at time.Time) {
	t, first := c.tracker.finish(name, oldMaster, newMaster)
	if !first || t.Planned {
		return
	}
	c.goTask(func() {
		agree := c.waitEverySentinel(ctx, cl, name, newMaster)
		c.writeSwitch(ctx, cl, name, oldMaster, newMaster, at, t, agree)
	})
}

// everySentinelWait bounds how long a failover event waits for every
// Sentinel to name the new master.
const everySentinelWait = 10 * time.Second

// sentinelAgreement is when every Sentinel of a cluster first named a new
// master: in GET-MASTER-ADDR-BY-NAME (what go-redis and ioredis ask; the
// Sentinel running the failover answers the promoted replica from the
// promotion on), and also in SENTINEL MASTER(S) (what redis-py reads; the
// Sentinel running the failover shows the old address there until the
// failover ends).
type sentinelAgreement struct {
	AddrAt    time.Time         // every GET-MASTER-ADDR-BY-NAME
	MastersAt time.Time         // every SENTINEL MASTER too
	Answers   map[string]string // the last answers, when they never all agreed
}

// waitEverySentinel polls every Sentinel of the cluster every 5 ms until
// each names newMaster both ways, within everySentinelWait.
func (c *Controller) waitEverySentinel(ctx context.Context, cl store.Cluster, name, newMaster string) sentinelAgreement {
	var out sentinelAgreement
	_, sentinels, err := c.instancesOf(ctx, cl.Name)
	if err != nil {
		return out
	}
	deadline := time.Now().Add(everySentinelWait)
	for {
		answers := map[string]string{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, s := range sentinels {
			wg.Add(1)
			go func(s store.Instance) {
				defer wg.Done()
				sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
				sc := c.pool.Sentinel(addr(s), cl.SentinelPassword)
				got := "?"
				if a, err := sentinel.GetMasterAddrByName(sctx, sc, name); err == nil {
					got = a
					if m, err := sentinel.GetMaster(sctx, sc, name); err != nil || m.Addr != a {
						got = a + " (SENTINEL MASTER: " + m.Addr + ")"
					}
				}
				mu.Lock()
				answers[s.Name] = got
				mu.Unlock()
			}(s)
		}
		wg.Wait()
		now := time.Now().UTC()
		addrs, masters := true, true
		for _, a := range answers {
			addrs = addrs && strings.HasPrefix(a, newMaster)
			masters = masters && a == newMaster
		}
		if addrs && out.AddrAt.IsZero() {
			out.AddrAt = now
		}
		if masters {
			out.MastersAt = now
			return out
		}
		if time.Now().After(deadline) || sleep(ctx, 5*time.Millisecond) != nil {
			out.Answers = answers
			return out
		}
	}
}

// writeSwitch writes the failover event.
func (c *Controller) writeSwitch(ctx context.Context, cl store.Cluster, name, oldMaster, newMaster string, at time.Time, t failoverTrack, agree sentinelAgreement) {
	shard := shardOf(cl.Name, name)
	details := map[string]any{"oldMaster": oldMaster, "newMaster": newMaster, "switchedAt": at, "fast": !t.ForcedAt.IsZero()}
	start := t.DetectedAt
	for k, v := range map[string]time.Time{"lostAt": t.LostAt, "detectedAt": t.DetectedAt, "forcedAt": t.ForcedAt, "promotedAt": t.PromotedAt,
		"everySentinelAt": agree.AddrAt, "everySentinelMastersAt": agree.MastersAt} {
		if !v.IsZero() {
			details[k] = v
		}
	}
	if !t.LostAt.IsZero() {
		start = t.LostAt
	}
	msg := fmt.Sprintf("failover of %s: %s → %s", name, oldMaster, newMaster)
	if !start.IsZero() {
		details["writeUnavailableMs"] = at.Sub(start).Milliseconds()
		msg += fmt.Sprintf(" (writes unavailable about %d ms", at.Sub(start).Milliseconds())
		if !agree.AddrAt.IsZero() {
			// What a Sentinel-aware client sees: from the death until no
			// Sentinel hands out the old master any more.
			details["clientsRedirectedMs"] = agree.AddrAt.Sub(start).Milliseconds()
			msg += fmt.Sprintf("; every Sentinel names the new master after %d ms", agree.AddrAt.Sub(start).Milliseconds())
		}
		if !agree.MastersAt.IsZero() {
			details["sentinelMastersMs"] = agree.MastersAt.Sub(start).Milliseconds()
			msg += fmt.Sprintf(", in SENTINEL MASTERS too after %d ms", agree.MastersAt.Sub(start).Milliseconds())
		}
		msg += ")"
	}
	if agree.MastersAt.IsZero() && agree.Answers != nil {
		details["sentinelAnswers"] = agree.Answers
	}
	c.event(ctx, cl.Name, shard, "failover", msg, details)
	c.log.Info("failover recorded", "cluster", cl.Name, "shard", name, "old", oldMaster, "new", newMaster)
}

// shardOf returns the shard index of a Sentinel master name of a cluster.
func shardOf(cluster, name string) *int {
	rest, ok := strings.CutPrefix(name, cluster+"-")
	n, err := strconv.Atoi(rest)
	if !ok || err != nil || n < 0 {
		return nil
	}
	return &n
}

// onExit reacts to the platform seeing a process exit: it records the loss,
// starts the fast failover when the process was a master and its death is
// certain (a suspected death waits for Sentinel's own down-after), and wakes
// the control loop, which restarts what is lost.
func (c *Controller) onExit(ctx context.Context, ev platform.InstanceEvent) {
	defer c.Wake()
	var cl store.Cluster
	var redis, sentinels []store.Instance
	err := retryStore(ctx, func() (err error) {
		if cl, err = c.store.GetCluster(ctx, ev.ID.Cluster); err != nil {
			return err
		}
		redis, sentinels, err = c.instancesOf(ctx, cl.Name)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return // the cluster was deleted
	}
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("instance exit: cannot read the store; no fast failover for it", "cluster", ev.ID.Cluster, "instance", ev.ID.Name, "err", err)
		}
		return
	}
	var in *store.Instance
	for i := range redis {
		if redis[i].Name == ev.ID.Name {
			in = &redis[i]
		}
	}
	if in == nil {
		return // a Sentinel, or an instance being removed
	}
	name := spec.MasterName(cl.Name, in.Shard)
	if c.currentMaster(ctx, cl, in.Shard, redis, sentinels) != addr(*in) {
		return
	}
	c.tracker.update(name, func(t *failoverTrack) {
		if t.LostAt.IsZero() {
			t.LostAt = ev.At
		}
	})
	dead := *in
	c.goTask(func() { c.noteMasterDeath(ctx, cl, dead, ev.At) })
	if ok, why := forceOnDeath(ev, cl.Spec); !ok {
		if why != "" {
			c.log.Info("fast failover declined: "+why, "cluster", cl.Name, "shard", name, "instance", in.Name)
		}
		return
	}
	c.goTask(func() { c.fastFailover(ctx, cl, dead, redis, sentinels) })
}

// forceOnDeath tells whether the death of a shard's master may start a fast
// failover: only when the spec allows it, there is a replica to promote,
// and the platform is certain the master is dead (a process reaped, a
// container terminated, a pod deleted). A suspected death (a lost watch, a
// node that stopped reporting) waits for Sentinel's own down-after. It is
// pure; why says why not, "" when the spec does not ask for it.
func forceOnDeath(ev platform.InstanceEvent, s api.ClusterSpec) (ok bool, why string) {
	switch {
	case !s.FastFailover || s.Replicas == 0:
		return false, ""
	case ev.Type != platform.EventExited:
		return false, "not a death: " + ev.Type
	case !ev.Certain:
		return false, "the platform only suspects the master is dead"
	}
	return true, ""
}

// retryStore runs f, a read of the store, up to storeAttempts times 100 ms
// apart while ctx lasts, for the paths that cannot wait for the next round
// of the control loop. ErrNotFound is an answer, not a failure.
func retryStore(ctx context.Context, f func() error) error {
	var err error
	for i := 0; i < storeAttempts; i++ {
		if err = f(); err == nil || errors.Is(err, store.ErrNotFound) {
			return err
		}
		if i < storeAttempts-1 && sleep(ctx, 100*time.Millisecond) != nil {
			return err
		}
	}
	return err
}

// storeAttempts bounds retryStore: the fast failover it feeds must still
// be fast.
const storeAttempts = 5
