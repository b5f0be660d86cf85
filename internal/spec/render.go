package spec

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/redis-manager/redis-manager/api"
)

// InstanceName is the stable name of a redis-server: <cluster>-<shard>-<ordinal>.
func InstanceName(cluster string, shard, ordinal int) string {
	return fmt.Sprintf("%s-%d-%d", cluster, shard, ordinal)
}

// SentinelInstanceName is the stable name of a Sentinel: <cluster>-sentinel-<ordinal>.
func SentinelInstanceName(cluster string, ordinal int) string {
	return fmt.Sprintf("%s-sentinel-%d", cluster, ordinal)
}

// MasterName is the name a shard is registered under in Sentinel.
func MasterName(cluster string, shard int) string {
	return fmt.Sprintf("%s-%d", cluster, shard)
}

// Quorum is the majority of n Sentinels.
func Quorum(n int) int { return n/2 + 1 }

// InstanceCount is how many processes (and ports) a spec needs.
func InstanceCount(s api.ClusterSpec) int {
	return s.Shards*(1+s.Replicas) + s.Sentinels
}

// RedisConfig is what a redis-server boots with.
type RedisConfig struct {
	Host     string
	Port     int
	Dir      string
	Password string
	// ExtraPasswords are accepted besides Password while a password
	// rotation runs (the next or the previous one).
	ExtraPasswords []string
	ReplicaOf      string // "host:port" of the master, "" to boot as master
	Spec           api.ClusterSpec
	// Shared renders the part every pod of a shard shares (Kubernetes): it
	// listens on every address, logs to stdout, and leaves out the
	// per-instance and secret lines (replica-announce-ip, passwords, pid
	// file), which the pod's entrypoint adds (RenderRedisAuth, Announce).
	Shared bool
}

// RenderRedisAuth renders the password directives of a redis.conf.
func RenderRedisAuth(password string, extra []string) string {
	return accepted(password, extra) + "masterauth " + quote(password) + "\n"
}

// RenderSentinelAuth renders the password directives of a sentinel.conf.
func RenderSentinelAuth(password string, extra []string) string {
	return accepted(password, extra) + "sentinel sentinel-pass " + quote(password) + "\n"
}

// accepted is the line that makes a server accept password (and extra,
// during a rotation).
func accepted(password string, extra []string) string {
	if len(extra) == 0 {
		return "requirepass " + quote(password) + "\n"
	}
	return strings.Join(defaultUser(password, extra), " ") + "\n"
}

// Announce renders the lines that give a Shared config its instance's
// name: what it announces to its master (redis) or to Sentinels and clients
// (sentinel).
func Announce(kind, host string) string {
	if kind == "sentinel" {
		return "sentinel announce-ip " + quote(host) + "\n"
	}
	return "replica-announce-ip " + quote(host) + "\n"
}

// PersistenceSettings maps the persistence field onto redis.conf
// directives, as name/value pairs for CONFIG SET.
func PersistenceSettings(mode string) [][2]string {
	switch mode {
	case "none":
		return [][2]string{{"save", ""}, {"appendonly", "no"}}
	case "aof":
		return [][2]string{{"save", ""}, {"appendonly", "yes"}}
	default:
		return [][2]string{{"save", "3600 1 300 100 60 10000"}, {"appendonly", "no"}}
	}
}

