package alerts

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
)

// Severities.
const (
	Critical = "critical"
	Warning  = "warning"
	Info     = "info"
)

// Rule is an alert rule with its defaults.
type Rule struct {
	Name     string
	Severity string
	// Threshold is the default threshold; Unit says what it counts
	// ("" when the rule has none: it holds or not).
	Threshold float64
	Unit      string
	// For is how long the condition must hold before the alert fires.
	For time.Duration
	// Help says what the rule watches.
	Help string
}

// Rules are every rule, by name (API.md "Metrics, alerts, autoscaling").
var Rules = []Rule{
	{Name: "instance-down", Severity: Critical, For: 30 * time.Second, Help: "a redis-server of the cluster does not answer"},
	{Name: "no-master", Severity: Critical, For: 30 * time.Second, Help: "a shard has no master that answers"},
	{Name: "two-masters", Severity: Critical, For: 30 * time.Second, Help: "a shard has more than one instance in the master role"},
	{Name: "replica-link-down", Severity: Critical, For: time.Minute, Help: "a replica that answers has its master link down"},
	{Name: "replica-lag", Severity: Warning, Threshold: 10 << 20, Unit: "bytes", For: 2 * time.Minute, Help: "a replica is behind its master by more than the threshold"},
	{Name: "memory-high", Severity: Warning, Threshold: 90, Unit: "percent", For: 2 * time.Minute, Help: "used memory above a share of maxmemory (instances with a maxmemory)"},
	{Name: "connections-high", Severity: Warning, Threshold: 90, Unit: "percent", For: 2 * time.Minute, Help: "connected clients above a share of maxclients"},
	{Name: "sentinel-quorum", Severity: Critical, For: 30 * time.Second, Help: "fewer Sentinels answer than the quorum: no failover can be authorized"},
	{Name: "sentinel-tilt", Severity: Warning, For: 0, Help: "a Sentinel is in TILT mode (its clock jumped or it was paused): it acts on nothing for its TILT period (5 s as the manager sets it)"},
	{Name: "backup-failed", Severity: Warning, For: 0, Help: "the newest finished backup of a shard failed"},
	{Name: "backup-missing", Severity: Warning, Threshold: 2, Unit: "periods", For: 0, Help: "no successful backup within threshold × the schedule's period"},
	{Name: "slow-fork", Severity: Warning, Threshold: 500, Unit: "ms", For: 0, Help: "the latest fork (BGSAVE, AOF rewrite, full sync) took longer than the threshold"},
	{Name: "failover", Severity: Info, Threshold: 60, Unit: "seconds", For: 0, Help: "a failover happened (planned or not): fires once per failover event and resolves threshold seconds later"},
}

// ruleByName finds a rule.
func ruleByName(name string) (Rule, bool) {
	for _, r := range Rules {
		if r.Name == name {
			return r, true
		}
	}
	return Rule{}, false
}

// Setting is one rule's effective settings for one cluster.
type Setting struct {
	Enabled   bool
	Threshold float64
	For       time.Duration
}

// FieldError is an invalid override; Field names it (e.g.
// "memory-high.threshold").
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Validate checks overrides: known rules, thresholds only where the rule
// has one and within its range, forMs from 0 to a day.
func Validate(o api.AlertRules) error {
	names := make([]string, 0, len(o))
	for n := range o {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r, ok := ruleByName(n)
		if !ok {
			return &FieldError{Field: n, Message: fmt.Sprintf("no rule %q; rules: %s", n, ruleNames())}
		}
		v := o[n]
		if v.Threshold != nil {
			t := *v.Threshold
			switch {
			case r.Unit == "":
				return &FieldError{Field: n + ".threshold", Message: fmt.Sprintf("rule %q has no threshold", n)}
			case math.IsNaN(t) || t <= 0:
				return &FieldError{Field: n + ".threshold", Message: "must be above 0"}
			case r.Unit == "percent" && t > 100:
				return &FieldError{Field: n + ".threshold", Message: "is a percentage: at most 100"}
			}
		}
		if v.ForMs != nil && (*v.ForMs < 0 || *v.ForMs > int64(24*time.Hour/time.Millisecond)) {
			return &FieldError{Field: n + ".forMs", Message: "must be from 0 to 86400000 (a day)"}
		}
	}
	return nil
}

