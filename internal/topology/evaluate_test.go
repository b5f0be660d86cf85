package topology

import (
	"fmt"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// --- evaluate ------------------------------------------------------------

const fxHost = "127.0.0.1"

func fxAddr(port int) string { return net.JoinHostPort(fxHost, strconv.Itoa(port)) }

// Ports of the fixtures: redis <shard>-<ordinal> on 7000+10*shard+ordinal,
// Sentinels on 7100+ordinal.
func fxRedisPort(shard, ordinal int) int { return 7000 + 10*shard + ordinal }

// fxCluster builds a healthy observation of a shards×replicas cluster with
// the given Sentinels: ordinal 0 is master at offset 1000, replica ordinal
// o is at offset 1000-100*(o-1), and every Sentinel names ordinal 0 with all
// replicas. Each Sentinel also monitors a shard of another cluster.
func fxCluster(shards, replicas, sentinels int) (api.ClusterSpec, Observation) {
	s := api.ClusterSpec{Shards: shards, Replicas: replicas, Sentinels: sentinels,
		Sentinel: api.SentinelSettings{DownAfterMs: 5000, FailoverTimeoutMs: 10000, ParallelSyncs: 1}}
	obs := Observation{At: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
	views := map[string]sentinel.Master{"other-0": {Name: "other-0", Addr: fxAddr(9000)}}
	for sh := 0; sh < shards; sh++ {
		master := fxRedisPort(sh, 0)
		m := sentinel.Master{Name: spec.MasterName("orders", sh), Addr: fxAddr(master), Flags: []string{"master"}, Quorum: spec.Quorum(sentinels), NumOtherSentinels: sentinels - 1}
		for o := 0; o <= replicas; o++ {
			port := fxRedisPort(sh, o)
			in := store.Instance{Name: spec.InstanceName("orders", sh, o), Cluster: "orders", Kind: store.KindRedis,
				Shard: sh, Ordinal: o, Host: fxHost, Port: port}
			info := redisclient.Info{"process_id": strconv.Itoa(port + 10000), "used_memory": "1048576",
				"db0": "keys=5,expires=0,avg_ttl=0", "db1": "keys=2,expires=1,avg_ttl=0",
				"instantaneous_ops_per_sec": "120", "connected_clients": "4", "maxmemory": "268435456",
				"keyspace_hits": "30", "keyspace_misses": "10", "evicted_keys": "2", "used_cpu_sys": "1.250000", "used_cpu_user": "0.500000",
				"redis_version": "7.0.15", "redis_mode": "standalone", "maxmemory_policy": "noeviction", "uptime_in_seconds": "3600",
				"total_commands_processed": "900", "blocked_clients": "1", "maxclients": "10000", "expired_keys": "3", "total_net_input_bytes": "5000",
				"total_net_output_bytes": "7000", "rdb_last_bgsave_status": "ok", "latest_fork_usec": "250", "mem_fragmentation_ratio": "1.50",
				"cmdstat_get": "calls=21,usec=175,usec_per_call=8.33,rejected_calls=0,failed_calls=0", "cmdstat_set": "calls=61,usec=3139,usec_per_call=51.46"}
			ro := RedisObs{In: in, Details: platform.Details{Pid: 1}, Up: true, Info: info}
			if o == 0 {
				info["role"] = "master"
				info["master_repl_offset"] = "1000"
				info["connected_slaves"] = strconv.Itoa(replicas)
				for r := 1; r <= replicas; r++ {
					info["slave"+strconv.Itoa(r-1)] = fmt.Sprintf("ip=%s,port=%d,state=online,offset=%d,lag=%d", fxHost, fxRedisPort(sh, r), 1000-100*(r-1), r-1)
				}
			} else {
				info["role"] = "slave"
				info["master_host"], info["master_port"] = fxHost, strconv.Itoa(master)
				info["master_link_status"] = "up"
				info["slave_repl_offset"] = strconv.Itoa(1000 - 100*(o-1))
				info["master_last_io_seconds_ago"] = "1"
				ro.Master = fxAddr(master)
				m.Replicas = append(m.Replicas, sentinel.Replica{Addr: fxAddr(port), Flags: []string{"slave"}, MasterLinkStatus: "ok"})
			}
			obs.Redis = append(obs.Redis, ro)
		}
		views[m.Name] = m
	}
	for i := 0; i < sentinels; i++ {
		in := store.Instance{Name: spec.SentinelInstanceName("orders", i), Cluster: "orders", Kind: store.KindSentinel,
			Shard: -1, Ordinal: i, Host: fxHost, Port: 7100 + i}
		// Each Sentinel has its own copy of the view, so a case can change one.
		v := map[string]sentinel.Master{}
		for k, m := range views {
			m.Replicas = append([]sentinel.Replica(nil), m.Replicas...)
			v[k] = m
		}
		obs.Sentinels = append(obs.Sentinels, SentinelObs{In: in, Details: platform.Details{Pid: 200 + i}, Up: true, View: v})
	}
	return s, obs
}

// fxRedis returns the observation of the named instance, for a case to
// change.
func fxRedis(t *testing.T, obs *Observation, name string) *RedisObs {
	t.Helper()
	for i := range obs.Redis {
		if obs.Redis[i].In.Name == name {
			return &obs.Redis[i]
		}
	}
	t.Fatalf("no instance %s in the fixture", name)
	return nil
}

// fxNameMaster makes Sentinel i name port master of shard 0.
func fxNameMaster(obs *Observation, i, port int) {
	m := obs.Sentinels[i].View["orders-0"]
	m.Addr = fxAddr(port)
	obs.Sentinels[i].View["orders-0"] = m
}

func TestEvaluateHealthy(t *testing.T) {
	t.Parallel()
	s, obs := fxCluster(1, 2, 3)
	st := Evaluate(s, "orders", obs, "")
	if st.Phase != api.PhaseReady || st.Reason != "" {
		t.Fatalf("phase %q reason %q, want Ready with no reason", st.Phase, st.Reason)
	}
	if st.ObservedAt == nil || !st.ObservedAt.Equal(obs.At) {
		t.Fatalf("ObservedAt = %v, want %v", st.ObservedAt, obs.At)
	}
	if len(st.Shards) != 1 {
		t.Fatalf("%d shards, want 1", len(st.Shards))
	}
	sh := st.Shards[0]
	if sh.Index != 0 || sh.SentinelName != "orders-0" {
		t.Errorf("shard = index %d name %q", sh.Index, sh.SentinelName)
	}
	// more sets the figures every fixture instance shares.
	more := func(is api.InstanceStatus) api.InstanceStatus {
		is.RedisVersion, is.RedisMode, is.MaxmemoryPolicy, is.UptimeSeconds = "7.0.15", "standalone", "noeviction", 3600
		is.CommandsProcessed, is.BlockedClients, is.ExpiredKeys, is.NetInputBytes, is.NetOutputBytes = 900, 1, 3, 5000, 7000
		is.MaxClients = 10000
		is.CPUSysSeconds, is.CPUUserSeconds, is.RDBLastBgsaveStatus, is.LatestForkUsec, is.MemFragmentationRatio = 1.25, 0.5, "ok", 250, 1.5
		is.DBs = map[string]api.DBKeys{"db0": {Keys: 5}, "db1": {Keys: 2, Expires: 1}}
		is.Commands = map[string]api.CommandStat{"get": {Calls: 21, Usec: 175}, "set": {Calls: 61, Usec: 3139}}
		if is.Role == "replica" {
			is.MasterLastIOSecondsAgo = 1
		}
		return is
	}
	wantMaster := more(api.InstanceStatus{Name: "orders-0-0", Address: "127.0.0.1:7000", Role: "master", Up: true,
		Pid: 17000, LagBytes: 0, Keys: 7, UsedMemoryBytes: 1048576, OpsPerSec: 120, ConnectedClients: 4, MaxmemoryBytes: 268435456, KeyspaceHits: 30, KeyspaceMisses: 10, UsedCPUSeconds: 1.75, EvictedKeys: 2})
	wantMaster.ConnectedReplicas, wantMaster.MasterReplOffset = 2, 1000
	wantMaster.ReplicaLinks = []api.ReplicaLink{{Address: "127.0.0.1:7001", State: "online", Offset: 1000, LagSeconds: 0},
		{Address: "127.0.0.1:7002", State: "online", Offset: 900, LagSeconds: 1}}
	if sh.Master == nil || !reflect.DeepEqual(*sh.Master, wantMaster) {
		t.Errorf("master = %+v, want %+v", sh.Master, wantMaster)
	}
	wantReplicas := []api.InstanceStatus{
		more(api.InstanceStatus{Name: "orders-0-1", Address: "127.0.0.1:7001", Role: "replica", Up: true, Pid: 17001, MasterLinkStatus: "up", LagBytes: 0, Keys: 7, UsedMemoryBytes: 1048576,
			OpsPerSec: 120, ConnectedClients: 4, MaxmemoryBytes: 268435456, KeyspaceHits: 30, KeyspaceMisses: 10, UsedCPUSeconds: 1.75, EvictedKeys: 2}),
		more(api.InstanceStatus{Name: "orders-0-2", Address: "127.0.0.1:7002", Role: "replica", Up: true, Pid: 17002, MasterLinkStatus: "up", LagBytes: 100, Keys: 7, UsedMemoryBytes: 1048576,
			OpsPerSec: 120, ConnectedClients: 4, MaxmemoryBytes: 268435456, KeyspaceHits: 30, KeyspaceMisses: 10, UsedCPUSeconds: 1.75, EvictedKeys: 2}),
	}
	if !reflect.DeepEqual(sh.Replicas, wantReplicas) {
		t.Errorf("replicas:\n got %+v\nwant %+v", sh.Replicas, wantReplicas)
	}
	if len(st.Sentinels) != 3 {
		t.Fatalf("%d Sentinels, want 3", len(st.Sentinels))
	}
	for i, ss := range st.Sentinels {
		want := api.SentinelStatus{Name: spec.SentinelInstanceName("orders", i), Address: fxAddr(7100 + i), Up: true, Pid: 200 + i,
			Monitors: []string{"orders-0"}, Masters: []api.SentinelMaster{{Name: "orders-0", Address: "127.0.0.1:7000", Quorum: 2, ConfigEpoch: 0, OKReplicas: 2}}}
		if !reflect.DeepEqual(ss, want) {
			t.Errorf("Sentinel %d = %+v, want %+v (monitors of other clusters left out)", i, ss, want)
		}
	}
}

func TestEvaluateHealthyShards(t *testing.T) {
	t.Parallel()
	s, obs := fxCluster(3, 1, 1)
	st := Evaluate(s, "orders", obs, "")
	if st.Phase != api.PhaseReady || st.Reason != "" {
		t.Fatalf("phase %q reason %q, want Ready", st.Phase, st.Reason)
	}
	if len(st.Shards) != 3 {
		t.Fatalf("%d shards, want 3", len(st.Shards))
	}
	for i, sh := range st.Shards {
		if sh.Index != i || sh.SentinelName != spec.MasterName("orders", i) {
			t.Errorf("shard %d = index %d name %s", i, sh.Index, sh.SentinelName)
		}
		if sh.Master == nil || sh.Master.Name != spec.InstanceName("orders", i, 0) {
			t.Errorf("shard %d master = %+v", i, sh.Master)
		}
		if len(sh.Replicas) != 1 || sh.Replicas[0].Name != spec.InstanceName("orders", i, 1) {
			t.Errorf("shard %d replicas = %+v", i, sh.Replicas)
		}
	}
	if got := st.Sentinels[0].Monitors; !reflect.DeepEqual(got, []string{"orders-0", "orders-1", "orders-2"}) {
		t.Errorf("monitors = %q, want the three shards sorted", got)
	}
}

// After a failover the master is whom Sentinel names, not ordinal 0.
func TestEvaluateAfterFailover(t *testing.T) {
	t.Parallel()
	s, obs := fxCluster(1, 2, 3)
	for i := range obs.Sentinels {
		m := obs.Sentinels[i].View["orders-0"]
		m.Addr = fxAddr(7001)
		m.Replicas = []sentinel.Replica{{Addr: fxAddr(7000), Flags: []string{"slave"}}, {Addr: fxAddr(7002), Flags: []string{"slave"}}}
		obs.Sentinels[i].View["orders-0"] = m
	}
	newMaster := fxRedis(t, &obs, "orders-0-1")
	newMaster.Info = redisclient.Info{"role": "master", "master_repl_offset": "5000"}
	newMaster.Master = ""
	for _, n := range []string{"orders-0-0", "orders-0-2"} {
		r := fxRedis(t, &obs, n)
		r.Info = redisclient.Info{"role": "slave", "master_host": fxHost, "master_port": "7001", "master_link_status": "up", "slave_repl_offset": "4000"}
		r.Master = fxAddr(7001)
	}
	st := Evaluate(s, "orders", obs, "")
	if st.Phase != api.PhaseReady || st.Reason != "" {
		t.Fatalf("phase %q reason %q, want Ready", st.Phase, st.Reason)
	}
	sh := st.Shards[0]
	if sh.Master == nil || sh.Master.Name != "orders-0-1" {
		t.Fatalf("master = %+v, want orders-0-1", sh.Master)
	}
	var names []string
	for _, r := range sh.Replicas {
		names = append(names, r.Name)
		if r.LagBytes != 1000 {
			t.Errorf("%s lag = %d, want 1000 (new master's offset minus its own)", r.Name, r.LagBytes)
		}
	}
	if !reflect.DeepEqual(names, []string{"orders-0-0", "orders-0-2"}) {
		t.Errorf("replicas = %q", names)
	}
}

func TestEvaluateProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mod    func(t *testing.T, obs *Observation)
		reason []string // substrings the reason must contain
		check  func(t *testing.T, st api.ClusterStatus)
	}{
		{
			name: "replica link down",
			mod: func(t *testing.T, obs *Observation) {
				fxRedis(t, obs, "orders-0-2").Info["master_link_status"] = "down"
			},
			reason: []string{"orders-0-2", "link down", "1 replicas with link up, spec wants 2"},
			check: func(t *testing.T, st api.ClusterStatus) {
				if got := st.Shards[0].Replicas[1]; got.Name != "orders-0-2" || got.MasterLinkStatus != "down" || !got.Up {
					t.Errorf("replica = %+v, want orders-0-2 up with link down", got)
				}
			},
		},
		{
			name: "replica replicates another address",
			mod: func(t *testing.T, obs *Observation) {
				fxRedis(t, obs, "orders-0-1").Master = fxAddr(7999)
			},
			reason: []string{"orders-0-1 replicates 127.0.0.1:7999"},
		},
		{
			name: "replica down",
			mod: func(t *testing.T, obs *Observation) {
				r := fxRedis(t, obs, "orders-0-1")
				r.Up, r.Info, r.Master = false, nil, ""
			},
			reason: []string{"orders-0-1 is down"},
			check: func(t *testing.T, st api.ClusterStatus) {
				if got := st.Shards[0].Replicas[0]; got.Name != "orders-0-1" || got.Up || got.Pid != 1 || got.Role != "" {
					t.Errorf("replica = %+v, want orders-0-1 down with its recorded pid", got)
				}
			},
		},
		{
			name: "master down",
			mod: func(t *testing.T, obs *Observation) {
				r := fxRedis(t, obs, "orders-0-0")
				r.Up, r.Info = false, nil
			},
			reason: []string{"master orders-0-0 of shard 0 is down"},
			check: func(t *testing.T, st api.ClusterStatus) {
				if m := st.Shards[0].Master; m == nil || m.Name != "orders-0-0" || m.Up {
					t.Errorf("master = %+v, want orders-0-0 shown down", m)
				}
			},
		},
		{
			name: "Sentinel down",
			mod: func(t *testing.T, obs *Observation) {
				obs.Sentinels[1].Up, obs.Sentinels[1].View = false, nil
			},
			reason: []string{"orders-sentinel-1 is down"},
			check: func(t *testing.T, st api.ClusterStatus) {
				if ss := st.Sentinels[1]; ss.Up || ss.Name != "orders-sentinel-1" || len(ss.Monitors) != 0 {
					t.Errorf("Sentinel = %+v, want orders-sentinel-1 down", ss)
				}
				if st.Shards[0].Master == nil || st.Shards[0].Master.Name != "orders-0-0" {
					t.Errorf("master = %+v; the Sentinels up still name orders-0-0", st.Shards[0].Master)
				}
			},
		},
		{
			name: "a Sentinel missing",
			mod: func(t *testing.T, obs *Observation) {
				obs.Sentinels = obs.Sentinels[:2]
			},
			reason: []string{"2 Sentinels, spec wants 3"},
		},
		{
			name: "Sentinel does not monitor the shard",
			mod: func(t *testing.T, obs *Observation) {
				delete(obs.Sentinels[2].View, "orders-0")
			},
			reason: []string{"orders-sentinel-2 does not monitor orders-0"},
		},
		{
			name: "Sentinels disagree on the master",
			mod: func(t *testing.T, obs *Observation) {
				fxNameMaster(obs, 2, 7001)
			},
			reason: []string{"Sentinels disagree on the master of orders-0"},
			check: func(t *testing.T, st api.ClusterStatus) {
				// The majority's master is shown.
				if m := st.Shards[0].Master; m == nil || m.Name != "orders-0-0" {
					t.Errorf("master = %+v, want orders-0-0, named by two of three", m)
				}
			},
		},
		{
			name: "two instances in the master role",
			mod: func(t *testing.T, obs *Observation) {
				r := fxRedis(t, obs, "orders-0-2")
				r.Info["role"], r.Master = "master", ""
			},
			reason: []string{"shard 0 has 2 instances in the master role", "127.0.0.1:7000", "127.0.0.1:7002"},
		},
		{
			name: "a Sentinel lists a stale extra replica",
			mod: func(t *testing.T, obs *Observation) {
				m := obs.Sentinels[0].View["orders-0"]
				m.Replicas = append(m.Replicas, sentinel.Replica{Addr: fxAddr(7003), Flags: []string{"slave", "s_down", "disconnected"}})
				obs.Sentinels[0].View["orders-0"] = m
			},
			reason: []string{"orders-sentinel-0 lists 3 replicas of orders-0 (2 up), spec wants 2"},
		},
		{
			name: "a Sentinel sees a replica down",
			mod: func(t *testing.T, obs *Observation) {
				m := obs.Sentinels[0].View["orders-0"]
				m.Replicas[1].Flags = []string{"slave", "s_down"}
			},
			reason: []string{"orders-sentinel-0 lists 2 replicas of orders-0 (1 up), spec wants 2"},
		},
		{
			name: "Sentinels name an address no instance has",
			mod: func(t *testing.T, obs *Observation) {
				for i := range obs.Sentinels {
					fxNameMaster(obs, i, 7999)
				}
			},
			reason: []string{"shard 0 has no master"},
		},
		{
			name: "named master runs as a replica",
			mod: func(t *testing.T, obs *Observation) {
				r := fxRedis(t, obs, "orders-0-0")
				r.Info["role"] = "slave"
			},
			reason: []string{"orders-0-0 is named master of shard 0 but runs as replica"},
		},
		{
			name: "a replica fewer than the spec",
			mod: func(t *testing.T, obs *Observation) {
				obs.Redis = obs.Redis[:2]
			},
			reason: []string{"shard 0 has 1 replicas with link up, spec wants 2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, obs := fxCluster(1, 2, 3)
			tc.mod(t, &obs)
			st := Evaluate(s, "orders", obs, "")
			want := api.PhaseDegraded
			if strings.Contains(st.Reason, "master orders-0-0 of shard 0 is down") {
				// A shard with replicas whose master is down is waiting for
				// its failover.
				want = api.PhaseFailingOver
			}
			if st.Phase != want {
				t.Errorf("phase = %q, want %s (reason %q)", st.Phase, want, st.Reason)
			}
			for _, want := range tc.reason {
				if !strings.Contains(st.Reason, want) {
					t.Errorf("reason %q does not contain %q", st.Reason, want)
				}
			}
			if tc.check != nil {
				tc.check(t, st)
			}
			// The same observation always gives the same status.
			for i := 0; i < 30; i++ {
				if again := Evaluate(s, "orders", obs, ""); !reflect.DeepEqual(again, st) {
					t.Fatalf("evaluate is not deterministic:\n%+v\n%+v", st, again)
				}
			}
		})
	}
}

