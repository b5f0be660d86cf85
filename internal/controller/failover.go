package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/internal/redisclient"
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
				r.job.Params, _ = json.Marshal(st)
				r.save(ctx, true)
				var lastErr error
				for _, s := range sentinels {
					err := r.c.pool.Sentinel(addr(s), cl.SentinelPassword).Failover(ctx, name).Err()
					if err == nil || strings.Contains(err.Error(), "INPROG") {
						r.c.log.Info("failover requested", "shard", name, "sentinel", s.Name, "oldMaster", st.OldMaster)
						return nil
					}
					lastErr = err
					if strings.Contains(err.Error(), "NOGOODSLAVE") {
						break
					}
				}
				return fmt.Errorf("SENTINEL FAILOVER %s: %w", name, lastErr)
			})
		}},
		{"wait-switch", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
				var st failoverState
				if err := json.Unmarshal(r.job.Params, &st); err != nil {
					return err
				}
				name := spec.MasterName(cl.Name, st.Shard)
				var newMaster string
				var promotedAt time.Time
				err := poll(ctx, time.Duration(cl.Spec.Sentinel.FailoverTimeoutMs)*time.Millisecond*3, 50*time.Millisecond, func() (bool, string, error) {
					answers := r.c.sentinelMasterAnswers(ctx, cl, name, sentinels)
					if len(answers) != len(sentinels) {
						return false, fmt.Sprintf("%d of %d Sentinels answer", len(answers), len(sentinels)), nil
					}
					for _, a := range answers {
						if a == st.OldMaster || a != answers[0] {
							r.progress(ctx, 0.3, "waiting for every Sentinel to name the new master")
							return false, fmt.Sprintf("Sentinels name %v", answers), nil
						}
					}
					if promotedAt.IsZero() {
						newMaster, promotedAt = answers[0], time.Now().UTC()
					}
					info, err := redisclient.GetInfo(ctx, r.c.pool.Redis(st.OldMaster, cl.Password), "replication")
					if err != nil || info["role"] != "slave" || info["master_host"]+":"+info["master_port"] != newMaster {
						r.progress(ctx, 0.6, "waiting for the old master to replicate from "+newMaster)
						return false, "old master " + st.OldMaster + " does not replicate from " + newMaster + " yet", nil
					}
					return true, "", nil
				})
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
