package spec

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/redis-manager/redis-manager/api"
)

// Defaults for fields a create request leaves out.
const (
	DefaultShards            = 1
	DefaultReplicas          = 2
	DefaultSentinels         = 3
	DefaultDownAfterMs       = 5000
	DefaultFailoverTimeoutMs = 10000
	DefaultParallelSyncs     = 1
	DefaultPersistence       = "rdb"
	DefaultMaxmemoryPolicy   = "noeviction"

	MaxShards    = 16
	MaxReplicas  = 10
	MaxSentinels = 9
)

// Kind of a validation failure: Invalid maps to 400, Unprocessable to 422.
const (
	Invalid       = "invalid"
	Unprocessable = "unprocessable"
)

// FieldError names the field a request got wrong.
type FieldError struct {
	Kind    string // Invalid | Unprocessable
	Field   string
	Message string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

func invalid(field, format string, a ...any) *FieldError {
	return &FieldError{Kind: Invalid, Field: field, Message: fmt.Sprintf(format, a...)}
}

func unprocessable(field, format string, a ...any) *FieldError {
	return &FieldError{Kind: Unprocessable, Field: field, Message: fmt.Sprintf(format, a...)}
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// ValidateName checks a cluster name against API.md's pattern.
func ValidateName(name string) error {
	if name == "" {
		return invalid("name", "is required")
	}
	if !nameRE.MatchString(name) {
		return invalid("name", "%q must match %s (lower-case letters, digits and '-', starting with a letter, at most 40 characters)", name, nameRE)
	}
	if strings.HasSuffix(name, "-") {
		return invalid("name", "%q must not end with '-'", name)
	}
	return nil
}

// FromCreateRequest validates a create request and returns the full spec with
// defaults filled in. It does no I/O; capacity checks (free ports) are the
// caller's.
func FromCreateRequest(req api.CreateClusterRequest) (api.ClusterSpec, error) {
	if err := ValidateName(req.Name); err != nil {
		return api.ClusterSpec{}, err
	}
	s := api.ClusterSpec{
		Shards:          orDefault(req.Shards, DefaultShards),
		Replicas:        orDefault(req.Replicas, DefaultReplicas),
		Sentinels:       orDefault(req.Sentinels, DefaultSentinels),
		Maxmemory:       req.Maxmemory,
		MaxmemoryPolicy: req.MaxmemoryPolicy,
		Persistence:     req.Persistence,
		Config:          req.Config,
		Sentinel: api.SentinelSettings{
			DownAfterMs:       DefaultDownAfterMs,
			FailoverTimeoutMs: DefaultFailoverTimeoutMs,
			ParallelSyncs:     DefaultParallelSyncs,
		},
	}
	if req.Sentinel != nil {
		s.Sentinel.DownAfterMs = orDefault(req.Sentinel.DownAfterMs, DefaultDownAfterMs)
		s.Sentinel.FailoverTimeoutMs = orDefault(req.Sentinel.FailoverTimeoutMs, DefaultFailoverTimeoutMs)
		s.Sentinel.ParallelSyncs = orDefault(req.Sentinel.ParallelSyncs, DefaultParallelSyncs)
	}
	s.FastFailover = req.FastFailover == nil || *req.FastFailover
	if req.MinReplicasToWrite != nil {
		s.MinReplicasToWrite = *req.MinReplicasToWrite
	}
	if s.Persistence == "" {
		s.Persistence = DefaultPersistence
	}
	if s.MaxmemoryPolicy == "" {
		s.MaxmemoryPolicy = DefaultMaxmemoryPolicy
	}
	if s.Maxmemory == "" {
		s.Maxmemory = "0"
	}
	return s, Validate(s)
}

func orDefault(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

var policies = []string{
	"noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
	"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
}

// Validate checks a complete spec.
func Validate(s api.ClusterSpec) error {
	switch {
	case s.Shards < 1 || s.Shards > MaxShards:
		return unprocessable("shards", "must be between 1 and %d, got %d", MaxShards, s.Shards)
	case s.Replicas < 0 || s.Replicas > MaxReplicas:
		return unprocessable("replicas", "must be between 0 and %d, got %d", MaxReplicas, s.Replicas)
	case s.Sentinels < 1 || s.Sentinels > MaxSentinels:
		return unprocessable("sentinels", "must be an odd number between 1 and %d, got %d", MaxSentinels, s.Sentinels)
	case s.Sentinels%2 == 0:
		return unprocessable("sentinels", "must be odd so that a majority quorum survives the loss of a Sentinel, got %d", s.Sentinels)
	case s.Sentinel.DownAfterMs < 100 || s.Sentinel.DownAfterMs > 600000:
		return unprocessable("sentinel.downAfterMs", "must be between 100 and 600000, got %d", s.Sentinel.DownAfterMs)
	case s.Sentinel.FailoverTimeoutMs < 1000 || s.Sentinel.FailoverTimeoutMs > 3600000:
		return unprocessable("sentinel.failoverTimeoutMs", "must be between 1000 and 3600000, got %d", s.Sentinel.FailoverTimeoutMs)
	case s.MinReplicasToWrite < 0 || s.MinReplicasToWrite > s.Replicas:
		return unprocessable("minReplicasToWrite", "must be between 0 and the number of replicas (%d), got %d", s.Replicas, s.MinReplicasToWrite)
	case s.Sentinel.ParallelSyncs < 1 || s.Sentinel.ParallelSyncs > 16:
		return unprocessable("sentinel.parallelSyncs", "must be between 1 and 16, got %d", s.Sentinel.ParallelSyncs)
	}
	if _, err := ParseSize(s.Maxmemory); err != nil {
		return invalid("maxmemory", "%v", err)
	}
	if !contains(policies, s.MaxmemoryPolicy) {
		return invalid("maxmemoryPolicy", "%q is not one of %s", s.MaxmemoryPolicy, strings.Join(policies, ", "))
	}
	switch s.Persistence {
	case "none", "rdb", "aof":
	default:
		return invalid("persistence", "%q is not one of none, rdb, aof", s.Persistence)
	}
	return ValidateConfig(s.Config)
}

// ValidateConfig checks user-supplied redis.conf directives against the
// allow-list. Directives the manager owns are refused by name.
func ValidateConfig(cfg map[string]string) error {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field := "config." + k
		lk := strings.ToLower(k)
		if reason, ok := managedDirectives[lk]; ok {
			return invalid(field, "directive %q is managed by redis-manager and cannot be set (%s)", k, reason)
		}
		if lk != k {
			return invalid(field, "directive names are lower-case; use %q", lk)
		}
		check, ok := allowedDirectives[k]
		if !ok {
			return invalid(field, "unknown or unsupported directive %q (see docs/configuration.md for the allowed list)", k)
		}
		v := cfg[k]
		if strings.ContainsAny(v, "\r\n\x00\"'") || len(v) > 512 {
			return invalid(field, "value must be one line without quotes, at most 512 characters")
		}
		// redis-server reads bytes: a non-ASCII space (U+00A0, U+2028) or
		// a control character is part of a number to it, and the boot or
		// the CONFIG SET fails.
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return invalid(field, "value must be printable ASCII; byte %d is %#x", i, v[i])
			}
		}
		if strings.TrimSpace(v) == "" {
			// Rendered as a directive without an argument, which
			// redis-server refuses at boot.
			return invalid(field, "value is empty")
		}
		if err := check(v); err != nil {
			return invalid(field, "%v", err)
		}
	}
	return nil
}

