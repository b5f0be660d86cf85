package controller

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/platform/fake"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/store/storetest"
)

func newSeamController(t *testing.T, limit int) (*Controller, *fake.Platform, store.Store) {
	t.Helper()
	dir := t.TempDir()
	st := storetest.SQLite(t, dir)
	p := fake.New(fake.Options{Limit: limit})
	return New(Config{}, st, p, slog.New(slog.DiscardHandler)), p, st
}

// On a platform that names instances by DNS and gives every redis-server
// the same port (as Kubernetes will), allocation records each instance's
// own endpoint and keeps them on a resumed job.
func TestAllocateOnDNSPlatform(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _, st := newSeamController(t, 10)
	cl := store.Cluster{Name: "orders", Spec: api.ClusterSpec{Shards: 2, Replicas: 1, Sentinels: 3}}
	got, err := c.allocate(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != spec.InstanceCount(cl.Spec) {
		t.Fatalf("allocate gave %d records, want %d", len(got), spec.InstanceCount(cl.Spec))
	}
	for name, in := range got {
		wantPort := fake.RedisPort
		if in.Kind == store.KindSentinel {
			wantPort = fake.SentinelPort
		}
		if in.Host != name+".orders.fake" || in.Port != wantPort || addr(in) != in.Host+":"+strconv.Itoa(wantPort) {
			t.Errorf("%s: endpoint %s:%d", name, in.Host, in.Port)
		}
	}
	// Resumed: the same records, nothing new.
	again, err := c.allocate(ctx, cl)
	if err != nil || len(again) != len(got) {
		t.Fatalf("allocate again = %d records, %v", len(again), err)
	}
	for name, in := range again {
		if in.Host != got[name].Host || in.Port != got[name].Port {
			t.Errorf("%s moved from %s:%d to %s:%d", name, got[name].Host, got[name].Port, in.Host, in.Port)
		}
	}
	if all, err := st.ListAllInstances(ctx); err != nil || len(all) != 7 {
		t.Fatalf("stored %d instances, %v", len(all), err)
	}

	// Admission counts these records against the platform's capacity:
	// internal/service TestCapacityOnDNSPlatform.
	// Scaling past the platform's room fails with ErrNoCapacity.
	cl.Spec.Replicas = 3
	if _, err := c.allocate(ctx, cl); !errors.Is(err, platform.ErrNoCapacity) {
		t.Errorf("allocate beyond the platform's room: %v, want ErrNoCapacity", err)
	}
}

// adopt re-attaches every recorded instance through its handle and records
// the handle the platform returns; the API's pid comes from it.
func TestAdoptRecordsHandles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, p, st := newSeamController(t, 10)
	cl := store.Cluster{Name: "web", Password: "pw", SentinelPassword: "spw", Spec: api.ClusterSpec{Shards: 1, Replicas: 1, Sentinels: 1}}
	recs, err := c.allocate(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	master := recs["web-0-0"]
	if err := c.ensureRedis(ctx, cl, master, addr(master), []store.Instance{recs["web-sentinel-0"]}); err != nil {
		t.Fatal(err)
	}
	boot, ok := p.Booted(id(master))
	if !ok || boot.Boots != 1 || strings.Contains(boot.Config, "replicaof") {
		t.Fatalf("planned master booted %+v, want once, as master", boot)
	}
	replica := recs["web-0-1"]
	if err := c.ensureRedis(ctx, cl, replica, addr(master), []store.Instance{recs["web-sentinel-0"]}); err != nil {
		t.Fatal(err)
	}
	if boot, _ := p.Booted(id(replica)); !strings.Contains(boot.Config, "replicaof web-0-0.web.fake 6379") {
		t.Errorf("replica's config:\n%s", boot.Config)
	}
	stored := func(name string) store.Instance {
		ins, err := st.ListInstances(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range ins {
			if in.Name == name {
				return in
			}
		}
		t.Fatalf("no record of %s", name)
		return store.Instance{}
	}
	h := stored("web-0-0").Handle
	if p.Describe(h).Pid == 0 {
		t.Fatalf("recorded handle %q names no pid", h)
	}

	// A crash and a restart by someone else: the next manager adopts the
	// new process and records its handle.
	if err := p.Kill(id(master)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Ensure(ctx, platform.InstanceSpec{ID: id(master), Kind: platform.KindRedis, Endpoint: endpoint(master),
		Redis: &spec.RedisConfig{Password: "pw"}}); err != nil {
		t.Fatal(err)
	}
	c2 := New(Config{}, st, p.Restart(), slog.New(slog.DiscardHandler))
	if err := c2.adopt(ctx); err != nil {
		t.Fatal(err)
	}
	h2 := stored("web-0-0").Handle
	if p.Describe(h2).Pid == 0 || p.Describe(h2) == p.Describe(h) {
		t.Errorf("handle after adoption %q, before %q: want the new process's", h2, h)
	}
}
