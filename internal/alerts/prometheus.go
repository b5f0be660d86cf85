package alerts

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PromRule is one rule as a Prometheus alerting rule over the manager's
// /metrics. Expr is PromQL in which {{threshold}} stands for the rule's
// default threshold, so deploy/prometheus cannot drift from Rules:
// PrometheusRules renders the file from both, and a test compares it with
// the committed one.
type PromRule struct {
	Rule    string // the manager's rule name (label rule)
	Alert   string // the Prometheus alert name
	Expr    string
	Summary string
}

// PromRules are the manager's rules in PromQL. Where the manager decides
// from more than /metrics shows, the expression is the closest reading of
// the same figures; docs/monitoring.md lists the differences.
var PromRules = []PromRule{
	{Rule: "instance-down", Alert: "RedisInstanceDown",
		Expr:    `redis_up{role!="sentinel"} == 0`,
		Summary: `{{ $labels.instance }} of {{ $labels.cluster }} shard {{ $labels.shard }} does not answer`},
	// A down instance has role "" (its role is read from its INFO), so a
	// shard whose master is down has no series in the master role.
	{Rule: "no-master", Alert: "RedisNoMaster",
		Expr:    `count by (cluster, shard) (redis_up{role!="sentinel"}) unless on (cluster, shard) (redis_up{role="master"} == 1)`,
		Summary: `shard {{ $labels.shard }} of {{ $labels.cluster }} has no master that answers`},
	{Rule: "two-masters", Alert: "RedisTwoMasters",
		Expr:    `count by (cluster, shard) (redis_up{role="master"} == 1) > 1`,
		Summary: `shard {{ $labels.shard }} of {{ $labels.cluster }} has {{ $value }} instances in the master role`},
	{Rule: "replica-link-down", Alert: "RedisReplicaLinkDown",
		Expr:    `redis_master_link_up == 0`,
		Summary: `replica {{ $labels.instance }} of {{ $labels.cluster }} shard {{ $labels.shard }} has its master link down`},
	{Rule: "replica-lag", Alert: "RedisReplicaLag",
		Expr:    `redis_replica_lag_bytes > {{threshold}} and on (cluster, shard, instance) redis_master_link_up == 1`,
		Summary: `replica {{ $labels.instance }} of {{ $labels.cluster }} is {{ $value | humanize1024 }}B behind its master`},
	{Rule: "memory-high", Alert: "RedisMemoryHigh",
		Expr:    `100 * redis_memory_used_bytes / (redis_memory_max_bytes > 0) > {{threshold}}`,
		Summary: `{{ $labels.instance }} of {{ $labels.cluster }} uses {{ printf "%.1f" $value }} % of its maxmemory`},
	{Rule: "connections-high", Alert: "RedisConnectionsHigh",
		Expr:    `100 * redis_connected_clients / (redis_max_clients > 0) > {{threshold}}`,
		Summary: `{{ $labels.instance }} of {{ $labels.cluster }} has {{ printf "%.1f" $value }} % of maxclients connected`},
	{Rule: "sentinel-quorum", Alert: "RedisSentinelQuorum",
		Expr:    `sum by (cluster) (redis_up{role="sentinel"}) < on (cluster) redis_manager_sentinel_quorum`,
		Summary: `only {{ $value }} Sentinels of {{ $labels.cluster }} answer, fewer than the quorum: no failover can be authorized`},
	{Rule: "sentinel-tilt", Alert: "RedisSentinelTilt",
		Expr:    `redis_sentinel_tilt == 1`,
		Summary: `Sentinel {{ $labels.instance }} of {{ $labels.cluster }} is in TILT mode`},
	{Rule: "backup-failed", Alert: "RedisBackupFailed",
		Expr:    `redis_manager_backup_last_failure_timestamp_seconds > on (cluster, shard) redis_manager_backup_last_success_timestamp_seconds`,
		Summary: `the newest backup of {{ $labels.cluster }} shard {{ $labels.shard }} failed`},
	// Counted from the newest success of any shard, or from the schedule's
	// last change when none ever succeeded.
	{Rule: "backup-missing", Alert: "RedisBackupMissing",
		Expr: `time() - (max by (cluster) (redis_manager_backup_last_success_timestamp_seconds) > 0 or max by (cluster) (redis_manager_backup_schedule_updated_timestamp_seconds))` +
			` > on (cluster) {{threshold}} * redis_manager_backup_schedule_period_seconds`,
		Summary: `no successful backup of {{ $labels.cluster }} for {{ humanizeDuration $value }}`},
	{Rule: "slow-fork", Alert: "RedisSlowFork",
		Expr:    `redis_latest_fork_usec / 1000 > {{threshold}}`,
		Summary: `the latest fork of {{ $labels.instance }} of {{ $labels.cluster }} took {{ $value }} ms`},
	// The threshold is how long the alert fires after a failover: the
	// window of the increase.
	{Rule: "failover", Alert: "RedisFailover",
		Expr:    `sum by (cluster) (increase(redis_manager_failovers_total[{{threshold}}s])) > 0`,
		Summary: `a failover happened in {{ $labels.cluster }}`},
}

