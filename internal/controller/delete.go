package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/store"
)

// deleteSteps is the plan of a delete job: Sentinels forget the shards first
// (so none fails over while instances go away), then every instance is
// stopped and its data removed, then the records.
func deleteSteps() []step {
	return []step{
		{"unregister-sentinels", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, _, sentinels []store.Instance) error {
				return r.c.unregisterAll(ctx, cl, sentinels)
			})
		}},
		{"remove-instances", func(ctx context.Context, r *jobRun) error {
			return r.c.removeAll(ctx, r, r.job.Cluster)
		}},
		{"remove-records", func(ctx context.Context, r *jobRun) error {
			err := r.c.store.DeleteCluster(ctx, r.job.Cluster)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			r.c.event(ctx, r.job.Cluster, nil, "deleted", "cluster deleted", nil)
			return nil
		}},
	}
}

// unregisterAll makes every reachable Sentinel forget every shard of the
// cluster. A Sentinel that is down is about to be removed anyway.
func (c *Controller) unregisterAll(ctx context.Context, cl store.Cluster, sentinels []store.Instance) error {
	return parallel(sentinels, func(s store.Instance) error {
		_, running, err := c.instanceRunning(ctx, s)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		if !running {
			return nil
		}
		// Every shard of the cluster the Sentinel knows, including any a
		// failed scale left behind.
		sc := c.pool.Sentinel(addr(s), cl.SentinelPassword)
		masters, err := sentinel.Masters(ctx, sc)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		for _, m := range masters {
			name := m.Name
			if shardOf(cl.Name, name) == nil {
				continue
			}
			if err := sentinel.Unregister(ctx, sc, name); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
		}
		return nil
	})
}

// removeAll stops and removes every instance of a cluster, redis-servers
// before Sentinels, and their records.
func (c *Controller) removeAll(ctx context.Context, r *jobRun, cluster string) error {
	redis, sentinels, err := c.instancesOf(ctx, cluster)
	if err != nil {
		return err
	}
	total, done := len(redis)+len(sentinels), 0
	// Instances the platform has that the store lost track of (a crash
	// between start and record) go too.
	known, err := c.platform.List(ctx, cluster)
	if err != nil {
		return fmt.Errorf("list what the platform runs: %w", err)
	}
	recorded := map[string]bool{}
	for _, in := range append(append([]store.Instance{}, redis...), sentinels...) {
		recorded[in.Name] = true
	}
	for _, pi := range known {
		if !recorded[pi.ID.Name] {
			if err := c.platform.Remove(ctx, pi.ID); err != nil {
				return err
			}
		}
	}
	for _, group := range [][]store.Instance{redis, sentinels} {
		err := parallel(group, func(in store.Instance) error {
			if err := c.platform.Remove(ctx, id(in)); err != nil {
				return err
			}
			c.pool.Forget(addr(in))
			return c.store.DeleteInstance(ctx, in.Name)
		})
		if err != nil {
			return err
		}
		done += len(group)
		r.progress(ctx, float64(done)/float64(max(total, 1)), fmt.Sprintf("removed %d of %d instances", done, total))
	}
	return nil
}

// instanceRunning tells whether the platform runs an instance; an error
// when the platform cannot tell.
func (c *Controller) instanceRunning(ctx context.Context, in store.Instance) (int, bool, error) {
	list, err := c.platform.List(ctx, in.Cluster)
	if err != nil {
		return 0, false, fmt.Errorf("list what the platform runs: %w", err)
	}
	for _, pi := range list {
		if pi.ID.Name == in.Name {
			return pi.Details.Pid, pi.Running, nil
		}
	}
	return 0, false, nil
}
