package spec

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/internal/testenv"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
)

// A password with every character that needs escaping in redis.conf.
const nastyPassword = "p\"a\\ss\nw'o$rd é\t{}#;!"

// entry is one directive of a rendered file, its arguments decoded the way
// redis-server's sdssplitargs decodes them.
type entry struct {
	key  string // the directive; "sentinel <option>" for Sentinel options
	args []string
}

func (e entry) value() string { return strings.Join(e.args, " ") }

// parseConf parses a rendered file as redis-server does, so tests check
// what the server will read, not how it is spelled.
func parseConf(t *testing.T, conf string) []entry {
	t.Helper()
	var out []entry
	for _, l := range strings.Split(conf, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		args, err := splitArgs(l)
		if err != nil {
			t.Fatalf("redis-server cannot read line %q: %v", l, err)
		}
		e := entry{key: args[0], args: args[1:]}
		if e.key == "sentinel" && len(e.args) > 0 {
			e.key, e.args = "sentinel "+e.args[0], e.args[1:]
		}
		out = append(out, e)
	}
	return out
}

func isHex(c byte) bool { return strings.IndexByte("0123456789abcdefABCDEF", c) >= 0 }

// splitArgs is sdssplitargs (Redis' src/sds.c).
func splitArgs(line string) ([]string, error) {
	var args []string
	i := 0
	for {
		for i < len(line) && strings.IndexByte(" \n\r\t\x00", line[i]) >= 0 {
			i++
		}
		if i >= len(line) {
			return args, nil
		}
		var cur []byte
		inq, insq := false, false
		for done := false; !done; i++ {
			if i >= len(line) {
				if inq || insq {
					return nil, fmt.Errorf("unbalanced quotes")
				}
				break
			}
			c := line[i]
			switch {
			case inq:
				switch {
				case c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					b, _ := strconv.ParseUint(line[i+2:i+4], 16, 8)
					cur = append(cur, byte(b))
					i += 3
				case c == '\\' && i+1 < len(line):
					i++
					switch line[i] {
					case 'n':
						cur = append(cur, '\n')
					case 'r':
						cur = append(cur, '\r')
					case 't':
						cur = append(cur, '\t')
					case 'b':
						cur = append(cur, '\b')
					case 'a':
						cur = append(cur, '\a')
					default:
						cur = append(cur, line[i])
					}
				case c == '"':
					if i+1 < len(line) && strings.IndexByte(" \n\r\t", line[i+1]) < 0 {
						return nil, fmt.Errorf("closing quote must be followed by a space")
					}
					done = true
				default:
					cur = append(cur, c)
				}
			case insq:
				switch {
				case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					i++
					cur = append(cur, '\'')
				case c == '\'':
					if i+1 < len(line) && strings.IndexByte(" \n\r\t", line[i+1]) < 0 {
						return nil, fmt.Errorf("closing quote must be followed by a space")
					}
					done = true
				default:
					cur = append(cur, c)
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inq = true
				case '\'':
					insq = true
				default:
					cur = append(cur, c)
				}
			}
		}
		args = append(args, string(cur))
	}
}

func TestSplitArgs(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		`save ""`:                     {"save", ""},
		`save 3600 1`:                 {"save", "3600", "1"},
		`dir "/a b/\"c\""`:            {"dir", `/a b/"c"`},
		`requirepass "a\x0ab\\c\x7f"`: {"requirepass", "a\nb\\c\x7f"},
		`x 'it\'s'`:                   {"x", "it's"},
	} {
		got, err := splitArgs(in)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`dir "a`, `dir "a"b`, `x 'a`} {
		if _, err := splitArgs(in); err == nil {
			t.Errorf("splitArgs(%q) succeeded", in)
		}
	}
}

// byKey indexes entries; a directive given twice fails the test: the second
// would silently override the first.
func byKey(t *testing.T, es []entry) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	for _, e := range es {
		if _, dup := m[e.key]; dup {
			t.Errorf("directive %q rendered twice", e.key)
		}
		m[e.key] = e
	}
	return m
}

