package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

const (
	// DefaultRotationGraceMs is how long the old password stays valid.
	DefaultRotationGraceMs = 3600000
	maxRotationGraceMs     = 30 * 24 * 3600000
)

// RotateCredentials starts a password rotation of the cluster.
func (svc *Service) RotateCredentials(ctx context.Context, name string, req api.RotateCredentialsRequest) (api.Job, error) {
	cl, err := svc.getCluster(ctx, name)
	if err != nil {
		return api.Job{}, err
	}
	grace := int64(DefaultRotationGraceMs)
	if req.GraceMs != nil {
		grace = *req.GraceMs
	}
	if grace < 0 || grace > maxRotationGraceMs {
		return api.Job{}, &spec.FieldError{Kind: spec.Unprocessable, Field: "graceMs",
			Message: fmt.Sprintf("must be between 0 and %d (30 days), got %d", int64(maxRotationGraceMs), grace)}
	}
	if cl.Rotation.Active() {
		return api.Job{}, jobspec.Conflict("cluster %q is rotating its password already (the old one is accepted until %s); finish that rotation first: POST /api/v1/clusters/%s/credentials/rotate/finish",
			name, endsAt(cl.Rotation), name)
	}
	job := jobspec.New(api.JobRotateCredentials, name, time.Now().UTC())
	job.Params, _ = json.Marshal(jobspec.RotateParams{GraceMs: grace})
	if err := svc.store.StartRotation(ctx, name, randomSecret(), randomSecret(), job); err != nil {
		if errors.Is(err, store.ErrConflict) {
			if err := svc.laneConflict(ctx, job); err != nil {
				return api.Job{}, err
			}
			return api.Job{}, jobspec.Conflict("cluster %q is rotating its password already", name)
		}
		return api.Job{}, err
	}
	svc.runner.Kick()
	return job.Job, nil
}

func endsAt(r store.Rotation) string {
	if r.EndsAt == nil {
		return "the rotation job ends"
	}
	return r.EndsAt.UTC().Format(time.RFC3339)
}

// FinishRotation removes the old password now instead of at the end of the
// grace period.
func (svc *Service) FinishRotation(ctx context.Context, name string) (api.Job, error) {
	cl, err := svc.getCluster(ctx, name)
	if err != nil {
		return api.Job{}, err
	}
	if cl.Rotation.Old == "" {
		why := "no password rotation is in its grace period"
		if cl.Rotation.Next != "" {
			why = "the rotation is still being applied; wait for its job"
		}
		return api.Job{}, jobspec.Conflict("cluster %q: %s", name, why)
	}
	job := jobspec.New(api.JobFinishRotation, name, time.Now().UTC())
	if err := svc.createJob(ctx, job); err != nil {
		return api.Job{}, err
	}
	svc.runner.Kick()
	return job.Job, nil
}
