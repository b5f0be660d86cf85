package sentinel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Settings are the per-shard options the manager sets in every Sentinel.
type Settings struct {
	Quorum            int
	AuthPass          string
	DownAfterMs       int
	FailoverTimeoutMs int
	ParallelSyncs     int
}

// Conn is a connection to one Sentinel: a *redis.SentinelClient or a plain
// *redis.Client to the Sentinel's address. Every SENTINEL command the
// manager sends goes through this package.
type Conn interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// errNoSuchMaster is what GetMasterAddrByName returns for an unknown name
// (Sentinel answers a null there, not an error); it reads like the error
// the other SENTINEL commands give for one.
var errNoSuchMaster = errors.New("ERR No such master with that name")

// IsNoSuchMaster tells whether err is Sentinel's reply for an unknown name.
func IsNoSuchMaster(err error) bool {
	return err != nil && (errors.Is(err, errNoSuchMaster) || strings.Contains(err.Error(), "No such master"))
}

// IsFailoverInProgress tells whether err is SENTINEL FAILOVER's answer when
// a failover of that master already runs.
func IsFailoverInProgress(err error) bool {
	return err != nil && strings.Contains(err.Error(), "INPROG")
}

// IsNoGoodReplica tells whether err is SENTINEL FAILOVER's answer when no
// replica can be promoted.
func IsNoGoodReplica(err error) bool {
	return err != nil && strings.Contains(err.Error(), "NOGOODSLAVE")
}

// do runs one SENTINEL subcommand and returns its generic reply.
func do(ctx context.Context, c Conn, args ...any) *redis.Cmd {
	cmd := redis.NewCmd(ctx, append([]any{"sentinel"}, args...)...)
	_ = c.Process(ctx, cmd)
	return cmd
}

// Register makes the Sentinel monitor name at masterAddr with the settings.
// A name already monitored keeps its current master (Sentinel may have
// failed over since); only its options are set again. Idempotent.
//
// conn is a plain client connection to the Sentinel: MONITOR and SET go in
// one pipeline so the Sentinel runs both before its next timer tick.
// Otherwise it may connect to the new master before it has auth-pass, get
// NOAUTH on its hello subscription, and only retry a second later.
//
// A command that times out is sent again (configWrite).
func Register(ctx context.Context, conn *redis.Client, name, masterAddr string, s Settings) error {
	return configWrite(ctx, func() error { return register(ctx, conn, name, masterAddr, s) })
}

// configWriteAttempts bounds the tries of the SENTINEL commands that
// rewrite and fsync the Sentinel's config file (MONITOR, SET, REMOVE).
// On a host whose cores are all busy (a thousand instances on two,
// docs/monitoring.md, Scale) one of them can outlast the 2 s read
// timeout, and a create or a scale failed on it. They are idempotent, so
// a timed-out one is sent again.
const configWriteAttempts = 3