func TestRenderRedisText(t *testing.T) {
	t.Parallel()
	base := RedisConfig{Host: "127.0.0.1", Port: 7001, Dir: "/data/orders 0-1", Password: `s3cr"t`, Spec: validSpec()}
	tests := []struct {
		name   string
		mod    func(*RedisConfig)
		want   map[string]string // directive → its arguments joined by spaces
		absent []string
	}{
		{"managed directives", func(*RedisConfig) {}, map[string]string{
			"port":                     "7001",
			"bind":                     "127.0.0.1",
			"bind-source-addr":         "127.0.0.1",
			"daemonize":                "no",
			"dir":                      "/data/orders 0-1",
			"pidfile":                  "/data/orders 0-1/redis.pid",
			"logfile":                  "/data/orders 0-1/redis.log",
			"requirepass":              `s3cr"t`,
			"masterauth":               `s3cr"t`,
			"replica-announce-ip":      "127.0.0.1",
			"repl-diskless-sync":       "yes",
			"repl-diskless-sync-delay": "0",
			"maxmemory":                "0",
			"maxmemory-policy":         "noeviction",
		}, []string{"replicaof", "slaveof"}},
		{"replica", func(c *RedisConfig) { c.ReplicaOf = "127.0.0.1:7000" },
			map[string]string{"replicaof": "127.0.0.1 7000"}, nil},
		{"persistence none", func(c *RedisConfig) { c.Spec.Persistence = "none" },
			map[string]string{"save": "", "appendonly": "no"}, nil},
		{"persistence aof", func(c *RedisConfig) { c.Spec.Persistence = "aof" },
			map[string]string{"save": "", "appendonly": "yes"}, nil},
		{"persistence rdb", func(c *RedisConfig) { c.Spec.Persistence = "rdb" },
			map[string]string{"save": "3600 1 300 100 60 10000", "appendonly": "no"}, nil},
		{"maxmemory mb", func(c *RedisConfig) { c.Spec.Maxmemory = "256mb" }, map[string]string{"maxmemory": "268435456"}, nil},
		{"maxmemory k", func(c *RedisConfig) { c.Spec.Maxmemory = "5k" }, map[string]string{"maxmemory": "5000"}, nil},
		{"maxmemory GB", func(c *RedisConfig) { c.Spec.Maxmemory = "2GB" }, map[string]string{"maxmemory": "2147483648"}, nil},
		{"policy", func(c *RedisConfig) { c.Spec.MaxmemoryPolicy = "allkeys-lfu" }, map[string]string{"maxmemory-policy": "allkeys-lfu"}, nil},
		{"password with every escape", func(c *RedisConfig) { c.Password = nastyPassword + "\x7f\x01" },
			map[string]string{"requirepass": nastyPassword + "\x7f\x01", "masterauth": nastyPassword + "\x7f\x01"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			out := RenderRedis(c)
			got := byKey(t, parseConf(t, out))
			for k, want := range tc.want {
				e, ok := got[k]
				if !ok {
					t.Errorf("no %s in\n%s", k, out)
				} else if e.value() != want {
					t.Errorf("%s = %q, want %q in\n%s", k, e.value(), want, out)
				}
			}
			for _, k := range tc.absent {
				if _, ok := got[k]; ok {
					t.Errorf("unexpected %s in\n%s", k, out)
				}
			}
		})
	}
}

func TestRenderRedisUserConfigLastAndSorted(t *testing.T) {
	t.Parallel()
	c := RedisConfig{Host: "127.0.0.1", Port: 7000, Dir: "/d", Password: "pw", Spec: validSpec()}
	c.Spec.Config = map[string]string{"timeout": "30", "hz": "20", "appendfsync": "always", "maxclients": "100",
		"client-output-buffer-limit": "pubsub 32mb 8mb 60"}
	es := parseConf(t, RenderRedis(c))
	if len(es) < 5 {
		t.Fatalf("rendered %d directives", len(es))
	}
	var user []string
	for _, e := range es[len(es)-5:] {
		user = append(user, e.key+" "+e.value())
	}
	want := []string{"appendfsync always", "client-output-buffer-limit pubsub 32mb 8mb 60", "hz 20", "maxclients 100", "timeout 30"}
	if strings.Join(user, "|") != strings.Join(want, "|") {
		t.Fatalf("last directives = %q, want the user config in sorted order %q", user, want)
	}
	// A multi-argument value reaches Redis as separate arguments.
	if got := es[len(es)-4].args; len(got) != 4 {
		t.Fatalf("client-output-buffer-limit args = %q, want 4", got)
	}
	// Stable across renders (map order must not leak).
	first := RenderRedis(c)
	for i := 0; i < 20; i++ {
		if RenderRedis(c) != first {
			t.Fatal("RenderRedis is not deterministic")
		}
	}
}

