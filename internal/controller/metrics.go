package controller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the controller's own figures for /metrics. They count what
// this process did: jobs it ran, failovers it recorded, its observe rounds.
// Only the leader runs jobs and records failovers, so a standby's stay at
// zero (redis_manager_leader says which manager leads).
type metrics struct {
	jobDuration     *prometheus.HistogramVec
	failovers       *prometheus.CounterVec
	writeUnavail    *prometheus.HistogramVec
	observeDuration prometheus.Histogram
	clusters        locked[string, bool] // clusters whose failover series exist
}

func newMetrics() *metrics {
	return &metrics{
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "redis_manager_job_duration_seconds",
			Help:    "Time from a job's start to its end, by kind and final state (succeeded or failed); the count is the jobs finished.",
			Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}}, []string{"kind", "state"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "redis_manager_failovers_total",
			Help: "Master switches recorded (failover events, planned or not), by cluster."}, []string{"cluster"}),
		writeUnavail: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "redis_manager_failover_write_unavailable_seconds",
			Help:    "Writes unavailable during a failover: from the old master's loss (or its detection) until the new master took writes (the failover event's writeUnavailableMs).",
			Buckets: []float64{0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60}}, []string{"cluster"}),
		observeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "redis_manager_observe_duration_seconds",
			Help:    "Duration of one observe round of the control loop over every cluster (INFO of every instance, Sentinel views, statuses stored).",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5}}),
	}
}

// Collectors returns the controller's metrics for the /metrics registry.
func (c *Controller) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.metrics.jobDuration, c.metrics.failovers, c.metrics.writeUnavail, c.metrics.observeDuration}
}

// knownClusters makes the failover series of the listed clusters exist at
// zero (a rate over them is 0, not absent) and drops those of clusters
// that are gone.
func (m *metrics) knownClusters(names []string) {
	now := map[string]bool{}
	for _, n := range names {
		now[n] = true
	}
	m.clusters.with(func(known map[string]bool) {
		for n := range known {
			if !now[n] {
				m.failovers.DeleteLabelValues(n)
				m.writeUnavail.DeleteLabelValues(n)
				delete(known, n)
			}
		}
		for n := range now {
			if !known[n] {
				m.failovers.WithLabelValues(n)
				m.writeUnavail.WithLabelValues(n)
				known[n] = true
			}
		}
	})
}

// failover counts a recorded failover event and its write unavailability
// (0: not measured, not observed).
func (m *metrics) failover(cluster string, unavailable time.Duration) {
	m.failovers.WithLabelValues(cluster).Inc()
	if unavailable > 0 {
		m.writeUnavail.WithLabelValues(cluster).Observe(unavailable.Seconds())
	}
}
