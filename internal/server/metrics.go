package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/leader"
	"github.com/redis-manager/redis-manager/internal/schedule"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// statusCollector exports the managed instances' key figures from the
// latest observed status, labelled by cluster, shard and instance.
type statusCollector struct {
	store store.Store
	// commands, when set, gives the per-command figures (INFO
	// commandstats) of a cluster's instances by name: the leader keeps
	// them in memory instead of in the stored status
	// (controller.Commands); nil there (a standby) sends no
	// redis_commands_total series.
	commands func(cluster string) map[string]map[string]api.CommandStat
}

var (
	descClusterReady = prometheus.NewDesc("redis_manager_cluster_ready", "1 when the cluster's phase is Ready.", []string{"cluster", "phase"}, nil)
	descInstanceUp   = prometheus.NewDesc("redis_manager_instance_up", "1 when the instance answers INFO.", []string{"cluster", "shard", "instance", "role"}, nil)
	descKeys         = prometheus.NewDesc("redis_manager_instance_keys", "Keys in the instance.", []string{"cluster", "shard", "instance", "role"}, nil)
	descMemory       = prometheus.NewDesc("redis_manager_instance_used_memory_bytes", "used_memory of the instance.", []string{"cluster", "shard", "instance", "role"}, nil)
	descLag          = prometheus.NewDesc("redis_manager_replica_lag_bytes", "Replication offset lag of a replica behind its master.", []string{"cluster", "shard", "instance"}, nil)
	descSentinelUp   = prometheus.NewDesc("redis_manager_sentinel_up", "1 when the Sentinel answers.", []string{"cluster", "instance"}, nil)
)

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClusterReady, descInstanceUp, descKeys, descMemory, descLag, descSentinelUp} {
		ch <- d
	}
	for _, d := range redisDescs {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{descJobs, descBackupLast, descBackupDuration, descBackupBytes, descBackupLastFailure,
		descSchedulePeriod, descScheduleUpdated, descSentinelQuorum} {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cls, err := c.store.ListClusters(ctx)
	if err != nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, cl := range cls {
		gauge(descClusterReady, b2f(cl.Status.Phase == api.PhaseReady), cl.Name, cl.Status.Phase)
		for _, sh := range cl.Status.Shards {
			shard := strconv.Itoa(sh.Index)
			insts := sh.Replicas
			if sh.Master != nil {
				insts = append([]api.InstanceStatus{*sh.Master}, insts...)
			}
			for _, in := range insts {
				gauge(descInstanceUp, b2f(in.Up), cl.Name, shard, in.Name, in.Role)
				gauge(descKeys, float64(in.Keys), cl.Name, shard, in.Name, in.Role)
				gauge(descMemory, float64(in.UsedMemoryBytes), cl.Name, shard, in.Name, in.Role)
				if in.Role == "replica" {
					gauge(descLag, float64(in.LagBytes), cl.Name, shard, in.Name)
				}
			}
		}
		for _, s := range cl.Status.Sentinels {
			gauge(descSentinelUp, b2f(s.Up), cl.Name, s.Name)
		}
		if len(cl.Status.Sentinels) > 0 {
			gauge(descSentinelQuorum, float64(spec.Quorum(cl.Spec.Sentinels)), cl.Name)
		}
		if c.commands != nil {
			withCommands(&cl.Status, c.commands(cl.Name))
		}
		collectRedis(ch, cl)
	}
	collectJobs(ctx, ch, c.store)
	collectBackups(ctx, ch, c.store, cls)
}

var (
	descJobs = prometheus.NewDesc("redis_manager_jobs", "Jobs not finished, by kind and state (pending or running).", []string{"kind", "state"}, nil)

	descBackupLast     = prometheus.NewDesc("redis_manager_backup_last_success_timestamp_seconds", "Unix time the shard's newest successful backup finished (0: none).", []string{"cluster", "shard"}, nil)
	descBackupDuration = prometheus.NewDesc("redis_manager_backup_last_duration_seconds", "How long the shard's newest successful backup took.", []string{"cluster", "shard"}, nil)
	descBackupBytes    = prometheus.NewDesc("redis_manager_backup_last_size_bytes", "Size of the shard's newest successful backup.", []string{"cluster", "shard"}, nil)
	// The figures the backup-failed and backup-missing rules of
	// deploy/prometheus read.
	descBackupLastFailure = prometheus.NewDesc("redis_manager_backup_last_failure_timestamp_seconds", "Unix time the shard's newest failed backup finished (0: none).", []string{"cluster", "shard"}, nil)
	descSchedulePeriod    = prometheus.NewDesc("redis_manager_backup_schedule_period_seconds", "Time between two slots of the cluster's backup schedule (only clusters with a schedule).", []string{"cluster"}, nil)
	descScheduleUpdated   = prometheus.NewDesc("redis_manager_backup_schedule_updated_timestamp_seconds", "Unix time the cluster's backup schedule was set or last changed (only clusters with a schedule).", []string{"cluster"}, nil)
	// descSentinelQuorum is what the sentinel-quorum rule compares the
	// answering Sentinels with.
	descSentinelQuorum = prometheus.NewDesc("redis_manager_sentinel_quorum", "Sentinels that must answer to authorize a failover: a majority of the cluster's Sentinels.", []string{"cluster"}, nil)

	jobKinds = []string{api.JobCreate, api.JobScale, api.JobDelete, api.JobFailover, api.JobBackup, api.JobRestore, api.JobReplaceInstance,
		api.JobBackupDelete, api.JobBackupVerify, api.JobRotateCredentials, api.JobFinishRotation}
)

// collectJobs counts the unfinished jobs (one store read); every kind and
// state is sent, at 0 when none, so the series never vanish. Finished jobs
// are counted by redis_manager_job_duration_seconds.
func collectJobs(ctx context.Context, ch chan<- prometheus.Metric, st store.Store) {
	jobs, err := st.UnfinishedJobs(ctx)
	if err != nil {
		return
	}
	n := map[[2]string]int{}
	for _, k := range jobKinds {
		n[[2]string{k, api.StatePending}], n[[2]string{k, api.StateRunning}] = 0, 0
	}
	for _, j := range jobs {
		n[[2]string{j.Kind, j.State}]++
	}
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(v), k[0], k[1])
	}
}

