package spec

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/redis-manager/redis-manager/api"
)

func intp(n int) *int { return &n }

// fieldError asserts err is a *FieldError for field of kind.
func fieldError(t *testing.T, err error, field, kind string) *FieldError {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v (%T), want a *FieldError for %s", err, err, field)
	}
	if fe.Field != field || fe.Kind != kind {
		t.Fatalf("error = {Field: %q, Kind: %q, Message: %q}, want Field %q Kind %q", fe.Field, fe.Kind, fe.Message, field, kind)
	}
	if fe.Message == "" || !strings.HasPrefix(fe.Error(), field+": ") {
		t.Fatalf("Error() = %q, want %q followed by a message", fe.Error(), field+": ")
	}
	return fe
}

// validSpec is a complete spec that passes Validate.
func validSpec() api.ClusterSpec {
	return api.ClusterSpec{
		Shards: 1, Replicas: 2, Sentinels: 3,
		Maxmemory: "0", MaxmemoryPolicy: "noeviction", Persistence: "rdb",
		Sentinel:     api.SentinelSettings{DownAfterMs: 5000, FailoverTimeoutMs: 10000, ParallelSyncs: 1},
		FastFailover: true,
	}
}

func TestFromCreateRequestDefaults(t *testing.T) {
	t.Parallel()
	got, err := FromCreateRequest(api.CreateClusterRequest{Name: "orders"})
	if err != nil {
		t.Fatalf("FromCreateRequest: %v", err)
	}
	want := api.ClusterSpec{
		Shards: 1, Replicas: 2, Sentinels: 3,
		Maxmemory: "0", MaxmemoryPolicy: "noeviction", Persistence: "rdb",
		Sentinel:     api.SentinelSettings{DownAfterMs: 5000, FailoverTimeoutMs: 10000, ParallelSyncs: 1},
		FastFailover: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestFromCreateRequestKeepsGivenValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  api.CreateClusterRequest
		want func(*api.ClusterSpec)
	}{
		{"explicit zero replicas is allowed",
			api.CreateClusterRequest{Replicas: intp(0)},
			func(s *api.ClusterSpec) { s.Replicas = 0 }},
		{"counts",
			api.CreateClusterRequest{Shards: intp(4), Replicas: intp(1), Sentinels: intp(5)},
			func(s *api.ClusterSpec) { s.Shards, s.Replicas, s.Sentinels = 4, 1, 5 }},
		{"partial sentinel block keeps other defaults",
			api.CreateClusterRequest{Sentinel: &api.SentinelRequest{DownAfterMs: intp(1000)}},
			func(s *api.ClusterSpec) { s.Sentinel.DownAfterMs = 1000 }},
		{"empty sentinel block is all defaults",
			api.CreateClusterRequest{Sentinel: &api.SentinelRequest{}},
			func(*api.ClusterSpec) {}},
		{"full sentinel block",
			api.CreateClusterRequest{Sentinel: &api.SentinelRequest{DownAfterMs: intp(100), FailoverTimeoutMs: intp(1000), ParallelSyncs: intp(16)}},
			func(s *api.ClusterSpec) {
				s.Sentinel = api.SentinelSettings{DownAfterMs: 100, FailoverTimeoutMs: 1000, ParallelSyncs: 16}
			}},
		{"memory, policy, persistence, config",
			api.CreateClusterRequest{Maxmemory: "256mb", MaxmemoryPolicy: "allkeys-lru", Persistence: "aof", Config: map[string]string{"hz": "20"}},
			func(s *api.ClusterSpec) {
				s.Maxmemory, s.MaxmemoryPolicy, s.Persistence, s.Config = "256mb", "allkeys-lru", "aof", map[string]string{"hz": "20"}
			}},
		{"persistence none",
			api.CreateClusterRequest{Persistence: "none"},
			func(s *api.ClusterSpec) { s.Persistence = "none" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Name = "orders"
			got, err := FromCreateRequest(tc.req)
			if err != nil {
				t.Fatalf("FromCreateRequest: %v", err)
			}
			want := validSpec()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestFromCreateRequestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		req   api.CreateClusterRequest
		field string
		kind  string
	}{
		{"missing name", api.CreateClusterRequest{}, "name", Invalid},
		{"bad name wins over bad counts", api.CreateClusterRequest{Name: "Bad", Shards: intp(0)}, "name", Invalid},
		{"zero shards", api.CreateClusterRequest{Shards: intp(0)}, "shards", Unprocessable},
		{"negative shards", api.CreateClusterRequest{Shards: intp(-1)}, "shards", Unprocessable},
		{"too many shards", api.CreateClusterRequest{Shards: intp(MaxShards + 1)}, "shards", Unprocessable},
		{"negative replicas", api.CreateClusterRequest{Replicas: intp(-1)}, "replicas", Unprocessable},
		{"too many replicas", api.CreateClusterRequest{Replicas: intp(MaxReplicas + 1)}, "replicas", Unprocessable},
		{"zero sentinels", api.CreateClusterRequest{Sentinels: intp(0)}, "sentinels", Unprocessable},
		{"even sentinels", api.CreateClusterRequest{Sentinels: intp(2)}, "sentinels", Unprocessable},
		{"too many sentinels", api.CreateClusterRequest{Sentinels: intp(MaxSentinels + 2)}, "sentinels", Unprocessable},
		{"zero downAfter", api.CreateClusterRequest{Sentinel: &api.SentinelRequest{DownAfterMs: intp(0)}}, "sentinel.downAfterMs", Unprocessable},
		{"downAfter too small", api.CreateClusterRequest{Sentinel: &api.SentinelRequest{DownAfterMs: intp(99)}}, "sentinel.downAfterMs", Unprocessable},
		{"downAfter too big", api.CreateClusterRequest{Sentinel: &api.SentinelRequest{DownAfterMs: intp(600001)}}, "sentinel.downAfterMs", Unprocessable},
		{"failoverTimeout too small", api.CreateClusterRequest{Sentinel: &api.SentinelRequest{FailoverTimeoutMs: intp(999)}}, "sentinel.failoverTimeoutMs", Unprocessable},
		{"failoverTimeout too big", api.CreateClusterRequest{Sentinel: &api.SentinelRequest{FailoverTimeoutMs: intp(3600001)}}, "sentinel.failoverTimeoutMs", Unprocessable},
		{"zero parallelSyncs", api.CreateClusterRequest{Sentinel: &api.SentinelRequest{ParallelSyncs: intp(0)}}, "sentinel.parallelSyncs", Unprocessable},
		{"parallelSyncs too big", api.CreateClusterRequest{Sentinel: &api.SentinelRequest{ParallelSyncs: intp(17)}}, "sentinel.parallelSyncs", Unprocessable},
		{"bad maxmemory", api.CreateClusterRequest{Maxmemory: "lots"}, "maxmemory", Invalid},
		{"negative maxmemory", api.CreateClusterRequest{Maxmemory: "-1mb"}, "maxmemory", Invalid},
		{"bad policy", api.CreateClusterRequest{MaxmemoryPolicy: "lru"}, "maxmemoryPolicy", Invalid},
		{"policy is case-sensitive", api.CreateClusterRequest{MaxmemoryPolicy: "NoEviction"}, "maxmemoryPolicy", Invalid},
		{"bad persistence", api.CreateClusterRequest{Persistence: "both"}, "persistence", Invalid},
		{"bad config", api.CreateClusterRequest{Config: map[string]string{"port": "1"}}, "config.port", Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.req.Name == "" && tc.field != "name" {
				tc.req.Name = "orders"
			}
			_, err := FromCreateRequest(tc.req)
			fieldError(t, err, tc.field, tc.kind)
		})
	}
}

func TestValidateBounds(t *testing.T) {
	t.Parallel()
	// The edges of every range are accepted.
	ok := []func(*api.ClusterSpec){
		func(s *api.ClusterSpec) { s.Shards = 1 },
		func(s *api.ClusterSpec) { s.Shards = MaxShards },
		func(s *api.ClusterSpec) { s.Replicas = 0 },
		func(s *api.ClusterSpec) { s.Replicas = MaxReplicas },
		func(s *api.ClusterSpec) { s.Sentinels = 1 },
		func(s *api.ClusterSpec) { s.Sentinels = MaxSentinels },
		func(s *api.ClusterSpec) { s.Sentinel.DownAfterMs = 100 },
		func(s *api.ClusterSpec) { s.Sentinel.DownAfterMs = 600000 },
		func(s *api.ClusterSpec) { s.Sentinel.FailoverTimeoutMs = 1000 },
		func(s *api.ClusterSpec) { s.Sentinel.FailoverTimeoutMs = 3600000 },
		func(s *api.ClusterSpec) { s.Sentinel.ParallelSyncs = 16 },
		func(s *api.ClusterSpec) { s.Maxmemory = "2GB" },
		func(s *api.ClusterSpec) { s.Persistence = "none" },
		func(s *api.ClusterSpec) { s.Persistence = "aof" },
	}
	for _, p := range policies {
		ok = append(ok, func(s *api.ClusterSpec) { s.MaxmemoryPolicy = p })
	}
	for i, f := range ok {
		s := validSpec()
		f(&s)
		if err := Validate(s); err != nil {
			t.Errorf("case %d (%+v): %v", i, s, err)
		}
	}
	// A spec that was never defaulted is refused, not half-rendered.
	fieldError(t, Validate(api.ClusterSpec{}), "shards", Unprocessable)
	s := validSpec()
	s.Persistence = ""
	fieldError(t, Validate(s), "persistence", Invalid)
	s = validSpec()
	s.Maxmemory = ""
	fieldError(t, Validate(s), "maxmemory", Invalid)
}

func TestValidateName(t *testing.T) {
	t.Parallel()
	good := []string{"a", "orders", "orders-2", "a-b-c", "x9", strings.Repeat("a", 40)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{"", "Orders", "1abc", "-abc", "a_b", "a.b", "a b", "ordérs", strings.Repeat("a", 41), "ends-", "a-", "orders\n"}
	for _, n := range bad {
		t.Run(n, func(t *testing.T) {
			fieldError(t, ValidateName(n), "name", Invalid)
		})
	}
}

func TestValidateConfigRefusesEveryManagedDirective(t *testing.T) {
	t.Parallel()
	managed := ManagedDirectives()
	// The list is what protects the manager's own settings; losing one
	// silently must fail here.
	for _, must := range []string{"dir", "dbfilename", "port", "bind", "bind-source-addr", "requirepass", "masterauth", "replicaof", "slaveof",
		"include", "loadmodule", "rename-command", "save", "appendonly", "maxmemory", "maxmemory-policy", "pidfile",
		"logfile", "daemonize", "protected-mode", "repl-diskless-sync-delay", "enable-debug-command"} {
		if !contains(managed, must) {
			t.Errorf("ManagedDirectives() lacks %q", must)
		}
	}
	for _, d := range managed {
		for _, k := range []string{d, strings.ToUpper(d)} {
			err := ValidateConfig(map[string]string{k: "yes"})
			fe := fieldError(t, err, "config."+k, Invalid)
			if !strings.Contains(fe.Message, "managed by redis-manager") {
				t.Errorf("ValidateConfig(%q): message %q does not say it is managed by redis-manager", k, fe.Message)
			}
		}
		if contains(AllowedDirectives(), d) {
			t.Errorf("%q is both managed and allowed", d)
		}
	}
}

func TestValidateConfig(t *testing.T) {
	t.Parallel()
	accepted := []map[string]string{
		nil,
		{},
		{"hz": "1"},
		{"hz": "500"},
		{"hz": "10", "maxclients": "100", "timeout": "0"},
		{"appendfsync": "always"},
		{"appendfsync": "everysec"},
		{"appendfsync": "no"},
		{"repl-diskless-load": "swapdb"},
		{"notify-keyspace-events": "Ex"},
		{"notify-keyspace-events": "KEA"},
		{"list-max-listpack-size": "-2"},
		{"slowlog-log-slower-than": "-1"},
		{"repl-backlog-size": "64mb"},
		{"proto-max-bulk-len": "512MB"},
		{"proto-max-bulk-len": "1mb"},
		{"client-query-buffer-limit": "1048576"},
		{"repl-backlog-size": "1"},
		{"client-output-buffer-limit": "pubsub 32mb 8mb 60"},
		{"client-output-buffer-limit": "normal 0 0 0 replica 256mb 64mb 60"},
		{"oom-score-adj": "relative"},
		{"io-threads": "4"},
	}
	for _, cfg := range accepted {
		if err := ValidateConfig(cfg); err != nil {
			t.Errorf("ValidateConfig(%v) = %v, want nil", cfg, err)
		}
	}

	refused := []struct {
		key, value string
	}{
		{"no-such-directive", "yes"},
		{"HZ", "10"},
		{"Maxclients", "10"},
		{"hz", "0"},
		{"hz", "501"},
		{"hz", "ten"},
		{"hz", " 10"},
		{"hz", ""},
		{"appendfsync", "sometimes"},
		{"appendfsync", "Always"},
		{"dynamic-hz", "true"},
		{"maxclients", "0"},
		{"repl-diskless-load", "maybe"},
		{"notify-keyspace-events", "Q"},
		{"auto-aof-rewrite-min-size", "big"},
		{"timeout", "-1"},
		{"list-max-listpack-size", "-6"},
		{"active-expire-effort", "11"},
		{"io-threads", "0"},
		// Values redis-server 7.0 refuses at boot: the API must refuse them first.
		{"notify-keyspace-events", ""},
		{"notify-keyspace-events", " "},
		{"proto-max-bulk-len", "1k"},
		{"proto-max-bulk-len", "1048575"},
		{"client-query-buffer-limit", "0"},
		{"repl-backlog-size", "0"},
		{"client-output-buffer-limit", ""},
		{"client-output-buffer-limit", "yes"},
		{"client-output-buffer-limit", "bogus 1 2 3"},
		{"client-output-buffer-limit", "normal 1 2"},
		{"client-output-buffer-limit", "normal x 0 0"},
		{"client-output-buffer-limit", "normal 0 0 -1"},
		{"close-on-replica-write", "yes"}, // not a Redis directive
		// Values that could smuggle a second directive or break quoting.
		{"hz", "10\nport 1"},
		{"hz", "10\rport 1"},
		{"hz", "10\x00"},
		{"notify-keyspace-events", "E\"x"},
		{"notify-keyspace-events", "E'x"},
		{"client-output-buffer-limit", "normal 0 0 0\nrename-command CONFIG \"\""},
		{"client-output-buffer-limit", "normal \"0\" 0 0"},
		{"notify-keyspace-events", strings.Repeat("E", 513)},
		// Values that passed before and failed at boot (the hardening
		// issue): Redis reads bytes and parses numbers strictly.
		{"hz", "+10"},
		{"hz", "010"},
		{"hz", " 10"},
		{"hz", "10 "},
		{"timeout", "-0"},
		{"repl-backlog-size", "1mb\u00a0"},
		{"repl-backlog-size", "1mb\v"},
		{"repl-backlog-size", "1mb\t"},
		{"repl-backlog-size", " 1mb"},
		{"repl-backlog-size", "1 mb"},
		{"client-output-buffer-limit", "normal 0 0 0\u2028"},
		{"client-output-buffer-limit", "normal\t0 0 0"},
		{"maxclients", "１０"},
	}
	for _, tc := range refused {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			fieldError(t, ValidateConfig(map[string]string{tc.key: tc.value}), "config."+tc.key, Invalid)
		})
	}
}

func TestValidateConfigMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  map[string]string
		want string
	}{
		{map[string]string{"HZ": "10"}, `use "hz"`},
		{map[string]string{"no-such-directive": "yes"}, "unknown or unsupported directive"},
		{map[string]string{"hz": "10\nport 1"}, "one line without quotes"},
		{map[string]string{"hz": "0"}, "between 1 and 500"},
		{map[string]string{"appendfsync": "sometimes"}, "always, everysec, no"},
		// The first offending key in sorted order is reported, so the
		// answer does not change from one request to the next.
		{map[string]string{"zset-max-listpack-entries": "x", "appendfsync": "sometimes", "hz": "0"}, "appendfsync"},
	}
	for _, tc := range tests {
		for i := 0; i < 20; i++ {
			err := ValidateConfig(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ValidateConfig(%v) = %v, want an error containing %q", tc.cfg, err, tc.want)
			}
		}
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1", 1},
		{"1048576", 1048576},
		{"100b", 100},
		{"1k", 1000},
		{"1kb", 1024},
		{"1K", 1000},
		{"1KB", 1024},
		{"1Kb", 1024},
		{"2m", 2_000_000},
		{"2mb", 2 << 20},
		{"256MB", 256 << 20},
		{"3g", 3_000_000_000},
		{"3gb", 3 << 30},
		{"1GB", 1 << 30},
		{" 5mb ", 5 << 20},
		{"5MB", 5 << 20},
		{"1048576gb", 1 << 50},
	}
	for _, tc := range tests {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", " ", "mb", "kb", "abc", "1.5gb", "-1", "-1mb", "1 mb", "1tb", "1mbb", "0x10", "1048577gb", "99999999999999999999", "5mb\u00a0", "\u00a05mb", "5mb\v", "5mb\u2028", "５mb"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}
