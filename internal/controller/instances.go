package controller

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// allocate makes sure every instance the cluster's spec needs has a record
// with an endpoint the platform reserved, reusing records that exist (so a
// resumed job keeps its endpoints).
func (c *Controller) allocate(ctx context.Context, cl store.Cluster) (map[string]store.Instance, error) {
	c.portMu.Lock()
	defer c.portMu.Unlock()
	all, err := c.store.ListAllInstances(ctx)
	if err != nil {
		return nil, err
	}
	have := map[string]store.Instance{}
	var mine []store.Instance
	taken := make([]platform.Endpoint, 0, len(all))
	for _, in := range all {
		taken = append(taken, endpoint(in))
		if in.Cluster == cl.Name {
			have[in.Name] = in
			mine = append(mine, in)
		}
	}
	add := topology.PlanAdditions(cl, mine)
	want := make([]platform.Want, 0, len(add))
	for _, p := range add {
		want = append(want, platform.Want{ID: platform.ID{Cluster: cl.Name, Name: p.Name}, Kind: p.Kind})
	}
	eps, err := c.platform.Reserve(ctx, want, taken)
	if err != nil {
		return nil, err
	}
	for _, p := range add {
		ep := eps[platform.ID{Cluster: cl.Name, Name: p.Name}]
		in := store.Instance{Name: p.Name, Cluster: cl.Name, Kind: p.Kind, Shard: p.Shard, Ordinal: p.Ordinal,
			Host: ep.Host, Port: ep.Port, CreatedAt: time.Now().UTC()}
		if err := c.store.PutInstance(ctx, in); err != nil {
			return nil, fmt.Errorf("record %s: %w", p.Name, err)
		}
		have[p.Name] = in
	}
	return have, nil
}

// endpoint is where a recorded instance is reached.
func endpoint(in store.Instance) platform.Endpoint {
	return platform.Endpoint{Host: in.Host, Port: in.Port}
}

// id is a recorded instance's identity on the platform.
func id(in store.Instance) platform.ID { return platform.ID{Cluster: in.Cluster, Name: in.Name} }

// addr is a recorded instance's address, host:port (net.JoinHostPort, so
// an IPv6 host is bracketed).
func addr(in store.Instance) string { return endpoint(in).String() }

// instancesOf returns a cluster's instance records by kind, ordered by
// shard and ordinal.
func (c *Controller) instancesOf(ctx context.Context, cluster string) (redis, sentinels []store.Instance, err error) {
	all, err := c.store.ListInstances(ctx, cluster)
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Shard != all[j].Shard {
			return all[i].Shard < all[j].Shard
		}
		return all[i].Ordinal < all[j].Ordinal
	})
	for _, in := range all {
		if in.Kind == store.KindSentinel {
			sentinels = append(sentinels, in)
		} else {
			redis = append(redis, in)
		}
	}
	return redis, sentinels, nil
}

// ensureSentinel starts (or adopts) a Sentinel and records its handle.
func (c *Controller) ensureSentinel(ctx context.Context, cl store.Cluster, in store.Instance) error {
	pi, err := c.platform.Ensure(ctx, platform.InstanceSpec{
		ID: id(in), Kind: platform.KindSentinel, Endpoint: endpoint(in),
		Sentinel: &spec.SentinelConfig{Password: cl.SentinelPassword, ExtraPasswords: cl.SentinelAccepted()[1:]},
	})
	if err != nil {
		return err
	}
	// Sentinel reads each master's INFO only every 10 s by default, so a new
	// replica (or one a RESET made it forget) would appear up to 10 s late.
	// Once a second costs one small INFO per instance and makes scaling,
	// cleaning and failover bookkeeping converge in about a second. The
	// setting is not persisted by Sentinel, so it is applied at every ensure.
	sc := c.pool.Sentinel(addr(in), cl.SentinelPassword)
	if err := sentinel.DebugInfoPeriod(ctx, sc, SentinelInfoPeriodMs); err != nil {
		return fmt.Errorf("%s: %w", in.Name, err)
	}
	// After a stall of more than 2 s (a loaded node) a Sentinel is in TILT
	// and fails nothing over for its TILT period, 30 s by default: a master
	// that died meanwhile stays unreplaced that long, and every Sentinel of
	// a cluster stalls at once when the node does (seen in the chaos test:
	// all three in TILT for 30 s right after the master's pod was deleted).
	// TILT is there so Sentinel does not judge instances down from replies
	// it could not read during the stall; it pings each instance every
	// second, so its view is current again well within SentinelTiltPeriodMs.
	if err := sentinel.DebugTiltPeriod(ctx, sc, SentinelTiltPeriodMs); err != nil {
		return fmt.Errorf("%s: %w", in.Name, err)
	}
	return c.recordHandle(ctx, in, pi)
}

// SentinelInfoPeriodMs is how often Sentinels read INFO of the instances
// they monitor.
const SentinelInfoPeriodMs = 1000

// SentinelTiltPeriodMs is how long a Sentinel stays in TILT after a stall
// (SENTINEL DEBUG tilt-period; Sentinel's default is 30000).
const SentinelTiltPeriodMs = 5000

// ensureRedis starts (or adopts) a redis-server. Its boot role is decided
// by the platform at the moment it boots, from Sentinel's view
// (instance.Decide): an instance that was master and comes back after a
// failover boots as a replica.
func (c *Controller) ensureRedis(ctx context.Context, cl store.Cluster, in store.Instance, plannedMaster string, sentinels []store.Instance) error {
	boot := &platform.BootPlan{MasterName: spec.MasterName(cl.Name, in.Shard), PlannedMaster: plannedMaster,
		SentinelPassword: cl.SentinelPassword}
	for _, s := range sentinels {
		boot.Sentinels = append(boot.Sentinels, addr(s))
	}
	pi, err := c.platform.Ensure(ctx, platform.InstanceSpec{
		ID: id(in), Kind: platform.KindRedis, Endpoint: endpoint(in),
		Redis: &spec.RedisConfig{Password: cl.Password, ExtraPasswords: cl.Accepted()[1:], Spec: cl.Spec},
		Boot:  boot,
	})
	if err != nil {
		return err
	}
	return c.recordHandle(ctx, in, pi)
}

// recordHandle stores the platform's handle of an instance when it changed.
func (c *Controller) recordHandle(ctx context.Context, in store.Instance, pi platform.Instance) error {
	if bytes.Equal(in.Handle, pi.Handle) {
		return nil
	}
	in.Handle = pi.Handle
	return c.store.PutInstance(ctx, in)
}

// sentinelMasterAnswers asks every reachable Sentinel which address it
// names master of a shard; unknown names and unreachable Sentinels give no
// answer.
func (c *Controller) sentinelMasterAnswers(ctx context.Context, cl store.Cluster, name string, sentinels []store.Instance) []string {
	var mu sync.Mutex
	var answers []string
	var wg sync.WaitGroup
	for _, s := range sentinels {
		wg.Add(1)
		go func(s store.Instance) {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			a, err := sentinel.GetMasterAddrByName(sctx, c.pool.Sentinel(addr(s), cl.SentinelPassword), name)
			if err != nil {
				return
			}
			mu.Lock()
			answers = append(answers, a)
			mu.Unlock()
		}(s)
	}
	wg.Wait()
	sort.Strings(answers)
	return answers
}

// parallel runs f for each instance at once and returns the first error.
func parallel(ins []store.Instance, f func(store.Instance) error) error {
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f(in) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
