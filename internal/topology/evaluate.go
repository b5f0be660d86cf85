package topology

import (
	"fmt"
	"sort"
	"strings"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
)

// Evaluate turns an observation into a status with a phase. It is pure.
//
// Ready means: every shard has exactly one master that every Sentinel
// agrees on, the spec's number of replicas with their link up, and every
// Sentinel up and monitoring every shard with exactly those replicas.
func Evaluate(s api.ClusterSpec, cluster string, obs Observation, activeJob string) api.ClusterStatus {
	at := obs.At
	st := api.ClusterStatus{ObservedAt: &at, Shards: []api.ShardStatus{}, Sentinels: []api.SentinelStatus{}}
	var problems []string
	failingOver := false

	for _, so := range obs.Sentinels {
		ss := api.SentinelStatus{Name: so.In.Name, Address: Addr(so.In), Up: so.Up, Pid: so.Details.Pid,
			Pod: so.Details.Pod, Node: so.Details.Node, Monitors: []string{}, Tilt: so.Tilt}
		for name := range so.View {
			if strings.HasPrefix(name, cluster+"-") {
				ss.Monitors = append(ss.Monitors, name)
			}
		}
		sort.Strings(ss.Monitors)
		ss.Tilt = so.Tilt
		for _, name := range ss.Monitors {
			m := so.View[name]
			sm := api.SentinelMaster{Name: name, Address: m.Addr, Quorum: m.Quorum, ConfigEpoch: m.ConfigEpoch}
			for _, r := range m.Replicas {
				if !sentinel.Down(r.Flags) {
					sm.OKReplicas++
				}
			}
			ss.Masters = append(ss.Masters, sm)
		}
		if !so.Up {
			problems = append(problems, so.In.Name+" is down")
		}
		st.Sentinels = append(st.Sentinels, ss)
	}
	if len(obs.Sentinels) != s.Sentinels {
		problems = append(problems, fmt.Sprintf("%d Sentinels, spec wants %d", len(obs.Sentinels), s.Sentinels))
	}

	for shard := 0; shard < s.Shards; shard++ {
		name := spec.MasterName(cluster, shard)
		ss := api.ShardStatus{Index: shard, SentinelName: name, Replicas: []api.InstanceStatus{}}
		failingOver = failingOver || FailingOver(s, cluster, obs, shard)
		// The master is who the Sentinels name; they must all agree.
		var answers []string
		named := map[string]bool{}
		for _, so := range obs.Sentinels {
			if !so.Up {
				continue
			}
			m, ok := so.View[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s does not monitor %s", so.In.Name, name))
				continue
			}
			answers = append(answers, m.Addr)
			named[m.Addr] = true
			up := 0
			for _, r := range m.Replicas {
				if !sentinel.Down(r.Flags) {
					up++
				}
			}
			if len(m.Replicas) != s.Replicas || up != s.Replicas {
				problems = append(problems, fmt.Sprintf("%s lists %d replicas of %s (%d up), spec wants %d", so.In.Name, len(m.Replicas), name, up, s.Replicas))
			}
		}
		if len(named) > 1 {
			problems = append(problems, fmt.Sprintf("Sentinels disagree on the master of %s", name))
		}
		// When they disagree, show the one most name (the lowest address on
		// a tie), so the status does not flip between observations.
		masterAddr := Majority(answers)
		var masterOffset int64
		var masters []string
		for _, ro := range obs.Redis {
			if ro.In.Shard == shard && ro.Up && ro.Info["role"] == "master" {
				masters = append(masters, Addr(ro.In))
				if masterAddr == "" || Addr(ro.In) == masterAddr {
					masterOffset = ro.Info.Int("master_repl_offset")
				}
			}
		}
		if len(masters) > 1 {
			problems = append(problems, fmt.Sprintf("shard %d has %d instances in the master role: %s", shard, len(masters), strings.Join(masters, ", ")))
		}
		if masterAddr == "" && len(masters) == 1 {
			masterAddr = masters[0]
		}
		linked := 0
		for _, ro := range obs.Redis {
			if ro.In.Shard != shard {
				continue
			}
			is := api.InstanceStatus{Name: ro.In.Name, Address: Addr(ro.In), Up: ro.Up, Pid: ro.Details.Pid,
				Pod: ro.Details.Pod, Node: ro.Details.Node}
			if ro.Up {
				is.Role = roleName(ro.Info["role"])
				is.Keys = ro.Info.Keys()
				is.UsedMemoryBytes = ro.Info.Int("used_memory")
				figures(&is, ro.Info)
				// In a container the process id says nothing (1).
				if pid := ro.Info.Int("process_id"); pid > 0 && ro.Details.Pod == "" {
					is.Pid = int(pid)
				}
			}
			if Addr(ro.In) == masterAddr {
				if !ro.Up {
					problems = append(problems, fmt.Sprintf("master %s of shard %d is down", ro.In.Name, shard))
				} else if is.Role != "master" {
					problems = append(problems, fmt.Sprintf("%s is named master of shard %d but runs as %s", ro.In.Name, shard, is.Role))
				}
				m := is
				ss.Master = &m
				continue
			}
			if ro.Up {
				is.MasterLinkStatus = ro.Info["master_link_status"]
				if off := ro.Info.Int("slave_repl_offset"); masterOffset > off {
					is.LagBytes = masterOffset - off
				}
				switch {
				case is.Role != "replica":
					// A second master is reported with the shard's masters.
				case masterAddr == "":
					// "has no master" is reported below.
				case ro.Master != masterAddr:
					problems = append(problems, fmt.Sprintf("%s replicates %s, not the master %s", ro.In.Name, ro.Master, masterAddr))
				case is.MasterLinkStatus != "up":
					problems = append(problems, fmt.Sprintf("%s has its master link %s", ro.In.Name, orUnknown(is.MasterLinkStatus)))
				default:
					linked++
				}
			} else {
				problems = append(problems, ro.In.Name+" is down")
			}
			ss.Replicas = append(ss.Replicas, is)
		}
		if ss.Master == nil {
			problems = append(problems, fmt.Sprintf("shard %d has no master", shard))
		}
		if linked != s.Replicas {
			problems = append(problems, fmt.Sprintf("shard %d has %d replicas with link up, spec wants %d", shard, linked, s.Replicas))
		}
		st.Shards = append(st.Shards, ss)
	}

	switch activeJob {
	case api.JobCreate, api.JobRestore:
		st.Phase = api.PhaseCreating
	case api.JobDelete:
		st.Phase = api.PhaseDeleting
	case api.JobScale:
		st.Phase = api.PhaseScaling
	case api.JobFailover:
		st.Phase = api.PhaseFailingOver
	default:
		switch {
		case len(problems) == 0:
			st.Phase = api.PhaseReady
		case failingOver:
			st.Phase = api.PhaseFailingOver
		default:
			st.Phase = api.PhaseDegraded
		}
	}
	if len(problems) > 0 {
		st.Reason = strings.Join(problems, "; ")
	}
	return st
}

