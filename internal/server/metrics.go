package server

import (
	"bufio"
	"context"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/leader"
	"github.com/redis-manager/redis-manager/internal/schedule"
	"github.com/redis-manager/redis-manager/internal/store"
)

// recordsCollector exports the unfinished jobs and the backups of the
// clusters of the scrape (set by metricsServer before each Gather).
type recordsCollector struct {
	store    store.Store
	clusters []store.Cluster
}

func (c *recordsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJobs, descBackupLast, descBackupDuration, descBackupBytes, descBackupLastFailure,
		descSchedulePeriod, descScheduleUpdated} {
		ch <- d
	}
}

func (c *recordsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	collectJobs(ctx, ch, c.store)
	collectBackups(ctx, ch, c.store, c.clusters)
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

// metricsServer serves /metrics: the per-cluster series as text rendered
// once per stored revision (ClusterCache, metricstext.go), merged by
// name with what client_golang gathers (the process, Go runtime, leader,
// jobs, backups, the controller's own metrics and the HTTP connections).
type metricsServer struct {
	cache    *ClusterCache
	commands func(string) map[string]map[string]api.CommandStat
	reg      *prometheus.Registry
	records  *recordsCollector
	format   expfmt.Format
	// byName are the per-cluster families sorted by name, for the
	// merge with the gathered ones (sorted by name too).
	byName []*family
	// mu: one gathering at a time (records.clusters is per scrape).
	mu sync.Mutex
}

func (m *metricsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	// As before the cache: without the clusters, the scrape still
	// answers the rest (the store's error shows in the manager's log
	// and its own metrics).
	entries, _ := m.cache.metricsEntries(ctx, m.commands)
	// What is written is not changed after: only gathering is one
	// scrape at a time, not writing to a slow client.
	m.mu.Lock()
	m.records.clusters = m.records.clusters[:0]
	for _, e := range entries {
		m.records.clusters = append(m.records.clusters, e.cl)
	}
	mfs, err := m.reg.Gather()
	m.records.clusters = m.records.clusters[:0]
	m.mu.Unlock()
	if err != nil {
		http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", string(m.format))
	bw := bufio.NewWriterSize(w, 64<<10)
	var hdr []byte
	own := func(f *family) {
		any := false
		for _, e := range entries {
			if len(e.text.lines[f.idx]) > 0 {
				any = true
				break
			}
		}
		if !any {
			return // as client_golang: no family without a series
		}
		hdr = appendHeader(hdr[:0], f)
		_, _ = bw.Write(hdr)
		for _, e := range entries {
			_, _ = bw.Write(e.text.lines[f.idx])
		}
	}
	byName, i := m.byName, 0
	for _, mf := range mfs {
		for ; i < len(byName) && byName[i].name < mf.GetName(); i++ {
			own(byName[i])
		}
		if _, err := expfmt.MetricFamilyToText(bw, mf); err != nil {
			return
		}
	}
	for ; i < len(byName); i++ {
		own(byName[i])
	}
	_ = bw.Flush()
}

// metricsHandler serves /metrics; commands is the leader's in-memory
// per-command figures (nil for none); cache reads the clusters.
func metricsHandler(st store.Store, cache *ClusterCache, e *leader.Elector, lim *connLimiter, commands func(string) map[string]map[string]api.CommandStat, extra ...prometheus.Collector) http.Handler {
	m := &metricsServer{cache: cache, commands: commands, reg: prometheus.NewRegistry(), records: &recordsCollector{store: st},
		format: expfmt.NegotiateAccept(http.Header{}, expfmt.FmtText), byName: append([]*family(nil), families...)}
	sort.Slice(m.byName, func(i, j int) bool { return m.byName[i].name < m.byName[j].name })
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), m.records, leaderCollector{e})
	m.reg.MustRegister(extra...)
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "redis_manager_http_connections_open",
			Help: "API connections held open now."}, func() float64 { return float64(lim.Open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "redis_manager_http_connections_evicted_total",
			Help: "Idle or slow API connections closed to make room at --max-connections."}, func() float64 { return float64(lim.evicted.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "redis_manager_http_connections_refused_total",
			Help: "API connections closed at once because every slot was running a request."}, func() float64 { return float64(lim.refused.Load()) }),
	)
	return m
}
