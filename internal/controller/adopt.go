package controller

import (
	"context"

	"github.com/redis-manager/redis-manager/internal/platform"
)

// adoptSnapshot is the platform's platform.SnapshotAdopter, passed through
// the leader's gate like every platform action (adopting deletes the
// followed task at its end); ok is false when the platform has none.
func (c *Controller) adoptSnapshot() (adopt func(ctx context.Context, key string, progress func(platform.TaskProgress)) (platform.TaskResult, bool, error), ok bool) {
	p := c.platform
	var gate func(ctx context.Context, op string, act func() error) error
	if g, isGated := p.(gatedPlatform); isGated {
		p, gate = g.Platform, g.gate
	}
	a, ok := p.(platform.SnapshotAdopter)
	if !ok {
		return nil, false
	}
	if gate == nil {
		return a.AdoptSnapshot, true
	}
	return func(ctx context.Context, key string, progress func(platform.TaskProgress)) (res platform.TaskResult, found bool, err error) {
		err = gate(ctx, "platform adopt snapshot "+key, func() error {
			res, found, err = a.AdoptSnapshot(ctx, key, progress)
			return err
		})
		return res, found, err
	}, true
}
