package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// UpdateCluster validates a change of spec and stores a scale job for it.
// Changes that drop data need req.Force: removing a shard that holds keys
// (409 with the count) and maxmemory below the data's used_memory (422 with
// both figures).
func (svc *Service) UpdateCluster(ctx context.Context, name string, req api.UpdateClusterRequest) (api.Cluster, api.Job, error) {
	cl, err := svc.getCluster(ctx, name)
	if err != nil {
		return api.Cluster{}, api.Job{}, err
	}
	to := topology.ApplyUpdate(cl.Spec, req)
	if err := spec.Validate(to); err != nil {
		return api.Cluster{}, api.Job{}, err
	}
	if removed := removedConfigKeys(cl.Spec.Config, to.Config); len(removed) > 0 {
		return api.Cluster{}, api.Job{}, &spec.FieldError{Kind: spec.Unprocessable, Field: "config." + removed[0],
			Message: fmt.Sprintf("removing a directive (%s) would need a restart to take effect; set it to the value you want instead", strings.Join(removed, ", "))}
	}
	if extra := spec.InstanceCount(to) - spec.InstanceCount(cl.Spec); extra > 0 {
		if err := svc.checkCapacity(ctx, extra); err != nil {
			return api.Cluster{}, api.Job{}, err
		}
	}
	shard, failing, err := svc.live.FailingOver(ctx, cl)
	if err != nil {
		return api.Cluster{}, api.Job{}, err
	}
	if failing {
		return api.Cluster{}, api.Job{}, jobspec.Conflict("shard %d of cluster %q is failing over; retry once it is done", shard, name)
	}
	if err := svc.checkDataLoss(ctx, cl, to, req.Force); err != nil {
		return api.Cluster{}, api.Job{}, err
	}
	params, _ := json.Marshal(jobspec.ScaleParams{From: cl.Spec, To: to})
	job := jobspec.New(api.JobScale, name, time.Now().UTC())
	job.Params = params
	err = svc.store.Admit(ctx, nil, job, svc.admissionCheck(spec.InstanceCount(to)-spec.InstanceCount(cl.Spec)))
	if errors.Is(err, store.ErrConflict) {
		if lerr := svc.laneConflict(ctx, job); lerr != nil {
			err = lerr
		} else {
			err = jobspec.Conflict("cluster %q already has a job in progress", name)
		}
	}
	if err != nil {
		return api.Cluster{}, api.Job{}, err
	}
	svc.runner.Kick()
	view := svc.view(cl)
	view.Spec = to
	view.Status.Phase = api.PhaseScaling
	return view, job.Job, nil
}

func removedConfigKeys(from, to map[string]string) []string {
	var out []string
	for k := range from {
		if _, ok := to[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// checkDataLoss refuses, without force, to remove shards holding keys or to
// set maxmemory under what a master already uses.
func (svc *Service) checkDataLoss(ctx context.Context, cl store.Cluster, to api.ClusterSpec, force bool) error {
	if force {
		return nil
	}
	newMax, _ := spec.ParseSize(to.Maxmemory)
	oldMax, _ := spec.ParseSize(cl.Spec.Maxmemory)
	for shard := 0; shard < cl.Spec.Shards; shard++ {
		master, info, err := svc.live.MasterInfo(ctx, cl, shard, "keyspace", "memory")
		if err != nil {
			return fmt.Errorf("read master of shard %d: %w", shard, err)
		}
		if master == "" {
			continue
		}
		if shard >= to.Shards {
			if keys := info.Keys(); keys > 0 {
				return jobspec.Conflict("shard %d holds %d keys; removing it drops them: pass \"force\": true to remove it anyway", shard, keys)
			}
		}
		if used := info.Int("used_memory"); newMax > 0 && newMax != oldMax && newMax < used && shard < to.Shards {
			return &spec.FieldError{Kind: spec.Unprocessable, Field: "maxmemory",
				Message: fmt.Sprintf("maxmemory %s (%d bytes) is below the %d bytes shard %d already uses; pass \"force\": true to set it anyway (writes will fail or keys be evicted per maxmemoryPolicy)", to.Maxmemory, newMax, used, shard)}
		}
	}
	return nil
}
