package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/catalog"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// CreateBackup stores a backup job for one shard, or (Shard nil) every
// shard, with one record per shard in state running, in one transaction.
func (svc *Service) CreateBackup(ctx context.Context, name string, req api.CreateBackupRequest) (api.Job, []api.Backup, error) {
	cl, err := svc.getCluster(ctx, name)
	if err != nil {
		return api.Job{}, nil, err
	}
	var shards []int
	if req.Shard != nil {
		if *req.Shard < 0 || *req.Shard >= cl.Spec.Shards {
			return api.Job{}, nil, &spec.FieldError{Kind: spec.Unprocessable, Field: "shard",
				Message: fmt.Sprintf("cluster %q has shards 0 to %d, got %d", name, cl.Spec.Shards-1, *req.Shard)}
		}
		shards = []int{*req.Shard}
	} else {
		for i := 0; i < cl.Spec.Shards; i++ {
			shards = append(shards, i)
		}
	}
	busy, err := jobspec.NotBackupable(ctx, svc.store, name)
	if err != nil {
		return api.Job{}, nil, err
	}
	if busy != "" {
		return api.Job{}, nil, jobspec.Conflict("%s; back it up once that job has finished", busy)
	}
	job, recs, err := jobspec.StartBackup(ctx, svc.store, svc.cfg.BackupTarget, cl, shards, nil)
	if err != nil {
		return api.Job{}, nil, err
	}
	svc.runner.Kick()
	return job.Job, backupViews(recs), nil
}

// ListBackups returns a cluster's backups, newest first. The backups of a
// deleted cluster stay listed under its name.
func (svc *Service) ListBackups(ctx context.Context, name string) ([]api.Backup, error) {
	bs, err := svc.store.ListBackups(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(bs) == 0 {
		if _, err := svc.getCluster(ctx, name); err != nil {
			return nil, err
		}
	}
	return backupViews(bs), nil
}

// GetBackup returns one backup record.
func (svc *Service) GetBackup(ctx context.Context, id string) (api.Backup, error) {
	b, err := svc.getBackup(ctx, id)
	return b.Backup, err
}

func (svc *Service) getBackup(ctx context.Context, id string) (store.Backup, error) {
	b, err := svc.store.GetBackup(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return b, jobspec.NotFound("backup %q not found", id)
	}
	return b, err
}

func backupViews(bs []store.Backup) []api.Backup {
	out := make([]api.Backup, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.Backup)
	}
	return out
}

// DeleteBackup stores a job that removes a backup's object, its sidecar
// and its record.
func (svc *Service) DeleteBackup(ctx context.Context, id string) (api.Job, error) {
	b, err := svc.getBackup(ctx, id)
	if err != nil {
		return api.Job{}, err
	}
	if b.State == api.StateRunning {
		return api.Job{}, jobspec.Conflict("backup %s is still running (job %s); delete it once it has finished", id, b.Job)
	}
	job := jobspec.New(api.JobBackupDelete, b.Cluster, time.Now().UTC())
	job.Params, _ = json.Marshal(jobspec.BackupRefParams{Backup: id})
	if err := svc.createJob(ctx, job); err != nil {
		return api.Job{}, err
	}
	svc.runner.Kick()
	return job.Job, nil
}

// ImportBackups creates records for the backups stored in a target, from
// their sidecars: an empty store (a new manager, a lost database) gets its
// backups back. Objects that already have a record are counted, not
// imported again.
func (svc *Service) ImportBackups(ctx context.Context, req api.ImportBackupsRequest) (api.ImportBackupsResult, error) {
	res := api.ImportBackupsResult{Imported: []api.Backup{}, Skipped: []string{}}
	if strings.TrimSpace(req.Target) == "" {
		return res, &spec.FieldError{Kind: spec.Invalid, Field: "target", Message: "is required: a file:// or s3:// target URL"}
	}
	allowed := append([]string{svc.cfg.BackupTarget}, svc.cfg.ImportRoots...)
	if err := catalog.CheckImportSource(req.Target, allowed, filepath.EvalSymlinks); err != nil {
		return res, &spec.FieldError{Kind: spec.Unprocessable, Field: "target", Message: err.Error()}
	}
	t, err := backup.OpenTarget(ctx, req.Target, backup.ReadOnly())
	if err != nil {
		return res, &spec.FieldError{Kind: spec.Unprocessable, Field: "target", Message: err.Error()}
	}
	objs, err := t.List(ctx, "")
	if err != nil {
		return res, &spec.FieldError{Kind: spec.Unprocessable, Field: "target", Message: err.Error()}
	}
	existing, err := svc.store.ListBackups(ctx, "")
	if err != nil {
		return res, err
	}
	known, ids := map[string]bool{}, map[string]bool{}
	for _, b := range existing {
		known[b.Target] = true
		ids[b.ID] = true
	}
	for _, o := range objs {
		cluster, shard, _, ok := backup.ParseObjectKey(o.Key)
		if !ok {
			continue
		}
		u := catalog.ObjectURL(req.Target, o.Key)
		if known[u] {
			res.Known++
			continue
		}
		sc, err := catalog.ReadSidecar(ctx, t, o.Key)
		if err == nil {
			err = catalog.ValidateSidecar(sc, cluster, shard)
		}
		if err != nil {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: %v", o.Key, err))
			continue
		}
		b := catalog.ImportedBackup(sc, cluster, shard, req.Target, o.Key, u)
		if b.ID == "" || ids[b.ID] {
			b.ID = jobspec.NewID("b")
		}
		if err := svc.store.PutBackup(ctx, b); err != nil {
			return res, err
		}
		ids[b.ID], known[u] = true, true
		res.Imported = append(res.Imported, b.Backup)
	}
	if len(res.Imported) > 0 {
		svc.log.Info("imported backups", "target", req.Target, "count", len(res.Imported))
	}
	return res, nil
}
