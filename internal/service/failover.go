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

// Failover stores a planned failover job for one shard.
func (svc *Service) Failover(ctx context.Context, name string, req api.FailoverRequest) (api.Job, error) {
	cl, err := svc.getCluster(ctx, name)
	if err != nil {
		return api.Job{}, err
	}
	if req.Shard < 0 || req.Shard >= cl.Spec.Shards {
		return api.Job{}, &spec.FieldError{Kind: spec.Unprocessable, Field: "shard",
			Message: fmt.Sprintf("cluster %q has shards 0 to %d, got %d", name, cl.Spec.Shards-1, req.Shard)}
	}
	if cl.Spec.Replicas == 0 {
		return api.Job{}, &spec.FieldError{Kind: spec.Unprocessable, Field: "shard", Message: "the shard has no replica to promote"}
	}
	params, _ := json.Marshal(jobspec.FailoverParams{Shard: req.Shard})
	job := jobspec.New(api.JobFailover, name, time.Now().UTC())
	job.Params = params
	if err := svc.createJob(ctx, job); err != nil {
		return api.Job{}, err
	}
	svc.runner.Kick()
	return job.Job, nil
}
