package controller

import (
	"context"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// fastFailover asks Sentinel to fail a shard over at once when the master
// process is dead, instead of waiting down-after-milliseconds.
//
// Sentinel picks the replica to promote from its cached INFO of each
// replica (priority, then offset). A forced failover with a stale cache
// could promote a replica that is behind another and lose acknowledged
// writes. So the manager reads every replica's real offset (they no longer
// move: the master is dead), computes the replica this Sentinel would pick
// from its own SENTINEL REPLICAS view, and forces the failover only when
// that replica holds the highest offset. Sentinel refreshes the cache every
// SentinelInfoPeriodMs, so this normally holds within a second; if it does
// not within fastFailoverWait, the manager stays out and Sentinel fails over
// on its own after down-after-milliseconds, with fresh data.
func (c *Controller) fastFailover(ctx context.Context, cl store.Cluster, dead store.Instance, redis, sentinels []store.Instance) {
	name := spec.MasterName(cl.Name, dead.Shard)
	if !c.claimFailover(name) {
		return
	}
	defer c.releaseFailover(name)
	log := c.log.With("cluster", cl.Name, "shard", name, "deadMaster", dead.Name)

	// A dead process, not a network doubt: the pid is gone and the port
	// refuses connections.
	if pid, running, err := c.instanceRunning(ctx, dead); err != nil {
		log.Info("fast failover declined: cannot tell whether the master process runs", "err", err)
		return
	} else if running {
		log.Info("fast failover declined: master process still runs", "pid", pid)
		return
	}
	if conn, err := net.DialTimeout("tcp", addr(dead), 200*time.Millisecond); err == nil {
		conn.Close()
		log.Info("fast failover declined: master port still accepts connections")
		return
	} else if !isRefused(err) {
		log.Info("fast failover declined: master port not clearly closed", "err", err)
		return
	}

	offsets := map[string]int64{}
	var best int64 = -1
	for _, in := range redis {
		if in.Shard != dead.Shard || in.Name == dead.Name {
			continue
		}
		info, err := redisclient.GetInfo(ctx, c.pool.Redis(addr(in), cl.Password), "replication")
		if err != nil || info["role"] != "slave" {
			continue
		}
		off := info.Int("slave_repl_offset")
		offsets[addr(in)] = off
		best = max(best, off)
	}
	if len(offsets) == 0 {
		log.Info("fast failover declined: no replica reachable")
		return
	}
	deadline := time.Now().Add(fastFailoverWait)
	for time.Now().Before(deadline) {
		for _, s := range sentinels {
			view, err := sentinel.Replicas(ctx, c.pool.Sentinel(addr(s), cl.SentinelPassword), name)
			if err != nil {
				continue
			}
			choice := topology.SentinelChoice(view, time.Duration(SentinelInfoPeriodMs)*3*time.Millisecond)
			if choice == "" || offsets[choice] != best {
				continue
			}
			c.tracker.update(name, func(t *failoverTrack) { t.ForcedAt = time.Now().UTC() })
			err = sentinel.Failover(ctx, c.pool.Sentinel(addr(s), cl.SentinelPassword), name)
			if err != nil && !sentinel.IsFailoverInProgress(err) {
				log.Warn("fast failover: SENTINEL FAILOVER refused", "sentinel", s.Name, "err", err)
				continue
			}
			log.Info("fast failover requested", "sentinel", s.Name, "promote", choice, "offset", best)
			return
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return
		}
	}
	log.Warn("fast failover declined: no Sentinel would promote the most up-to-date replica in time; Sentinel fails over after down-after-milliseconds", "offsets", offsets)
}

// fastFailoverWait bounds how long the fast path waits for a Sentinel's
// view of the replicas to become current.
const fastFailoverWait = 3 * time.Second

func isRefused(err error) bool {
	return err != nil && (strings.Contains(err.Error(), syscall.ECONNREFUSED.Error()))
}

func (c *Controller) claimFailover(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failovers[name] {
		return false
	}
	c.failovers[name] = true
	return true
}

func (c *Controller) releaseFailover(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.failovers, name)
}