// RenderRedis renders a complete redis.conf. The manager owns every
// directive but the allow-listed user config, which comes last in a stable
// order. Passwords are quoted so any byte sequence survives.
func RenderRedis(c RedisConfig) string {
	var b strings.Builder
	line := func(parts ...string) { b.WriteString(strings.Join(parts, " ") + "\n") }
	line("# Rendered by redis-manager; edits are overwritten at the next start.")
	line("port", strconv.Itoa(c.Port))
	if c.Shared {
		line("bind * -::*")
		line("daemonize no")
		line("dir", quote(c.Dir))
		line("dbfilename dump.rdb")
		line("appenddirname appendonly")
		line(`logfile ""`)
	} else {
		line("bind", c.Host)
		// Connections to the master leave from the instance's own address, so
		// a packet filter on that address cuts the instance off both ways.
		line("bind-source-addr", c.Host)
		line("daemonize no")
		line("dir", quote(c.Dir))
		line("dbfilename dump.rdb")
		line("appenddirname appendonly")
		line("pidfile", quote(c.Dir+"/redis.pid"))
		line("logfile", quote(c.Dir+"/redis.log"))
		b.WriteString(RenderRedisAuth(c.Password, c.ExtraPasswords))
		line("replica-announce-ip", c.Host)
	}
	// Diskless sync without delay: a new replica or a backup does not wait
	// five seconds for others to join.
	line("repl-diskless-sync yes")
	line("repl-diskless-sync-delay 0")
	for _, kv := range PersistenceSettings(c.Spec.Persistence) {
		line(kv[0], quote(kv[1]))
	}
	if n, err := ParseSize(c.Spec.Maxmemory); err == nil {
		line("maxmemory", strconv.FormatInt(n, 10))
	}
	line("maxmemory-policy", c.Spec.MaxmemoryPolicy)
	for _, kv := range WriteSafetySettings(c.Spec) {
		line(kv[0], kv[1])
	}
	if c.ReplicaOf != "" {
		host, port, _ := net.SplitHostPort(c.ReplicaOf)
		line("replicaof", host, port)
	}
	keys := make([]string, 0, len(c.Spec.Config))
	for k := range c.Spec.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		line(k, c.Spec.Config[k])
	}
	return b.String()
}

// SentinelConfig is what a Sentinel boots with the first time; afterwards
// Sentinel owns and rewrites its file.
type SentinelConfig struct {
	Host     string
	Port     int
	Dir      string
	Password string // the Sentinels' own password, shared by the set
	// ExtraPasswords are accepted besides Password while a password
	// rotation runs.
	ExtraPasswords []string
	// Shared renders what every Sentinel pod shares (Kubernetes): every
	// address, stdout, Sentinels and masters named by DNS name; the
	// entrypoint adds the announced name and the passwords.
	Shared bool
}

// RenderSentinel renders the initial sentinel.conf. Shards are registered
// at run time with SENTINEL MONITOR, not here, so creating and scaling share
// one path.
func RenderSentinel(c SentinelConfig) string {
	var b strings.Builder
	line := func(parts ...string) { b.WriteString(strings.Join(parts, " ") + "\n") }
	line("# Rendered by redis-manager at first start; Sentinel rewrites this file.")
	line("port", strconv.Itoa(c.Port))
	if c.Shared {
		line("bind * -::*")
		line("daemonize no")
		line("dir", quote(c.Dir))
		line(`logfile ""`)
		// Pods come back with new IP addresses: Sentinels name each other
		// and the instances by their stable DNS names.
		line("sentinel resolve-hostnames yes")
		line("sentinel announce-hostnames yes")
		return b.String()
	}
	line("bind", c.Host)
	line("bind-source-addr", c.Host) // see RenderRedis
	line("daemonize no")
	line("dir", quote(c.Dir))
	line("pidfile", quote(c.Dir+"/redis.pid"))
	line("logfile", quote(c.Dir+"/redis.log"))
	line("sentinel announce-ip", c.Host)
	line("sentinel resolve-hostnames no")
	b.WriteString(RenderSentinelAuth(c.Password, c.ExtraPasswords))
	return b.String()
}

// defaultUser is the directive of the default user with every password
// accepted now: what requirepass gives, with more than one password.
func defaultUser(password string, extra []string) []string {
	rule := []string{"user", "default", "on", quote(">" + password)}
	for _, p := range extra {
		rule = append(rule, quote(">"+p))
	}
	return append(rule, "~*", "&*", "+@all")
}

// quote renders a redis.conf string argument in double quotes with escapes,
// as Redis' sdssplitargs reads it.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// WriteSafetySettings maps minReplicasToWrite onto min-replicas-to-write and
// min-replicas-max-lag. The lag bound stays below down-after-milliseconds,
// so an isolated old master refuses writes before Sentinel fails it over.
func WriteSafetySettings(s api.ClusterSpec) [][2]string {
	lag := 0
	if s.MinReplicasToWrite > 0 {
		lag = max(1, min(10, s.Sentinel.DownAfterMs/2000))
	}
	return [][2]string{{"min-replicas-to-write", strconv.Itoa(s.MinReplicasToWrite)}, {"min-replicas-max-lag", strconv.Itoa(max(lag, 1))}}
}
