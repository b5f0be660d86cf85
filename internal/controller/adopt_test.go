package controller

import (
	"context"
	"testing"

	"github.com/redis-manager/redis-manager/internal/platform"
)

type adopterPlatform struct {
	platform.Platform
	keys []string
}

func (a *adopterPlatform) AdoptSnapshot(_ context.Context, key string, _ func(platform.TaskProgress)) (platform.TaskResult, bool, error) {
	a.keys = append(a.keys, key)
	return platform.TaskResult{Bytes: 7}, true, nil
}

// The leader's gated platform still offers the inner platform's adopter,
// through the gate; a platform without one offers none.
func TestAdoptSnapshotThroughGate(t *testing.T) {
	inner := &adopterPlatform{}
	var gated []string
	c := &Controller{platform: gatedPlatform{Platform: inner, gate: func(_ context.Context, op string, act func() error) error {
		gated = append(gated, op)
		return act()
	}}}
	adopt, ok := c.adoptSnapshot()
	if !ok {
		t.Fatal("the gated platform hides the adopter")
	}
	res, found, err := adopt(context.Background(), "c/0/k.rdb", nil)
	if err != nil || !found || res.Bytes != 7 || len(inner.keys) != 1 || inner.keys[0] != "c/0/k.rdb" {
		t.Fatalf("adopt: %+v %v %v, keys %v", res, found, err, inner.keys)
	}
	if len(gated) != 1 || gated[0] != "platform adopt snapshot c/0/k.rdb" {
		t.Errorf("gate saw %v", gated)
	}
	c = &Controller{platform: gatedPlatform{Platform: struct{ platform.Platform }{}}}
	if _, ok := c.adoptSnapshot(); ok {
		t.Error("a platform without an adopter offers one")
	}
}
