package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/leader"
	"github.com/redis-manager/redis-manager/internal/store"
)

func openStore(t testing.TB, dir string) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "manager.db"), filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func testMetricsHandler(t testing.TB, st store.Store, commands func(string) map[string]map[string]api.CommandStat) *metricsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	e := leader.New(leader.Config{ID: "text"}, st, slog.New(slog.DiscardHandler))
	return metricsHandler(st, NewClusterCache(st, 0), e, newConnLimiter(ln, 16), commands).(*metricsServer)
}

// parseText parses a whole exposition as Prometheus does, failing the
// test on any error (a family split in two, a bad escape, …).
func parseText(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the text does not parse: %v", err)
	}
	return fams
}

// normalized is every sample, HELP and TYPE line of the families keep
// selects, each sample's labels sorted by name (client_golang's order),
// the lines sorted: two texts with the same content give the same lines.
func normalized(t *testing.T, text string, keep func(name string) bool) []string {
	t.Helper()
	var out []string
	for name, mf := range parseText(t, text) {
		if !keep(name) {
			continue
		}
		for _, m := range mf.Metric {
			sort.Slice(m.Label, func(i, j int) bool { return m.Label[i].GetName() < m.Label[j].GetName() })
		}
		var b bytes.Buffer
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")...)
	}
	sort.Strings(out)
	return out
}

func diffLines(t *testing.T, got, want []string) {
	t.Helper()
	g, w := map[string]bool{}, map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	for _, l := range want {
		w[l] = true
	}
	n := 0
	for _, l := range want {
		if !g[l] && n < 10 {
			t.Errorf("missing: %s", l)
			n++
		}
	}
	for _, l := range got {
		if !w[l] && n < 20 {
			t.Errorf("unexpected: %s", l)
			n++
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d lines, want %d", len(got), len(want))
	}
}

// perCluster selects the families that carry a cluster label and the
// exporter-named ones: what statusCollector and collectRedis sent before
// the text writer (and the backup figures, unchanged, which also carry
// the cluster).
func perCluster(name string) bool {
	return strings.HasPrefix(name, "redis_") && !strings.HasPrefix(name, "redis_manager_leader") &&
		!strings.HasPrefix(name, "redis_manager_http_") && name != "redis_manager_jobs"
}

// TestMetricsTextMatchesOldPath: for the statuses of seedVaried (every
// case the text must get right), /metrics holds the same per-cluster
// series, with the same help, type, labels and values, as the
// client_golang collectors it replaced wrote. testdata/metrics-varied.txt
// was written by those collectors (commit 739267b) for the same store and
// per-command figures. The whole answer parses, each family once.
func TestMetricsTextMatchesOldPath(t *testing.T) {
	st := openStore(t, t.TempDir())
	seedVaried(t, st)
	h := testMetricsHandler(t, st, variedCommands)
	text, _ := scrapeOnce(t, h)
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "# TYPE ") && strings.Count(text, l+"\n") != 1 {
			t.Errorf("%q appears %d times", l, strings.Count(text, l+"\n"))
		}
	}
	golden, err := os.ReadFile("testdata/metrics-varied.txt")
	if err != nil {
		t.Fatal(err)
	}
	diffLines(t, normalized(t, text, perCluster), normalized(t, string(golden), perCluster))
	if strings.Contains(text, "pw-alpha") || strings.Contains(text, "spw-") {
		t.Error("a password appears in /metrics")
	}
}

// TestMetricsStandbyFromStore: a manager without the leader's in-memory
// per-command figures (a standby) answers every series from the stored
// status; only the commands the status itself holds are sent.
func TestMetricsStandbyFromStore(t *testing.T) {
	st := openStore(t, t.TempDir())
	seedVaried(t, st)
	text, _ := scrapeOnce(t, testMetricsHandler(t, st, nil))
	got := normalized(t, text, perCluster)
	golden, err := os.ReadFile("testdata/metrics-varied.txt")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range normalized(t, string(golden), perCluster) {
		// The leader's figures for instances whose status has none.
		if (strings.HasPrefix(l, "redis_commands_total{") || strings.HasPrefix(l, "redis_commands_duration_seconds_total{")) && (strings.Contains(l, `instance="alpha-0-1"`) || strings.Contains(l, `cmd="set"`)) {
			continue
		}
		want = append(want, l)
	}
	diffLines(t, got, want)
	if !strings.Contains(text, `redis_commands_total{cluster="alpha",shard="0",instance="alpha-0-0",role="master",cmd="get"} 10`) {
		t.Error("the stored per-command figures are missing")
	}
}

// oracle sends the same samples as client_golang const metrics.
type oracle struct {
	cls  []store.Cluster
	cmds func(string) map[string]map[string]api.CommandStat
}

type oracleSink struct {
	ch    chan<- prometheus.Metric
	descs map[*family]*prometheus.Desc
}

func (o oracleSink) sample(f *family, v float64, labels ...string) {
	t := prometheus.GaugeValue
	if f.counter {
		t = prometheus.CounterValue
	}
	o.ch <- prometheus.MustNewConstMetric(o.descs[f], t, v, labels...)
}

func (o oracle) descs() map[*family]*prometheus.Desc {
	out := map[*family]*prometheus.Desc{}
	for _, f := range families {
		out[f] = prometheus.NewDesc(f.name, f.help, f.labels, nil)
	}
	return out
}

func (o oracle) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range o.descs() {
		ch <- d
	}
}

func (o oracle) Collect(ch chan<- prometheus.Metric) {
	s := oracleSink{ch: ch, descs: o.descs()}
	for _, cl := range o.cls {
		clusterSamples(s, cl, o.cmds(cl.Name))
	}
}

// TestMetricsTextMatchesClientGolang: at scale (seedScale, 3 clusters, 153
// instances, every figure set) the text writer and client_golang's
// encoder give the same content for the same samples.
func TestMetricsTextMatchesClientGolang(t *testing.T) {
	st := openStore(t, t.TempDir())
	seedScale(t, st, 3)
	cmds := func(cluster string) map[string]map[string]api.CommandStat {
		return map[string]map[string]api.CommandStat{cluster + "-0-1": {"zadd": {Calls: 5, Usec: 9}}}
	}
	text, _ := scrapeOnce(t, testMetricsHandler(t, st, cmds))
	cls, err := st.ListClusters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(oracle{cls: cls, cmds: cmds})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	own := map[string]bool{}
	for _, f := range families {
		own[f.name] = true
	}
	keep := func(name string) bool { return own[name] }
	want := normalized(t, b.String(), keep)
	if len(want) < 3*51*30 {
		t.Fatalf("the oracle wrote only %d lines", len(want))
	}
	diffLines(t, normalized(t, text, keep), want)
}
