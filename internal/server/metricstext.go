package server

import (
	"math"
	"strconv"
	"strings"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// The per-cluster part of /metrics (one series or more per instance: at
// 1,020 instances ~70,000 series) is written as Prometheus text directly,
// not through client_golang: building a const metric per series, then
// sorting and encoding them, cost ~1.6 million allocations and 0.2 s of
// CPU per scrape at 1,020 instances, each time. Here each cluster's text
// is rendered once per stored revision (ClusterCache) into one buffer per
// family, and a scrape concatenates the buffers. TestMetricsTextMatches
// checks the text against what client_golang writes for the same samples.

// family is one metric family of the per-cluster part: its name, help,
// type (gauge or counter) and label names.
type family struct {
	name, help string
	counter    bool
	labels     []string
	idx        int // position in families
}

// families are every family of the per-cluster part, in declaration
// order.
var families []*family

func newFamily(name, help string, counter bool, labels ...string) *family {
	f := &family{name: name, help: help, counter: counter, labels: labels, idx: len(families)}
	families = append(families, f)
	return f
}

// sampleSink takes the samples of the per-cluster part: a family, a
// value and the label values in the family's order.
type sampleSink interface {
	sample(f *family, v float64, labels ...string)
}

var (
	famClusterReady   = newFamily("redis_manager_cluster_ready", "1 when the cluster's phase is Ready.", gaugeType, "cluster", "phase")
	famInstanceUp     = newFamily("redis_manager_instance_up", "1 when the instance answers INFO.", gaugeType, "cluster", "shard", "instance", "role")
	famKeys           = newFamily("redis_manager_instance_keys", "Keys in the instance.", gaugeType, "cluster", "shard", "instance", "role")
	famMemory         = newFamily("redis_manager_instance_used_memory_bytes", "used_memory of the instance.", gaugeType, "cluster", "shard", "instance", "role")
	famLag            = newFamily("redis_manager_replica_lag_bytes", "Replication offset lag of a replica behind its master.", gaugeType, "cluster", "shard", "instance")
	famSentinelUp     = newFamily("redis_manager_sentinel_up", "1 when the Sentinel answers.", gaugeType, "cluster", "instance")
	famSentinelQuorum = newFamily("redis_manager_sentinel_quorum", "Sentinels that must answer to authorize a failover: a majority of the cluster's Sentinels.", gaugeType, "cluster")
)

// clusterSamples sends every per-cluster series of cl: the manager's own
// (phase, instance up, keys, memory, lag, Sentinels, quorum) and the
// exporter-named ones (redisSamples). cmds: as redisSamples.
func clusterSamples(out sampleSink, cl store.Cluster, cmds map[string]map[string]api.CommandStat) {
	out.sample(famClusterReady, b2f(cl.Status.Phase == api.PhaseReady), cl.Name, cl.Status.Phase)
	for _, sh := range cl.Status.Shards {
		shard := strconv.Itoa(sh.Index)
		insts := sh.Replicas
		if sh.Master != nil {
			insts = append([]api.InstanceStatus{*sh.Master}, insts...)
		}
		for _, in := range insts {
			out.sample(famInstanceUp, b2f(in.Up), cl.Name, shard, in.Name, in.Role)
			out.sample(famKeys, float64(in.Keys), cl.Name, shard, in.Name, in.Role)
			out.sample(famMemory, float64(in.UsedMemoryBytes), cl.Name, shard, in.Name, in.Role)
			if in.Role == "replica" {
				out.sample(famLag, float64(in.LagBytes), cl.Name, shard, in.Name)
			}
		}
	}
	for _, s := range cl.Status.Sentinels {
		out.sample(famSentinelUp, b2f(s.Up), cl.Name, s.Name)
	}
	if len(cl.Status.Sentinels) > 0 {
		out.sample(famSentinelQuorum, float64(spec.Quorum(cl.Spec.Sentinels)), cl.Name)
	}
	redisSamples(out, cl, cmds)
}

// metricsText is one cluster's per-cluster series as Prometheus text
// lines, one buffer per family (by family.idx).
type metricsText struct {
	lines [][]byte
}

func (t *metricsText) sample(f *family, v float64, labels ...string) {
	b := t.lines[f.idx]
	b = append(b, f.name...)
	b = append(b, '{')
	for i, l := range labels {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f.labels[i]...)
		b = append(b, '=', '"')
		b = appendEscaped(b, l, true)
		b = append(b, '"')
	}
	b = append(b, '}', ' ')
	b = appendFloat(b, v)
	t.lines[f.idx] = append(b, '\n')
}

// renderCluster renders cl's per-cluster series.
func renderCluster(cl store.Cluster, cmds map[string]map[string]api.CommandStat) *metricsText {
	t := &metricsText{lines: make([][]byte, len(families))}
	clusterSamples(t, cl, cmds)
	return t
}

// appendHeader appends the family's HELP and TYPE lines.
func appendHeader(b []byte, f *family) []byte {
	b = append(b, "# HELP "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = appendEscaped(b, f.help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, f.name...)
	if f.counter {
		return append(b, " counter\n"...)
	}
	return append(b, " gauge\n"...)
}

// appendEscaped escapes as the text format wants (and expfmt does): \ and
// newline everywhere, " inside label values.
func appendEscaped(b []byte, s string, quote bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quote:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendFloat formats a value as expfmt does.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, '-', '1')
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
