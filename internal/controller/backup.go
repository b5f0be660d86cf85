package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/catalog"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/store"
)

// backupAttempts is how many snapshots of one shard a backup job tries,
// each from the best instance not tried yet, before it gives up.
const backupAttempts = 3

// backupSteps is the plan of a backup job: a verified snapshot of each
// shard streamed to the target, then retention for scheduled runs.
func backupSteps() []step {
	return []step{
		{"snapshot", func(ctx context.Context, r *jobRun) error { return r.c.snapshotAll(ctx, r) }},
		{"prune", func(ctx context.Context, r *jobRun) error { return r.c.pruneAfter(ctx, r) }},
	}
}

// jobBackups loads the records a backup job fills in.
func (c *Controller) jobBackups(ctx context.Context, r *jobRun) ([]store.Backup, error) {
	var p jobspec.BackupParams
	if err := json.Unmarshal(r.job.Params, &p); err != nil {
		return nil, fmt.Errorf("read job parameters: %w", err)
	}
	out := make([]store.Backup, 0, len(p.Backups))
	for _, id := range p.Backups {
		b, err := c.store.GetBackup(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// snapshotAll backs up every shard of the job that is not done yet, in
// parallel. A job resumed after a restart runs the interrupted attempts
// again: objects only appear when an attempt succeeds.
func (c *Controller) snapshotAll(ctx context.Context, r *jobRun) error {
	recs, err := c.jobBackups(ctx, r)
	if err != nil {
		return err
	}
	var todo []store.Backup
	var failed []string
	for _, b := range recs {
		switch b.State {
		case api.StateRunning:
			todo = append(todo, b)
		case api.StateFailed:
			failed = append(failed, fmt.Sprintf("shard %d: %s", b.Shard, b.Error))
		}
	}
	if len(todo) > 0 {
		cl, err := c.getCluster(ctx, r.job.Cluster)
		if err != nil {
			c.failBackups(ctx, todo, err)
			return err
		}
		// Opening checks an S3 bucket within S3CheckTimeout, so a wrong or
		// unreachable endpoint fails the job quickly, with S3's words,
		// before any snapshot is taken.
		r.progress(ctx, 0, "opening the backup target")
		t, err := backup.OpenTarget(ctx, todo[0].TargetURL)
		if err != nil {
			if ctx.Err() == nil {
				c.failBackups(ctx, todo, err)
			}
			return err
		}
		pr := newTransferProgress(r, "snapshot")
		errs := make([]error, len(todo))
		var wg sync.WaitGroup
		for i, b := range todo {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = c.snapshotShard(ctx, r, pr, cl, t, b)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, err := range errs {
			if err != nil {
				failed = append(failed, err.Error())
			}
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// backupSource is an instance a snapshot can be taken from.
type backupSource struct {
	Name       string
	Addr       string
	Master     bool
	Offset     int64 // replication offset of a replica
	UsedMemory int64
}

// orderSources puts the best source first: replicas with their link up,
// the most advanced first, then the master. It is pure.
func orderSources(srcs []backupSource) {
	sort.SliceStable(srcs, func(i, j int) bool {
		a, b := srcs[i], srcs[j]
		if a.Master != b.Master {
			return !a.Master
		}
		if a.Offset != b.Offset {
			return a.Offset > b.Offset
		}
		return a.Name < b.Name
	})
}

// pickSource returns the first source tried the fewest times: a retry goes
// to another instance whenever there is one. It is pure.
func pickSource(srcs []backupSource, tried map[string]int) backupSource {
	best := srcs[0]
	for _, s := range srcs[1:] {
		if tried[s.Name] < tried[best.Name] {
			best = s
		}
	}
	return best
}

// backupSources lists the instances of a shard a snapshot can come from:
// replicas linked to the current master, and the master itself.
func (c *Controller) backupSources(ctx context.Context, cl store.Cluster, shard int) ([]backupSource, error) {
	redis, sentinels, err := c.instancesOf(ctx, cl.Name)
	if err != nil {
		return nil, err
	}
	master := c.currentMaster(ctx, cl, shard, redis, sentinels)
	var (
		mu  sync.Mutex
		out []backupSource
		wg  sync.WaitGroup
	)
	for _, in := range redis {
		if in.Shard != shard {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			info, err := redisclient.GetInfo(ictx, c.pool.Redis(addr(in), cl.Password), "replication", "memory")
			if err != nil {
				return
			}
			s := backupSource{Name: in.Name, Addr: addr(in), UsedMemory: info.Int("used_memory")}
			switch {
			case info["role"] == "master" && (master == "" || master == s.Addr):
				s.Master = true
			case info["role"] == "slave" && info["master_link_status"] == "up" && info["master_sync_in_progress"] != "1" &&
				(master == "" || master == net.JoinHostPort(info["master_host"], info["master_port"])):
				s.Offset = info.Int("slave_repl_offset")
			default:
				return
			}
			mu.Lock()
			out = append(out, s)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(out) == 0 {
		return nil, fmt.Errorf("no instance of shard %d answers as its master or as a replica linked to it", shard)
	}
	orderSources(out)
	return out, nil
}

// snapshotShard takes one shard's snapshot, retrying from another instance
// when an attempt fails (a replica that lost its master, a failover, an
// instance that went away), and records the result.
func (c *Controller) snapshotShard(ctx context.Context, r *jobRun, pr *transferProgress, cl store.Cluster, t backup.Target, b store.Backup) error {
	log := r.log.With("backup", b.ID, "shard", b.Shard)
	tried := map[string]int{}
	var failures []string
	followed := false
	// A platform whose snapshot task outlives its manager (Kubernetes: a
	// Job) may still run the interrupted attempt, or hold its finished
	// task: follow it rather than start another, so the slot gets one
	// snapshot, not two, and its task is cleaned up.
	if adopt, ok := c.adoptSnapshot(); ok && b.ObjectKey != "" {
		pr.start(b.Shard, "from "+b.SourceInstance+" (adopted)", 1, 0)
		res, found, err := adopt(ctx, b.ObjectKey, func(p platform.TaskProgress) { pr.update(ctx, b.Shard, p.Bytes) })
		followed = found
		switch {
		case found && err == nil:
			log.Info("adopted the snapshot a previous leader started", "key", b.ObjectKey, "source", b.SourceInstance)
			c.backupSucceeded(ctx, r, b, t, taskResult(res), nil, true)
			pr.done(b.Shard, res.Bytes)
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case found:
			log.Warn("the adopted snapshot failed", "key", b.ObjectKey, "source", b.SourceInstance, "err", err)
			failures = append(failures, fmt.Sprintf("adopted attempt from %s: %v", b.SourceInstance, err))
			tried[b.SourceInstance]++
		case err != nil:
			log.Warn("looking for the snapshot a previous leader started", "key", b.ObjectKey, "err", err)
		}
	}
	// An attempt interrupted by a manager restart may have completed its
	// object and sidecar before the record was written: adopt it.
	if b.ObjectKey != "" && !followed {
		if sc, err := catalog.ReadSidecar(ctx, t, b.ObjectKey); err == nil {
			log.Info("adopting the object of an attempt interrupted by a restart", "key", b.ObjectKey)
			c.backupSucceeded(ctx, r, b, t, sc.Result(), nil, false)
			pr.done(b.Shard, sc.SizeBytes)
			return nil
		}
	}
	// Every write the master acknowledged before the backup was asked for
	// is at or below its offset now: a replica source must reach it first.
	need, haveNeed := c.masterOffset(ctx, cl, b.Shard)
	if !haveNeed {
		log.Warn("the master's replication offset could not be read; the snapshot's source is not checked against it")
	}
	for attempt := 1; attempt <= backupAttempts; attempt++ {
		if attempt > 1 {
			// Let a failover or a reconnecting replica settle.
			if err := sleep(ctx, time.Second); err != nil {
				return err
			}
		}
		srcs, err := c.backupSources(ctx, cl, b.Shard)
		if err != nil {
			failures = append(failures, fmt.Sprintf("attempt %d: %v", attempt, err))
			continue
		}
		src := pickSource(srcs, tried)
		tried[src.Name]++
		offset, err := c.sourceCaughtUp(ctx, cl, src, need, haveNeed)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Warn("snapshot source not used", "source", src.Name, "attempt", attempt, "err", err)
			failures = append(failures, fmt.Sprintf("attempt %d from %s: %v", attempt, src.Name, err))
			continue
		}
		key, err := c.freshObjectKey(ctx, cl.Name, b.Shard, b.ID, time.Now())
		if err != nil {
			return err
		}
		b.ObjectKey, b.SourceInstance, b.ReplOffset = key, src.Name, offset
		if err := c.putBackup(ctx, b); err != nil {
			return err
		}
		hint := max(src.UsedMemory, 0)
		pr.start(b.Shard, "from "+src.Name, attempt, hint)
		log.Info("taking snapshot", "source", src.Name, "attempt", attempt, "key", key)
		// The transfer runs as a platform task (local: a child process of
		// the manager; Kubernetes: a Job), next to the data.
		res, err := c.snapshotTask(ctx, platform.SnapshotSource{Addr: src.Addr, Password: cl.Password,
			TargetURL: b.TargetURL, Key: key, SizeHint: hint}, func(n int64) { pr.update(ctx, b.Shard, n) })
		if err == nil {
			c.backupSucceeded(ctx, r, b, t, res, failures, false)
			pr.done(b.Shard, res.Bytes)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("snapshot attempt failed", "source", src.Name, "attempt", attempt, "err", err)
		failures = append(failures, fmt.Sprintf("attempt %d from %s: %v", attempt, src.Name, err))
	}
	err := fmt.Errorf("shard %d: %s", b.Shard, strings.Join(failures, "; "))
	pr.fail(b.Shard)
	c.failBackups(ctx, []store.Backup{b}, err)
	return err
}

// snapshotTask runs a snapshot through the platform's task runner and
// returns what backup.Run would have.
func (c *Controller) snapshotTask(ctx context.Context, src platform.SnapshotSource, progress func(int64)) (backup.Result, error) {
	res, err := c.platform.RunTask(ctx, platform.Task{Kind: platform.TaskSnapshot, Snapshot: src},
		func(p platform.TaskProgress) { progress(p.Bytes) })
	if err != nil {
		return backup.Result{}, err
	}
	return taskResult(res), nil
}

// taskResult is a snapshot task's result as backup.Run's.
func taskResult(res platform.TaskResult) backup.Result {
	return backup.Result{Bytes: res.Bytes, CRC64: res.CRC64, NoChecksum: res.NoChecksum, RDBVersion: res.RDBVersion,
		RedisVersion: res.RedisVersion, Keys: res.Keys, KeysCounted: res.KeysCounted, Object: res.Object,
		Duration: time.Duration(res.DurationMs) * time.Millisecond}
}

// freshObjectKey is the object key of a new snapshot of a shard taken at
// now: ObjectKey, or, when another backup record of the shard already has
// that key (two backups in one second), ObjectKeyMs, so that the second
// never overwrites the first.
func (c *Controller) freshObjectKey(ctx context.Context, cluster string, shard int, self string, now time.Time) (string, error) {
	recs, err := c.store.ListBackups(ctx, cluster)
	if err != nil {
		return "", err
	}
	taken := map[string]bool{}
	for _, r := range recs {
		if r.ID != self && r.Shard == shard {
			taken[r.ObjectKey] = true
		}
	}
	key := backup.ObjectKey(cluster, shard, now)
	for taken[key] {
		key = backup.ObjectKeyMs(cluster, shard, now)
		now = now.Add(time.Millisecond)
	}
	return key, nil
}

// catchUpTimeout bounds the wait for a replica source to reach the
// master's offset; then another source (in the end the master) is used.
const catchUpTimeout = 5 * time.Second

// masterOffset reads the shard's master's replication offset.
func (c *Controller) masterOffset(ctx context.Context, cl store.Cluster, shard int) (int64, bool) {
	redis, sentinels, err := c.instancesOf(ctx, cl.Name)
	if err != nil {
		return 0, false
	}
	master := c.currentMaster(ctx, cl, shard, redis, sentinels)
	if master == "" {
		return 0, false
	}
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := redisclient.GetInfo(ictx, c.pool.Redis(master, cl.Password), "replication")
	if err != nil || info["role"] != "master" {
		return 0, false
	}
	return info.Int("master_repl_offset"), true
}

// sourceCaughtUp waits until a replica source has applied the master's
// offset need, and returns the source's offset, which the snapshot then
// holds at least. The master holds everything it acknowledged.
func (c *Controller) sourceCaughtUp(ctx context.Context, cl store.Cluster, src backupSource, need int64, haveNeed bool) (int64, error) {
	var got int64
	err := poll(ctx, catchUpTimeout, 10*time.Millisecond, func() (bool, string, error) {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		info, err := redisclient.GetInfo(ictx, c.pool.Redis(src.Addr, cl.Password), "replication")
		if err != nil {
			return false, err.Error(), nil
		}
		if src.Master {
			if info["role"] != "master" {
				return false, "", fmt.Errorf("%s is no longer the master", src.Name)
			}
			got = info.Int("master_repl_offset")
			return true, "", nil
		}
		if info["role"] != "slave" || info["master_link_status"] != "up" {
			return false, "", fmt.Errorf("%s lost its master link", src.Name)
		}
		got = info.Int("slave_repl_offset")
		if haveNeed && got < need {
			return false, fmt.Sprintf("replica at offset %d, behind the master's %d", got, need), nil
		}
		return true, "", nil
	})
	if err != nil {
		return 0, err
	}
	return got, nil
}

// backupSucceeded records a stored, verified snapshot: the record, the
// sidecar (with the record's id, job, slot and the source spec, so an
// import can rebuild the record) and a backup-succeeded event. adopted:
// the snapshot is one a previous leader started (its details say so).
func (c *Controller) backupSucceeded(ctx context.Context, r *jobRun, b store.Backup, t backup.Target, res backup.Result, failures []string, adopted bool) {
	fin := time.Now().UTC().Truncate(time.Microsecond)
	b.State, b.Error = api.StateSucceeded, ""
	if res.Object != "" {
		b.Target = res.Object
	} else {
		b.Target = catalog.ObjectURL(b.TargetURL, b.ObjectKey)
	}
	b.SizeBytes, b.CRC64, b.Keys = res.Bytes, res.CRC64, res.Keys
	b.Verified = res.KeysCounted && !res.NoChecksum
	b.FinishedAt, b.DurationMs = &fin, fin.Sub(b.StartedAt).Milliseconds()
	if err := catalog.WriteSidecar(ctx, t, b, res); err != nil {
		// The engine's own sidecar is in place; ours only adds the
		// record's id, job, slot and source spec.
		r.log.Warn("extend backup sidecar", "backup", b.ID, "err", err)
	}
	if err := c.putBackup(ctx, b); err != nil {
		r.log.Error("record backup", "backup", b.ID, "err", err)
	}
	shard := b.Shard
	details := map[string]any{"backup": b.ID, "job": b.Job, "target": b.Target, "sizeBytes": b.SizeBytes, "keys": b.Keys,
		"crc64": b.CRC64, "sourceInstance": b.SourceInstance, "durationMs": b.DurationMs, "attempts": len(failures) + 1}
	if len(failures) > 0 {
		details["failedAttempts"] = failures
	}
	if adopted {
		details["adopted"] = true
	}
	if b.ScheduledFor != nil {
		details["scheduledFor"] = b.ScheduledFor.UTC().Format(time.RFC3339)
	}
	c.event(ctx, b.Cluster, &shard, "backup-succeeded",
		fmt.Sprintf("backup %s of shard %d from %s: %s, %d keys, in %s", b.ID, b.Shard, b.SourceInstance,
			formatBytes(b.SizeBytes), b.Keys, time.Duration(b.DurationMs)*time.Millisecond), details)
	r.log.Info("backup stored", "backup", b.ID, "shard", b.Shard, "target", b.Target, "bytes", b.SizeBytes, "keys", b.Keys,
		"source", b.SourceInstance, "took", time.Duration(b.DurationMs)*time.Millisecond)
}

// failBackups records failed backups and their backup-failed events.
func (c *Controller) failBackups(ctx context.Context, bs []store.Backup, cause error) {
	fin := time.Now().UTC().Truncate(time.Microsecond)
	for _, b := range bs {
		b.State, b.Error = api.StateFailed, cause.Error()
		b.FinishedAt, b.DurationMs = &fin, fin.Sub(b.StartedAt).Milliseconds()
		if err := c.putBackup(ctx, b); err != nil {
			c.log.Error("record failed backup", "backup", b.ID, "err", err)
		}
		shard := b.Shard
		c.event(ctx, b.Cluster, &shard, "backup-failed", fmt.Sprintf("backup %s of shard %d failed: %v", b.ID, b.Shard, cause),
			map[string]any{"backup": b.ID, "job": b.Job, "error": cause.Error()})
	}
}

// failRunningBackups marks the records a failed backup job left running.
func failRunningBackups(ctx context.Context, r *jobRun) {
	ctx = context.WithoutCancel(ctx)
	recs, err := r.c.jobBackups(ctx, r)
	if err != nil {
		return
	}
	var running []store.Backup
	for _, b := range recs {
		if b.State == api.StateRunning {
			running = append(running, b)
		}
	}
	if len(running) > 0 {
		r.c.failBackups(ctx, running, errors.New("the backup job failed before this shard's snapshot"))
	}
}

// putBackup writes a record even while the manager shuts down.
func (c *Controller) putBackup(ctx context.Context, b store.Backup) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return c.store.PutBackup(wctx, b)
}

// pruneAfter applies the schedule's retention after a scheduled backup
// succeeded: objects, sidecars and records of the scheduled backups it no
// longer keeps. Backups taken by hand are never pruned. A removal that
// fails is an event, not a failed job: the new backup is stored.
func (c *Controller) pruneAfter(ctx context.Context, r *jobRun) error {
	recs, err := c.jobBackups(ctx, r)
	if err != nil {
		return err
	}
	if len(recs) == 0 || recs[0].ScheduledFor == nil {
		return nil
	}
	sched, err := c.store.GetBackupSchedule(ctx, r.job.Cluster)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if sched.Retain == 0 && sched.MaxAge == 0 {
		return nil
	}
	all, err := c.store.ListBackups(ctx, r.job.Cluster)
	if err != nil {
		return err
	}
	victims := catalog.PruneSelect(all, sched.Retain, sched.MaxAge, time.Now())
	if len(victims) == 0 {
		return nil
	}
	targets := map[string]backup.Target{}
	var ids []string
	for i, b := range victims {
		r.progress(ctx, float64(i)/float64(len(victims)), fmt.Sprintf("retention: removing %d of %d old backups", i+1, len(victims)))
		if err := c.removeBackup(ctx, targets, b); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The new backup is stored; what is left over goes at the
			// next successful run.
			c.event(ctx, r.job.Cluster, nil, "backup-prune-failed", fmt.Sprintf("retention could not remove backup %s: %v", b.ID, err),
				map[string]any{"backup": b.ID, "error": err.Error()})
			r.log.Warn("retention could not remove a backup", "backup", b.ID, "err", err)
			break
		}
		ids = append(ids, b.ID)
	}
	if len(ids) == 0 {
		return nil
	}
	c.event(ctx, r.job.Cluster, nil, "backup-pruned", fmt.Sprintf("retention removed %d backup(s)", len(ids)),
		map[string]any{"backups": ids, "retain": sched.Retain, "maxAgeMs": sched.MaxAge.Milliseconds()})
	r.log.Info("retention removed backups", "count", len(ids), "backups", ids)
	return nil
}

// removeBackup deletes a backup's object and sidecar (a failed backup has
// none), then its record. Every part may already be gone.
func (c *Controller) removeBackup(ctx context.Context, targets map[string]backup.Target, b store.Backup) error {
	if b.State == api.StateSucceeded && b.ObjectKey != "" {
		t, ok := targets[b.TargetURL]
		if !ok {
			var err error
			if t, err = backup.OpenTarget(ctx, b.TargetURL); err != nil {
				return fmt.Errorf("backup %s: %w", b.ID, err)
			}
			targets[b.TargetURL] = t
		}
		if err := t.Delete(ctx, b.ObjectKey); err != nil {
			return fmt.Errorf("backup %s: %w", b.ID, err)
		}
		if err := t.Delete(ctx, backup.SidecarKey(b.ObjectKey)); err != nil {
			return fmt.Errorf("backup %s: %w", b.ID, err)
		}
	}
	if err := c.store.DeleteBackup(ctx, b.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// backupDeleteSteps is the plan of a backup-delete job: the object and its
// sidecar first, the record last, so a retry finds what is left.
func backupDeleteSteps() []step {
	load := func(ctx context.Context, r *jobRun) (store.Backup, error) {
		var p jobspec.BackupRefParams
		if err := json.Unmarshal(r.job.Params, &p); err != nil {
			return store.Backup{}, fmt.Errorf("read job parameters: %w", err)
		}
		return r.c.store.GetBackup(ctx, p.Backup)
	}
	return []step{
		{"delete-object", func(ctx context.Context, r *jobRun) error {
			b, err := load(ctx, r)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			r.progress(ctx, 0, "deleting "+dash(b.Target))
			return r.c.removeObject(ctx, b)
		}},
		{"delete-record", func(ctx context.Context, r *jobRun) error {
			b, err := load(ctx, r)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := r.c.store.DeleteBackup(ctx, b.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			shard := b.Shard
			r.c.event(ctx, b.Cluster, &shard, "backup-deleted", fmt.Sprintf("backup %s of shard %d deleted", b.ID, b.Shard),
				map[string]any{"backup": b.ID, "target": b.Target})
			return nil
		}},
	}
}

// removeObject deletes a backup's object and sidecar, not its record.
func (c *Controller) removeObject(ctx context.Context, b store.Backup) error {
	if b.State != api.StateSucceeded || b.ObjectKey == "" {
		return nil
	}
	t, err := backup.OpenTarget(ctx, b.TargetURL)
	if err != nil {
		return err
	}
	if err := t.Delete(ctx, b.ObjectKey); err != nil {
		return err
	}
	return t.Delete(ctx, backup.SidecarKey(b.ObjectKey))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// transferProgress turns the byte counts of parallel transfers (one per
// shard) into the job's progress and message: bytes, rate and source.
type transferProgress struct {
	r    *jobRun
	verb string

	mu     sync.Mutex
	shards map[int]*shardTransfer
}

type shardTransfer struct {
	label   string // "from orders-0-1", "of b_…"
	attempt int
	bytes   int64
	hint    int64
	started time.Time
	state   string // "", "done", "failed"
}

func newTransferProgress(r *jobRun, verb string) *transferProgress {
	return &transferProgress{r: r, verb: verb, shards: map[int]*shardTransfer{}}
}

func (p *transferProgress) start(shard int, label string, attempt int, hint int64) {
	p.mu.Lock()
	p.shards[shard] = &shardTransfer{label: label, attempt: attempt, hint: hint, started: time.Now()}
	p.mu.Unlock()
}

func (p *transferProgress) update(ctx context.Context, shard int, n int64) {
	p.mu.Lock()
	if s := p.shards[shard]; s != nil {
		s.bytes = n
	}
	frac, msg := p.summary(time.Now())
	p.mu.Unlock()
	p.r.progress(ctx, frac, msg)
}

func (p *transferProgress) done(shard int, n int64) {
	p.mu.Lock()
	s := p.shards[shard]
	if s == nil {
		s = &shardTransfer{started: time.Now()}
		p.shards[shard] = s
	}
	s.bytes, s.state = n, "done"
	p.mu.Unlock()
}

func (p *transferProgress) fail(shard int) {
	p.mu.Lock()
	if s := p.shards[shard]; s != nil {
		s.state = "failed"
	}
	p.mu.Unlock()
}

// summary renders the state of every shard; the caller holds mu.
func (p *transferProgress) summary(now time.Time) (float64, string) {
	keys := make([]int, 0, len(p.shards))
	for k := range p.shards {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var parts []string
	var frac float64
	for _, k := range keys {
		s := p.shards[k]
		switch s.state {
		case "done":
			frac++
			parts = append(parts, fmt.Sprintf("shard %d: done, %s", k, formatBytes(s.bytes)))
		case "failed":
			frac++
			parts = append(parts, fmt.Sprintf("shard %d: failed", k))
		default:
			if s.hint > 0 {
				frac += min(float64(s.bytes)/float64(s.hint), 0.95)
			}
			part := fmt.Sprintf("shard %d %s", k, p.verb)
			if s.label != "" {
				part += " " + s.label
			}
			part += ": " + formatBytes(s.bytes) + " at " + formatRate(s.bytes, now.Sub(s.started))
			if s.attempt > 1 {
				part += fmt.Sprintf(" (attempt %d)", s.attempt)
			}
			parts = append(parts, part)
		}
	}
	if len(keys) > 0 {
		frac /= float64(len(keys))
	}
	return frac, strings.Join(parts, "; ")
}

// formatBytes renders a size for people: 512 B, 12.3 kB, 45.6 MB, 1.23 GB.
func formatBytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

// formatRate renders bytes over a duration as a rate.
func formatRate(n int64, d time.Duration) string {
	if d <= 0 {
		return "- /s"
	}
	return formatBytes(int64(float64(n)/d.Seconds())) + "/s"
}
