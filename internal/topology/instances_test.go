package topology

import (
	"reflect"
	"testing"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

func TestPlanAdditionsFromNothing(t *testing.T) {
	t.Parallel()
	cl := store.Cluster{Name: "orders", Spec: api.ClusterSpec{Shards: 2, Replicas: 1, Sentinels: 3}}
	want := []Planned{
		{"orders-sentinel-0", store.KindSentinel, -1, 0},
		{"orders-sentinel-1", store.KindSentinel, -1, 1},
		{"orders-sentinel-2", store.KindSentinel, -1, 2},
		{"orders-0-0", store.KindRedis, 0, 0},
		{"orders-0-1", store.KindRedis, 0, 1},
		{"orders-1-0", store.KindRedis, 1, 0},
		{"orders-1-1", store.KindRedis, 1, 1},
	}
	if got := PlanAdditions(cl, nil); !reflect.DeepEqual(got, want) {
		t.Fatalf("PlanAdditions(nil):\n got %+v\nwant %+v", got, want)
	}
	for _, s := range []api.ClusterSpec{{Shards: 1, Replicas: 0, Sentinels: 1}, {Shards: 3, Replicas: 2, Sentinels: 5}, {Shards: 16, Replicas: 10, Sentinels: 9}} {
		got := PlanAdditions(store.Cluster{Name: "c", Spec: s}, nil)
		if len(got) != spec.InstanceCount(s) {
			t.Errorf("%+v: %d planned instances, spec.InstanceCount says %d", s, len(got), spec.InstanceCount(s))
		}
		names := map[string]bool{}
		for _, p := range got {
			if names[p.Name] {
				t.Errorf("%+v: %s planned twice", s, p.Name)
			}
			names[p.Name] = true
		}
	}
}

func TestPlanAdditions(t *testing.T) {
	t.Parallel()
	rec := func(shard, ordinal int) store.Instance {
		if shard < 0 {
			return store.Instance{Name: spec.SentinelInstanceName("orders", ordinal), Shard: -1, Ordinal: ordinal}
		}
		return store.Instance{Name: spec.InstanceName("orders", shard, ordinal), Shard: shard, Ordinal: ordinal}
	}
	names := func(ps []Planned) []string {
		out := []string{}
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	tests := []struct {
		name     string
		spec     api.ClusterSpec
		existing []store.Instance
		want     []string
	}{
		{"complete: nothing to add", api.ClusterSpec{Shards: 1, Replicas: 1, Sentinels: 1},
			[]store.Instance{rec(-1, 0), rec(0, 0), rec(0, 1)}, []string{}},
		{"one more replica", api.ClusterSpec{Shards: 1, Replicas: 2, Sentinels: 1},
			[]store.Instance{rec(-1, 0), rec(0, 0), rec(0, 1)}, []string{"orders-0-2"}},
		{"a gap left by a scale-in is filled first", api.ClusterSpec{Shards: 1, Replicas: 2, Sentinels: 1},
			[]store.Instance{rec(-1, 0), rec(0, 0), rec(0, 2)}, []string{"orders-0-1"}},
		{"gap then beyond", api.ClusterSpec{Shards: 1, Replicas: 3, Sentinels: 1},
			[]store.Instance{rec(-1, 0), rec(0, 1), rec(0, 3)}, []string{"orders-0-0", "orders-0-2"}},
		{"a new shard and two Sentinels", api.ClusterSpec{Shards: 2, Replicas: 1, Sentinels: 3},
			[]store.Instance{rec(-1, 0), rec(0, 0), rec(0, 1)}, []string{"orders-sentinel-1", "orders-sentinel-2", "orders-1-0", "orders-1-1"}},
		{"more records than the spec: nothing to add", api.ClusterSpec{Shards: 1, Replicas: 0, Sentinels: 1},
			[]store.Instance{rec(-1, 0), rec(-1, 1), rec(0, 0), rec(0, 1)}, []string{}},
	}
	for _, tc := range tests {
		got := names(PlanAdditions(store.Cluster{Name: "orders", Spec: tc.spec}, tc.existing))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	// Kinds and ordinals follow the names.
	got := PlanAdditions(store.Cluster{Name: "orders", Spec: api.ClusterSpec{Shards: 1, Replicas: 2, Sentinels: 1}},
		[]store.Instance{rec(-1, 0), rec(0, 0), rec(0, 2)})
	if want := []Planned{{"orders-0-1", store.KindRedis, 0, 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("gap: got %+v, want %+v", got, want)
	}
}

func TestPlanRemovals(t *testing.T) {
	t.Parallel()
	rec := func(shard, ordinal int) store.Instance {
		name := spec.InstanceName("orders", shard, ordinal)
		if shard < 0 {
			name = spec.SentinelInstanceName("orders", ordinal)
		}
		return store.Instance{Name: name, Shard: shard, Ordinal: ordinal, Host: "127.0.0.1", Port: 7000 + 10*(shard+1) + ordinal}
	}
	shard0 := []store.Instance{rec(0, 0), rec(0, 1), rec(0, 2)}
	names := func(ins []store.Instance) []string {
		out := []string{}
		for _, in := range ins {
			out = append(out, in.Name)
		}
		return out
	}
	tests := []struct {
		name     string
		spec     api.ClusterSpec
		existing []store.Instance
		masters  map[int]string
		ordered  bool
		want     []string
	}{
		{"nothing beyond the spec", api.ClusterSpec{Shards: 1, Replicas: 2, Sentinels: 3}, shard0,
			map[int]string{0: Addr(rec(0, 0))}, false, []string{}},
		{"highest ordinal goes", api.ClusterSpec{Shards: 1, Replicas: 1, Sentinels: 3}, shard0,
			map[int]string{0: Addr(rec(0, 0))}, false, []string{"orders-0-2"}},
		{"never the current master (promoted replica kept)", api.ClusterSpec{Shards: 1, Replicas: 1, Sentinels: 3}, shard0,
			map[int]string{0: Addr(rec(0, 2))}, false, []string{"orders-0-1"}},
		{"down to no replica keeps only the master", api.ClusterSpec{Shards: 1, Replicas: 0, Sentinels: 3}, shard0,
			map[int]string{0: Addr(rec(0, 1))}, false, []string{"orders-0-0", "orders-0-2"}},
		{"a shard beyond the spec goes whole, master included", api.ClusterSpec{Shards: 1, Replicas: 2, Sentinels: 3},
			append(append([]store.Instance{}, shard0...), rec(1, 0), rec(1, 1), rec(1, 2)),
			map[int]string{0: Addr(rec(0, 0)), 1: Addr(rec(1, 0))}, false, []string{"orders-1-0", "orders-1-1", "orders-1-2"}},
		{"Sentinels: highest ordinals", api.ClusterSpec{Shards: 1, Replicas: 2, Sentinels: 3},
			[]store.Instance{rec(-1, 0), rec(-1, 1), rec(-1, 2), rec(-1, 3), rec(-1, 4)}, nil,
			false, []string{"orders-sentinel-3", "orders-sentinel-4"}},
		{"ordered: the highest ordinals, the master too", api.ClusterSpec{Shards: 1, Replicas: 1, Sentinels: 3}, shard0,
			map[int]string{0: Addr(rec(0, 2))}, true, []string{"orders-0-2"}},
		{"ordered: down to no replica", api.ClusterSpec{Shards: 1, Replicas: 0, Sentinels: 3}, shard0,
			map[int]string{0: Addr(rec(0, 1))}, true, []string{"orders-0-1", "orders-0-2"}},
	}
	for _, tc := range tests {
		got := names(PlanRemovals(tc.spec, tc.existing, tc.masters, tc.ordered))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