// A tie between Sentinels shows the same master every time.
func TestEvaluateDisagreementTieIsStable(t *testing.T) {
	t.Parallel()
	s, obs := fxCluster(1, 2, 2)
	fxNameMaster(&obs, 1, 7001)
	masters := map[string]bool{}
	for i := 0; i < 50; i++ {
		st := Evaluate(s, "orders", obs, "")
		if st.Shards[0].Master == nil {
			t.Fatal("no master shown")
		}
		masters[st.Shards[0].Master.Name] = true
	}
	if len(masters) != 1 || !masters["orders-0-0"] {
		t.Fatalf("masters shown = %v, want always orders-0-0 (the lower address)", masters)
	}
}

func TestEvaluateActiveJob(t *testing.T) {
	t.Parallel()
	degrade := func(obs *Observation) { obs.Sentinels[0].Up, obs.Sentinels[0].View = false, nil }
	tests := []struct {
		job      string
		degraded bool
		phase    string
	}{
		{api.JobCreate, false, api.PhaseCreating},
		{api.JobCreate, true, api.PhaseCreating},
		{api.JobDelete, true, api.PhaseDeleting},
		{api.JobScale, true, api.PhaseScaling},
		{api.JobFailover, true, api.PhaseFailingOver},
		// Jobs that do not change the topology leave the phase observed.
		{api.JobBackup, false, api.PhaseReady},
		{api.JobBackup, true, api.PhaseDegraded},
		{"", true, api.PhaseDegraded},
	}
	for _, tc := range tests {
		t.Run(tc.job+"/"+strconv.FormatBool(tc.degraded), func(t *testing.T) {
			s, obs := fxCluster(1, 2, 3)
			if tc.degraded {
				degrade(&obs)
			}
			st := Evaluate(s, "orders", obs, tc.job)
			if st.Phase != tc.phase {
				t.Errorf("phase = %q, want %q", st.Phase, tc.phase)
			}
			// The reason lists problems whatever the phase.
			if tc.degraded != strings.Contains(st.Reason, "orders-sentinel-0 is down") {
				t.Errorf("reason = %q with degraded=%v", st.Reason, tc.degraded)
			}
			if !tc.degraded && st.Reason != "" {
				t.Errorf("reason = %q, want none", st.Reason)
			}
		})
	}
}

