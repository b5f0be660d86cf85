package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// scrape is one GET /metrics: its text and its parsed families.
type scrape struct {
	text     string
	families map[string]*dto.MetricFamily
}

func getMetrics(t *testing.T, m *testenv.Manager) scrape {
	t.Helper()
	resp, err := http.Get(m.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v\n%s", resp.StatusCode, err, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return scrape{text: string(body), families: fams}
}

// series returns the samples of a family whose labels include want.
func (s scrape) series(name string, want map[string]string) []*dto.Metric {
	f := s.families[name]
	if f == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range f.Metric {
		ok := true
		for k, v := range want {
			if label(m, k) != v {
				ok = false
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

// labelSets lists every series of the redis_* families as name{labels}.
func (s scrape) labelSets() []string {
	var out []string
	for name, f := range s.families {
		if !strings.HasPrefix(name, "redis_") || name == "redis_manager_http_connections_open" {
			continue
		}
		for _, m := range f.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			out = append(out, name+"{"+strings.Join(ls, ",")+"}")
		}
	}
	sort.Strings(out)
	return out
}

// dashboardQueries returns every PromQL expression of a Grafana dashboard:
// panels' targets (expr) and the template variables' queries.
func dashboardQueries(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s is not valid JSON: %v", path, err)
	}
	var out []string
	var walk func(v any, inTemplating bool)
	walk = func(v any, inTemplating bool) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && (k == "expr" || (inTemplating && (k == "query" || k == "definition") && strings.Contains(s, "("))) {
					out = append(out, s)
				}
				walk(e, inTemplating || k == "templating")
			}
		case []any:
			for _, e := range v {
				walk(e, inTemplating)
			}
		}
	}
	walk(doc, false)
	if len(out) == 0 {
		t.Fatalf("%s: no expressions found", path)
	}
	return out
}

var (
	reBraces   = regexp.MustCompile(`\{[^{}]*\}`)
	reRange    = regexp.MustCompile(`\[[^\]]*\]`)
	reMetric   = regexp.MustCompile(`\bredis_[a-z0-9_]+`)
	reMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	reGrouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	reLabelFn  = regexp.MustCompile(`label_values\([^,]*,\s*([a-zA-Z_]+)\)`)
)

// queried returns the metric names and the label names an expression uses.
func queried(expr string) (metrics, labels []string) {
	for _, sel := range reBraces.FindAllString(expr, -1) {
		for _, m := range reMatcher.FindAllStringSubmatch(sel, -1) {
			labels = append(labels, m[1])
		}
	}
	for _, g := range reGrouping.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" && l != "le" {
				labels = append(labels, l)
			}
		}
	}
	for _, m := range reLabelFn.FindAllStringSubmatch(expr, -1) {
		labels = append(labels, m[1])
	}
	bare := reRange.ReplaceAllString(reBraces.ReplaceAllString(expr, ""), "")
	for _, n := range reMetric.FindAllString(bare, -1) {
		// A histogram is queried by its _bucket, _sum or _count series.
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(n, suffix); ok && strings.HasPrefix(base, "redis_manager_") {
				n = base
			}
		}
		metrics = append(metrics, n)
	}
	return metrics, labels
}