// configWrite runs f until it succeeds, fails other than by a timeout,
// ctx ends, or configWriteAttempts tries were made.
func configWrite(ctx context.Context, f func() error) error {
	var err error
	for try := 1; try <= configWriteAttempts; try++ {
		err = f()
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() || ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("%w (%d tries, each timed out)", err, configWriteAttempts)
}

func register(ctx context.Context, conn *redis.Client, name, masterAddr string, s Settings) error {
	set := []any{"sentinel", "set", name,
		"auth-pass", s.AuthPass,
		"down-after-milliseconds", strconv.Itoa(s.DownAfterMs),
		"failover-timeout", strconv.Itoa(s.FailoverTimeoutMs),
		"parallel-syncs", strconv.Itoa(s.ParallelSyncs),
		"quorum", strconv.Itoa(s.Quorum),
	}
	_, err := GetMaster(ctx, conn, name)
	if IsNoSuchMaster(err) {
		host, port, splitErr := net.SplitHostPort(masterAddr)
		if splitErr != nil {
			return fmt.Errorf("monitor %s: %w", name, splitErr)
		}
		cmds, _ := conn.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Do(ctx, "sentinel", "monitor", name, host, port, strconv.Itoa(s.Quorum))
			p.Do(ctx, set...)
			return nil
		})
		if err := cmds[0].Err(); err != nil && !strings.Contains(err.Error(), "Duplicated master name") {
			return fmt.Errorf("monitor %s: %w", name, err)
		}
		if err := cmds[1].Err(); err != nil {
			return fmt.Errorf("set options of %s: %w", name, err)
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if err := conn.Do(ctx, set...).Err(); err != nil {
		return fmt.Errorf("set options of %s: %w", name, err)
	}
	return nil
}

// SetAuthPass makes the Sentinel authenticate to the instances of name
// with password (SENTINEL SET name auth-pass).
func SetAuthPass(ctx context.Context, sc Conn, name, password string) error {
	return configWrite(ctx, func() error {
		if err := do(ctx, sc, "set", name, "auth-pass", password).Err(); err != nil {
			return fmt.Errorf("set auth-pass of %s: %w", name, err)
		}
		return nil
	})
}

// SetSentinelPass sets the password the Sentinel authenticates to the other
// Sentinels with (SENTINEL CONFIG SET sentinel-pass) and saves its config.
func SetSentinelPass(ctx context.Context, sc Conn, password string) error {
	err := configWrite(ctx, func() error {
		if err := do(ctx, sc, "config", "set", "sentinel-pass", password).Err(); err != nil {
			return fmt.Errorf("set sentinel-pass: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return FlushConfig(ctx, sc)
}

// FlushConfig makes the Sentinel write its configuration file now
// (SENTINEL FLUSHCONFIG), e.g. after an ACL change.
func FlushConfig(ctx context.Context, sc Conn) error {
	return configWrite(ctx, func() error {
		if err := do(ctx, sc, "flushconfig").Err(); err != nil {
			return fmt.Errorf("flush config: %w", err)
		}
		return nil
	})
}

// Unregister makes the Sentinel forget name (SENTINEL REMOVE). Forgetting an
// unknown name is not an error.
func Unregister(ctx context.Context, sc Conn, name string) error {
	return configWrite(ctx, func() error {
		if err := do(ctx, sc, "remove", name).Err(); err != nil && !IsNoSuchMaster(err) {
			return fmt.Errorf("remove %s: %w", name, err)
		}
		return nil
	})
}

// Master is one Sentinel's view of one monitored shard.
type Master struct {
	Name              string
	Addr              string
	Flags             []string
	Quorum            int
	NumOtherSentinels int
	ConfigEpoch       int64
	Replicas          []Replica // filled by View only
}

// Replica is a replica as one Sentinel lists it.
type Replica struct {
	Addr             string
	Flags            []string
	MasterLinkStatus string
	Priority         int64  // slave-priority
	Offset           int64  // slave-repl-offset, from the Sentinel's last INFO
	RunID            string // runid
	LastOKPing       time.Duration
	InfoRefresh      time.Duration // age of the Sentinel's last INFO of it
}

// Down reports whether Sentinel flags the instance subjectively or
// objectively down or disconnected.
func Down(flags []string) bool {
	for _, f := range flags {
		if f == "s_down" || f == "o_down" || f == "disconnected" {
			return true
		}
	}
	return false
}

// pipeliner is a connection that can send several commands at once (a
// plain *redis.Client; go-redis's SentinelClient cannot).
type pipeliner interface {
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// View reads every shard the Sentinel monitors, with its replicas. On a
// connection that pipelines, the SENTINEL REPLICAS of every shard go in
// one round trip (the observe loop reads every Sentinel every round: at
// 16 shards, 2 round trips instead of 17).
func View(ctx context.Context, sc Conn) (map[string]Master, error) {
	masters, err := Masters(ctx, sc)
	if err != nil {
		return nil, err
	}
	out := map[string]Master{}
	if p, ok := sc.(pipeliner); ok && len(masters) > 0 {
		cmds := make([]*redis.MapStringStringSliceCmd, len(masters))
		_, _ = p.Pipelined(ctx, func(pp redis.Pipeliner) error {
			for i, m := range masters {
				cmds[i] = redis.NewMapStringStringSliceCmd(ctx, "sentinel", "replicas", m.Name)
				_ = pp.Process(ctx, cmds[i])
			}
			return nil
		})
		for i, master := range masters {
			if err := cmds[i].Err(); err != nil {
				return nil, fmt.Errorf("sentinel replicas %s: %w", master.Name, err)
			}
			master.Replicas = parseReplicas(cmds[i].Val())
			out[master.Name] = master
		}
		return out, nil
	}
	for _, master := range masters {
		reps, err := Replicas(ctx, sc, master.Name)
		if err != nil {
			return nil, err
		}
		master.Replicas = reps
		out[master.Name] = master
	}
	return out, nil
}

// Masters lists every shard the Sentinel monitors (SENTINEL MASTERS),
// without replicas.
func Masters(ctx context.Context, sc Conn) ([]Master, error) {
	cmd := redis.NewMapStringStringSliceCmd(ctx, "sentinel", "masters")
	if err := sc.Process(ctx, cmd); err != nil {
		return nil, fmt.Errorf("sentinel masters: %w", err)
	}
	out := make([]Master, 0, len(cmd.Val()))
	for _, m := range cmd.Val() {
		out = append(out, parseMaster(m))
	}
	return out, nil
}

// GetMaster reads one monitored shard (SENTINEL MASTER), without replicas.
// An unknown name gives an error for which IsNoSuchMaster is true.
func GetMaster(ctx context.Context, sc Conn, name string) (Master, error) {
	cmd := redis.NewMapStringStringCmd(ctx, "sentinel", "master", name)
	if err := sc.Process(ctx, cmd); err != nil {
		return Master{}, fmt.Errorf("sentinel master %s: %w", name, err)
	}
	return parseMaster(cmd.Val()), nil
}

func parseMaster(m map[string]string) Master {
	return Master{
		Name:              m["name"],
		Addr:              net.JoinHostPort(m["ip"], m["port"]),
		Flags:             strings.Split(m["flags"], ","),
		Quorum:            int(num(m, "quorum")),
		NumOtherSentinels: int(num(m, "num-other-sentinels")),
		ConfigEpoch:       num(m, "config-epoch"),
	}
}

func num(m map[string]string, k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }

// Replicas lists the replicas the Sentinel knows for a shard (SENTINEL
// REPLICAS), as of its last INFO of each.
func Replicas(ctx context.Context, sc Conn, name string) ([]Replica, error) {
	cmd := redis.NewMapStringStringSliceCmd(ctx, "sentinel", "replicas", name)
	if err := sc.Process(ctx, cmd); err != nil {
		return nil, fmt.Errorf("sentinel replicas %s: %w", name, err)
	}
	return parseReplicas(cmd.Val()), nil
}

func parseReplicas(val []map[string]string) []Replica {
	var out []Replica
	for _, r := range val {
		out = append(out, Replica{
			Addr:             net.JoinHostPort(r["ip"], r["port"]),
			Flags:            strings.Split(r["flags"], ","),
			MasterLinkStatus: r["master-link-status"],
			Priority:         num(r, "slave-priority"),
			Offset:           num(r, "slave-repl-offset"),
			RunID:            r["runid"],
			LastOKPing:       time.Duration(num(r, "last-ok-ping-reply")) * time.Millisecond,
			InfoRefresh:      time.Duration(num(r, "info-refresh")) * time.Millisecond,
		})
	}
	return out
}

// Sentinels lists the other Sentinels this one knows for a shard
// (SENTINEL SENTINELS).
func Sentinels(ctx context.Context, sc Conn, name string) ([]Peer, error) {
	cmd := redis.NewMapStringStringSliceCmd(ctx, "sentinel", "sentinels", name)
	if err := sc.Process(ctx, cmd); err != nil {
		return nil, fmt.Errorf("sentinel sentinels %s: %w", name, err)
	}
	var out []Peer
	for _, p := range cmd.Val() {
		out = append(out, Peer{Host: p["ip"], Port: p["port"], ID: p["runid"]})
	}
	return out, nil
}

// GetMasterAddrByName returns the address the Sentinel names master of a
// shard (SENTINEL GET-MASTER-ADDR-BY-NAME). An unknown name gives an error
// for which IsNoSuchMaster is true.
func GetMasterAddrByName(ctx context.Context, sc Conn, name string) (string, error) {
	cmd := redis.NewStringSliceCmd(ctx, "sentinel", "get-master-addr-by-name", name)
	err := sc.Process(ctx, cmd)
	if errors.Is(err, redis.Nil) || (err == nil && len(cmd.Val()) == 0) {
		return "", fmt.Errorf("sentinel get-master-addr-by-name %s: %w", name, errNoSuchMaster)
	}
	if err != nil {
		return "", fmt.Errorf("sentinel get-master-addr-by-name %s: %w", name, err)
	}
	if len(cmd.Val()) != 2 {
		return "", fmt.Errorf("sentinel get-master-addr-by-name %s: unexpected reply %q", name, cmd.Val())
	}
	return net.JoinHostPort(cmd.Val()[0], cmd.Val()[1]), nil
}

// Failover asks the Sentinel to fail a shard over now, without the
// agreement of the others (SENTINEL FAILOVER). See IsFailoverInProgress and
// IsNoGoodReplica for its refusals.
func Failover(ctx context.Context, sc Conn, name string) error {
	if err := do(ctx, sc, "failover", name).Err(); err != nil {
		return fmt.Errorf("sentinel failover %s: %w", name, err)
	}
	return nil
}

// Reset makes the Sentinel forget what it learnt of the shards matching
// pattern (SENTINEL RESET): replicas and other Sentinels are rediscovered.
// It returns how many shards matched.
func Reset(ctx context.Context, sc Conn, pattern string) (int64, error) {
	cmd := redis.NewIntCmd(ctx, "sentinel", "reset", pattern)
	if err := sc.Process(ctx, cmd); err != nil {
		return 0, fmt.Errorf("sentinel reset %s: %w", pattern, err)
	}
	return cmd.Val(), nil
}

// DebugInfoPeriod sets how often the Sentinel reads INFO of the instances
// it monitors (SENTINEL DEBUG INFO-PERIOD, in milliseconds). Sentinel does
// not persist it.
func DebugInfoPeriod(ctx context.Context, sc Conn, ms int) error {
	if err := do(ctx, sc, "debug", "info-period", ms).Err(); err != nil {
		return fmt.Errorf("sentinel debug info-period: %w", err)
	}
	return nil
}

// DebugTiltPeriod sets how long the Sentinel stays in TILT after a stall
// (SENTINEL DEBUG TILT-PERIOD, in milliseconds; 30000 by default), the
// time it then acts on nothing: no failover. Sentinel does not persist it.
func DebugTiltPeriod(ctx context.Context, sc Conn, ms int) error {
	if err := do(ctx, sc, "debug", "tilt-period", ms).Err(); err != nil {
		return fmt.Errorf("sentinel debug tilt-period: %w", err)
	}
	return nil
}

// EventPattern matches every event a Sentinel publishes (+sdown, +odown,
// +switch-master …, and the hello channel).
const EventPattern = "*"

// Subscribe subscribes to every event the Sentinel publishes. go-redis
// subscribes again after a lost connection.
func Subscribe(ctx context.Context, conn *redis.Client) *redis.PubSub {
	return conn.PSubscribe(ctx, EventPattern)
}

// HelloChannel is the channel Sentinels announce themselves on, on every
// instance they monitor.
const HelloChannel = "__sentinel__:hello"

// Peer identifies one Sentinel as its hello message does.
type Peer struct {
	Host string
	Port string
	ID   string // SENTINEL MYID
}

// MyID returns a Sentinel's run id.
func MyID(ctx context.Context, sc Conn) (string, error) {
	cmd := redis.NewStringCmd(ctx, "sentinel", "myid")
	if err := sc.Process(ctx, cmd); err != nil {
		return "", fmt.Errorf("sentinel myid: %w", err)
	}
	return cmd.Val(), nil
}

// Introduce publishes, on a newly monitored master's hello channel, the
// hello message each Sentinel would send itself (ip,port,runid,epoch,
// master name,ip,port,config epoch). Sentinels send their first hello only
// two seconds after MONITOR; introducing them at once lets a new shard be
// ready that much sooner. It is only an early copy of what each Sentinel
// announces anyway: current epoch 0 never raises anyone's epoch, and the
// master's own config epoch never makes anyone switch masters. It waits
// until every Sentinel listens on the channel, or gives up after wait.
func Introduce(ctx context.Context, master *redis.Client, name, masterAddr string, configEpoch int64, peers []Peer, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		n, err := master.PubSubNumSub(ctx, HelloChannel).Result()
		if err != nil {
			return fmt.Errorf("introduce Sentinels of %s: %w", name, err)
		}
		if n[HelloChannel] >= int64(len(peers)) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("introduce Sentinels of %s: %d of %d Sentinels subscribed", name, n[HelloChannel], len(peers))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	host, port, err := net.SplitHostPort(masterAddr)
	if err != nil {
		return err
	}
	for _, p := range peers {
		msg := fmt.Sprintf("%s,%s,%s,0,%s,%s,%s,%d", p.Host, p.Port, p.ID, name, host, port, configEpoch)
		if err := master.Publish(ctx, HelloChannel, msg).Err(); err != nil {
			return fmt.Errorf("introduce Sentinels of %s: %w", name, err)
		}
	}
	return nil
}

// Hello is the message a Sentinel publishes about a master it monitors
// (sentinelSendHello): who it is, its current epoch, and the master's name,
// address and configuration epoch as it knows them.
type Hello struct {
	From         Peer
	CurrentEpoch int64
	Name         string
	MasterAddr   string
	ConfigEpoch  int64
}

// String is the hello's wire form: ip,port,runid,current_epoch,
// master_name,master_ip,master_port,master_config_epoch.
func (h Hello) String() string {
	host, port, _ := net.SplitHostPort(h.MasterAddr)
	return fmt.Sprintf("%s,%s,%s,%d,%s,%s,%s,%d", h.From.Host, h.From.Port, h.From.ID, h.CurrentEpoch, h.Name, host, port, h.ConfigEpoch)
}

// SendHello hands a hello straight to a Sentinel (its PUBLISH command
// accepts only the hello channel and processes the message at once, as
// Sentinels do with each other's hellos). A Sentinel that knows the sender
// and sees a configuration epoch newer than its own switches to the
// hello's master address (+config-update-from, +switch-master).
func SendHello(ctx context.Context, sc Conn, h Hello) error {
	cmd := redis.NewIntCmd(ctx, "publish", HelloChannel, h.String())
	if err := sc.Process(ctx, cmd); err != nil {
		return fmt.Errorf("hello to Sentinel about %s: %w", h.Name, err)
	}
	return nil
}