// A cluster being created, before anything answers, is still described.
func TestEvaluateNothingUp(t *testing.T) {
	t.Parallel()
	s, obs := fxCluster(1, 1, 1)
	for i := range obs.Redis {
		obs.Redis[i].Up, obs.Redis[i].Info, obs.Redis[i].Master = false, nil, ""
	}
	obs.Sentinels[0].Up, obs.Sentinels[0].View = false, nil
	st := Evaluate(s, "orders", obs, api.JobCreate)
	if st.Phase != api.PhaseCreating {
		t.Fatalf("phase = %q", st.Phase)
	}
	for _, want := range []string{"orders-sentinel-0 is down", "orders-0-0 is down", "orders-0-1 is down", "shard 0 has no master"} {
		if !strings.Contains(st.Reason, want) {
			t.Errorf("reason %q does not contain %q", st.Reason, want)
		}
	}
	var names []string
	for _, r := range st.Shards[0].Replicas {
		names = append(names, r.Name)
	}
	sort.Strings(names)
	if !reflect.DeepEqual(names, []string{"orders-0-0", "orders-0-1"}) || st.Shards[0].Master != nil {
		t.Errorf("with no master known, every instance is listed as a replica: master %+v replicas %q", st.Shards[0].Master, names)
	}
}

func TestEvaluateRestoreIsCreating(t *testing.T) {
	t.Parallel()
	s, obs := fxCluster(1, 2, 3)
	if st := Evaluate(s, "orders", obs, api.JobRestore); st.Phase != api.PhaseCreating {
		t.Errorf("phase during a restore: %q, want %q", st.Phase, api.PhaseCreating)
	}
}