// managedDirectives may never come from users, with the reason shown to them.
var managedDirectives = map[string]string{
	"dir":                      "the manager places data",
	"dbfilename":               "the manager names the RDB file",
	"include":                  "could pull in any directive",
	"loadmodule":               "loads arbitrary code",
	"rename-command":           "breaks the manager's own commands",
	"enable-debug-command":     "DEBUG can crash or corrupt an instance",
	"enable-module-command":    "MODULE LOAD loads arbitrary code",
	"enable-protected-configs": "would let clients change dir and dbfilename",
	"port":                     "the manager allocates ports",
	"bind":                     "the platform decides addresses",
	"bind-source-addr":         "the platform decides addresses",
	"unixsocket":               "the platform decides addresses",
	"requirepass":              "use the cluster's managed password",
	"masterauth":               "use the cluster's managed password",
	"masteruser":               "the manager configures replication auth",
	"aclfile":                  "the manager configures auth",
	"user":                     "the manager configures auth",
	"replicaof":                "the manager and Sentinel decide roles",
	"slaveof":                  "the manager and Sentinel decide roles",
	"replica-announce-ip":      "the platform decides addresses",
	"replica-announce-port":    "the platform decides addresses",
	"pidfile":                  "the manager tracks processes",
	"logfile":                  "the manager places logs",
	"daemonize":                "the platform supervises processes",
	"supervised":               "the platform supervises processes",
	"appendfilename":           "the manager places data",
	"appenddirname":            "the manager places data",
	"appendonly":               "use the persistence field",
	"save":                     "use the persistence field",
	"maxmemory":                "use the maxmemory field",
	"maxmemory-policy":         "use the maxmemoryPolicy field",
	"protected-mode":           "the manager secures instances",
	"tls-port":                 "not supported yet",
	"repl-diskless-sync-delay": "the manager tunes replication for fast syncs and backups",
	"min-replicas-to-write":    "use the minReplicasToWrite field",
	"repl-diskless-sync":       "the manager streams syncs and backups from memory",
	"min-replicas-max-lag":     "derived from minReplicasToWrite and sentinel.downAfterMs",
}