func TestRenderSentinelText(t *testing.T) {
	t.Parallel()
	out := RenderSentinel(SentinelConfig{Host: "127.0.0.1", Port: 26379, Dir: "/data/s 0", Password: nastyPassword})
	got := byKey(t, parseConf(t, out))
	for k, want := range map[string]string{
		"port":                       "26379",
		"bind":                       "127.0.0.1",
		"bind-source-addr":           "127.0.0.1",
		"daemonize":                  "no",
		"dir":                        "/data/s 0",
		"pidfile":                    "/data/s 0/redis.pid",
		"logfile":                    "/data/s 0/redis.log",
		"sentinel announce-ip":       "127.0.0.1",
		"sentinel resolve-hostnames": "no",
		"requirepass":                nastyPassword,
		"sentinel sentinel-pass":     nastyPassword,
	} {
		if e, ok := got[k]; !ok || e.value() != want {
			t.Errorf("%s = %q (present %v), want %q in\n%s", k, e.value(), ok, want, out)
		}
	}
	if _, ok := got["sentinel monitor"]; ok {
		t.Errorf("shards are registered at run time, not rendered:\n%s", out)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{InstanceName("orders", 0, 2), "orders-0-2"},
		{InstanceName("orders", 11, 0), "orders-11-0"},
		{SentinelInstanceName("orders", 1), "orders-sentinel-1"},
		{MasterName("orders", 3), "orders-3"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	for n, q := range map[int]int{1: 1, 3: 2, 5: 3, 7: 4, 9: 5} {
		if got := Quorum(n); got != q {
			t.Errorf("Quorum(%d) = %d, want %d", n, got, q)
		}
	}
	if got := InstanceCount(api.ClusterSpec{Shards: 2, Replicas: 2, Sentinels: 3}); got != 9 {
		t.Errorf("InstanceCount(2×2, 3 Sentinels) = %d, want 9", got)
	}
}

// --- real redis-server ---------------------------------------------------

func requireRedisServer(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed (CI must install it)")
		}
		t.Skip("redis-server not installed")
	}
}

// boot writes conf into dir and runs redis-server on it (args appended)
// until it accepts connections on port. The process is killed, by pid, in
// t.Cleanup. A server that exits at start gives an error with its output.
func boot(t *testing.T, dir, file, conf string, port int, args ...string) error {
	t.Helper()
	return testenv.BootRedis(t, dir, file, conf, port, args...)
}

func client(t *testing.T, port int, password string) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Password: password,
		Protocol: 2, DisableIdentity: true, MaxRetries: -1,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func configGet(t *testing.T, c *redis.Client, key string) string {
	t.Helper()
	v, err := c.ConfigGet(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("CONFIG GET %s: %v", key, err)
	}
	return v[key]
}

