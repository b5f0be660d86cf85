package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// restoreSteps is the plan of a restore job: a create whose shard masters
// boot from the backups. The objects are downloaded and verified into the
// masters' data dirs before any process starts; a corrupt or missing object
// fails the job there, and undoRestore removes everything it started.
func restoreSteps() []step {
	create := map[string]step{}
	for _, s := range createSteps() {
		create[s.name] = s
	}
	return []step{
		create["allocate-ports"],
		{"fetch-backups", func(ctx context.Context, r *jobRun) error { return r.c.fetchBackups(ctx, r) }},
		create["start-sentinels"],
		{"start-redis", func(ctx context.Context, r *jobRun) error { return r.c.restoreStartRedis(ctx, r) }},
		create["wait-replication"],
		create["register-sentinels"],
		create["introduce-sentinels"],
		create["wait-sentinels"],
		{"record-restored", func(ctx context.Context, r *jobRun) error { return r.c.recordRestored(ctx, r) }},
	}
}

func restoreParamsOf(r *jobRun) (jobspec.RestoreParams, error) {
	var p jobspec.RestoreParams
	if err := json.Unmarshal(r.job.Params, &p); err != nil {
		return p, fmt.Errorf("read job parameters: %w", err)
	}
	return p, nil
}

// fetchBackups downloads each shard's object straight into its master's
// data dir as dump.rdb, checking it on the way (header, structure, CRC64,
// size and checksum against the record): the file appears only when every
// check passed.
func (c *Controller) fetchBackups(ctx context.Context, r *jobRun) error {
	p, err := restoreParamsOf(r)
	if err != nil {
		return err
	}
	return r.withInstances(ctx, func(cl store.Cluster, redis, _ []store.Instance) error {
		pr := newTransferProgress(r, "download")
		errs := make([]error, len(p.Backups))
		var wg sync.WaitGroup
		for i, rs := range p.Backups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = c.fetchBackup(ctx, pr, cl, redis, rs)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	})
}

func (c *Controller) fetchBackup(ctx context.Context, pr *transferProgress, cl store.Cluster, redis []store.Instance, rs jobspec.RestoreShard) error {
	var master *store.Instance
	for i, in := range redis {
		if in.Shard == rs.Shard && in.Ordinal == 0 {
			master = &redis[i]
		}
	}
	if master == nil {
		return fmt.Errorf("shard %d has no planned master", rs.Shard)
	}
	b, err := c.store.GetBackup(ctx, rs.Backup)
	if err != nil {
		return fmt.Errorf("shard %d: backup %s: %w", rs.Shard, rs.Backup, err)
	}
	fail := func(err error) error {
		pr.fail(rs.Shard)
		return fmt.Errorf("shard %d: backup %s (%s): %w", rs.Shard, b.ID, b.Target, err)
	}
	pr.start(rs.Shard, "of "+b.ID, 1, b.SizeBytes)
	// The platform fetches and checks the object where the instance's data
	// lives; the bytes do not pass through the job.
	err = c.platform.Seed(ctx, id(*master), platform.SeedSource{TargetURL: b.TargetURL, Key: b.ObjectKey,
		Size: b.SizeBytes, CRC64: b.CRC64, Progress: func(n int64) { pr.update(ctx, rs.Shard, n) }})
	if err != nil {
		return fail(err)
	}
	pr.done(rs.Shard, b.SizeBytes)
	return nil
}