// PrometheusRules renders rules (Rules, or a variant in tests) as a
// Prometheus rules file: one group, each rule with its default threshold
// in the expression, its default for, and the labels severity and rule.
func PrometheusRules(rules []Rule) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`# Generated from internal/alerts (Rules, PromRules); do not edit: change the
# code and run  go test ./internal/alerts -run TestPrometheusRulesFile -update
# The manager's alert rules with their default thresholds and for durations,
# over the metric names of its /metrics (docs/monitoring.md). Per-cluster
# overrides (PUT /api/v1/clusters/{name}/alert-rules) apply to the manager's
# own evaluation only.
groups:
  - name: redis-manager
    rules:
`)
	byName := map[string]PromRule{}
	for _, p := range PromRules {
		byName[p.Rule] = p
	}
	for _, r := range rules {
		p, ok := byName[r.Name]
		if !ok {
			return nil, fmt.Errorf("rule %s has no Prometheus expression in PromRules", r.Name)
		}
		expr := p.Expr
		if r.Unit != "" {
			if strings.Count(expr, "{{threshold}}") != 1 {
				return nil, fmt.Errorf("rule %s has a threshold: its expression must hold {{threshold}} once", r.Name)
			}
			expr = strings.Replace(expr, "{{threshold}}", strconv.FormatFloat(r.Threshold, 'f', -1, 64), 1)
		} else if strings.Contains(expr, "{{threshold}}") {
			return nil, fmt.Errorf("rule %s has no threshold but its expression holds {{threshold}}", r.Name)
		}
		fmt.Fprintf(&b, "      - alert: %s\n", p.Alert)
		fmt.Fprintf(&b, "        expr: %s\n", quote(expr))
		fmt.Fprintf(&b, "        for: %s\n", promDuration(r.For))
		fmt.Fprintf(&b, "        labels:\n          severity: %s\n          rule: %s\n", r.Severity, r.Name)
		fmt.Fprintf(&b, "        annotations:\n          summary: %s\n          description: %s\n", quote(p.Summary), quote(r.Help))
	}
	return b.Bytes(), nil
}

// quote is a YAML single-quoted string: only ' is escaped (doubled),
// so expressions read as written.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// promDuration writes d as Prometheus does (0s, 30s, 1m, 2m, 1h30m).
func promDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var s string
	if h := d / time.Hour; h > 0 {
		s += strconv.Itoa(int(h)) + "h"
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		s += strconv.Itoa(int(m)) + "m"
		d -= m * time.Minute
	}
	if sec := d / time.Second; sec > 0 {
		s += strconv.Itoa(int(sec)) + "s"
		d -= sec * time.Second
	}
	if d > 0 {
		s += strconv.Itoa(int(d/time.Millisecond)) + "ms"
	}
	return s
}