type checker func(string) error

// redisInt is the grammar of Redis' string2ll: an optional minus, no plus,
// no leading zeros, no spaces ("+10", "010" and "-0" fail at boot).
var redisInt = regexp.MustCompile(`^(0|-?[1-9][0-9]{0,18})$`)

func intIn(lo, hi int64) checker {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if !redisInt.MatchString(v) || err != nil || n < lo || n > hi {
			return fmt.Errorf("must be an integer between %d and %d written as redis-server reads it (no sign '+', no leading zeros, no spaces), got %q", lo, hi, v)
		}
		return nil
	}
}

// redisSize is the grammar of Redis' memtoull: digits, then an optional
// unit b, k, kb, m, mb, g or gb in any case; nothing around them.
var redisSize = regexp.MustCompile(`^[0-9]+([kKmMgG][bB]?|[bB])?$`)

func oneOf(values ...string) checker {
	return func(v string) error {
		if !contains(values, v) {
			return fmt.Errorf("must be one of %s, got %q", strings.Join(values, ", "), v)
		}
		return nil
	}
}

// size is a memory size in a config value, as redis-server parses it.
func size(v string) error { _, err := configSize(v); return err }

func configSize(v string) (int64, error) {
	if !redisSize.MatchString(v) {
		return 0, fmt.Errorf("%q is not a size such as 0, 256mb or 2gb (digits and a unit, nothing around them)", v)
	}
	return ParseSize(v)
}

// sizeAtLeast is a size with redis-server's lower bound.
func sizeAtLeast(lo int64) checker {
	return func(v string) error {
		n, err := configSize(v)
		if err != nil {
			return err
		}
		if n < lo {
			return fmt.Errorf("must be at least %d bytes, got %q", lo, v)
		}
		return nil
	}
}

// outputBufferLimits checks "<class> <hard> <soft> <seconds>" groups.
func outputBufferLimits(v string) error {
	f := strings.Fields(v)
	if len(f) == 0 || len(f)%4 != 0 {
		return fmt.Errorf("must be groups of <class> <hard limit> <soft limit> <soft seconds>, got %q", v)
	}
	for i := 0; i < len(f); i += 4 {
		if err := oneOf("normal", "replica", "slave", "pubsub")(f[i]); err != nil {
			return fmt.Errorf("class %w", err)
		}
		if err := size(f[i+1]); err != nil {
			return err
		}
		if err := size(f[i+2]); err != nil {
			return err
		}
		if err := intIn(0, 1<<31-1)(f[i+3]); err != nil {
			return fmt.Errorf("soft seconds %w", err)
		}
	}
	return nil
}

var yesNo = oneOf("yes", "no")

func keyspaceEvents(v string) error {
	for _, r := range v {
		if !strings.ContainsRune("KEg$lshzxetmdnA", r) {
			return fmt.Errorf("invalid notify-keyspace-events class %q", r)
		}
	}
	return nil
}

