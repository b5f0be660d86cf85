package kubernetes

import (
	"context"
	"fmt"

	"github.com/redis-manager/redis-manager/internal/platform"
)

// ReplicaRoom implements platform.ReplicaRoom: a new replica is a pod of
// its own with its own limit (memoryOf: twice maxmemory and more), so what
// can run out is the master's pod, whose fork's copy-on-write counts
// against its memory limit beside the dataset. A pod without a limit
// (no maxmemory) has no bound: have 0.
func (p *Platform) ReplicaRoom(_ context.Context, master platform.ID, used, cow int64) (need, have int64, bound string, err error) {
	pod, err := p.pods.Pods(p.opts.Namespace).Get(master.Name)
	if err != nil {
		return 0, 0, "", fmt.Errorf("pod %s: %w", master.Name, err)
	}
	for _, c := range pod.Spec.Containers {
		if c.Name != containerOf(platform.KindRedis) {
			continue
		}
		if lim, ok := c.Resources.Limits["memory"]; ok {
			return used + cow, lim.Value(), "the memory limit of pod " + pod.Name, nil
		}
	}
	return used + cow, 0, "", nil
}