// bootRedis renders c (with a free port and a data dir whose name needs
// quoting) and boots it.
func bootRedis(t *testing.T, c RedisConfig) RedisConfig {
	t.Helper()
	c.Host, c.Port = "127.0.0.1", testenv.FreePort(t)
	c.Dir = filepath.Join(t.TempDir(), `data dir "q"`)
	if err := os.Mkdir(c.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := boot(t, c.Dir, "redis.conf", RenderRedis(c), c.Port); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRenderRedisBootsWithNastyPassword(t *testing.T) {
	requireRedisServer(t)
	t.Parallel()
	ctx := context.Background()
	c := bootRedis(t, RedisConfig{Password: nastyPassword, Spec: validSpec()})

	if err := client(t, c.Port, "").Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without password = %v, want NOAUTH", err)
	}
	if err := client(t, c.Port, "p").Ping(ctx).Err(); err == nil {
		t.Fatal("PING with a wrong password succeeded")
	}
	rc := client(t, c.Port, nastyPassword)
	if got, err := rc.Ping(ctx).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING with the password = %q, %v", got, err)
	}
	for key, want := range map[string]string{
		"requirepass":              nastyPassword,
		"masterauth":               nastyPassword,
		"dir":                      c.Dir,
		"port":                     strconv.Itoa(c.Port),
		"bind":                     "127.0.0.1",
		"bind-source-addr":         "127.0.0.1",
		"repl-diskless-sync":       "yes",
		"repl-diskless-sync-delay": "0",
		"replica-announce-ip":      "127.0.0.1",
	} {
		if got := configGet(t, rc, key); got != want {
			t.Errorf("CONFIG GET %s = %q, want %q", key, got, want)
		}
	}
	pid, err := os.ReadFile(filepath.Join(c.Dir, "redis.pid"))
	if err != nil || strings.TrimSpace(string(pid)) == "" {
		t.Errorf("no pid file in the data dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "redis.log")); err != nil {
		t.Errorf("no log file in the data dir: %v", err)
	}
}

func TestRenderRedisSettingsReachTheServer(t *testing.T) {
	requireRedisServer(t)
	t.Parallel()
	tests := []struct {
		name string
		mod  func(*api.ClusterSpec)
		want map[string]string
	}{
		{"rdb", func(s *api.ClusterSpec) {}, map[string]string{
			"save": "3600 1 300 100 60 10000", "appendonly": "no", "maxmemory": "0", "maxmemory-policy": "noeviction"}},
		{"none", func(s *api.ClusterSpec) { s.Persistence = "none" }, map[string]string{"save": "", "appendonly": "no"}},
		{"aof, user appendfsync wins, memory", func(s *api.ClusterSpec) {
			s.Persistence, s.Maxmemory, s.MaxmemoryPolicy = "aof", "256mb", "allkeys-lru"
			s.Config = map[string]string{"appendfsync": "always", "hz": "20", "notify-keyspace-events": "Ex"}
		}, map[string]string{
			"save": "", "appendonly": "yes", "appendfsync": "always", "maxmemory": "268435456",
			"maxmemory-policy": "allkeys-lru", "hz": "20", "notify-keyspace-events": "xE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := validSpec()
			tc.mod(&s)
			if err := Validate(s); err != nil {
				t.Fatalf("test spec is invalid: %v", err)
			}
			c := bootRedis(t, RedisConfig{Password: "pw", Spec: s})
			rc := client(t, c.Port, "pw")
			for key, want := range tc.want {
				if got := configGet(t, rc, key); got != want {
					t.Errorf("CONFIG GET %s = %q, want %q", key, got, want)
				}
			}
		})
	}
}

// A replica rendered with ReplicaOf replicates, authenticating with the
// quoted masterauth.
func TestRenderRedisReplicaSyncs(t *testing.T) {
	requireRedisServer(t)
	t.Parallel()
	ctx := context.Background()
	m := bootRedis(t, RedisConfig{Password: nastyPassword, Spec: validSpec()})
	r := bootRedis(t, RedisConfig{Password: nastyPassword, Spec: validSpec(),
		ReplicaOf: net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port))})
	if err := client(t, m.Port, nastyPassword).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rc := client(t, r.Port, nastyPassword)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := rc.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "master_link_status:up") && strings.Contains(info, "master_port:"+strconv.Itoa(m.Port)) {
			if v, err := rc.Get(ctx, "k").Result(); err == nil && v == "v" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica did not sync with its master:\n%s", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRenderSentinelBoots(t *testing.T) {
	requireRedisServer(t)
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "sentinel dir")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	conf := RenderSentinel(SentinelConfig{Host: "127.0.0.1", Port: port, Dir: dir, Password: nastyPassword})
	if err := boot(t, dir, "sentinel.conf", conf, port, "--sentinel"); err != nil {
		t.Fatal(err)
	}
	opts := func(pw string) *redis.Options {
		return &redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Password: pw,
			Protocol: 2, DisableIdentity: true, MaxRetries: -1}
	}
	anon := redis.NewSentinelClient(opts(""))
	defer anon.Close()
	if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("Sentinel PING without password = %v, want NOAUTH", err)
	}
	sc := redis.NewSentinelClient(opts(nastyPassword))
	defer sc.Close()
	if err := sc.Ping(ctx).Err(); err != nil {
		t.Fatalf("Sentinel PING with the password: %v", err)
	}
	masters, err := sc.Masters(ctx).Result()
	if err != nil {
		t.Fatalf("SENTINEL MASTERS: %v", err)
	}
	if len(masters) != 0 {
		t.Fatalf("SENTINEL MASTERS = %v, want none", masters)
	}
	// It runs as a Sentinel, not as a plain redis-server.
	infoCmd := redis.NewStringCmd(ctx, "info", "server")
	_ = sc.Process(ctx, infoCmd)
	if info, err := infoCmd.Result(); err != nil || !strings.Contains(info, "redis_mode:sentinel") {
		t.Fatalf("INFO server = %q, %v; want redis_mode:sentinel", info, err)
	}
}