// figures copies the load figures of an instance's INFO into its status.
func figures(is *api.InstanceStatus, info redisclient.Info) {
	is.OpsPerSec = info.Int("instantaneous_ops_per_sec")
	is.ConnectedClients = info.Int("connected_clients")
	is.MaxmemoryBytes = info.Int("maxmemory")
	is.KeyspaceHits = info.Int("keyspace_hits")
	is.KeyspaceMisses = info.Int("keyspace_misses")
	is.EvictedKeys = info.Int("evicted_keys")
	is.UsedCPUSeconds = info.Float("used_cpu_sys") + info.Float("used_cpu_user")
	is.RedisVersion = info["redis_version"]
	is.RedisMode = info["redis_mode"]
	is.MaxmemoryPolicy = info["maxmemory_policy"]
	is.UptimeSeconds = info.Int("uptime_in_seconds")
	is.CommandsProcessed = info.Int("total_commands_processed")
	is.BlockedClients = info.Int("blocked_clients")
	is.MaxClients = info.Int("maxclients")
	is.MasterReplOffset = info.Int("master_repl_offset")
	is.ExpiredKeys = info.Int("expired_keys")
	is.NetInputBytes = info.Int("total_net_input_bytes")
	is.NetOutputBytes = info.Int("total_net_output_bytes")
	is.CPUSysSeconds = info.Float("used_cpu_sys")
	is.CPUUserSeconds = info.Float("used_cpu_user")
	is.ConnectedReplicas = info.Int("connected_slaves")
	is.RDBLastBgsaveStatus = info["rdb_last_bgsave_status"]
	is.LatestForkUsec = info.Int("latest_fork_usec")
	is.MemFragmentationRatio = info.Float("mem_fragmentation_ratio")
	if info["role"] == "slave" {
		is.MasterLastIOSecondsAgo = info.Int("master_last_io_seconds_ago")
	}
	is.DBs = info.DBs()
	is.Commands = info.Commands()
	for _, r := range info.Replicas() {
		is.ReplicaLinks = append(is.ReplicaLinks, api.ReplicaLink{Address: r.Addr, State: r.State, Offset: r.Offset, LagSeconds: r.Lag})
	}
}

func roleName(r string) string {
	if r == "slave" {
		return "replica"
	}
	return r
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