// restoreStartRedis starts every redis-server like a create does, then
// waits until each master has loaded its dump.rdb. With AOF persistence a
// master boots with RDB persistence first: Redis ignores dump.rdb when
// appendonly is on and no AOF exists, and would boot empty; record-restored
// turns AOF on once the data is in.
func (c *Controller) restoreStartRedis(ctx context.Context, r *jobRun) error {
	return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
		boot := cl
		if boot.Spec.Persistence == "aof" {
			boot.Spec.Persistence = "rdb"
		}
		err := parallel(redis, func(in store.Instance) error {
			use := cl
			if in.Ordinal == 0 {
				use = boot
			}
			return c.ensureRedis(ctx, use, in, plannedMaster(redis, in.Shard), sentinels)
		})
		if err != nil {
			return err
		}
		var masters []store.Instance
		for _, in := range redis {
			if in.Ordinal == 0 {
				masters = append(masters, in)
			}
		}
		return poll(ctx, c.cfg.StepTimeout, 20*time.Millisecond, func() (bool, string, error) {
			loaded, waiting := 0, ""
			for _, in := range masters {
				info, err := redisclient.GetInfo(ctx, c.pool.Redis(addr(in), cl.Password), "persistence")
				switch {
				case err != nil && strings.HasPrefix(err.Error(), "LOADING"):
					waiting = fmt.Sprintf("%s is loading its backup", in.Name)
				case err != nil:
					waiting = fmt.Sprintf("%s: %v", in.Name, err)
				case info["loading"] == "1":
					waiting = fmt.Sprintf("%s is loading its backup: %s%%", in.Name, info["loading_loaded_perc"])
				default:
					loaded++
				}
			}
			r.progress(ctx, float64(loaded)/float64(max(len(masters), 1)), fmt.Sprintf("%d of %d masters loaded; %s", loaded, len(masters), waiting))
			return loaded == len(masters), waiting, nil
		})
	})
}

// recordRestored turns AOF on where the spec asks for it, checks the
// cluster is Ready and records a restored event with the key counts.
func (c *Controller) recordRestored(ctx context.Context, r *jobRun) error {
	p, err := restoreParamsOf(r)
	if err != nil {
		return err
	}
	return r.withInstances(ctx, func(cl store.Cluster, redis, sentinels []store.Instance) error {
		if cl.Spec.Persistence == "aof" {
			for shard := 0; shard < cl.Spec.Shards; shard++ {
				m := c.currentMaster(ctx, cl, shard, redis, sentinels)
				if m == "" {
					return fmt.Errorf("no master known for shard %d", shard)
				}
				conn := c.pool.Redis(m, cl.Password)
				for _, kv := range spec.PersistenceSettings(cl.Spec.Persistence) {
					if err := conn.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
						return fmt.Errorf("turn AOF on for shard %d: %w", shard, err)
					}
				}
				if err := conn.ConfigRewrite(ctx).Err(); err != nil {
					return fmt.Errorf("turn AOF on for shard %d: %w", shard, err)
				}
			}
		}
		st := c.observeReady(ctx, cl, readyWithin)
		if st.Phase != api.PhaseReady {
			return fmt.Errorf("cluster is not ready: %s", st.Reason)
		}
		var ids []string
		var want, got int64
		for _, rs := range p.Backups {
			ids = append(ids, rs.Backup)
			if b, err := c.store.GetBackup(ctx, rs.Backup); err == nil {
				want += b.Keys
			}
		}
		for _, sh := range st.Shards {
			if sh.Master != nil {
				got += sh.Master.Keys
			}
		}
		// A master drops keys whose TTL ran out since the snapshot, so
		// fewer keys than the backup held is normal.
		c.event(ctx, cl.Name, nil, "restored", fmt.Sprintf("cluster restored from %d backup(s): %d keys loaded (%d in the backups)", len(ids), got, want),
			map[string]any{"backups": ids, "keys": got, "backupKeys": want, "durationMs": time.Since(r.job.CreatedAt).Milliseconds()})
		return nil
	})
}

// undoRestore removes everything a failed restore started: processes,
// data dirs (with the downloaded dump.rdb files) and the cluster's records.
func undoRestore(ctx context.Context, r *jobRun) {
	ctx = context.WithoutCancel(ctx)
	if err := r.c.removeAll(ctx, r, r.job.Cluster); err != nil {
		r.log.Error("clean up after failed restore", "err", err)
		return
	}
	if err := r.c.store.DeleteCluster(ctx, r.job.Cluster); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Error("remove cluster record after failed restore", "err", err)
	}
	r.c.event(ctx, r.job.Cluster, nil, "restore-failed", "restore failed; every instance it started and every file it downloaded were removed",
		map[string]any{"job": r.job.ID})
}