// directiveProbes are candidate values for every allowed directive: generic
// ones plus the edges of each directive's range. Whatever ValidateConfig
// accepts among them must boot a real redis-server: a value that passes the
// API and then fails at boot leaves a cluster that cannot start.
var genericProbes = []string{"", "0", "1", "-1", "yes", "no", "1k", "1kb", "1mb", "2147483647", "abc",
	"+10", "010", "-0", " 1", "1 ", "1mb\u00a0", "1mb\v", "1\t", "1\u2028", "1MB", "0x10", "1e3"}

var directiveProbes = map[string][]string{
	"hz":                            {"500", "501"},
	"dynamic-hz":                    nil,
	"timeout":                       {"2147483648"},
	"tcp-keepalive":                 nil,
	"tcp-backlog":                   {"65535", "65536"},
	"maxclients":                    {"1000000", "1000001"},
	"databases":                     {"10000", "10001"},
	"maxmemory-samples":             {"64", "65"},
	"maxmemory-eviction-tenacity":   {"100", "101"},
	"lazyfree-lazy-eviction":        nil,
	"lazyfree-lazy-expire":          nil,
	"lazyfree-lazy-server-del":      nil,
	"lazyfree-lazy-user-del":        nil,
	"lazyfree-lazy-user-flush":      nil,
	"replica-lazy-flush":            nil,
	"activedefrag":                  nil,
	"activerehashing":               nil,
	"appendfsync":                   {"always", "everysec"},
	"no-appendfsync-on-rewrite":     nil,
	"auto-aof-rewrite-percentage":   {"1000", "1001"},
	"auto-aof-rewrite-min-size":     {"64mb", "1gb"},
	"rdbcompression":                nil,
	"rdbchecksum":                   nil,
	"stop-writes-on-bgsave-error":   nil,
	"slowlog-log-slower-than":       {"-2"},
	"slowlog-max-len":               nil,
	"latency-monitor-threshold":     nil,
	"latency-tracking":              nil,
	"notify-keyspace-events":        {"KEA", "Ex", "g$lshzxetmdn", "K"},
	"hash-max-listpack-entries":     nil,
	"hash-max-listpack-value":       nil,
	"list-max-listpack-size":        {"-5", "-6"},
	"list-compress-depth":           nil,
	"set-max-intset-entries":        nil,
	"zset-max-listpack-entries":     nil,
	"zset-max-listpack-value":       nil,
	"hll-sparse-max-bytes":          nil,
	"stream-node-max-bytes":         nil,
	"stream-node-max-entries":       nil,
	"repl-backlog-size":             {"64mb"},
	"repl-backlog-ttl":              nil,
	"repl-timeout":                  nil,
	"repl-diskless-load":            {"disabled", "on-empty-db", "swapdb"},
	"replica-priority":              nil,
	"replica-read-only":             nil,
	"replica-serve-stale-data":      nil,
	"client-output-buffer-limit":    {"normal 0 0 0", "replica 256mb 64mb 60", "pubsub 32mb 8mb 60", "normal 0 0 0 slave 1gb 1gb 0", "bogus 1 2 3", "normal 1 2", "normal x 0 0"},
	"proto-max-bulk-len":            {"512mb"},
	"client-query-buffer-limit":     {"1gb"},
	"io-threads":                    {"4", "128", "129"},
	"busy-reply-threshold":          nil,
	"lua-time-limit":                nil,
	"active-expire-effort":          {"10", "11"},
	"oom-score-adj":                 {"relative", "absolute"},
	"jemalloc-bg-thread":            nil,
	"replica-ignore-maxmemory":      nil,
	"lfu-log-factor":                nil,
	"lfu-decay-time":                nil,
	"aof-use-rdb-preamble":          nil,
	"aof-timestamp-enabled":         nil,
	"rdb-del-sync-files":            nil,
	"acllog-max-len":                nil,
	"active-defrag-threshold-lower": {"1000", "1001"},
	"active-defrag-threshold-upper": {"1000", "1001"},
	"active-defrag-cycle-min":       {"99", "100"},
	"active-defrag-cycle-max":       {"99", "100"},
}