func ruleNames() string {
	s := ""
	for i, r := range Rules {
		if i > 0 {
			s += ", "
		}
		s += r.Name
	}
	return s
}

// Effective merges a cluster's overrides into the defaults.
func Effective(o api.AlertRules) map[string]Setting {
	out := make(map[string]Setting, len(Rules))
	for _, r := range Rules {
		s := Setting{Enabled: true, Threshold: r.Threshold, For: r.For}
		if v, ok := o[r.Name]; ok {
			if v.Enabled != nil {
				s.Enabled = *v.Enabled
			}
			if v.Threshold != nil {
				s.Threshold = *v.Threshold
			}
			if v.ForMs != nil {
				s.For = time.Duration(*v.ForMs) * time.Millisecond
			}
		}
		out[r.Name] = s
	}
	return out
}

// Full is the effective settings in the API's form (every field set).
func Full(o api.AlertRules) api.AlertRules {
	out := api.AlertRules{}
	for name, s := range Effective(o) {
		enabled, ms := s.Enabled, s.For.Milliseconds()
		r := api.AlertRule{Enabled: &enabled, ForMs: &ms}
		if rule, _ := ruleByName(name); rule.Unit != "" {
			t := s.Threshold
			r.Threshold = &t
		}
		out[name] = r
	}
	return out
}

// Condition is a rule that holds now for one shard or instance.
type Condition struct {
	Rule     string
	Shard    *int
	Instance string
	Value    float64
	Message  string
}

// Input is what Conditions reads of one cluster.
type Input struct {
	Cluster string
	Spec    api.ClusterSpec
	Status  api.ClusterStatus
	// Backups are the cluster's backups, newest first.
	Backups []api.Backup
	// Schedule is the cluster's backup schedule ("" none), its creation
	// time, and Period, the time between two of its slots.
	Schedule        string
	ScheduleCreated time.Time
	Period          time.Duration
	// Events are the cluster's recent events, newest first (the failover
	// rule reads those of type failover).
	Events []api.Event
	Now    time.Time
}

