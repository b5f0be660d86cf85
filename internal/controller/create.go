package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// createSteps is the plan of a create job. Every step reads what exists and
// only adds what is missing, so a job resumed after a crash converges.
func createSteps() []step {
	return []step{
		{"allocate-ports", func(ctx context.Context, r *jobRun) error {
			cl, err := r.c.getCluster(ctx, r.job.Cluster)
			if err != nil {
				return err
			}
			_, err = r.c.allocate(ctx, cl)
			return err
		}},
		{"start-sentinels", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
				if !r.c.startTogether {
					return parallel(sentinels, func(in store.Instance) error { return r.c.ensureSentinel(ctx, cl, in) })
				}
				// Where starting takes seconds (pods), the redis-servers start
				// with the Sentinels: a new shard's boot decision falls back to
				// the plan whether or not its Sentinels answer yet.
				redisDone := make(chan error, 1)
				go func() {
					redisDone <- parallel(redis, func(in store.Instance) error {
						return r.c.ensureRedis(ctx, cl, in, plannedMaster(redis, in.Shard), sentinels)
					})
				}()
				err := parallel(sentinels, func(in store.Instance) error { return r.c.ensureSentinel(ctx, cl, in) })
				return errors.Join(err, <-redisDone)
			})
		}},
		{"start-redis", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
				return parallel(redis, func(in store.Instance) error {
					return r.c.ensureRedis(ctx, cl, in, plannedMaster(redis, in.Shard), sentinels)
				})
			})
		}},
		{"wait-replication", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, _ []store.Instance) error {
				return r.c.waitReplication(ctx, r, cl, redis)
			})
		}},
		{"register-sentinels", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
				return parallel(sentinels, func(s store.Instance) error {
					return r.c.registerShards(ctx, cl, s, 0, cl.Spec.Shards, plannedMasters(redis), false)
				})
			})
		}},
		{"introduce-sentinels", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, _, sentinels []store.Instance) error {
				r.c.introduceSentinels(ctx, cl, sentinels, 0, cl.Spec.Shards)
				return nil
			})
		}},
		{"wait-sentinels", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
				return r.c.waitSentinelsAgree(ctx, r, cl, sentinels)
			})
		}},
		{"record-ready", func(ctx context.Context, r *jobRun) error {
			cl, err := r.c.getCluster(ctx, r.job.Cluster)
			if err != nil {
				return err
			}
			// The job ends with the status it promises: observed Ready.
			if st := r.c.observeReady(ctx, cl, readyWithin); st.Phase != api.PhaseReady {
				return fmt.Errorf("cluster is not ready: %s", st.Reason)
			}
			r.c.event(ctx, cl.Name, nil, "created", fmt.Sprintf("cluster created: %d shard(s) × %d replica(s), %d Sentinel(s)",
				cl.Spec.Shards, cl.Spec.Replicas, cl.Spec.Sentinels), map[string]any{"durationMs": time.Since(r.job.CreatedAt).Milliseconds()})
			return nil
		}},
	}
}

// withInstances loads the cluster and its instance records for a step.
func (r *jobRun) withInstances(ctx context.Context, f func(cl store.Cluster, redis, sentinels []store.Instance) error) error {
	cl, err := r.c.getCluster(ctx, r.job.Cluster)
	if err != nil {
		return err
	}
	redis, sentinels, err := r.c.instancesOf(ctx, cl.Name)
	if err != nil {
		return err
	}
	return f(cl, redis, sentinels)
}

// plannedMaster is the address of ordinal 0 of a shard: the master a new
// shard starts with.
func plannedMaster(redis []store.Instance, shard int) string {
	for _, in := range redis {
		if in.Shard == shard && in.Ordinal == 0 {
			return addr(in)
		}
	}
	return ""
}

