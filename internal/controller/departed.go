package controller

import (
	"context"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/store"
)

// fenceDeparted demotes the last process of a master whose pod was
// deleted, once the fast failover has promoted another instance. A deleted
// pod's container runs on until the kubelet has killed it (after a forced
// deletion up to a couple of seconds: its reaction, then the minimum grace),
// while its name already leads to its successor or nowhere: the process
// still takes writes, which no replica acknowledges any longer (WAIT 1
// times out) and which a client that does not wait for replicas takes as
// done, and Sentinel clients stay connected to it until it dies. Made a
// replica of the new master, it refuses writes (READONLY), and clients
// reconnect through Sentinel at once. The process is reached at the
// address the platform remembers (platform.Departed) and must announce the
// dead instance's name: the address may belong to another pod by now.
func (c *Controller) fenceDeparted(ctx context.Context, cl store.Cluster, dead store.Instance, name, runner string) {
	if c.departed == nil {
		return
	}
	last, ok := c.departed.DepartedAddr(platform.ID{Cluster: cl.Name, Name: dead.Name})
	if !ok {
		return
	}
	log := c.log.With("cluster", cl.Name, "shard", name, "deadMaster", dead.Name, "at", last)
	master, err := sentinel.GetMasterAddrByName(ctx, c.pool.Sentinel(runner, cl.SentinelPassword), name)
	if err != nil || master == addr(dead) {
		return
	}
	rc := redis.NewClient(&redis.Options{Addr: last, Password: cl.Password, Protocol: 2, Dialer: c.dial, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	defer rc.Close()
	announced, err := rc.ConfigGet(ctx, "replica-announce-ip").Result()
	if err != nil {
		return // gone already: nothing to fence
	}
	if host, _, _ := net.SplitHostPort(addr(dead)); announced["replica-announce-ip"] != host {
		log.Info("departed master not fenced: another instance answers at its last address", "announces", announced["replica-announce-ip"])
		return
	}
	info, err := redisclient.GetInfo(ctx, rc, "replication")
	if err != nil || info["role"] != "master" {
		return
	}
	host, port, _ := net.SplitHostPort(master)
	// Through the leader's gate, like every command of the pool's clients.
	if err := c.leader.Gate(ctx, "replicaof", func() error { return rc.Do(ctx, "REPLICAOF", host, port).Err() }); err != nil {
		log.Info("departed master not fenced", "err", err)
		return
	}
	log.Info("fenced the deleted master's last process: a replica of the new master until the kubelet kills it", "master", master)
}