// collectBackups sends each shard's newest successful and newest failed
// backup (one store read of the backup records, which retention bounds)
// and each backup schedule's period (one read of the schedules).
func collectBackups(ctx context.Context, ch chan<- prometheus.Metric, st store.Store, cls []store.Cluster) {
	if schedules, err := st.ListBackupSchedules(ctx); err == nil {
		now := time.Now().UTC()
		for _, s := range schedules {
			if p := schedule.Period(s.Cron, now); p > 0 {
				ch <- prometheus.MustNewConstMetric(descSchedulePeriod, prometheus.GaugeValue, p.Seconds(), s.Cluster)
				ch <- prometheus.MustNewConstMetric(descScheduleUpdated, prometheus.GaugeValue, float64(s.UpdatedAt.UnixNano())/1e9, s.Cluster)
			}
		}
	}
	backups, err := st.ListBackups(ctx, "")
	if err != nil {
		return
	}
	type key struct {
		cluster string
		shard   int
	}
	newest := map[key]store.Backup{}
	for _, cl := range cls {
		for shard := 0; shard < cl.Spec.Shards; shard++ {
			newest[key{cl.Name, shard}] = store.Backup{}
		}
	}
	failed := map[key]float64{}
	for _, b := range backups {
		k := key{b.Cluster, b.Shard}
		if _, ok := newest[k]; ok && b.State == api.StateFailed && b.FinishedAt != nil {
			failed[k] = max(failed[k], float64(b.FinishedAt.UnixNano())/1e9)
		}
		cur, ok := newest[k]
		if !ok || b.State != api.StateSucceeded || b.FinishedAt == nil || (cur.FinishedAt != nil && !b.FinishedAt.After(*cur.FinishedAt)) {
			continue // not a managed shard's, not a success, or older
		}
		newest[k] = b
	}
	for k, b := range newest {
		shard := strconv.Itoa(k.shard)
		last := 0.0
		if b.FinishedAt != nil {
			last = float64(b.FinishedAt.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(descBackupLast, prometheus.GaugeValue, last, k.cluster, shard)
		ch <- prometheus.MustNewConstMetric(descBackupDuration, prometheus.GaugeValue, float64(b.DurationMs)/1000, k.cluster, shard)
		ch <- prometheus.MustNewConstMetric(descBackupBytes, prometheus.GaugeValue, float64(b.SizeBytes), k.cluster, shard)
		ch <- prometheus.MustNewConstMetric(descBackupLastFailure, prometheus.GaugeValue, failed[k], k.cluster, shard)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var (
	descLeader  = prometheus.NewDesc("redis_manager_leader", "1 when this manager leads (holds the leader lease).", []string{"id"}, nil)
	descEpoch   = prometheus.NewDesc("redis_manager_leader_epoch", "Epoch of the leader lease as this manager last read it.", nil, nil)
	descActions = prometheus.NewDesc("redis_manager_leader_actions_total",
		"Actions of leader work on Redis, Sentinel, the platform or the store: performed, or refused because this manager's term was over or its deadline passed.", []string{"result"}, nil)
	descLastAction = prometheus.NewDesc("redis_manager_leader_last_action_seconds", "Unix time when the last performed leader action was allowed, right before it was sent (0 if none).", nil, nil)
)

// leaderCollector exports the elector's state and action counts.
type leaderCollector struct{ e *leader.Elector }

func (c leaderCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLeader, descEpoch, descActions, descLastAction} {
		ch <- d
	}
}

func (c leaderCollector) Collect(ch chan<- prometheus.Metric) {
	st, n := c.e.Status(), c.e.Counters()
	ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, b2f(st.Leader), c.e.ID())
	ch <- prometheus.MustNewConstMetric(descEpoch, prometheus.GaugeValue, float64(st.Epoch))
	ch <- prometheus.MustNewConstMetric(descActions, prometheus.CounterValue, float64(n.Performed), "performed")
	ch <- prometheus.MustNewConstMetric(descActions, prometheus.CounterValue, float64(n.Refused), "refused")
	last := 0.0
	if !n.LastAction.IsZero() {
		last = float64(n.LastAction.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descLastAction, prometheus.GaugeValue, last)
}

// withCommands sets the instances' per-command figures from cmds (by
// instance name) where the stored status has none.
func withCommands(st *api.ClusterStatus, cmds map[string]map[string]api.CommandStat) {
	if len(cmds) == 0 {
		return
	}
	set := func(in *api.InstanceStatus) {
		if in.Commands == nil {
			in.Commands = cmds[in.Name]
		}
	}
	for i := range st.Shards {
		if st.Shards[i].Master != nil {
			set(st.Shards[i].Master)
		}
		for j := range st.Shards[i].Replicas {
			set(&st.Shards[i].Replicas[j])
		}
	}
}

// metricsHandler serves /metrics; commands is the leader's in-memory
// per-command figures (statusCollector.commands), nil for none.
func metricsHandler(st store.Store, e *leader.Elector, lim *connLimiter, commands func(string) map[string]map[string]api.CommandStat, extra ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), statusCollector{store: st, commands: commands}, leaderCollector{e})
	reg.MustRegister(extra...)
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "redis_manager_http_connections_open",
			Help: "API connections held open now."}, func() float64 { return float64(lim.Open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "redis_manager_http_connections_evicted_total",
			Help: "Idle or slow API connections closed to make room at --max-connections."}, func() float64 { return float64(lim.evicted.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "redis_manager_http_connections_refused_total",
			Help: "API connections closed at once because every slot was running a request."}, func() float64 { return float64(lim.refused.Load()) }),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
