package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/catalog"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// RestoreBackup creates a new cluster from a backup: by default from the
// whole set the backup belongs to (the backups its job took, one per
// shard), the i-th lowest shard's backup into shard i; with SingleShard
// from this backup alone, into a one-shard cluster. The spec is the source
// cluster's spec at backup time with the request's fields replaced. The
// cluster and its restore job are stored in one transaction, like a create.
func (svc *Service) RestoreBackup(ctx context.Context, id string, req api.RestoreRequest) (api.Cluster, api.Job, error) {
	b, err := svc.getBackup(ctx, id)
	if err != nil {
		return api.Cluster{}, api.Job{}, err
	}
	if b.State != api.StateSucceeded {
		return api.Cluster{}, api.Job{}, &spec.FieldError{Kind: spec.Unprocessable, Field: "",
			Message: fmt.Sprintf("backup %s is %s; only a succeeded backup can be restored", id, b.State)}
	}
	if req.Cluster == "" {
		return api.Cluster{}, api.Job{}, &spec.FieldError{Kind: spec.Invalid, Field: "cluster", Message: "is required: the name of the new cluster"}
	}
	set, err := svc.restoreSet(ctx, b, req.SingleShard)
	if err != nil {
		return api.Cluster{}, api.Job{}, err
	}
	creq := restoreCreateRequest(b.SourceSpec, len(set), req)
	s, err := spec.FromCreateRequest(creq)
	if err != nil {
		var fe *spec.FieldError
		if errors.As(err, &fe) && fe.Field == "name" {
			fe.Field = "cluster"
		}
		return api.Cluster{}, api.Job{}, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	cl := store.Cluster{
		Name:             req.Cluster,
		Spec:             s,
		Status:           api.ClusterStatus{Phase: api.PhaseCreating, Shards: []api.ShardStatus{}, Sentinels: []api.SentinelStatus{}},
		Password:         randomSecret(),
		SentinelPassword: randomSecret(),
		CreatedAt:        now,
	}
	var p jobspec.RestoreParams
	for i, m := range set {
		p.Backups = append(p.Backups, jobspec.RestoreShard{Shard: i, Backup: m.ID})
	}
	job := jobspec.New(api.JobRestore, req.Cluster, now)
	job.Params, _ = json.Marshal(p)
	if err := svc.store.Admit(ctx, &cl, job, svc.admissionCheck(spec.InstanceCount(s))); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return api.Cluster{}, api.Job{}, jobspec.Conflict("cluster %q already exists; a restore creates a new cluster", req.Cluster)
		}
		return api.Cluster{}, api.Job{}, err
	}
	svc.runner.Kick()
	return svc.view(cl), job.Job, nil
}

// restoreSet reads what catalog.RestoreSet decides the set of b from: the
// records of its cluster and the backups its job names.
func (svc *Service) restoreSet(ctx context.Context, b store.Backup, single bool) ([]store.Backup, error) {
	if single || b.Job == "" {
		return catalog.RestoreSet(b, single, nil, nil)
	}
	all, err := svc.store.ListBackups(ctx, b.Cluster)
	if err != nil {
		return nil, err
	}
	// After an import the job may be unknown: the records are the set.
	var members []string
	j, err := svc.store.GetJob(ctx, b.Job)
	switch {
	case err == nil:
		var p jobspec.BackupParams
		if json.Unmarshal(j.Params, &p) == nil {
			members = p.Backups
		}
	case !errors.Is(err, store.ErrNotFound):
		// Without the job the set could look complete when it is not.
		return nil, fmt.Errorf("read backup job %s: %w", b.Job, err)
	}
	return catalog.RestoreSet(b, single, all, members)
}

// restoreCreateRequest is the create request a restore amounts to: the
// source's spec (defaults when unknown), shards backups, and the request's
// replacements. It is pure; spec.FromCreateRequest validates the result.
func restoreCreateRequest(src *api.ClusterSpec, shards int, req api.RestoreRequest) api.CreateClusterRequest {
	out := api.CreateClusterRequest{Name: req.Cluster, Shards: &shards}
	if src != nil {
		replicas, sentinels := src.Replicas, src.Sentinels
		out.Replicas = &replicas
		if sentinels > 0 {
			out.Sentinels = &sentinels
		}
		out.Maxmemory, out.MaxmemoryPolicy, out.Persistence = src.Maxmemory, src.MaxmemoryPolicy, src.Persistence
		out.Config = maps.Clone(src.Config)
		s := src.Sentinel
		sr := &api.SentinelRequest{}
		if s.DownAfterMs > 0 {
			sr.DownAfterMs = &s.DownAfterMs
		}
		if s.FailoverTimeoutMs > 0 {
			sr.FailoverTimeoutMs = &s.FailoverTimeoutMs
		}
		if s.ParallelSyncs > 0 {
			sr.ParallelSyncs = &s.ParallelSyncs
		}
		out.Sentinel = sr
		ff, mrw := src.FastFailover, src.MinReplicasToWrite
		out.FastFailover, out.MinReplicasToWrite = &ff, &mrw
	}
	if req.Replicas != nil {
		out.Replicas = req.Replicas
		if out.MinReplicasToWrite != nil && *out.MinReplicasToWrite > *req.Replicas {
			// The source's write safety cannot exceed the new replica count.
			n := *req.Replicas
			out.MinReplicasToWrite = &n
		}
	}
	if req.Sentinels != nil {
		out.Sentinels = req.Sentinels
	}
	if req.Maxmemory != nil {
		out.Maxmemory = *req.Maxmemory
	}
	if req.MaxmemoryPolicy != nil {
		out.MaxmemoryPolicy = *req.MaxmemoryPolicy
	}
	if req.Persistence != nil {
		out.Persistence = *req.Persistence
	}
	if req.Config != nil {
		out.Config = req.Config
	}
	if req.FastFailover != nil {
		out.FastFailover = req.FastFailover
	}
	if req.MinReplicasToWrite != nil {
		out.MinReplicasToWrite = req.MinReplicasToWrite
	}
	return out
}
