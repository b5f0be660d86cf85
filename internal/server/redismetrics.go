package server

import (
	"net"
	"strconv"
	"strings"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
)

// The managed instances' metrics under the names, types and meanings of
// oliver006's redis_exporter, so dashboards and alert rules written for it
// (Grafana dashboard 763, awesome-prometheus-alerts) work unchanged. They
// come from the status the leader stores after each observation (one INFO
// per instance, one SENTINEL MASTERS/REPLICAS and INFO sentinel per
// Sentinel), so a scrape costs one store read, whatever the number of
// instances, and sends nothing to Redis. Every series carries the labels
// cluster, shard, instance (the instance's name) and role; a Sentinel's
// shard is the shard of the monitored master, "" for its own figures.
var redisLabels = []string{"cluster", "shard", "instance", "role"}

func redisFamily(name, help string, counter bool, extra ...string) *family {
	return newFamily(name, help, counter, append(append([]string{}, redisLabels...), extra...)...)
}

const (
	gaugeType   = false
	counterType = true
)

var (
	famRedisUp       = redisFamily("redis_up", "1 when the instance answered the manager's last INFO (a Sentinel: SENTINEL MASTERS).", gaugeType)
	famRedisInfo     = redisFamily("redis_instance_info", "Information about the Redis instance (value 1).", gaugeType, "redis_version", "redis_mode", "maxmemory_policy")
	famUptime        = redisFamily("redis_uptime_in_seconds", "uptime_in_seconds of the instance.", gaugeType)
	famMemUsed       = redisFamily("redis_memory_used_bytes", "used_memory of the instance.", gaugeType)
	famMemMax        = redisFamily("redis_memory_max_bytes", "maxmemory of the instance (0: no limit).", gaugeType)
	famFrag          = redisFamily("redis_mem_fragmentation_ratio", "mem_fragmentation_ratio of the instance.", gaugeType)
	famClients       = redisFamily("redis_connected_clients", "connected_clients of the instance.", gaugeType)
	famBlocked       = redisFamily("redis_blocked_clients", "blocked_clients of the instance.", gaugeType)
	famMaxClients    = redisFamily("redis_max_clients", "maxclients of the instance.", gaugeType)
	famReplOffset    = redisFamily("redis_master_repl_offset", "master_repl_offset of the instance.", gaugeType)
	famCmdProcessed  = redisFamily("redis_commands_processed_total", "total_commands_processed of the instance.", counterType)
	famCmdCalls      = redisFamily("redis_commands_total", "Total number of calls per command (INFO commandstats).", counterType, "cmd")
	famCmdDuration   = redisFamily("redis_commands_duration_seconds_total", "Total time in seconds spent per command (INFO commandstats).", counterType, "cmd")
	famHits          = redisFamily("redis_keyspace_hits_total", "keyspace_hits of the instance.", counterType)
	famMisses        = redisFamily("redis_keyspace_misses_total", "keyspace_misses of the instance.", counterType)
	famEvicted       = redisFamily("redis_evicted_keys_total", "evicted_keys of the instance.", counterType)
	famExpired       = redisFamily("redis_expired_keys_total", "expired_keys of the instance.", counterType)
	famNetIn         = redisFamily("redis_net_input_bytes_total", "total_net_input_bytes of the instance.", counterType)
	famNetOut        = redisFamily("redis_net_output_bytes_total", "total_net_output_bytes of the instance.", counterType)
	famCPUSys        = redisFamily("redis_cpu_sys_seconds_total", "used_cpu_sys of the instance.", counterType)
	famCPUUser       = redisFamily("redis_cpu_user_seconds_total", "used_cpu_user of the instance.", counterType)
	famDBKeys        = redisFamily("redis_db_keys", "Total number of keys by DB.", gaugeType, "db")
	famDBExpiring    = redisFamily("redis_db_keys_expiring", "Total number of expiring keys by DB.", gaugeType, "db")
	famSlaves        = redisFamily("redis_connected_slaves", "connected_slaves of the instance.", gaugeType)
	famMasterLinkUp  = redisFamily("redis_master_link_up", "1 when a replica's master_link_status is up.", gaugeType)
	famMasterLastIO  = redisFamily("redis_master_last_io_seconds_ago", "master_last_io_seconds_ago of a replica.", gaugeType)
	famSlaveLag      = redisFamily("redis_connected_slave_lag_seconds", "Lag of a connected replica as its master lists it.", gaugeType, "slave_ip", "slave_port", "slave_state")
	famSlaveOffset   = redisFamily("redis_connected_slave_offset_bytes", "Replication offset of a connected replica as its master lists it.", gaugeType, "slave_ip", "slave_port", "slave_state")
	famReplLagBytes  = redisFamily("redis_replica_lag_bytes", "How many bytes of its master's replication offset a replica has not yet applied.", gaugeType)
	famBgsave        = redisFamily("redis_rdb_last_bgsave_status", "1 when the last RDB save (rdb_last_bgsave_status) was ok.", gaugeType)
	famFork          = redisFamily("redis_latest_fork_usec", "latest_fork_usec of the instance.", gaugeType)
	famSentinelTilt  = redisFamily("redis_sentinel_tilt", "1 while the Sentinel is in TILT mode.", gaugeType)
	famSentinelMstrs = redisFamily("redis_sentinel_masters", "The number of the cluster's masters this Sentinel monitors.", gaugeType)
	famOKSentinels   = redisFamily("redis_sentinel_master_ok_sentinels", "The number of the cluster's Sentinels that answer the manager and monitor this master.", gaugeType, "master_name", "master_address")
	famOKSlaves      = redisFamily("redis_sentinel_master_ok_slaves", "The number of replicas of the master this Sentinel does not flag s_down or o_down.", gaugeType, "master_name", "master_address")
	famCkquorum      = redisFamily("redis_sentinel_master_setting_ckquorum", "The quorum this Sentinel has configured for the master.", gaugeType, "master_name", "master_address")
	famConfigEpoch   = redisFamily("redis_sentinel_master_config_epoch", "The configuration epoch of the master (increments on each failover).", gaugeType, "master_name", "master_address")
)