// ruleExprs reads the expressions of a Prometheus rules file, by the
// manager rule each alert carries in its rule label.
func ruleExprs(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Expr   string            `yaml:"expr"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out[r.Labels["rule"]] = r.Expr
		}
	}
	return out
}

// TestMetricsDashboards: a real manager with a real cluster (2 shards, 2
// replicas each, 3 Sentinels) exposes every metric that Grafana dashboard
// 763 (redis_exporter's) and our deploy/grafana dashboard query, with the
// labels they select and group by, and sensible values: every instance up,
// memory used, the keys written counted per shard, replicas linked,
// Sentinels that can vote; every metric and label the rules of
// deploy/prometheus read is exposed (a backup schedule set for the
// backup-missing rule); the label sets are the same in two scrapes an
// observe round apart; no password or token appears in the scrape.
func TestMetricsDashboards(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "shop", Shards: intp(2), Replicas: intp(2), Sentinels: intp(3)})
	creds, err := m.Client.Credentials(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	// Shard 0 gets 50 keys, 20 of them with a TTL, 10 hits and 5 misses;
	// shard 1 stays empty.
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: cl.Connection.MasterNames[0], SentinelAddrs: cl.Connection.Sentinels,
		Password: creds.Password, SentinelPassword: creds.SentinelPassword, Protocol: 2})
	defer fc.Close()
	for i := 0; i < 50; i++ {
		ttl := time.Duration(0)
		if i < 20 {
			ttl = time.Hour
		}
		if err := fc.Set(ctx, fmt.Sprintf("k%d", i), "v", ttl).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 15; i++ {
		if err := fc.Get(ctx, fmt.Sprintf("k%d", i*5)).Err(); err != nil && err != redis.Nil {
			t.Fatal(err)
		}
	}
	if n, err := fc.Do(ctx, "WAIT", 2, 5000).Int(); err != nil || n != 2 {
		t.Fatalf("WAIT 2: %d %v", n, err)
	}
	// A weekly backup schedule (Sundays 03:00 UTC), for the schedule's
	// figures the backup-missing rule of deploy/prometheus reads.
	if _, err := m.Client.PutBackupSchedule(ctx, "shop", api.BackupScheduleRequest{Cron: "0 3 * * 0"}); err != nil {
		t.Fatal(err)
	}

	// The keys show once an observe round stored them (every 2 s).
	var s scrape
	deadline := time.Now().Add(15 * time.Second)
	for {
		s = getMetrics(t, m)
		keys := s.series("redis_db_keys", map[string]string{"cluster": "shop", "shard": "0", "db": "db0"})
		done := len(keys) == 3
		for _, k := range keys {
			done = done && value(k) == 50
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis_db_keys of shard 0 never showed 50 keys on its 3 instances:\n%s", grep(s.text, "redis_db_keys"))
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Every metric and label the dashboards query is exposed.
	exposedLabels := map[string]bool{}
	for name, f := range s.families {
		if strings.HasPrefix(name, "redis_") {
			for _, mt := range f.Metric {
				for _, l := range mt.Label {
					exposedLabels[l.GetName()] = true
				}
			}
		}
	}
	for _, dash := range []struct {
		path string
		// labels Prometheus adds itself (target labels), not the exporter
		targetLabels map[string]bool
	}{
		{filepath.Join("testdata", "redis_exporter", "grafana_prometheus_redis_dashboard.json"), map[string]bool{"namespace": true}},
		{filepath.Join("..", "..", "deploy", "grafana", "redis-manager.json"), nil},
	} {
		names := map[string]bool{}
		for _, q := range dashboardQueries(t, dash.path) {
			ms, ls := queried(q)
			for _, n := range ms {
				names[n] = true
				if s.families[n] == nil || len(s.families[n].Metric) == 0 {
					t.Errorf("%s queries %s (%q); /metrics has no such series", filepath.Base(dash.path), n, q)
				}
			}
			for _, l := range ls {
				if !exposedLabels[l] && !dash.targetLabels[l] {
					t.Errorf("%s uses label %q (%q); no redis_* series has it", filepath.Base(dash.path), l, q)
				}
			}
		}
		if len(names) < 10 {
			t.Errorf("%s: only %d metric names found in its expressions: %v", dash.path, len(names), names)
		}
		t.Logf("%s: %d metric names, all exposed", filepath.Base(dash.path), len(names))
	}

	// Every metric and label the Prometheus rules of deploy/prometheus
	// read is exposed.
	rulesFile := filepath.Join("..", "..", "deploy", "prometheus", "redis-manager.rules.yml")
	exprs := ruleExprs(t, rulesFile)
	names := map[string]bool{}
	for rule, q := range exprs {
		ms, ls := queried(q)
		for _, n := range ms {
			names[n] = true
			if s.families[n] == nil || len(s.families[n].Metric) == 0 {
				t.Errorf("%s: rule %s reads %s (%q); /metrics has no such series", filepath.Base(rulesFile), rule, n, q)
			}
		}
		for _, l := range ls {
			if !exposedLabels[l] {
				t.Errorf("%s: rule %s uses label %q (%q); no redis_* series has it", filepath.Base(rulesFile), rule, l, q)
			}
		}
	}
	if len(exprs) < 13 || len(names) < 15 {
		t.Errorf("%s: %d rules reading %d metric names: %v", rulesFile, len(exprs), len(names), names)
	}
	t.Logf("%s: %d rules read %d metric names, all exposed", filepath.Base(rulesFile), len(exprs), len(names))

	// Sensible values.
	check := func(name string, want map[string]string, n int, ok func(float64) bool, what string) {
		t.Helper()
		got := s.series(name, want)
		if len(got) != n {
			t.Errorf("%s%v: %d series, want %d", name, want, len(got), n)
		}
		for _, g := range got {
			if !ok(value(g)) {
				t.Errorf("%s{instance=%s,role=%s}: %v, want %s", name, label(g, "instance"), label(g, "role"), value(g), what)
			}
		}
	}
	eq := func(v float64) func(float64) bool { return func(x float64) bool { return x == v } }
	pos := func(x float64) bool { return x > 0 }
	shop := map[string]string{"cluster": "shop"}
	with := func(kv ...string) map[string]string {
		out := map[string]string{"cluster": "shop"}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	check("redis_up", shop, 2*3+3, eq(1), "1")
	check("redis_up", with("role", "master"), 2, eq(1), "1")
	check("redis_up", with("role", "replica"), 4, eq(1), "1")
	check("redis_up", with("role", "sentinel"), 3, eq(1), "1")
	check("redis_instance_info", with("role", "master"), 2, eq(1), "1")
	for _, g := range s.series("redis_instance_info", shop) {
		if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(label(g, "redis_version")) || label(g, "redis_mode") != "standalone" {
			t.Errorf("redis_instance_info labels %v", g.Label)
		}
	}
	check("redis_memory_used_bytes", shop, 6, pos, "> 0")
	check("redis_memory_max_bytes", shop, 6, func(x float64) bool { return x >= 0 }, ">= 0")
	check("redis_uptime_in_seconds", shop, 6, pos, "> 0")
	check("redis_mem_fragmentation_ratio", shop, 6, pos, "> 0")
	check("redis_connected_clients", shop, 6, pos, "> 0 (the manager is one)")
	check("redis_commands_processed_total", shop, 6, pos, "> 0")
	check("redis_max_clients", shop, 6, eq(10000), "10000 (the default)")
	check("redis_master_repl_offset", with("role", "master"), 2, pos, "> 0")
	check("redis_db_keys", with("shard", "1", "db", "db0"), 3, eq(0), "0 (empty shard)")
	check("redis_db_keys_expiring", with("shard", "0", "db", "db0"), 3, eq(20), "20")
	check("redis_commands_total", with("shard", "0", "role", "master", "cmd", "set"), 1, eq(50), "50 SETs")
	check("redis_commands_duration_seconds_total", with("shard", "0", "role", "master", "cmd", "set"), 1, pos, "> 0")
	check("redis_keyspace_hits_total", with("shard", "0", "role", "master"), 1, eq(10), "10")
	check("redis_keyspace_misses_total", with("shard", "0", "role", "master"), 1, eq(5), "5")
	check("redis_evicted_keys_total", shop, 6, eq(0), "0")
	check("redis_connected_slaves", with("role", "master"), 2, eq(2), "2")
	check("redis_connected_slaves", with("role", "replica"), 4, eq(0), "0")
	check("redis_master_link_up", shop, 4, eq(1), "1 on every replica")
	check("redis_replica_lag_bytes", shop, 4, func(x float64) bool { return x >= 0 }, ">= 0")
	check("redis_connected_slave_lag_seconds", with("role", "master"), 4, func(x float64) bool { return x >= 0 && x < 5 }, "0-4 s")
	check("redis_rdb_last_bgsave_status", shop, 6, eq(1), "1 (ok)")
	check("redis_latest_fork_usec", with("role", "master"), 2, pos, "> 0 (the replicas' full syncs forked)")
	check("redis_cpu_sys_seconds_total", shop, 6, func(x float64) bool { return x >= 0 }, ">= 0")
	// The kernel splits a process's CPU time into user and system by
	// sampled ticks: a process a few seconds old may show 0 in one of
	// them. Their sum on each master (writes, syncs) is above 0.
	check("redis_cpu_user_seconds_total", shop, 6, func(x float64) bool { return x >= 0 }, ">= 0")
	for _, g := range s.series("redis_cpu_sys_seconds_total", with("role", "master")) {
		in := label(g, "instance")
		user := s.series("redis_cpu_user_seconds_total", map[string]string{"instance": in})
		if len(user) != 1 || value(g)+value(user[0]) <= 0 {
			t.Errorf("%s: CPU sys %v + user %v, want > 0", in, value(g), user)
		}
	}
	check("redis_sentinel_tilt", shop, 3, eq(0), "0")
	check("redis_sentinel_masters", shop, 3, eq(2), "2")
	// redis_exporter counts the scraped Sentinel itself and every peer
	// it does not flag down: all 3 here.
	check("redis_sentinel_master_ok_sentinels", shop, 3*2, eq(3), "3")
	check("redis_sentinel_master_ok_slaves", shop, 3*2, eq(2), "2")
	check("redis_sentinel_master_setting_ckquorum", shop, 3*2, eq(2), "2")
	check("redis_sentinel_master_config_epoch", shop, 3*2, func(x float64) bool { return x >= 0 }, ">= 0")
	check("redis_manager_cluster_ready", map[string]string{"cluster": "shop", "phase": api.PhaseReady}, 1, eq(1), "1")
	check("redis_manager_job_duration_seconds", map[string]string{"kind": api.JobCreate, "state": api.StateSucceeded}, 1, eq(1), "1 job")
	check("redis_manager_jobs", map[string]string{"kind": api.JobCreate, "state": api.StateRunning}, 1, eq(0), "0")
	check("redis_manager_failovers_total", shop, 1, eq(0), "0")
	check("redis_manager_backup_last_success_timestamp_seconds", shop, 2, eq(0), "0 (no backup yet)")
	check("redis_manager_backup_last_failure_timestamp_seconds", shop, 2, eq(0), "0 (no backup yet)")
	check("redis_manager_backup_schedule_period_seconds", shop, 1, eq(7*24*3600), "a week")
	check("redis_manager_backup_schedule_updated_timestamp_seconds", shop, 1, func(x float64) bool {
		return x > float64(time.Now().Add(-5*time.Minute).Unix()) && x <= float64(time.Now().Unix())
	}, "when the test set it")
	check("redis_manager_sentinel_quorum", shop, 1, eq(2), "2 (a majority of 3)")
	check("redis_manager_observe_duration_seconds", nil, 1, pos, "rounds > 0")
	check("redis_manager_leader", nil, 1, eq(1), "1")

	// The series keep their labels from one observe round to the next.
	time.Sleep(2500 * time.Millisecond)
	s2 := getMetrics(t, m)
	// Every series of the first is in the second with the same labels.
	// The second may have more only where a counter is born: a command an
	// instance ran for the first time (commandstats lists it from then
	// on), a job kind and outcome finished for the first time.
	if diff := diffLines(s.labelSets(), s2.labelSets()); diff != "" {
		for _, l := range strings.Split(diff, "\n") {
			born := strings.HasPrefix(l, "+ redis_commands_total{") || strings.HasPrefix(l, "+ redis_commands_duration_seconds_total{") ||
				strings.HasPrefix(l, "+ redis_manager_job_duration_seconds{")
			if !born {
				t.Errorf("label sets changed between two scrapes:\n%s", diff)
				break
			}
		}
		t.Logf("series born between two scrapes:\n%s", diff)
	}

	// A planned failover is counted, and the shard's config epoch rises.
	epoch := value(s2.series("redis_sentinel_master_config_epoch", with("shard", "1"))[0])
	job, err := m.Client.Failover(ctx, "shop", 1)
	if err != nil {
		t.Fatal(err)
	}
	if j := m.WaitJob(ctx, job.ID); j.State != api.StateSucceeded {
		t.Fatalf("failover job %+v", j)
	}
	m.WaitPhase(ctx, "shop", api.PhaseReady, 20*time.Second)
	deadline = time.Now().Add(10 * time.Second)
	for {
		s3 := getMetrics(t, m)
		epochs := s3.series("redis_sentinel_master_config_epoch", with("shard", "1"))
		fo := s3.series("redis_manager_failovers_total", shop)
		if len(fo) == 1 && value(fo[0]) == 1 && len(epochs) == 3 && value(epochs[0]) > epoch && value(epochs[1]) > epoch && value(epochs[2]) > epoch {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a failover of shard 1: failovers %v, config epochs %v (before %v)", fo, epochs, epoch)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// A Sentinel that stops answering (SIGSTOP) is redis_up 0 with no
	// other series, and the others count 2 Sentinels that can vote.
	cur, err := m.Client.GetCluster(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	stopped := cur.Status.Sentinels[2]
	if stopped.Pid <= 0 {
		t.Fatalf("no pid for %s: %+v", stopped.Name, stopped)
	}
	if err := syscall.Kill(stopped.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(stopped.Pid, syscall.SIGCONT) }()
	deadline = time.Now().Add(15 * time.Second)
	for {
		s4 := getMetrics(t, m)
		up := s4.series("redis_up", map[string]string{"instance": stopped.Name})
		ok := s4.series("redis_sentinel_master_ok_sentinels", shop)
		others := len(s4.series("redis_sentinel_tilt", map[string]string{"instance": stopped.Name})) +
			len(s4.series("redis_sentinel_master_config_epoch", map[string]string{"instance": stopped.Name}))
		done := len(up) == 1 && value(up[0]) == 0 && len(ok) == 2*2 && others == 0
		for _, o := range ok {
			done = done && value(o) == 2
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with %s stopped: redis_up %v, ok_sentinels %v, %d other series of it", stopped.Name, up, ok, others)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := syscall.Kill(stopped.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	// No secret: neither the cluster's passwords nor the admin token.
	for what, secret := range map[string]string{"password": creds.Password, "Sentinel password": creds.SentinelPassword, "admin token": m.Token} {
		if secret == "" {
			t.Fatalf("%s is empty: the check would prove nothing", what)
		}
		for _, text := range []string{s.text, s2.text} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s appears in /metrics", what)
			}
		}
	}
}

func grep(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func diffLines(a, b []string) string {
	in := func(xs []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range xs {
			m[x] = true
		}
		return m
	}
	ina, inb := in(a), in(b)
	var out []string
	for _, x := range a {
		if !inb[x] {
			out = append(out, "- "+x)
		}
	}
	for _, x := range b {
		if !ina[x] {
			out = append(out, "+ "+x)
		}
	}
	return strings.Join(out, "\n")
}