// allowedDirectives are the redis.conf directives users may set, each with
// a check of its value, so a typo fails at the API instead of at boot.
var allowedDirectives = map[string]checker{
	"hz":                            intIn(1, 500),
	"dynamic-hz":                    yesNo,
	"timeout":                       intIn(0, 1<<31-1),
	"tcp-keepalive":                 intIn(0, 1<<31-1),
	"tcp-backlog":                   intIn(1, 65535),
	"maxclients":                    intIn(1, 1000000),
	"databases":                     intIn(1, 10000),
	"maxmemory-samples":             intIn(1, 64),
	"maxmemory-eviction-tenacity":   intIn(0, 100),
	"lazyfree-lazy-eviction":        yesNo,
	"lazyfree-lazy-expire":          yesNo,
	"lazyfree-lazy-server-del":      yesNo,
	"lazyfree-lazy-user-del":        yesNo,
	"lazyfree-lazy-user-flush":      yesNo,
	"replica-lazy-flush":            yesNo,
	"activedefrag":                  yesNo,
	"activerehashing":               yesNo,
	"appendfsync":                   oneOf("always", "everysec", "no"),
	"no-appendfsync-on-rewrite":     yesNo,
	"auto-aof-rewrite-percentage":   intIn(0, 1000),
	"auto-aof-rewrite-min-size":     size,
	"rdbcompression":                yesNo,
	"rdbchecksum":                   yesNo,
	"stop-writes-on-bgsave-error":   yesNo,
	"slowlog-log-slower-than":       intIn(-1, 1<<31-1),
	"slowlog-max-len":               intIn(0, 1<<31-1),
	"latency-monitor-threshold":     intIn(0, 1<<31-1),
	"latency-tracking":              yesNo,
	"notify-keyspace-events":        keyspaceEvents,
	"hash-max-listpack-entries":     intIn(0, 1<<31-1),
	"hash-max-listpack-value":       intIn(0, 1<<31-1),
	"list-max-listpack-size":        intIn(-5, 1<<31-1),
	"list-compress-depth":           intIn(0, 1<<31-1),
	"set-max-intset-entries":        intIn(0, 1<<31-1),
	"zset-max-listpack-entries":     intIn(0, 1<<31-1),
	"zset-max-listpack-value":       intIn(0, 1<<31-1),
	"hll-sparse-max-bytes":          intIn(0, 1<<31-1),
	"stream-node-max-bytes":         intIn(0, 1<<31-1),
	"stream-node-max-entries":       intIn(0, 1<<31-1),
	"repl-backlog-size":             sizeAtLeast(1),
	"repl-backlog-ttl":              intIn(0, 1<<31-1),
	"repl-timeout":                  intIn(1, 1<<31-1),
	"repl-diskless-load":            oneOf("disabled", "on-empty-db", "swapdb"),
	"replica-priority":              intIn(0, 1<<31-1),
	"replica-read-only":             yesNo,
	"replica-serve-stale-data":      yesNo,
	"client-output-buffer-limit":    outputBufferLimits,
	"proto-max-bulk-len":            sizeAtLeast(1 << 20),
	"client-query-buffer-limit":     sizeAtLeast(1 << 20),
	"io-threads":                    intIn(1, 128),
	"busy-reply-threshold":          intIn(0, 1<<31-1),
	"lua-time-limit":                intIn(0, 1<<31-1),
	"active-expire-effort":          intIn(1, 10),
	"oom-score-adj":                 oneOf("yes", "no", "relative", "absolute"),
	"jemalloc-bg-thread":            yesNo,
	"replica-ignore-maxmemory":      yesNo,
	"lfu-log-factor":                intIn(0, 1<<31-1),
	"lfu-decay-time":                intIn(0, 1<<31-1),
	"aof-use-rdb-preamble":          yesNo,
	"aof-timestamp-enabled":         yesNo,
	"rdb-del-sync-files":            yesNo,
	"acllog-max-len":                intIn(0, 1<<31-1),
	"active-defrag-threshold-lower": intIn(0, 1000),
	"active-defrag-threshold-upper": intIn(0, 1000),
	"active-defrag-cycle-min":       intIn(1, 99),
	"active-defrag-cycle-max":       intIn(1, 99),
}

// AllowedDirectives lists the directive names users may set, sorted.
func AllowedDirectives() []string {
	out := make([]string, 0, len(allowedDirectives))
	for k := range allowedDirectives {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ManagedDirectives lists the directive names the manager owns, sorted.
func ManagedDirectives() []string {
	out := make([]string, 0, len(managedDirectives))
	for k := range managedDirectives {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// ParseSize parses a Redis memory size: "0", "1048576", "256mb", "1gb",
// "512k" (Redis units: k/kb/m/mb/g/gb, case-insensitive; k = 1000, kb = 1024).
// ASCII spaces around it are ignored (the maxmemory field is rendered as a
// number); anything else that is not ASCII is refused.
func ParseSize(v string) (int64, error) {
	s := strings.ToLower(strings.Trim(v, " "))
	if s == "" {
		return 0, fmt.Errorf("size is empty")
	}
	units := []struct {
		suffix string
		mul    int64
	}{{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1000}, {"m", 1000 * 1000}, {"g", 1000 * 1000 * 1000}, {"b", 1}}
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mul = strings.TrimSuffix(s, u.suffix), u.mul
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mul {
		return 0, fmt.Errorf("%q is not a size such as 0, 256mb or 2gb", v)
	}
	return n * mul, nil
}
