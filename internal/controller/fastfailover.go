package controller

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// fastFailover asks Sentinel to fail a shard over at once when the master
// process is dead, instead of waiting down-after-milliseconds, then speeds
// up what Sentinel waits for (docs/recovery.md, "Fast failover").
//
// Sentinel picks the replica to promote from its cached INFO of each
// replica (priority, then offset). A forced failover with a stale cache
// could promote a replica that is behind another and lose acknowledged
// writes. So the manager reads every replica's real offset (they no longer
// move: the master is dead), computes the replica each Sentinel would pick
// from its own SENTINEL REPLICAS view, and forces the failover only on a
// Sentinel whose pick holds the highest offset, and only when that offset
// reaches what the shard's previous fast failover promoted (ackFloor).
// Sentinel refreshes the cache every SentinelInfoPeriodMs, so this
// normally holds within a second; if it does not within fastFailoverWait,
// the manager stays out and Sentinel fails over on its own after
// down-after-milliseconds, with fresh data.
func (c *Controller) fastFailover(ctx context.Context, cl store.Cluster, dead store.Instance, redis, sentinels []store.Instance) {
	name := spec.MasterName(cl.Name, dead.Shard)
	if !c.claimFailover(name) {
		return
	}
	defer c.releaseFailover(name)
	log := c.log.With("cluster", cl.Name, "shard", name, "deadMaster", dead.Name)

	// A dead process, not a network doubt: the pid is gone and the port
	// refuses connections. On a platform that restarts an instance by
	// itself (Kubernetes: the kubelet restarts the container at once, often
	// before the manager hears of the death), a running instance is the
	// next incarnation, whose entrypoint holds the boot of a master that
	// Sentinels still name (instance.HoldMasterBoot): only its port tells
	// whether a redis-server serves.
	if !c.selfRestart {
		if pid, running, err := c.instanceRunning(ctx, dead); err != nil {
			log.Info("fast failover declined: cannot tell whether the master process runs", "err", err)
			return
		} else if running {
			log.Info("fast failover declined: master process still runs", "pid", pid)
			return
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	conn, err := c.dial(dctx, "tcp", addr(dead))
	cancel()
	if err == nil {
		conn.Close()
		log.Info("fast failover declined: master port still accepts connections")
		return
	} else if !isRefused(err) {
		log.Info("fast failover declined: master port not clearly closed", "err", err)
		return
	}
	if !c.waitDeparted(ctx, cl, dead, log) {
		return
	}

	// Offsets are read again on every round: a replica busy when the
	// master died may not have applied the last bytes in its socket buffer
	// yet, and a Sentinel whose cached INFO picks it is safe once it has.
	// Offsets only grow now, so a later read never makes a choice unsafe.
	deadline := time.Now().Add(fastFailoverWait)
	for round := 0; ; round++ {
		reps := c.replicaStates(ctx, cl, dead)
		offsets := map[string]int64{}
		var best int64 = -1
		for a, r := range reps {
			offsets[a] = r.offset
			best = max(best, r.offset)
		}
		if len(offsets) == 0 && round == 0 {
			log.Info("fast failover declined: no replica reachable")
			return
		}
		// The last fast failover of the shard promoted a replica at
		// floor.offset: writes up to there may have been acknowledged by it
		// alone; a replica below it does not hold them all.
		floor, hasFloor := c.ackFloorOf(name)
		belowFloor := false
		for _, r := range reps {
			if hasFloor && r.offset == best && floor.applies(r.replid) && best < floor.offset {
				belowFloor = true
			}
		}
		if !belowFloor && len(offsets) > 0 {
			cands, choices, epochs := c.forceCandidates(ctx, cl, name, dead, sentinels, offsets, best)
			for _, fc := range topology.OrderForcing(cands) {
				c.tracker.resetRun(name, fc.Addr)
				c.tracker.update(name, func(t *failoverTrack) { t.ForcedAt = time.Now().UTC() })
				err := sentinel.Failover(ctx, c.pool.Sentinel(fc.Addr, cl.SentinelPassword), name)
				if err != nil && !sentinel.IsFailoverInProgress(err) {
					log.Warn("fast failover: SENTINEL FAILOVER refused", "sentinel", fc.Addr, "err", err)
					continue
				}
				promote := choices[fc.Addr]
				log.Info("fast failover requested", "sentinel", fc.Addr, "promote", promote, "offset", best, "round", round,
					"expectedPromotionMs", topology.ExpectedPromotion(fc.InfoDue).Milliseconds())
				c.setAckFloor(name, ackFloor{offset: best, replids: []string{reps[promote].replid}, at: time.Now()})
				c.followFailover(ctx, cl, name, fc.Addr, promote, best, epochs[fc.Addr], dead, redis, sentinels)
				return
			}
		}
		if time.Now().After(deadline) {
			if belowFloor {
				log.Warn("fast failover declined: no replica left holds every acknowledged write; Sentinel fails over after down-after-milliseconds", "offsets", offsets, "floor", floor.offset)
			} else {
				log.Warn("fast failover declined: no Sentinel would promote the most up-to-date replica in time; Sentinel fails over after down-after-milliseconds", "offsets", offsets)
			}
			return
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return
		}
	}
}

// replicaState is what a replica of a dead master says of itself.
type replicaState struct {
	offset int64
	replid string // the replication history it follows (master_replid)
}

// replicaStates reads the offset of every replica of dead's shard that
// answers as a replica and is not in the middle of a full sync (its data
// would be whatever the sync left).
func (c *Controller) replicaStates(ctx context.Context, cl store.Cluster, dead store.Instance) map[string]replicaState {
	redis, _, err := c.instancesOf(ctx, cl.Name)
	if err != nil {
		return nil
	}
	var mu sync.Mutex
	out := map[string]replicaState{}
	var wg sync.WaitGroup
	for _, in := range redis {
		if in.Shard != dead.Shard || in.Name == dead.Name {
			continue
		}
		wg.Add(1)
		go func(in store.Instance) {
			defer wg.Done()
			info, err := redisclient.GetInfo(ctx, c.pool.Redis(addr(in), cl.Password), "replication")
			if err != nil || info["role"] != "slave" || info["master_sync_in_progress"] == "1" {
				return
			}
			mu.Lock()
			out[addr(in)] = replicaState{offset: info.Int("slave_repl_offset"), replid: info["master_replid"]}
			mu.Unlock()
		}(in)
	}
	wg.Wait()
	return out
}

// forceCandidates asks every Sentinel at once whether it may run the fast
// failover: it names the dead instance master, is not in TILT, and is not
// failing it over already (the Sentinel that ran the previous failover may still be
// reconfiguring replicas, and answers INPROG), and the replica it would
// promote holds the highest offset. It returns the candidates and, per
// Sentinel, the replica it would promote.
func (c *Controller) forceCandidates(ctx context.Context, cl store.Cluster, name string, dead store.Instance, sentinels []store.Instance, offsets map[string]int64, best int64) ([]topology.ForceCandidate, map[string]string, map[string]int64) {
	var mu sync.Mutex
	var cands []topology.ForceCandidate
	choices := map[string]string{}
	epochs := map[string]int64{}
	var wg sync.WaitGroup
	for i, s := range sentinels {
		wg.Add(1)
		go func(i int, s store.Instance) {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			sc := c.pool.Sentinel(addr(s), cl.SentinelPassword)
			m, err := sentinel.GetMaster(sctx, sc, name)
			if err != nil || m.Addr != addr(dead) || slices.Contains(m.Flags, "failover_in_progress") {
				return
			}
			// A Sentinel in TILT accepts SENTINEL FAILOVER and acts on it
			// only when TILT ends, up to 30 s later (seen on a loaded node:
			// +try-failover, then +elected-leader 5.3 s after, at -tilt).
			if tilted, err := sentinel.Tilted(sctx, sc); err != nil || tilted {
				return
			}
			view, err := sentinel.Replicas(sctx, sc, name)
			if err != nil {
				return
			}
			readAt := time.Now()
			choice := topology.SentinelChoice(view, time.Duration(SentinelInfoPeriodMs)*3*time.Millisecond)
			if choice == "" || offsets[choice] != best {
				return
			}
			var age time.Duration
			for _, r := range view {
				if r.Addr == choice {
					age = r.InfoRefresh
				}
			}
			due := time.Duration(SentinelInfoPeriodMs)*time.Millisecond - age - time.Since(readAt)
			mu.Lock()
			cands = append(cands, topology.ForceCandidate{Addr: addr(s), Index: i, InfoDue: due})
			choices[addr(s)] = choice
			epochs[addr(s)] = m.ConfigEpoch
			mu.Unlock()
		}(i, s)
	}
	wg.Wait()
	return cands, choices, epochs
}

// followFailover makes every Sentinel learn the promotion as soon as the
// replica runs as master, and points the remaining replicas at it.
//
// The Sentinel running a forced failover (the runner) sends REPLICAOF NO
// ONE on the third tick of its timer, then sees the promotion only in its
// next INFO of the replica, which it sends once a second during a failover
// (sentinel.c hard-wires 1000 ms there): up to a second in which the
// replica already is a master and every Sentinel still names the dead one.
// Only then does the runner set the shard's configuration epoch to the
// failover's epoch and broadcast it in a hello, on which the others switch.
//
// The manager watches for the same facts the runner waits for: the runner
// announced the epoch it took (+new-epoch before +try-failover) and the
// replica it selected (+selected-slave), and that replica answers
// role:master (only the runner's REPLICAOF NO ONE makes it one: the manager
// never promotes). Then it hands every Sentinel the hello the runner would
// send: the new master at the failover's epoch, as the runner (to the
// runner itself, as another Sentinel: a Sentinel takes a hello from itself
// for a new peer). Each switches on it (+config-update-from,
// +switch-master), the runner too, which ends its failover there. If the
// events are missing (no subscription to the runner), the manager waits
// for the runner to see the promotion itself (GET-MASTER-ADDR-BY-NAME) and
// sends the others a copy of its hello, as before.
//
// The remaining replicas are pointed at the new master (REPLICAOF, what the
// runner would send them next, one parallel-syncs batch at a time), so they
// resync at once; a replica ahead of the promoted one is left alone.
func (c *Controller) followFailover(ctx context.Context, cl store.Cluster, name, runner, promote string, promotedOffset, prevEpoch int64, dead store.Instance, redis, sentinels []store.Instance) {
	log := c.log.With("cluster", cl.Name, "shard", name)
	sc := c.pool.Sentinel(runner, cl.SentinelPassword)
	peers := c.sentinelPeers(ctx, cl, sentinels)
	deadline := time.Now().Add(time.Duration(max(cl.Spec.Sentinel.FailoverTimeoutMs, 1000)) * time.Millisecond)
	var epoch int64 // the failover's epoch, when the manager announces the promotion
	for {
		if r := c.tracker.run(name, runner); r.Selected != "" && r.Epoch > prevEpoch {
			info, err := redisclient.GetInfo(ctx, c.pool.Redis(r.Selected, cl.Password), "replication")
			if err == nil && info["role"] == "master" {
				if r.Selected != promote {
					log.Warn("fast failover: the Sentinel selected another replica than expected", "selected", r.Selected, "expected", promote)
				}
				promote, epoch = r.Selected, r.Epoch
				break
			}
		}
		if a, err := sentinel.GetMasterAddrByName(ctx, sc, name); err == nil && a != addr(dead) {
			promote = a // the runner saw the promotion first
			break
		}
		if time.Now().After(deadline) {
			log.Warn("fast failover: no promotion seen in time; Sentinel carries on alone", "sentinel", runner)
			return
		}
		if sleep(ctx, 2*time.Millisecond) != nil {
			return
		}
	}
	seen := time.Now().UTC()
	c.tracker.updateIfTracked(name, func(t *failoverTrack) {
		if t.PromotedAt.IsZero() {
			t.PromotedAt = seen
		}
	})
	var hellos []sentinel.Hello // one per Sentinel, in the order of sentinels
	if epoch > 0 {
		for _, s := range sentinels {
			from, ok := peers[runner]
			if addr(s) == runner {
				ok = false
				for a, p := range peers {
					if a != runner {
						from, ok = p, true
						break
					}
				}
			}
			if !ok {
				hellos = append(hellos, sentinel.Hello{})
				continue
			}
			hellos = append(hellos, sentinel.Hello{From: from, CurrentEpoch: epoch, Name: name, MasterAddr: promote, ConfigEpoch: epoch})
		}
	} else if m, err := sentinel.GetMaster(ctx, sc, name); err == nil && peers[runner].ID != "" {
		for _, s := range sentinels {
			h := sentinel.Hello{}
			if addr(s) != runner {
				h = sentinel.Hello{From: peers[runner], CurrentEpoch: m.ConfigEpoch, Name: name, MasterAddr: promote, ConfigEpoch: m.ConfigEpoch}
			}
			hellos = append(hellos, h)
		}
	}
	var wg sync.WaitGroup
	for i, h := range hellos {
		if h.Name == "" {
			continue
		}
		wg.Add(1)
		go func(s store.Instance, h sentinel.Hello) {
			defer wg.Done()
			if err := sentinel.SendHello(ctx, c.pool.Sentinel(addr(s), cl.SentinelPassword), h); err != nil {
				log.Info("fast failover: hello not delivered", "sentinel", s.Name, "err", err)
			}
		}(sentinels[i], h)
	}
	host, port, _ := net.SplitHostPort(promote)
	for _, in := range redis {
		if in.Shard != dead.Shard || in.Name == dead.Name || addr(in) == promote {
			continue
		}
		wg.Add(1)
		go func(in store.Instance) {
			defer wg.Done()
			rc := c.pool.Redis(addr(in), cl.Password)
			info, err := redisclient.GetInfo(ctx, rc, "replication")
			if err != nil || info["role"] != "slave" {
				return
			}
			if net.JoinHostPort(info["master_host"], info["master_port"]) == promote {
				return
			}
			if off := info.Int("slave_repl_offset"); off > promotedOffset {
				log.Warn("fast failover: a replica is ahead of the promoted one; left to Sentinel", "replica", in.Name, "offset", off, "promoted", promotedOffset)
				return
			}
			if err := rc.Do(ctx, "replicaof", host, port).Err(); err != nil {
				log.Info("fast failover: replica not re-pointed; Sentinel will", "replica", in.Name, "err", err)
			}
		}(in)
	}
	wg.Wait()
	// The new master's replicas follow its new replication id: the floor
	// holds for them too.
	if info, err := redisclient.GetInfo(ctx, c.pool.Redis(promote, cl.Password), "replication"); err == nil && info["role"] == "master" {
		c.floors.with(func(floors map[string]ackFloor) {
			if f, ok := floors[name]; ok {
				f.replids = append(f.replids, info["master_replid"])
				floors[name] = f
			}
		})
	}
	log.Info("fast failover: promotion seen; Sentinels told, replicas re-pointed", "promoted", promote, "epoch", epoch, "announced", epoch > 0, "seenAt", seen, "tookMs", time.Since(seen).Milliseconds())
}

// sentinelPeers returns each Sentinel's identity as its hello gives it
// (address as recorded, SENTINEL MYID), by address; those that do not
// answer are left out.
func (c *Controller) sentinelPeers(ctx context.Context, cl store.Cluster, sentinels []store.Instance) map[string]sentinel.Peer {
	var mu sync.Mutex
	out := map[string]sentinel.Peer{}
	var wg sync.WaitGroup
	for _, s := range sentinels {
		wg.Add(1)
		go func(s store.Instance) {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			id, err := sentinel.MyID(sctx, c.pool.Sentinel(addr(s), cl.SentinelPassword))
			if err != nil {
				return
			}
			mu.Lock()
			out[addr(s)] = sentinel.Peer{Host: s.Host, Port: strconv.Itoa(s.Port), ID: id}
			mu.Unlock()
		}(s)
	}
	wg.Wait()
	return out
}

// ackFloor is the offset a shard's last fast failover promoted: every
// acknowledged write up to it may live on the promoted replica alone.
type ackFloor struct {
	offset  int64
	replids []string // the promoted replica's replication history (master_replid)
	at      time.Time
}

// ackFloorFor is how long a floor counts: the rule is for failovers in
// quick succession.
const ackFloorFor = 10 * time.Minute

// applies tells whether a replica following replid shares the history the
// floor was measured in (offsets of unrelated histories do not compare).
// After the promotion, the new master's replicas follow its new replication
// id, so the new one is added once read (see setAckFloor's callers).
func (f ackFloor) applies(replid string) bool {
	return time.Since(f.at) < ackFloorFor && (replid == "" || slices.Contains(f.replids, replid) || len(f.replids) == 0)
}

func (c *Controller) ackFloorOf(name string) (ackFloor, bool) { return c.floors.get(name) }

func (c *Controller) setAckFloor(name string, f ackFloor) { c.floors.set(name, f) }

// fastFailoverWait bounds how long the fast path waits for a Sentinel's
// view of the replicas to become current.
const fastFailoverWait = 3 * time.Second

// isRefused tells a closed port from a network doubt: the connection was
// refused, or the platform says no instance runs under the name (a pod that
// is gone or being deleted: platform.Dialer).
func isRefused(err error) bool {
	var dns *net.DNSError
	return err != nil && (strings.Contains(err.Error(), syscall.ECONNREFUSED.Error()) || (errors.As(err, &dns) && dns.IsNotFound && dns.Server == ""))
}

func (c *Controller) claimFailover(name string) bool { return c.failovers.claim(name, true) }

func (c *Controller) releaseFailover(name string) { c.failovers.remove(name) }
