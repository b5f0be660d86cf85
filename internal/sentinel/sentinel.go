package sentinel

import (
	"context"
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

// IsNoSuchMaster tells whether err is Sentinel's reply for an unknown name.
func IsNoSuchMaster(err error) bool {
	return err != nil && strings.Contains(err.Error(), "No such master")
}

// Register makes the Sentinel monitor name at masterAddr with the settings.
// A name already monitored keeps its current master (Sentinel may have
// failed over since); only its options are set again. Idempotent.
//
// conn is a plain client connection to the Sentinel: MONITOR and SET go in
// one pipeline so the Sentinel runs both before its next timer tick.
// Otherwise it may connect to the new master before it has auth-pass, get
// NOAUTH on its hello subscription, and only retry a second later.
func Register(ctx context.Context, conn *redis.Client, name, masterAddr string, s Settings) error {
	set := []any{"sentinel", "set", name,
		"auth-pass", s.AuthPass,
		"down-after-milliseconds", strconv.Itoa(s.DownAfterMs),
		"failover-timeout", strconv.Itoa(s.FailoverTimeoutMs),
		"parallel-syncs", strconv.Itoa(s.ParallelSyncs),
		"quorum", strconv.Itoa(s.Quorum),
	}
	err := conn.Do(ctx, "sentinel", "master", name).Err()
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

// Unregister makes the Sentinel forget name. Forgetting an unknown name is
// not an error.
func Unregister(ctx context.Context, sc *redis.SentinelClient, name string) error {
	if err := sc.Remove(ctx, name).Err(); err != nil && !IsNoSuchMaster(err) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// Master is one Sentinel's view of one monitored shard.
type Master struct {
	Name              string
	Addr              string
	Flags             []string
	Quorum            int
	NumOtherSentinels int
	Replicas          []Replica
}

// Replica is a replica as one Sentinel lists it.
type Replica struct {
	Addr             string
	Flags            []string
	MasterLinkStatus string
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

// View reads every shard the Sentinel monitors, with its replicas.
func View(ctx context.Context, sc *redis.SentinelClient) (map[string]Master, error) {
	cmd := redis.NewMapStringStringSliceCmd(ctx, "sentinel", "masters")
	if err := sc.Process(ctx, cmd); err != nil {
		return nil, fmt.Errorf("sentinel masters: %w", err)
	}
	out := map[string]Master{}
	for _, m := range cmd.Val() {
		q, _ := strconv.Atoi(m["quorum"])
		others, _ := strconv.Atoi(m["num-other-sentinels"])
		master := Master{
			Name:              m["name"],
			Addr:              net.JoinHostPort(m["ip"], m["port"]),
			Flags:             strings.Split(m["flags"], ","),
			Quorum:            q,
			NumOtherSentinels: others,
		}
		reps, err := sc.Replicas(ctx, master.Name).Result()
		if err != nil {
			return nil, fmt.Errorf("sentinel replicas %s: %w", master.Name, err)
		}
		for _, r := range reps {
			master.Replicas = append(master.Replicas, Replica{
				Addr:             net.JoinHostPort(r["ip"], r["port"]),
				Flags:            strings.Split(r["flags"], ","),
				MasterLinkStatus: r["master-link-status"],
			})
		}
		out[master.Name] = master
	}
	return out, nil
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
func MyID(ctx context.Context, sc *redis.SentinelClient) (string, error) {
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
