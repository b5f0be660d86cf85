package controller

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// allocate makes sure every instance the cluster's spec needs has a record
// with a port, reusing records that exist (so a resumed job keeps its
// ports).
func (c *Controller) allocate(ctx context.Context, cl store.Cluster) (map[string]store.Instance, error) {
	c.portMu.Lock()
	defer c.portMu.Unlock()
	all, err := c.store.ListAllInstances(ctx)
	if err != nil {
		return nil, err
	}
	used := map[int]bool{}
	have := map[string]store.Instance{}
	var mine []store.Instance
	for _, in := range all {
		used[in.Port] = true
		if in.Cluster == cl.Name {
			have[in.Name] = in
			mine = append(mine, in)
		}
	}
	next := c.cfg.PortLo
	for _, p := range topology.PlanAdditions(cl, mine) {
		port := 0
		for ; next <= c.cfg.PortHi; next++ {
			if !used[next] && portFree(c.cfg.Host, next) {
				port = next
				break
			}
		}
		if port == 0 {
			return nil, fmt.Errorf("no free port left in --port-range %d-%d for %s", c.cfg.PortLo, c.cfg.PortHi, p.Name)
		}
		used[port] = true
		in := store.Instance{Name: p.Name, Cluster: cl.Name, Kind: p.Kind, Shard: p.Shard, Ordinal: p.Ordinal,
			Host: c.cfg.Host, Port: port, CreatedAt: time.Now().UTC()}
		if err := c.store.PutInstance(ctx, in); err != nil {
			return nil, fmt.Errorf("record %s: %w", p.Name, err)
		}
		have[p.Name] = in
	}
	return have, nil
}

func portFree(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func addr(in store.Instance) string { return topology.Addr(in) }

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

// ensureSentinel starts (or adopts) a Sentinel and records its pid.
func (c *Controller) ensureSentinel(ctx context.Context, cl store.Cluster, in store.Instance) error {
	pi, err := c.platform.Ensure(ctx, platform.InstanceSpec{
		Name: in.Name, Cluster: cl.Name, Kind: platform.KindSentinel, Host: in.Host, Port: in.Port,
		KeepConfig: true,
		Config: func(dir string) (string, error) {
			return spec.RenderSentinel(spec.SentinelConfig{Host: in.Host, Port: in.Port, Dir: dir, Password: cl.SentinelPassword}), nil
		},
	})
	if err != nil {
		return err
	}
	// Sentinel reads each master's INFO only every 10 s by default, so a new
	// replica (or one a RESET made it forget) would appear up to 10 s late.
	// Once a second costs one small INFO per instance and makes scaling,
	// cleaning and failover bookkeeping converge in about a second. The
	// setting is not persisted by Sentinel, so it is applied at every ensure.
	err = sentinel.DebugInfoPeriod(ctx, c.pool.Sentinel(addr(in), cl.SentinelPassword), SentinelInfoPeriodMs)
	if err != nil {
		return fmt.Errorf("%s: %w", in.Name, err)
	}
	return c.recordPid(ctx, in, pi)
}

// SentinelInfoPeriodMs is how often Sentinels read INFO of the instances
// they monitor.
const SentinelInfoPeriodMs = 1000

// ensureRedis starts (or adopts) a redis-server. Its boot role is decided
// at the moment it boots, from Sentinel's view (see bootRole): an instance
// that was master and comes back after a failover boots as a replica.
func (c *Controller) ensureRedis(ctx context.Context, cl store.Cluster, in store.Instance, plannedMaster string, sentinels []store.Instance) error {
	pi, err := c.platform.Ensure(ctx, platform.InstanceSpec{
		Name: in.Name, Cluster: cl.Name, Kind: platform.KindRedis, Host: in.Host, Port: in.Port,
		Config: func(dir string) (string, error) {
			answers := c.sentinelMasterAnswers(ctx, cl, spec.MasterName(cl.Name, in.Shard), sentinels)
			replicaOf := bootRole(answers, addr(in), plannedMaster)
			c.log.Info("boot role decided", "instance", in.Name, "replicaOf", replicaOf, "sentinelAnswers", answers)
			return spec.RenderRedis(spec.RedisConfig{Host: in.Host, Port: in.Port, Dir: dir, Password: cl.Password, ExtraPasswords: cl.Accepted()[1:],
				ReplicaOf: replicaOf, Spec: cl.Spec}), nil
		},
	})
	if err != nil {
		return err
	}
	return c.recordPid(ctx, in, pi)
}

func (c *Controller) recordPid(ctx context.Context, in store.Instance, pi platform.Instance) error {
	if in.Pid == pi.Pid {
		return nil
	}
	in.Pid = pi.Pid
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

// bootRole decides whom an instance replicates when it boots. It boots as
// master ("") only when every answering Sentinel names it master (or, when
// no Sentinel knows the shard yet because it is being created, when it is
// the planned master). Otherwise it replicates the address most Sentinels
// name other than itself: during a failover some Sentinels may still name
// it, and booting as master then, perhaps with old or no data, is how other
// operators lost data.
func bootRole(sentinelAnswers []string, self, plannedMaster string) string {
	if len(sentinelAnswers) == 0 {
		if plannedMaster == self {
			return ""
		}
		return plannedMaster
	}
	counts := map[string]int{}
	best, bestN := "", 0
	for _, a := range sentinelAnswers {
		if a == self {
			continue
		}
		counts[a]++
		if n := counts[a]; n > bestN || (n == bestN && a < best) {
			best, bestN = a, n
		}
	}
	return best // "" when every answer names self
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
