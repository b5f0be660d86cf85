package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// scaleParams are what a scale job needs to resume: where it started and
// where it goes.
type scaleParams struct {
	From api.ClusterSpec `json:"from"`
	To   api.ClusterSpec `json:"to"`
}

// UpdateCluster validates a change of spec and stores a scale job for it.
// Changes that drop data need req.Force: removing a shard that holds keys
// (409 with the count) and maxmemory below the data's used_memory (422 with
// both figures).
func (c *Controller) UpdateCluster(ctx context.Context, name string, req api.UpdateClusterRequest) (api.Cluster, api.Job, error) {
	cl, err := c.getCluster(ctx, name)
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
		if err := c.checkCapacity(ctx, extra); err != nil {
			return api.Cluster{}, api.Job{}, err
		}
	}
	redis, sentinels, err := c.instancesOf(ctx, name)
	if err != nil {
		return api.Cluster{}, api.Job{}, err
	}
	if shard, ok := c.failingOver(ctx, cl, redis, sentinels); ok {
		return api.Cluster{}, api.Job{}, conflict("shard %d of cluster %q is failing over; retry once it is done", shard, name)
	}
	if err := c.checkDataLoss(ctx, cl, to, redis, sentinels, req.Force); err != nil {
		return api.Cluster{}, api.Job{}, err
	}
	params, _ := json.Marshal(scaleParams{From: cl.Spec, To: to})
	job := newJob(api.JobScale, name, time.Now().UTC())
	job.Params = params
	err = c.store.Admit(ctx, nil, job, c.admissionCheck(spec.InstanceCount(to)-spec.InstanceCount(cl.Spec)))
	if errors.Is(err, store.ErrConflict) {
		if lerr := c.laneConflict(ctx, job); lerr != nil {
			err = lerr
		} else {
			err = conflict("cluster %q already has a job in progress", name)
		}
	}
	if err != nil {
		return api.Cluster{}, api.Job{}, err
	}
	c.Kick()
	view := c.view(cl)
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

// failingOver tells whether a shard of the cluster is failing over (see
// topology.FailingOver), from a fresh observation.
func (c *Controller) failingOver(ctx context.Context, cl store.Cluster, redis, sentinels []store.Instance) (int, bool) {
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return topology.FailingOverShard(cl.Spec, cl.Name, c.observe(octx, cl, redis, sentinels))
}

// checkDataLoss refuses, without force, to remove shards holding keys or to
// set maxmemory under what a master already uses.
func (c *Controller) checkDataLoss(ctx context.Context, cl store.Cluster, to api.ClusterSpec, redis, sentinels []store.Instance, force bool) error {
	if force {
		return nil
	}
	newMax, _ := spec.ParseSize(to.Maxmemory)
	oldMax, _ := spec.ParseSize(cl.Spec.Maxmemory)
	for shard := 0; shard < cl.Spec.Shards; shard++ {
		master := c.currentMaster(ctx, cl, shard, redis, sentinels)
		if master == "" {
			continue
		}
		info, err := redisclient.GetInfo(ctx, c.pool.Redis(master, cl.Password), "keyspace", "memory")
		if err != nil {
			return fmt.Errorf("read master of shard %d: %w", shard, err)
		}
		if shard >= to.Shards {
			if keys := info.Keys(); keys > 0 {
				return conflict("shard %d holds %d keys; removing it drops them: pass \"force\": true to remove it anyway", shard, keys)
			}
		}
		if used := info.Int("used_memory"); newMax > 0 && newMax != oldMax && newMax < used && shard < to.Shards {
			return &spec.FieldError{Kind: spec.Unprocessable, Field: "maxmemory",
				Message: fmt.Sprintf("maxmemory %s (%d bytes) is below the %d bytes shard %d already uses; pass \"force\": true to set it anyway (writes will fail or keys be evicted per maxmemoryPolicy)", to.Maxmemory, newMax, used, shard)}
		}
	}
	return nil
}

// currentMaster returns the address of a shard's master: what most
// Sentinels name, else the one instance in the master role.
func (c *Controller) currentMaster(ctx context.Context, cl store.Cluster, shard int, redis, sentinels []store.Instance) string {
	if answers := c.sentinelMasterAnswers(ctx, cl, spec.MasterName(cl.Name, shard), sentinels); len(answers) > 0 {
		return topology.Majority(answers)
	}
	var masters []string
	for _, in := range redis {
		if in.Shard != shard {
			continue
		}
		if info, err := redisclient.GetInfo(ctx, c.pool.Redis(addr(in), cl.Password), "replication"); err == nil && info["role"] == "master" {
			masters = append(masters, addr(in))
		}
	}
	if len(masters) == 1 {
		return masters[0]
	}
	return ""
}

func hostPort(a string) (string, string) {
	h, p, _ := net.SplitHostPort(a)
	return h, p
}
