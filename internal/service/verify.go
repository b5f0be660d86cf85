package service

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/spec"
)

// VerifyBackup stores a job that downloads a backup (checking its CRC64
// and structure against the record) and loads it into a throwaway
// redis-server, comparing the key count with the record.
func (svc *Service) VerifyBackup(ctx context.Context, id string) (api.Job, error) {
	b, err := svc.getBackup(ctx, id)
	if err != nil {
		return api.Job{}, err
	}
	if b.State != api.StateSucceeded {
		return api.Job{}, &spec.FieldError{Kind: spec.Unprocessable, Field: "",
			Message: fmt.Sprintf("backup %s is %s; only a succeeded backup has an object to verify", id, b.State)}
	}
	job := jobspec.New(api.JobBackupVerify, b.Cluster, time.Now().UTC())
	job.Params, _ = json.Marshal(jobspec.BackupRefParams{Backup: id})
	if err := svc.createJob(ctx, job); err != nil {
		return api.Job{}, err
	}
	svc.runner.Kick()
	return job.Job, nil
}
