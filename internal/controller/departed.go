package controller

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/store"
)

// waitDeparted waits until the last process of a deleted instance no
// longer accepts connections at the address the platform remembers
// (platform.Departed), and tells whether it is gone. A deleted pod's
// container runs on until the kubelet has killed it (0.5-1.8 s after a
// forced deletion on the test node), while its name already leads nowhere,
// so the dead master's port looks closed through the platform's dialer.
// That master still takes writes and streams them to its replicas: their
// offsets still move, and a replica picked for the highest offset may fall
// behind another one that then acknowledges writes the promoted replica
// never gets (bench/k8s-failover lost 41 and 215 acknowledged writes that
// way under load). The failover waits for the process to go; it has to go
// before clients can write elsewhere anyway.
func (c *Controller) waitDeparted(ctx context.Context, cl store.Cluster, dead store.Instance, log *slog.Logger) bool {
	if c.departed == nil {
		return true
	}
	last, ok := c.departed.DepartedAddr(platform.ID{Cluster: cl.Name, Name: dead.Name})
	if !ok {
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
