package controller

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/store"
)

// waitDeparted makes sure the last process of a deleted instance takes no
// more writes, and tells whether it does not. A deleted pod's container
// runs on until the kubelet has killed it (0.5-1.8 s after a forced
// deletion on the test node; a graceful one lasts the redis-server's
// shutdown), while its name already leads nowhere, so the dead master's
// port looks closed through the platform's dialer. That master still takes
// writes and streams them to its replicas: their offsets still move, and a
// replica picked for the highest offset may fall behind another one that
// then acknowledges writes the promoted replica never gets
// (bench/k8s-failover lost 41 and 215 acknowledged writes that way under
// load). So the manager reaches the process at the address the platform
// remembers (platform.Departed) and, when it answers as the dead instance
// (its announced name: the address may be another pod's by now), pauses
// its writes (CLIENT PAUSE WRITE): from then on the offsets only grow by
// what is already on its way, as after a crash. When it cannot pause it,
// it waits until nothing accepts connections there.
func (c *Controller) waitDeparted(ctx context.Context, cl store.Cluster, dead store.Instance, log *slog.Logger) bool {
	if c.departed == nil {
		return true
	}
	last, ok := c.departed.DepartedAddr(platform.ID{Cluster: cl.Name, Name: dead.Name})
	if !ok {
		return true
	}
	if c.pauseDeparted(ctx, cl, dead, last) {
		log.Info("fast failover: writes of the deleted master's last process paused", "at", last)
		return true
	}
	start := time.Now()
	deadline := start.Add(departedWait)
	for {
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		conn, err := c.dial(dctx, "tcp", last)
		cancel()
		if err != nil {
			if d := time.Since(start); d > 50*time.Millisecond {
				log.Info("fast failover: the deleted master's last process is gone", "at", last, "waitedMs", d.Milliseconds())
			}
			return true
		}
		conn.Close()
		if time.Now().After(deadline) {
			log.Warn("fast failover declined: the deleted master's last process still accepts connections; Sentinel fails over after down-after-milliseconds", "at", last)
			return false
		}
		if sleep(ctx, 20*time.Millisecond) != nil {
			return false
		}
	}
}

// departedWait bounds waitDeparted: the kubelet kills a deleted pod's
// container after its grace period, at least 2 s after a forced deletion.
const departedWait = 5 * time.Second

// pauseDeparted pauses the writes of the process at last if it is the dead
// instance's (CLIENT PAUSE WRITE, through the leader's gate), and tells
// whether it did.
func (c *Controller) pauseDeparted(ctx context.Context, cl store.Cluster, dead store.Instance, last string) bool {
	rc := redis.NewClient(&redis.Options{Addr: last, Password: cl.Password, Protocol: 2, Dialer: c.dial, MaxRetries: -1,
		DialTimeout: 100 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	defer rc.Close()
	announced, err := rc.ConfigGet(ctx, "replica-announce-ip").Result()
	if host, _, _ := net.SplitHostPort(addr(dead)); err != nil || announced["replica-announce-ip"] != host {
		return false
	}
	return c.leader.Gate(ctx, "client pause", func() error {
		return rc.Do(ctx, "CLIENT", "PAUSE", departedPause.Milliseconds(), "WRITE").Err()
	}) == nil
}

// departedPause is how long a deleted master's last process is paused: it
// dies well before (the kubelet's grace period).
const departedPause = 30 * time.Second
