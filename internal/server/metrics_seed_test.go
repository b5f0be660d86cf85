package server

import (
	"context"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// seedVaried stores two clusters whose statuses hold the cases the
// /metrics text must get right: an instance down (only redis_up), a
// replica with its link down, per-command figures both in the stored
// status and from the leader (variedCommands), several databases, a
// replica listed twice by its master, label values with a quote, a
// backslash and a newline, a negative and a huge value, a Sentinel in
// TILT, one down, one listing a master beyond the spec; and a cluster
// still without shards or Sentinels.
func seedVaried(t testing.TB, st store.Store) {
	t.Helper()
	ctx := context.Background()
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	m0 := api.InstanceStatus{Name: "alpha-0-0", Role: "master", Address: "127.0.0.1:7000", Up: true, Keys: 12, UsedMemoryBytes: 1 << 20,
		MaxmemoryBytes: 64 << 20, ConnectedClients: 7, MaxClients: 10000, KeyspaceHits: 5, KeyspaceMisses: 1, EvictedKeys: 2,
		RedisVersion: "7.0.15", RedisMode: "standalone", MaxmemoryPolicy: "noeviction", UptimeSeconds: 3600, CommandsProcessed: 1 << 62,
		ExpiredKeys: 3, NetInputBytes: 1234, NetOutputBytes: 5678, CPUSysSeconds: 0.125, CPUUserSeconds: 1.5, RDBLastBgsaveStatus: "ok",
		LatestForkUsec: 321, MemFragmentationRatio: 1.234, MasterReplOffset: 99999, ConnectedReplicas: 1,
		DBs:          map[string]api.DBKeys{"db0": {Keys: 10, Expires: 2}, "db3": {Keys: 2}},
		ReplicaLinks: []api.ReplicaLink{{Address: "127.0.0.1:7001", State: "online", Offset: 99990, LagSeconds: 1}, {Address: "127.0.0.1:7001", State: "wait_bgsave"}},
		Commands:     map[string]api.CommandStat{"get": {Calls: 10, Usec: 25}, "config|set": {Calls: 1, Usec: 1000001}}}
	r0 := api.InstanceStatus{Name: "alpha-0-1", Role: "replica", Address: "127.0.0.1:7001", Up: true, Keys: 10, UsedMemoryBytes: 900000,
		MaxmemoryBytes: 64 << 20, RedisVersion: "7.0.15", RedisMode: "standalone", MaxmemoryPolicy: `odd "policy" \ with` + "\nnewline",
		MasterLinkStatus: "down", MasterLastIOSecondsAgo: -1, LagBytes: -5, RDBLastBgsaveStatus: "err", MemFragmentationRatio: 0.5}
	m1 := api.InstanceStatus{Name: "alpha-1-0", Role: "master", Address: "127.0.0.1:7002", Up: false, Keys: 4}
	r1 := api.InstanceStatus{Name: "alpha-1-1", Role: "replica", Address: "127.0.0.1:7003", Up: true, MasterLinkStatus: "up", LagBytes: 0,
		RedisVersion: "7.2.4", RedisMode: "standalone", MaxmemoryPolicy: "allkeys-lru", RDBLastBgsaveStatus: "ok", MemFragmentationRatio: 1}
	masters := []api.SentinelMaster{{Name: "alpha-0", Address: "127.0.0.1:7000", Quorum: 2, ConfigEpoch: 1, OKReplicas: 1},
		{Name: "alpha-1", Address: "127.0.0.1:7003", Quorum: 2, ConfigEpoch: 4}, {Name: "alpha-5", Address: "127.0.0.1:7010", Quorum: 2}}
	alpha := api.ClusterStatus{Phase: api.PhaseDegraded, ObservedAt: &at,
		Shards: []api.ShardStatus{{Index: 0, SentinelName: "alpha-0", Master: &m0, Replicas: []api.InstanceStatus{r0}},
			{Index: 1, SentinelName: "alpha-1", Master: &m1, Replicas: []api.InstanceStatus{r1}}},
		Sentinels: []api.SentinelStatus{
			{Name: "alpha-sentinel-0", Address: "127.0.0.1:7100", Up: true, Tilt: true, Monitors: []string{"alpha-0", "alpha-1", "alpha-5"}, Masters: masters},
			{Name: "alpha-sentinel-1", Address: "127.0.0.1:7101", Up: false},
			{Name: "alpha-sentinel-2", Address: "127.0.0.1:7102", Up: true, Monitors: []string{"alpha-0"}, Masters: masters[:1]}}}
	for _, cl := range []store.Cluster{
		{Name: "alpha", Spec: api.ClusterSpec{Shards: 2, Replicas: 1, Sentinels: 3}, Status: alpha, Password: "pw-alpha", SentinelPassword: "spw-alpha", CreatedAt: at},
		{Name: "beta", Spec: api.ClusterSpec{Shards: 1, Replicas: 1, Sentinels: 3}, Status: api.ClusterStatus{Phase: api.PhaseCreating}, Password: "pw-beta", SentinelPassword: "spw-beta", CreatedAt: at},
	} {
		if err := st.CreateClusterWithJob(ctx, cl, jobspec.New(api.JobCreate, cl.Name, at)); err != nil {
			t.Fatal(err)
		}
	}
}

// variedCommands is the leader's in-memory per-command figures for
// seedVaried (alpha-0-0's stored ones win over these).
func variedCommands(cluster string) map[string]map[string]api.CommandStat {
	if cluster != "alpha" {
		return nil
	}
	return map[string]map[string]api.CommandStat{
		"alpha-0-0": {"set": {Calls: 99}},
		"alpha-0-1": {"replconf": {Calls: 3, Usec: 7}, "ping": {Calls: 1e6, Usec: 123456789}},
	}
}