// redisSamples sends the exporter-named metrics of one cluster to out;
// cmds are the per-command figures of its instances by name, used where
// the stored status has none (the leader keeps them in memory). It only
// reads the status: O(instances + Sentinels × shards), no I/O.
func redisSamples(out sampleSink, cl store.Cluster, cmds map[string]map[string]api.CommandStat) {
	shardOf := map[string]string{} // Sentinel master name → shard
	for _, sh := range cl.Status.Shards {
		shard := strconv.Itoa(sh.Index)
		shardOf[sh.SentinelName] = shard
		insts := sh.Replicas
		if sh.Master != nil {
			insts = append([]api.InstanceStatus{*sh.Master}, insts...)
		}
		for _, in := range insts {
			l := []string{cl.Name, shard, in.Name, in.Role}
			// The type is the family's: gauge and counter only read
			// the same.
			gauge := func(f *family, v float64, extra ...string) {
				out.sample(f, v, append(l, extra...)...)
			}
			counter := gauge
			gauge(famRedisUp, b2f(in.Up))
			if !in.Up {
				// Like redis_exporter for a target it cannot reach: only
				// redis_up, so no stale figure looks current.
				continue
			}
			gauge(famRedisInfo, 1, in.RedisVersion, in.RedisMode, in.MaxmemoryPolicy)
			gauge(famUptime, float64(in.UptimeSeconds))
			gauge(famMemUsed, float64(in.UsedMemoryBytes))
			gauge(famMemMax, float64(in.MaxmemoryBytes))
			gauge(famFrag, in.MemFragmentationRatio)
			gauge(famClients, float64(in.ConnectedClients))
			gauge(famBlocked, float64(in.BlockedClients))
			gauge(famMaxClients, float64(in.MaxClients))
			gauge(famReplOffset, float64(in.MasterReplOffset))
			counter(famCmdProcessed, float64(in.CommandsProcessed))
			commands := in.Commands
			if commands == nil {
				commands = cmds[in.Name]
			}
			for cmd, st := range commands {
				counter(famCmdCalls, float64(st.Calls), cmd)
				counter(famCmdDuration, float64(st.Usec)/1e6, cmd)
			}
			counter(famHits, float64(in.KeyspaceHits))
			counter(famMisses, float64(in.KeyspaceMisses))
			counter(famEvicted, float64(in.EvictedKeys))
			counter(famExpired, float64(in.ExpiredKeys))
			counter(famNetIn, float64(in.NetInputBytes))
			counter(famNetOut, float64(in.NetOutputBytes))
			counter(famCPUSys, in.CPUSysSeconds)
			counter(famCPUUser, in.CPUUserSeconds)
			// db0 is always there (0 keys when empty), as redis_exporter
			// reports it, so sums over db do not vanish on an empty cluster.
			if _, ok := in.DBs["db0"]; !ok {
				gauge(famDBKeys, 0, "db0")
				gauge(famDBExpiring, 0, "db0")
			}
			for db, k := range in.DBs {
				gauge(famDBKeys, float64(k.Keys), db)
				gauge(famDBExpiring, float64(k.Expires), db)
			}
			gauge(famSlaves, float64(in.ConnectedReplicas))
			if in.Role == "replica" {
				gauge(famMasterLinkUp, b2f(in.MasterLinkStatus == "up"))
				gauge(famMasterLastIO, float64(in.MasterLastIOSecondsAgo))
				gauge(famReplLagBytes, float64(in.LagBytes))
			}
			seen := map[string]bool{}
			for _, r := range in.ReplicaLinks {
				// A replica that reconnects can be listed twice for a
				// moment; one series per address keeps the scrape valid.
				if seen[r.Address] {
					continue
				}
				seen[r.Address] = true
				host, port, _ := net.SplitHostPort(r.Address)
				gauge(famSlaveLag, float64(r.LagSeconds), host, port, r.State)
				gauge(famSlaveOffset, float64(r.Offset), host, port, r.State)
			}
			gauge(famBgsave, b2f(in.RDBLastBgsaveStatus == "ok"))
			gauge(famFork, float64(in.LatestForkUsec))
		}
	}
	// okSentinels counts, per master, the cluster's Sentinels that answer
	// and monitor it: the Sentinels that can vote on its failover.
	okSentinels := map[string]int{}
	for _, s := range cl.Status.Sentinels {
		if s.Up {
			for _, m := range s.Monitors {
				okSentinels[m]++
			}
		}
	}
	for _, s := range cl.Status.Sentinels {
		l := []string{cl.Name, "", s.Name, "sentinel"}
		out.sample(famRedisUp, b2f(s.Up), l...)
		if !s.Up {
			continue
		}
		out.sample(famSentinelTilt, b2f(s.Tilt), l...)
		out.sample(famSentinelMstrs, float64(len(s.Monitors)), l...)
		for _, m := range s.Masters {
			ml := []string{cl.Name, shardOf[m.Name], s.Name, "sentinel", m.Name, m.Address}
			if ml[1] == "" {
				// A master of the cluster beyond its spec (a scale-in
				// under way): its shard from its name.
				ml[1] = strings.TrimPrefix(m.Name, cl.Name+"-")
			}
			out.sample(famOKSentinels, float64(okSentinels[m.Name]), ml...)
			out.sample(famOKSlaves, float64(m.OKReplicas), ml...)
			out.sample(famCkquorum, float64(m.Quorum), ml...)
			out.sample(famConfigEpoch, float64(m.ConfigEpoch), ml...)
		}
	}
}