// Conditions lists the enabled rules that hold for the cluster. It is pure.
func Conditions(in Input, settings map[string]Setting) []Condition {
	var out []Condition
	on := func(rule string) (Setting, bool) {
		s, ok := settings[rule]
		return s, ok && s.Enabled
	}
	add := func(rule string, shard *int, instance string, value float64, format string, a ...any) {
		if _, ok := on(rule); ok {
			out = append(out, Condition{Rule: rule, Shard: shard, Instance: instance, Value: value, Message: fmt.Sprintf(format, a...)})
		}
	}
	st := in.Status
	for _, sh := range st.Shards {
		shard := sh.Index
		sp := &shard
		instances := make([]api.InstanceStatus, 0, 1+len(sh.Replicas))
		if sh.Master != nil {
			instances = append(instances, *sh.Master)
		}
		instances = append(instances, sh.Replicas...)
		masters := 0
		for _, is := range instances {
			if !is.Up {
				add("instance-down", sp, is.Name, 1, "%s (%s) of shard %d does not answer", is.Name, is.Address, shard)
				continue
			}
			if is.Role == "master" {
				masters++
			}
			if is.Role == "replica" {
				if is.MasterLinkStatus != "up" {
					add("replica-link-down", sp, is.Name, 1, "replica %s of shard %d has its master link %s", is.Name, shard, orUnknown(is.MasterLinkStatus))
				} else if s, ok := on("replica-lag"); ok && float64(is.LagBytes) > s.Threshold {
					add("replica-lag", sp, is.Name, float64(is.LagBytes), "replica %s of shard %d is %d bytes behind its master (threshold %.0f)", is.Name, shard, is.LagBytes, s.Threshold)
				}
			}
			if s, ok := on("memory-high"); ok && is.MaxmemoryBytes > 0 {
				pct := 100 * float64(is.UsedMemoryBytes) / float64(is.MaxmemoryBytes)
				if pct > s.Threshold {
					add("memory-high", sp, is.Name, pct, "%s uses %.1f %% of its maxmemory (%d of %d bytes; threshold %.0f %%)", is.Name, pct, is.UsedMemoryBytes, is.MaxmemoryBytes, s.Threshold)
				}
			}
			if s, ok := on("connections-high"); ok && is.MaxClients > 0 {
				pct := 100 * float64(is.ConnectedClients) / float64(is.MaxClients)
				if pct > s.Threshold {
					add("connections-high", sp, is.Name, pct, "%s has %d clients of maxclients %d (%.1f %%; threshold %.0f %%)", is.Name, is.ConnectedClients, is.MaxClients, pct, s.Threshold)
				}
			}
			if s, ok := on("slow-fork"); ok {
				ms := float64(is.LatestForkUsec) / 1000
				if ms > s.Threshold {
					add("slow-fork", sp, is.Name, ms, "the latest fork of %s took %.0f ms (threshold %.0f ms)", is.Name, ms, s.Threshold)
				}
			}
		}
		if sh.Master == nil || !sh.Master.Up {
			add("no-master", sp, "", 0, "shard %d (%s) has no master that answers", shard, sh.SentinelName)
		}
		if masters > 1 {
			add("two-masters", sp, "", float64(masters), "shard %d has %d instances in the master role", shard, masters)
		}
	}
	if len(st.Sentinels) > 0 {
		up := 0
		for _, s := range st.Sentinels {
			if s.Up {
				up++
			}
		}
		if q := spec.Quorum(in.Spec.Sentinels); up < q {
			add("sentinel-quorum", nil, "", float64(up), "%d of %d Sentinels answer, fewer than the quorum %d: no failover can be authorized", up, len(st.Sentinels), q)
		}
	}
	for _, s := range st.Sentinels {
		if s.Up && s.Tilt {
			add("sentinel-tilt", nil, s.Name, 1, "Sentinel %s (%s) is in TILT mode: it saw its clock jump or was paused, and acts on nothing for its TILT period", s.Name, s.Address)
		}
	}
	fired := map[int]bool{}
	hold := time.Duration(settings["failover"].Threshold * float64(time.Second))
	for _, e := range in.Events {
		if e.Type != "failover" || e.Shard == nil || fired[*e.Shard] || in.Now.Sub(e.At) >= hold {
			continue
		}
		fired[*e.Shard] = true
		shard := *e.Shard
		add("failover", &shard, "", 1, "%s", e.Message)
	}
	// Backups: the newest finished one of each shard.
	seen := map[int]bool{}
	var lastSuccess time.Time
	for _, b := range in.Backups {
		if b.State == api.StateSucceeded && b.FinishedAt != nil && b.FinishedAt.After(lastSuccess) {
			lastSuccess = *b.FinishedAt
		}
		if b.State != api.StateSucceeded && b.State != api.StateFailed || seen[b.Shard] {
			continue
		}
		seen[b.Shard] = true
		if b.State == api.StateFailed {
			shard := b.Shard
			add("backup-failed", &shard, "", 1, "backup %s of shard %d failed: %s", b.ID, shard, b.Error)
		}
	}
	if s, ok := on("backup-missing"); ok && in.Schedule != "" && in.Period > 0 {
		window := time.Duration(s.Threshold * float64(in.Period))
		from := lastSuccess
		if from.IsZero() {
			from = in.ScheduleCreated
		}
		if age := in.Now.Sub(from); age > window {
			add("backup-missing", nil, "", age.Seconds(), "no successful backup for %s; the schedule %q runs every %s", age.Round(time.Second), in.Schedule, in.Period)
		}
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
