package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// failoverState is what a planned failover job remembers between steps.
type failoverState struct {
	Shard       int       `json:"shard"`
	OldMaster   string    `json:"oldMaster,omitempty"`
	RequestedAt time.Time `json:"requestedAt,omitempty"`
}

// failoverSteps is the plan of a planned failover: Sentinel does it (it
// stays the source of truth for who is master); the manager asks, waits
// until every Sentinel names the new master and the old one replicates from
// it, and records the event.
func failoverSteps() []step {
	return []step{
		{"request-failover", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
				var st failoverState
				if err := json.Unmarshal(r.job.Params, &st); err != nil {
					return fmt.Errorf("read job parameters: %w", err)
				}
				if st.OldMaster != "" {
					return nil // asked before a restart; Sentinel carries on without us
				}
				name := spec.MasterName(cl.Name, st.Shard)
				st.OldMaster = r.c.currentMaster(ctx, cl, st.Shard, redis, sentinels)
				if st.OldMaster == "" {
					return fmt.Errorf("no master known for %s", name)
				}
				st.RequestedAt = time.Now().UTC()
				r.c.tracker.update(name, func(t *failoverTrack) { t.Planned = true })
				r.job.Params, _ = json.Marshal(st)
				r.save(ctx, true)
				return r.c.requestFailover(ctx, cl, name, st.OldMaster, sentinels)
			})
		}},
		{"wait-switch", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
				var st failoverState
				if err := json.Unmarshal(r.job.Params, &st); err != nil {
					return err
				}
				name := spec.MasterName(cl.Name, st.Shard)
				newMaster, promotedAt, err := r.c.waitSwitch(ctx, r, cl, name, st.OldMaster, sentinels)
				if err != nil {
					return err
				}
				shard := st.Shard
				r.c.event(ctx, cl.Name, &shard, "failover", fmt.Sprintf("planned failover of %s: %s → %s", name, st.OldMaster, newMaster),
					map[string]any{"oldMaster": st.OldMaster, "newMaster": newMaster, "planned": true,
						"requestedAt": st.RequestedAt, "promotedAt": promotedAt, "switchMs": promotedAt.Sub(st.RequestedAt).Milliseconds()})
				return nil
			})
		}},
		{"wait-ready", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, _, _ []store.Instance) error {
				if err := r.c.waitReady(ctx, r, cl); err != nil {
					return err
				}
				r.c.observeCluster(ctx, cl, "")
				return nil
			})
		}},
	}
}

// requestFailover asks Sentinel for a failover of a shard that loses no
// acknowledged write: writes on the old master are paused (the pause ends by
// itself if the manager dies) until its replicas have its whole stream, so
// the replica Sentinel promotes has every acknowledged write and no write
// lands on the old master after the promotion.
func (c *Controller) requestFailover(ctx context.Context, cl store.Cluster, name, oldMaster string, sentinels []store.Instance) error {
	pause := time.Duration(cl.Spec.Sentinel.FailoverTimeoutMs) * time.Millisecond
	if err := c.pauseAndDrain(ctx, cl, oldMaster, pause); err != nil {
		c.log.Warn("failover without write pause", "shard", name, "err", err)
	}
	var lastErr error
	for _, s := range sentinels {
		err := sentinel.Failover(ctx, c.pool.Sentinel(addr(s), cl.SentinelPassword), name)
		if err == nil || sentinel.IsFailoverInProgress(err) {
			c.log.Info("failover requested", "shard", name, "sentinel", s.Name, "oldMaster", oldMaster)
			return nil
		}
		lastErr = err
		if sentinel.IsNoGoodReplica(err) {
			break
		}
	}
	c.unpause(ctx, cl, oldMaster)
	return lastErr
}

// waitSwitch waits until every Sentinel names a new master of the shard
// and the old master replicates from it, demoting the old master itself
// (Sentinel's own REPLICAOF waits behind the write pause).
func (c *Controller) waitSwitch(ctx context.Context, r *jobRun, cl store.Cluster, name, oldMaster string, sentinels []store.Instance) (newMaster string, promotedAt time.Time, err error) {
	err = poll(ctx, time.Duration(cl.Spec.Sentinel.FailoverTimeoutMs)*time.Millisecond*3, 50*time.Millisecond, func() (bool, string, error) {
		answers := c.sentinelMasterAnswers(ctx, cl, name, sentinels)
		if len(answers) != len(sentinels) {
			return false, fmt.Sprintf("%d of %d Sentinels answer", len(answers), len(sentinels)), nil
		}
		for _, a := range answers {
			if a == oldMaster || a != answers[0] {
				r.progress(ctx, 0.3, "waiting for every Sentinel to name the new master")
				return false, fmt.Sprintf("Sentinels name %v", answers), nil
			}
		}
		if promotedAt.IsZero() {
			newMaster, promotedAt = answers[0], time.Now().UTC()
		}
		old := c.pool.Redis(oldMaster, cl.Password)
		info, err := redisclient.GetInfo(ctx, old, "replication")
		if err == nil && info["role"] == "master" {
			// Sentinel's own REPLICAOF to the old master waits behind the
			// write pause (it sends it in MULTI with CONFIG REWRITE);
			// REPLICAOF alone is not paused, so the manager demotes it now
			// and Sentinel's command later finds the work done.
			h, p := hostPort(newMaster)
			if err := old.Do(ctx, "replicaof", h, p).Err(); err != nil {
				c.log.Warn("demote old master", "instance", oldMaster, "err", err)
			}
			c.unpause(ctx, cl, oldMaster)
			return false, "old master " + oldMaster + " is being demoted", nil
		}
		if err != nil || info["role"] != "slave" || net.JoinHostPort(info["master_host"], info["master_port"]) != newMaster {
			r.progress(ctx, 0.6, "waiting for the old master to replicate from "+newMaster)
			return false, "old master " + oldMaster + " does not replicate from " + newMaster + " yet", nil
		}
		return true, "", nil
	})
	c.unpause(ctx, cl, oldMaster)
	return newMaster, promotedAt, err
}

// pauseAndDrain pauses writes on a master for at most d and waits until
// every replica it lists has its whole replication stream.
func (c *Controller) pauseAndDrain(ctx context.Context, cl store.Cluster, master string, d time.Duration) error {
	rc := c.pool.Redis(master, cl.Password)
	if err := rc.Do(ctx, "client", "pause", d.Milliseconds(), "write").Err(); err != nil {
		return fmt.Errorf("client pause: %w", err)
	}
	return poll(ctx, 5*time.Second, 5*time.Millisecond, func() (bool, string, error) {
		info, err := redisclient.GetInfo(ctx, rc, "replication")
		if err != nil {
			return false, err.Error(), nil
		}
		offset := info.Int("master_repl_offset")
		for _, r := range info.Replicas() {
			if r.Offset < offset {
				return false, fmt.Sprintf("replica %s at offset %d of %d", r.Addr, r.Offset, offset), nil
			}
		}
		return true, "", nil
	})
}

// unpause ends a write pause; the instance is a replica by then (or the
// failover failed and it stays master).
func (c *Controller) unpause(ctx context.Context, cl store.Cluster, addr string) {
	if err := c.pool.Redis(addr, cl.Password).Do(ctx, "client", "unpause").Err(); err != nil {
		c.log.Warn("client unpause", "instance", addr, "err", err)
	}
}