func TestAcceptedConfigBoots(t *testing.T) {
	requireRedisServer(t)
	t.Parallel()
	// Every allowed directive is probed, so a directive added to the
	// allow-list without a probe fails here.
	for _, d := range AllowedDirectives() {
		if _, ok := directiveProbes[d]; !ok {
			t.Errorf("allowed directive %q has no entry in directiveProbes", d)
		}
	}
	for d := range directiveProbes {
		if !contains(AllowedDirectives(), d) {
			t.Errorf("directiveProbes has %q, which is not allowed", d)
		}
	}
	bootOne := func(cfg map[string]string) error {
		s := validSpec()
		s.Config = cfg
		c := RedisConfig{Host: "127.0.0.1", Port: testenv.FreePort(t), Dir: t.TempDir(), Password: "pw", Spec: s}
		return boot(t, c.Dir, "redis.conf", RenderRedis(c), c.Port)
	}
	// Distribution builds of Redis (Debian's, for one) link the system
	// jemalloc, which lacks what active defragmentation needs; that is the
	// binary's limit, not the allow-list's.
	noDefrag := false
	if err := bootOne(map[string]string{"activedefrag": "yes"}); err != nil {
		if !strings.Contains(err.Error(), "Active defragmentation cannot be enabled") {
			t.Errorf("activedefrag yes: %v", err)
		}
		t.Logf("this redis-server cannot defragment; not booting activedefrag yes")
		noDefrag = true
	}
	accepted := map[string][]string{}
	rounds := 0
	for d, extra := range directiveProbes {
		for _, v := range append(append([]string{}, genericProbes...), extra...) {
			if noDefrag && d == "activedefrag" && v == "yes" {
				continue
			}
			if ValidateConfig(map[string]string{d: v}) == nil {
				accepted[d] = append(accepted[d], v)
			}
		}
		if len(accepted[d]) == 0 {
			t.Errorf("no probe of %q is accepted; add a valid value", d)
		}
		rounds = max(rounds, len(accepted[d]))
	}
	// Round i sets every directive to its i-th accepted value (or its
	// last), so a few boots cover every accepted value.
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < rounds; i++ {
		cfg := map[string]string{}
		for d, vs := range accepted {
			cfg[d] = vs[min(i, len(vs)-1)]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if bootOne(cfg) == nil {
				return
			}
			// Name every culprit, not just the first line Redis stops at.
			var each sync.WaitGroup
			for d, v := range cfg {
				each.Add(1)
				go func() {
					defer each.Done()
					sem <- struct{}{}
					defer func() { <-sem }()
					if err := bootOne(map[string]string{d: v}); err != nil {
						mu.Lock()
						bad = append(bad, fmt.Sprintf("%s %q: %v", d, v, err))
						mu.Unlock()
					}
				}()
			}
			each.Wait()
		}()
	}
	wg.Wait()
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("ValidateConfig accepts a value redis-server refuses: %s", b)
	}
}

// During a password rotation an instance that boots accepts every password
// the cluster accepts, and only those.
func TestRenderRedisBootsWithSeveralPasswords(t *testing.T) {
	requireRedisServer(t)
	t.Parallel()
	ctx := context.Background()
	c := bootRedis(t, RedisConfig{Password: "new-one", ExtraPasswords: []string{nastyPassword}, Spec: validSpec()})
	for _, pw := range []string{"new-one", nastyPassword} {
		if got, err := client(t, c.Port, pw).Ping(ctx).Result(); err != nil || got != "PONG" {
			t.Fatalf("PING with %q = %q, %v", pw, got, err)
		}
	}
	if err := client(t, c.Port, "").Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without password = %v, want NOAUTH", err)
	}
	if err := client(t, c.Port, "other").Ping(ctx).Err(); err == nil {
		t.Fatal("PING with a wrong password succeeded")
	}
	if got, err := client(t, c.Port, "new-one").ConfigGet(ctx, "masterauth").Result(); err != nil || got["masterauth"] != "new-one" {
		t.Fatalf("masterauth = %v, %v; want the cluster's password", got, err)
	}
}
