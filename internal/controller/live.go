package controller

import (
	"context"
	"net"
	"time"

	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// FailingOver tells whether a shard of the cluster is failing over (see
// topology.FailingOver), from a fresh observation. It implements
// service.Live for a spec change.
func (c *Controller) FailingOver(ctx context.Context, cl store.Cluster) (int, bool, error) {
	redis, sentinels, err := c.instancesOf(ctx, cl.Name)
	if err != nil {
		return 0, false, err
	}
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	shard, ok := topology.FailingOverShard(cl.Spec, cl.Name, c.observe(octx, cl, redis, sentinels))
	return shard, ok, nil
}

// MasterInfo reads the INFO sections of a shard's current master
// (currentMaster); "" when no master is known. It implements service.Live
// for a spec change's data-loss checks.
func (c *Controller) MasterInfo(ctx context.Context, cl store.Cluster, shard int, sections ...string) (string, redisclient.Info, error) {
	redis, sentinels, err := c.instancesOf(ctx, cl.Name)
	if err != nil {
		return "", nil, err
	}
	master := c.currentMaster(ctx, cl, shard, redis, sentinels)
	if master == "" {
		return "", nil, nil
	}
	info, err := redisclient.GetInfo(ctx, c.pool.Redis(master, cl.Password), sections...)
	return master, info, err
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
