package topology

import (
	"reflect"
	"testing"

	"github.com/redis-manager/redis-manager/api"
)

func TestApplyUpdate(t *testing.T) {
	t.Parallel()
	base := api.ClusterSpec{Shards: 1, Replicas: 2, Sentinels: 3, Maxmemory: "100mb", MaxmemoryPolicy: "noeviction",
		Persistence: "rdb", Config: map[string]string{"hz": "10"}, FastFailover: true, MinReplicasToWrite: 1,
		Sentinel: api.SentinelSettings{DownAfterMs: 5000, FailoverTimeoutMs: 10000, ParallelSyncs: 1}}
	n := func(v int) *int { return &v }
	str := func(v string) *string { return &v }
	no := false

	if got := ApplyUpdate(base, api.UpdateClusterRequest{}); !reflect.DeepEqual(got, base) {
		t.Errorf("empty request changed the spec:\n got %+v\nwant %+v", got, base)
	}
	req := api.UpdateClusterRequest{Shards: n(2), Replicas: n(1), Sentinels: n(5), Maxmemory: str("1gb"),
		MaxmemoryPolicy: str("allkeys-lru"), Persistence: str("aof"), Config: map[string]string{"hz": "20"},
		FastFailover: &no, MinReplicasToWrite: n(0),
		Sentinel: &api.SentinelRequest{DownAfterMs: n(3000)}}
	want := api.ClusterSpec{Shards: 2, Replicas: 1, Sentinels: 5, Maxmemory: "1gb", MaxmemoryPolicy: "allkeys-lru",
		Persistence: "aof", Config: map[string]string{"hz": "20"}, FastFailover: false, MinReplicasToWrite: 0,
		Sentinel: api.SentinelSettings{DownAfterMs: 3000, FailoverTimeoutMs: 10000, ParallelSyncs: 1}}
	got := ApplyUpdate(base, req)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("full request:\n got %+v\nwant %+v", got, want)
	}
	// The result never shares its config map with the input or the request.
	got.Config["hz"] = "99"
	if base.Config["hz"] != "10" || req.Config["hz"] != "20" {
		t.Errorf("ApplyUpdate shares its config map: base %v request %v", base.Config, req.Config)
	}
	again := ApplyUpdate(base, api.UpdateClusterRequest{Replicas: n(0)})
	again.Config["hz"] = "99"
	if base.Config["hz"] != "10" {
		t.Errorf("ApplyUpdate without config shares the base's map: %v", base.Config)
	}
}

func TestConfigChanges(t *testing.T) {
	t.Parallel()
	base := api.ClusterSpec{Maxmemory: "100mb", MaxmemoryPolicy: "noeviction", Persistence: "rdb",
		Config: map[string]string{"hz": "10", "timeout": "0"}, MinReplicasToWrite: 1,
		Sentinel: api.SentinelSettings{DownAfterMs: 5000}}
	tests := []struct {
		name string
		mod  func(s *api.ClusterSpec)
		want [][2]string
	}{
		{"no change", func(*api.ClusterSpec) {}, nil},
		{"maxmemory in bytes", func(s *api.ClusterSpec) { s.Maxmemory = "1mb" }, [][2]string{{"maxmemory", "1048576"}}},
		{"policy", func(s *api.ClusterSpec) { s.MaxmemoryPolicy = "allkeys-lru" }, [][2]string{{"maxmemory-policy", "allkeys-lru"}}},
		{"persistence none", func(s *api.ClusterSpec) { s.Persistence = "none" }, [][2]string{{"save", ""}, {"appendonly", "no"}}},
		{"persistence aof", func(s *api.ClusterSpec) { s.Persistence = "aof" }, [][2]string{{"save", ""}, {"appendonly", "yes"}}},
		{"min replicas off", func(s *api.ClusterSpec) { s.MinReplicasToWrite = 0 },
			[][2]string{{"min-replicas-to-write", "0"}, {"min-replicas-max-lag", "1"}}},
		{"down-after changes the allowed lag", func(s *api.ClusterSpec) { s.Sentinel.DownAfterMs = 10000 },
			[][2]string{{"min-replicas-to-write", "1"}, {"min-replicas-max-lag", "5"}}},
		{"config keys changed or added, sorted", func(s *api.ClusterSpec) {
			s.Config = map[string]string{"timeout": "30", "hz": "10", "databases": "4"}
		}, [][2]string{{"databases", "4"}, {"timeout", "30"}}},
	}
	for _, tc := range tests {
		to := base
		to.Config = map[string]string{}
		for k, v := range base.Config {
			to.Config[k] = v
		}
		tc.mod(&to)
		if got := ConfigChanges(base, to); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
