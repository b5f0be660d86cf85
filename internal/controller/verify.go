package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/store"
)

// errVerify marks a verification that refuted the backup (as opposed to a
// target that could not be reached).
var errVerify = errors.New("verification failed")

// verifySteps is the plan of a backup-verify job.
func verifySteps() []step {
	return []step{
		{"download", func(ctx context.Context, r *jobRun) error {
			b, err := r.c.verifyTarget(ctx, r)
			if err != nil {
				return err
			}
			return r.c.verifyOutcome(ctx, b, r.c.downloadForVerify(ctx, r, b))
		}},
		{"load", func(ctx context.Context, r *jobRun) error {
			b, err := r.c.verifyTarget(ctx, r)
			if err != nil {
				return err
			}
			dir := r.c.scratchDir(r.job.ID)
			defer os.RemoveAll(dir)
			if _, err := os.Stat(filepath.Join(dir, "verified")); err != nil {
				// Resumed after a restart that lost the download.
				if err := r.c.downloadForVerify(ctx, r, b); err != nil {
					return r.c.verifyOutcome(ctx, b, err)
				}
			}
			keys, err := r.c.loadKeyCount(ctx, r, dir)
			if err == nil && keys != b.Keys {
				err = fmt.Errorf("%w: redis-server loaded %d keys, the record says %d", errVerify, keys, b.Keys)
			}
			if err := r.c.verifyOutcome(ctx, b, err); err != nil {
				return err
			}
			shard := b.Shard
			r.c.event(ctx, b.Cluster, &shard, "backup-verified", fmt.Sprintf("backup %s loaded into a throwaway redis-server: %d keys, as recorded", b.ID, keys),
				map[string]any{"backup": b.ID, "keys": keys})
			return nil
		}},
	}
}

func (c *Controller) verifyTarget(ctx context.Context, r *jobRun) (store.Backup, error) {
	var p jobspec.BackupRefParams
	if err := json.Unmarshal(r.job.Params, &p); err != nil {
		return store.Backup{}, fmt.Errorf("read job parameters: %w", err)
	}
	return c.getBackup(ctx, p.Backup)
}

// verifyOutcome records a verification that refuted the backup: verified
// turns false, with a backup-verify-failed event. Other errors (a target
// out of reach) say nothing about the backup and only fail the job.
func (c *Controller) verifyOutcome(ctx context.Context, b store.Backup, err error) error {
	if err == nil || !(errors.Is(err, backup.ErrCorrupt) || errors.Is(err, backup.ErrNotFound) || errors.Is(err, errVerify)) {
		return err
	}
	b.Verified = false
	if perr := c.putBackup(ctx, b); perr != nil {
		c.log.Error("record failed verification", "backup", b.ID, "err", perr)
	}
	shard := b.Shard
	c.event(ctx, b.Cluster, &shard, "backup-verify-failed", fmt.Sprintf("backup %s failed verification: %v", b.ID, err),
		map[string]any{"backup": b.ID, "error": err.Error()})
	return err
}

func (c *Controller) scratchDir(jobID string) string {
	root := c.cfg.ScratchDir
	if root == "" {
		root = os.TempDir()
	}
	return filepath.Join(root, "verify-"+jobID)
}

// downloadForVerify has the platform's task runner fetch the object into
// the job's scratch dir as dump.rdb, checking it on the way and against the
// record.
func (c *Controller) downloadForVerify(ctx context.Context, r *jobRun, b store.Backup) error {
	dir := c.scratchDir(r.job.ID)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	start := time.Now()
	_, err := c.platform.RunTask(ctx, platform.Task{Kind: platform.TaskFetch, Dir: dir,
		Seed: platform.SeedSource{TargetURL: b.TargetURL, Key: b.ObjectKey, Size: b.SizeBytes, CRC64: b.CRC64}},
		func(p platform.TaskProgress) {
			r.progress(ctx, min(float64(p.Bytes)/float64(max(b.SizeBytes, 1)), 1),
				fmt.Sprintf("downloading %s: %s of %s at %s", b.ID, formatBytes(p.Bytes), formatBytes(b.SizeBytes), formatRate(p.Bytes, time.Since(start))))
		})
	if err != nil {
		return fmt.Errorf("backup %s (%s): %w", b.ID, b.Target, err)
	}
	return os.WriteFile(filepath.Join(dir, "verified"), nil, 0o600)
}

// loadKeyCount has the platform's task runner load dir/dump.rdb into a
// throwaway redis-server (as a replica of an address nobody listens on, so
// no expired key is dropped) and returns its key count. A file
// redis-server refuses refutes the backup (errVerify).
func (c *Controller) loadKeyCount(ctx context.Context, r *jobRun, dir string) (int64, error) {
	res, err := c.platform.RunTask(ctx, platform.Task{Kind: platform.TaskCountKeys, Dir: dir}, func(p platform.TaskProgress) {
		r.progress(ctx, 0.5, fmt.Sprintf("loading into a throwaway redis-server: %s%%", p.Percent))
	})
	if errors.Is(err, platform.ErrRefuted) {
		return 0, fmt.Errorf("%w: %w", errVerify, err)
	}
	return res.Keys, err
}

// cleanVerify removes a failed verify job's scratch files.
func cleanVerify(_ context.Context, r *jobRun) {
	_ = os.RemoveAll(r.c.scratchDir(r.job.ID))
}