// waitReplication waits until every replica of every shard has its master
// link up and its master lists it online.
func (c *Controller) waitReplication(ctx context.Context, r *jobRun, cl store.Cluster, redis []store.Instance) error {
	total := 0
	for _, in := range redis {
		if in.Ordinal != 0 {
			total++
		}
	}
	return poll(ctx, c.cfg.StepTimeout, 20*time.Millisecond, func() (bool, string, error) {
		synced, waiting := 0, ""
		for _, in := range redis {
			if in.Ordinal == 0 {
				continue
			}
			info, err := redisclient.GetInfo(ctx, c.pool.Redis(addr(in), cl.Password), "replication")
			if err != nil {
				waiting = fmt.Sprintf("%s: %v", in.Name, err)
				continue
			}
			if info["role"] != "slave" || info["master_link_status"] != "up" {
				waiting = fmt.Sprintf("waiting for %s to sync with its master (link %s)", in.Name, orUnknown(info["master_link_status"]))
				if info["master_sync_in_progress"] == "1" {
					waiting = fmt.Sprintf("%s is receiving the dataset: %.1f MB so far", in.Name, float64(info.Int("master_sync_read_bytes"))/1e6)
				}
				continue
			}
			synced++
		}
		r.progress(ctx, float64(synced)/float64(max(total, 1)), fmt.Sprintf("%d of %d replicas synced; %s", synced, total, waiting))
		return synced == total, waiting, nil
	})
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// sentinelSettings are the options a shard gets in every Sentinel.
func sentinelSettings(cl store.Cluster) sentinel.Settings {
	return sentinel.Settings{
		Quorum:            spec.Quorum(cl.Spec.Sentinels),
		AuthPass:          cl.Password,
		DownAfterMs:       cl.Spec.Sentinel.DownAfterMs,
		FailoverTimeoutMs: cl.Spec.Sentinel.FailoverTimeoutMs,
		ParallelSyncs:     cl.Spec.Sentinel.ParallelSyncs,
	}
}

// registerShards registers shards [from, to) in one Sentinel; masterOf
// gives the address to monitor for a shard the Sentinel does not know yet
// (a known one keeps its master and only gets its options set again). With
// onlyNew, shards the Sentinel already knows are left alone.
func (c *Controller) registerShards(ctx context.Context, cl store.Cluster, s store.Instance, from, to int, masterOf func(shard int) string, onlyNew bool) error {
	conn := c.pool.Redis(addr(s), cl.SentinelPassword)
	for shard := from; shard < to; shard++ {
		name := spec.MasterName(cl.Name, shard)
		if onlyNew {
			if _, err := sentinel.GetMaster(ctx, conn, name); !sentinel.IsNoSuchMaster(err) {
				continue
			}
		}
		master := masterOf(shard)
		if master == "" {
			return fmt.Errorf("%s: no master known for %s", s.Name, name)
		}
		if err := sentinel.Register(ctx, conn, name, master, sentinelSettings(cl)); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	return nil
}

// planned returns the planned master (ordinal 0) of a shard, for a shard
// being created.
func plannedMasters(redis []store.Instance) func(shard int) string {
	return func(shard int) string { return plannedMaster(redis, shard) }
}

// introduceSentinels speeds up the Sentinels' discovery of each other on
// newly registered shards (see sentinel.Introduce). It is best effort: when
// it cannot, the Sentinels' own hello messages do the same within seconds.
func (c *Controller) introduceSentinels(ctx context.Context, cl store.Cluster, sentinels []store.Instance, from, to int) {
	peers := make([]sentinel.Peer, 0, len(sentinels))
	for _, s := range sentinels {
		id, err := sentinel.MyID(ctx, c.pool.Sentinel(addr(s), cl.SentinelPassword))
		if err != nil {
			c.log.Info("Sentinels will introduce themselves", "reason", err)
			return
		}
		peers = append(peers, sentinel.Peer{Host: s.Host, Port: strconv.Itoa(s.Port), ID: id})
	}
	if len(sentinels) < 2 {
		return
	}
	_ = parallelShards(from, to, func(shard int) error {
		name := spec.MasterName(cl.Name, shard)
		m, err := sentinel.GetMaster(ctx, c.pool.Sentinel(addr(sentinels[0]), cl.SentinelPassword), name)
		if err == nil {
			err = sentinel.Introduce(ctx, c.pool.Redis(m.Addr, cl.Password), name, m.Addr, m.ConfigEpoch, peers, 2*time.Second)
		}
		if err != nil {
			c.log.Info("Sentinels will introduce themselves", "shard", name, "reason", err)
		}
		return nil
	})
}

// parallelShards runs f for shards [from, to) at once.
func parallelShards(from, to int, f func(shard int) error) error {
	errs := make([]error, to-from)
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i-from] = f(i) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitSentinelsAgree waits until every Sentinel names the same master for
// every shard and knows the expected replicas and the other Sentinels.
func (c *Controller) waitSentinelsAgree(ctx context.Context, r *jobRun, cl store.Cluster, sentinels []store.Instance) error {
	return poll(ctx, c.cfg.SentinelReady, 50*time.Millisecond, func() (bool, string, error) {
		problems := c.sentinelProblems(ctx, cl, sentinels)
		agreeing := len(sentinels)*cl.Spec.Shards - len(problems)
		r.progress(ctx, float64(agreeing)/float64(len(sentinels)*cl.Spec.Shards),
			fmt.Sprintf("waiting for Sentinels to agree: %s", strings.Join(problems, "; ")))
		return len(problems) == 0, strings.Join(problems, "; "), nil
	})
}

// sentinelProblems lists, per Sentinel and shard, what keeps Sentinel's view
// from matching the spec. Empty means every Sentinel agrees on one master
// per shard, lists exactly the spec's replicas up, and sees the others.
func (c *Controller) sentinelProblems(ctx context.Context, cl store.Cluster, sentinels []store.Instance) []string {
	var problems []string
	for shard := 0; shard < cl.Spec.Shards; shard++ {
		problems = append(problems, c.sentinelShardProblems(ctx, cl, sentinels, len(sentinels), shard)...)
	}
	return problems
}

// sentinelShardProblems checks one shard in the given Sentinels, each of
// which should know total-1 other Sentinels.
func (c *Controller) sentinelShardProblems(ctx context.Context, cl store.Cluster, sentinels []store.Instance, total, shard int) []string {
	var problems []string
	name := spec.MasterName(cl.Name, shard)
	masters := map[string]bool{}
	for _, s := range sentinels {
		conn := c.pool.Sentinel(addr(s), cl.SentinelPassword)
		m, err := sentinel.GetMaster(ctx, conn, name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", s.Name, err))
			continue
		}
		if sentinel.Down(m.Flags) {
			problems = append(problems, fmt.Sprintf("%s sees master of %s down (%s)", s.Name, name, strings.Join(m.Flags, ",")))
			continue
		}
		masters[m.Addr] = true
		reps, err := sentinel.Replicas(ctx, conn, name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", s.Name, err))
			continue
		}
		up := 0
		for _, rep := range reps {
			if !sentinel.Down(rep.Flags) {
				up++
			}
		}
		switch {
		case up != cl.Spec.Replicas || len(reps) != cl.Spec.Replicas:
			problems = append(problems, fmt.Sprintf("%s lists %d replicas of %s (%d up), expected %d", s.Name, len(reps), name, up, cl.Spec.Replicas))
		case m.NumOtherSentinels != total-1:
			problems = append(problems, fmt.Sprintf("%s knows %d other Sentinels for %s, expected %d", s.Name, m.NumOtherSentinels, name, total-1))
		}
	}
	if len(masters) > 1 {
		problems = append(problems, fmt.Sprintf("Sentinels disagree on the master of %s", name))
	}
	return problems
}

// undoCreate removes everything a failed create started, so nothing is left
// half-created: the processes, their data, and the cluster's records.
func undoCreate(ctx context.Context, r *jobRun) {
	ctx = context.WithoutCancel(ctx)
	if err := r.c.removeAll(ctx, r, r.job.Cluster); err != nil {
		r.log.Error("clean up after failed create", "err", err)
		return
	}
	if err := r.c.store.DeleteCluster(ctx, r.job.Cluster); err != nil {
		r.log.Error("remove cluster record after failed create", "err", err)
	}
	r.c.event(ctx, r.job.Cluster, nil, "create-failed", "create failed; every instance it started was removed", map[string]any{"job": r.job.ID})
}
