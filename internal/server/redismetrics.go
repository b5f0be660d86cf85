package server

import (
	"net"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

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

func redisDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string{}, redisLabels...), extra...), nil)
}

var (
	descRedisUp       = redisDesc("redis_up", "1 when the instance answered the manager's last INFO (a Sentinel: SENTINEL MASTERS).")
	descRedisInfo     = redisDesc("redis_instance_info", "Information about the Redis instance (value 1).", "redis_version", "redis_mode", "maxmemory_policy")
	descUptime        = redisDesc("redis_uptime_in_seconds", "uptime_in_seconds of the instance.")
	descMemUsed       = redisDesc("redis_memory_used_bytes", "used_memory of the instance.")
	descMemMax        = redisDesc("redis_memory_max_bytes", "maxmemory of the instance (0: no limit).")
	descFrag          = redisDesc("redis_mem_fragmentation_ratio", "mem_fragmentation_ratio of the instance.")
	descClients       = redisDesc("redis_connected_clients", "connected_clients of the instance.")
	descBlocked       = redisDesc("redis_blocked_clients", "blocked_clients of the instance.")
	descMaxClients    = redisDesc("redis_max_clients", "maxclients of the instance.")
	descReplOffset    = redisDesc("redis_master_repl_offset", "master_repl_offset of the instance.")
	descCmdProcessed  = redisDesc("redis_commands_processed_total", "total_commands_processed of the instance.")
	descCmdCalls      = redisDesc("redis_commands_total", "Total number of calls per command (INFO commandstats).", "cmd")
	descCmdDuration   = redisDesc("redis_commands_duration_seconds_total", "Total time in seconds spent per command (INFO commandstats).", "cmd")
	descHits          = redisDesc("redis_keyspace_hits_total", "keyspace_hits of the instance.")
	descMisses        = redisDesc("redis_keyspace_misses_total", "keyspace_misses of the instance.")
	descEvicted       = redisDesc("redis_evicted_keys_total", "evicted_keys of the instance.")
	descExpired       = redisDesc("redis_expired_keys_total", "expired_keys of the instance.")
	descNetIn         = redisDesc("redis_net_input_bytes_total", "total_net_input_bytes of the instance.")
	descNetOut        = redisDesc("redis_net_output_bytes_total", "total_net_output_bytes of the instance.")
	descCPUSys        = redisDesc("redis_cpu_sys_seconds_total", "used_cpu_sys of the instance.")
	descCPUUser       = redisDesc("redis_cpu_user_seconds_total", "used_cpu_user of the instance.")
	descDBKeys        = redisDesc("redis_db_keys", "Total number of keys by DB.", "db")
	descDBExpiring    = redisDesc("redis_db_keys_expiring", "Total number of expiring keys by DB.", "db")
	descSlaves        = redisDesc("redis_connected_slaves", "connected_slaves of the instance.")
	descMasterLinkUp  = redisDesc("redis_master_link_up", "1 when a replica's master_link_status is up.")
	descMasterLastIO  = redisDesc("redis_master_last_io_seconds_ago", "master_last_io_seconds_ago of a replica.")
	descSlaveLag      = redisDesc("redis_connected_slave_lag_seconds", "Lag of a connected replica as its master lists it.", "slave_ip", "slave_port", "slave_state")
	descSlaveOffset   = redisDesc("redis_connected_slave_offset_bytes", "Replication offset of a connected replica as its master lists it.", "slave_ip", "slave_port", "slave_state")
	descReplLagBytes  = redisDesc("redis_replica_lag_bytes", "How many bytes of its master's replication offset a replica has not yet applied.")
	descBgsave        = redisDesc("redis_rdb_last_bgsave_status", "1 when the last RDB save (rdb_last_bgsave_status) was ok.")
	descFork          = redisDesc("redis_latest_fork_usec", "latest_fork_usec of the instance.")
	descSentinelTilt  = redisDesc("redis_sentinel_tilt", "1 while the Sentinel is in TILT mode.")
	descSentinelMstrs = redisDesc("redis_sentinel_masters", "The number of the cluster's masters this Sentinel monitors.")
	descOKSentinels   = redisDesc("redis_sentinel_master_ok_sentinels", "The number of the cluster's Sentinels that answer the manager and monitor this master.", "master_name", "master_address")
	descOKSlaves      = redisDesc("redis_sentinel_master_ok_slaves", "The number of replicas of the master this Sentinel does not flag s_down or o_down.", "master_name", "master_address")
	descCkquorum      = redisDesc("redis_sentinel_master_setting_ckquorum", "The quorum this Sentinel has configured for the master.", "master_name", "master_address")
	descConfigEpoch   = redisDesc("redis_sentinel_master_config_epoch", "The configuration epoch of the master (increments on each failover).", "master_name", "master_address")

	redisDescs = []*prometheus.Desc{descRedisUp, descRedisInfo, descUptime, descMemUsed, descMemMax, descFrag, descClients, descBlocked, descMaxClients, descReplOffset,
		descCmdProcessed, descCmdCalls, descCmdDuration, descHits, descMisses, descEvicted, descExpired, descNetIn, descNetOut,
		descCPUSys, descCPUUser, descDBKeys, descDBExpiring, descSlaves, descMasterLinkUp, descMasterLastIO, descSlaveLag,
		descSlaveOffset, descReplLagBytes, descBgsave, descFork, descSentinelTilt, descSentinelMstrs, descOKSentinels, descOKSlaves,
		descCkquorum, descConfigEpoch}
)

