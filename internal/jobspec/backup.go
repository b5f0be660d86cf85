package jobspec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// BackupStore is what storing a backup job needs of the store.
type BackupStore interface {
	ListJobs(ctx context.Context, cluster string) ([]store.Job, error)
	CreateBackupJob(ctx context.Context, job store.Job, backups []store.Backup, slot *time.Time) error
}

// NotBackupable names the job that keeps a cluster from being backed up
// (it is being created, restored or deleted), or returns "".
func NotBackupable(ctx context.Context, st BackupStore, name string) (string, error) {
	jobs, err := st.ListJobs(ctx, name)
	if err != nil {
		return "", fmt.Errorf("list jobs of %s: %w", name, err)
	}
	for _, j := range jobs {
		if !j.Done() && (j.Kind == api.JobCreate || j.Kind == api.JobRestore || j.Kind == api.JobDelete) {
			return fmt.Sprintf("cluster %q has a %s job in progress (%s)", name, j.Kind, j.ID), nil
		}
	}
	return "", nil
}

// StartBackup stores a backup job of the given shards to target and its
// records (and, for a scheduled run, the slot) in one transaction.
func StartBackup(ctx context.Context, st BackupStore, target string, cl store.Cluster, shards []int, slot *time.Time) (store.Job, []store.Backup, error) {
	if target == "" {
		return store.Job{}, nil, &spec.FieldError{Kind: spec.Unprocessable, Field: "",
			Message: "no backup target is configured (serve --backup-target)"}
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	job := New(api.JobBackup, cl.Name, now)
	src := cl.Spec
	recs := make([]store.Backup, 0, len(shards))
	var p BackupParams
	for _, sh := range shards {
		b := store.Backup{
			Backup: api.Backup{ID: NewID("b"), Cluster: cl.Name, Shard: sh, State: api.StateRunning,
				StartedAt: now, Job: job.ID, ScheduledFor: slot},
			TargetURL:  target,
			SourceSpec: &src,
		}
		recs = append(recs, b)
		p.Backups = append(p.Backups, b.ID)
	}
	job.Params, _ = json.Marshal(p)
	err := st.CreateBackupJob(ctx, job, recs, slot)
	if errors.Is(err, store.ErrConflict) {
		if holder := lockHolder(ctx, st, job); holder != "" {
			return store.Job{}, nil, Conflict("cluster %q already has a backup in progress (%s); wait for it to finish", cl.Name, holder)
		}
		return store.Job{}, nil, &Error{Kind: store.ErrConflict, Msg: err.Error()}
	}
	if err != nil {
		return store.Job{}, nil, err
	}
	return job, recs, nil
}

// lockHolder names the unfinished job that holds the lock job needs, or "".
func lockHolder(ctx context.Context, st BackupStore, job store.Job) string {
	lock := store.JobLock(job.Kind, job.Cluster)
	jobs, err := st.ListJobs(ctx, job.Cluster)
	if err != nil {
		return ""
	}
	for _, j := range jobs {
		if !j.Done() && store.JobLock(j.Kind, j.Cluster) == lock {
			return fmt.Sprintf("%s job %s, %s", j.Kind, j.ID, j.State)
		}
	}
	return ""
}