// TestEvaluateSentinelFigures: a Sentinel's TILT and its view of each shard
// (quorum, config epoch, replicas it does not flag down) reach the status
// that /metrics reads; a Sentinel that does not answer has none.
func TestEvaluateSentinelFigures(t *testing.T) {
	t.Parallel()
	s, obs := fxCluster(2, 2, 3)
	obs.Sentinels[0].Tilt = true
	m := obs.Sentinels[0].View["orders-1"]
	m.ConfigEpoch = 4
	m.Replicas = append([]sentinel.Replica(nil), m.Replicas...)
	m.Replicas[1].Flags = []string{"slave", "s_down"}
	obs.Sentinels[0].View["orders-1"] = m
	obs.Sentinels[2].Up, obs.Sentinels[2].View = false, nil
	st := Evaluate(s, "orders", obs, "")
	want := []api.SentinelMaster{
		{Name: "orders-0", Address: "127.0.0.1:7000", Quorum: 2, OKReplicas: 2},
		{Name: "orders-1", Address: fxAddr(fxRedisPort(1, 0)), Quorum: 2, ConfigEpoch: 4, OKReplicas: 1},
	}
	if ss := st.Sentinels[0]; !ss.Tilt || !reflect.DeepEqual(ss.Masters, want) {
		t.Errorf("Sentinel 0: tilt %v masters %+v, want tilt and %+v", ss.Tilt, ss.Masters, want)
	}
	if ss := st.Sentinels[1]; ss.Tilt || len(ss.Masters) != 2 || ss.Masters[1].OKReplicas != 2 {
		t.Errorf("Sentinel 1: tilt %v masters %+v", ss.Tilt, ss.Masters)
	}
	if ss := st.Sentinels[2]; ss.Up || ss.Tilt || len(ss.Masters) != 0 {
		t.Errorf("Sentinel 2 (down): %+v", ss)
	}
}