// collectRedis sends the exporter-named metrics of one cluster. It only
// reads the stored status: O(instances + Sentinels × shards), no I/O.
func collectRedis(ch chan<- prometheus.Metric, cl store.Cluster) {
	send := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
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
			gauge := func(d *prometheus.Desc, v float64, extra ...string) {
				send(d, prometheus.GaugeValue, v, append(l, extra...)...)
			}
			counter := func(d *prometheus.Desc, v float64, extra ...string) {
				send(d, prometheus.CounterValue, v, append(l, extra...)...)
			}
			gauge(descRedisUp, b2f(in.Up))
			if !in.Up {
				// Like redis_exporter for a target it cannot reach: only
				// redis_up, so no stale figure looks current.
				continue
			}
			gauge(descRedisInfo, 1, in.RedisVersion, in.RedisMode, in.MaxmemoryPolicy)
			gauge(descUptime, float64(in.UptimeSeconds))
			gauge(descMemUsed, float64(in.UsedMemoryBytes))
			gauge(descMemMax, float64(in.MaxmemoryBytes))
			gauge(descFrag, in.MemFragmentationRatio)
			gauge(descClients, float64(in.ConnectedClients))
			gauge(descBlocked, float64(in.BlockedClients))
			gauge(descMaxClients, float64(in.MaxClients))
			gauge(descReplOffset, float64(in.MasterReplOffset))
			counter(descCmdProcessed, float64(in.CommandsProcessed))
			for cmd, st := range in.Commands {
				counter(descCmdCalls, float64(st.Calls), cmd)
				counter(descCmdDuration, float64(st.Usec)/1e6, cmd)
			}
			counter(descHits, float64(in.KeyspaceHits))
			counter(descMisses, float64(in.KeyspaceMisses))
			counter(descEvicted, float64(in.EvictedKeys))
			counter(descExpired, float64(in.ExpiredKeys))
			counter(descNetIn, float64(in.NetInputBytes))
			counter(descNetOut, float64(in.NetOutputBytes))
			counter(descCPUSys, in.CPUSysSeconds)
			counter(descCPUUser, in.CPUUserSeconds)
			// db0 is always there (0 keys when empty), as redis_exporter
			// reports it, so sums over db do not vanish on an empty cluster.
			if _, ok := in.DBs["db0"]; !ok {
				gauge(descDBKeys, 0, "db0")
				gauge(descDBExpiring, 0, "db0")
			}
			for db, k := range in.DBs {
				gauge(descDBKeys, float64(k.Keys), db)
				gauge(descDBExpiring, float64(k.Expires), db)
			}
			gauge(descSlaves, float64(in.ConnectedReplicas))
			if in.Role == "replica" {
				gauge(descMasterLinkUp, b2f(in.MasterLinkStatus == "up"))
				gauge(descMasterLastIO, float64(in.MasterLastIOSecondsAgo))
				gauge(descReplLagBytes, float64(in.LagBytes))
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
				gauge(descSlaveLag, float64(r.LagSeconds), host, port, r.State)
				gauge(descSlaveOffset, float64(r.Offset), host, port, r.State)
			}
			gauge(descBgsave, b2f(in.RDBLastBgsaveStatus == "ok"))
			gauge(descFork, float64(in.LatestForkUsec))
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
		send(descRedisUp, prometheus.GaugeValue, b2f(s.Up), l...)
		if !s.Up {
			continue
		}
		send(descSentinelTilt, prometheus.GaugeValue, b2f(s.Tilt), l...)
		send(descSentinelMstrs, prometheus.GaugeValue, float64(len(s.Monitors)), l...)
		for _, m := range s.Masters {
			ml := []string{cl.Name, shardOf[m.Name], s.Name, "sentinel", m.Name, m.Address}
			if ml[1] == "" {
				// A master of the cluster beyond its spec (a scale-in
				// under way): its shard from its name.
				ml[1] = strings.TrimPrefix(m.Name, cl.Name+"-")
			}
			send(descOKSentinels, prometheus.GaugeValue, float64(okSentinels[m.Name]), ml...)
			send(descOKSlaves, prometheus.GaugeValue, float64(m.OKReplicas), ml...)
			send(descCkquorum, prometheus.GaugeValue, float64(m.Quorum), ml...)
			send(descConfigEpoch, prometheus.GaugeValue, float64(m.ConfigEpoch), ml...)
		}
	}
}
