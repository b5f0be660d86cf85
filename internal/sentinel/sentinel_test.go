package sentinel

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

const (
	redisPassword    = "redis pass"
	sentinelPassword = "sentinel pass"
)

// server is one real redis-server or Sentinel process of a test.
type server struct {
	addr string
	host string
	port int
}

// start boots a redis-server (sentinel: a Sentinel) on a rendered config
// and stops it when the test ends.
func start(t *testing.T, sentinel bool, replicaOf string) server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed (CI must install it)")
		}
		t.Skip("redis-server not installed")
	}
	port := testenv.FreePort(t)
	dir := t.TempDir()
	file, conf, args := "redis.conf", "", []string{}
	if sentinel {
		file, args = "sentinel.conf", []string{"--sentinel"}
		conf = spec.RenderSentinel(spec.SentinelConfig{Host: "127.0.0.1", Port: port, Dir: dir, Password: sentinelPassword})
	} else {
		s := api.ClusterSpec{Shards: 1, Replicas: 1, Sentinels: 2, Maxmemory: "0", MaxmemoryPolicy: "noeviction", Persistence: "none",
			Sentinel: api.SentinelSettings{DownAfterMs: 5000, FailoverTimeoutMs: 10000, ParallelSyncs: 1}}
		conf = spec.RenderRedis(spec.RedisConfig{Host: "127.0.0.1", Port: port, Dir: dir, Password: redisPassword, ReplicaOf: replicaOf, Spec: s})
	}
	if err := testenv.BootRedis(t, dir, file, conf, port, args...); err != nil {
		t.Fatal(err)
	}
	return server{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), host: "127.0.0.1", port: port}
}

func options(addr, password string) *redis.Options {
	return &redis.Options{Addr: addr, Password: password, Protocol: 2, DisableIdentity: true, MaxRetries: -1}
}

func redisClient(t *testing.T, addr, password string) *redis.Client {
	c := redis.NewClient(options(addr, password))
	t.Cleanup(func() { c.Close() })
	return c
}

func sentinelClient(t *testing.T, addr string) *redis.SentinelClient {
	c := redis.NewSentinelClient(options(addr, sentinelPassword))
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls check until it returns "" or 15 s pass.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var settings = Settings{Quorum: 2, AuthPass: redisPassword, DownAfterMs: 5000, FailoverTimeoutMs: 10000, ParallelSyncs: 1}

// TestCommands runs every typed SENTINEL command against a real shard (a
// master and a replica) watched by two real Sentinels, ending with a forced
// failover seen through the event subscription.
func TestCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const name = "orders-0"
	master := start(t, false, "")
	replica := start(t, false, master.addr)
	sa, sb := start(t, true, ""), start(t, true, "")
	a, b := sentinelClient(t, sa.addr), sentinelClient(t, sb.addr)
	// Register needs a plain client (it pipelines); the rest take either.
	plainA := redisClient(t, sa.addr, sentinelPassword)

	// Unknown names.
	if _, err := GetMasterAddrByName(ctx, a, name); !IsNoSuchMaster(err) {
		t.Fatalf("GetMasterAddrByName of an unknown name: %v, want a no-such-master error", err)
	}
	if _, err := GetMaster(ctx, a, name); !IsNoSuchMaster(err) {
		t.Fatalf("GetMaster of an unknown name: %v, want a no-such-master error", err)
	}
	if err := Unregister(ctx, a, name); err != nil {
		t.Fatalf("Unregister of an unknown name: %v", err)
	}
	if ms, err := Masters(ctx, a); err != nil || len(ms) != 0 {
		t.Fatalf("Masters before any MONITOR = %+v, %v; want none", ms, err)
	}

	for _, c := range []Conn{plainA, redisClient(t, sb.addr, sentinelPassword)} {
		if err := Register(ctx, c.(*redis.Client), name, master.addr, settings); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	for _, c := range []Conn{a, b} {
		if err := DebugInfoPeriod(ctx, c, 100); err != nil {
			t.Fatalf("DebugInfoPeriod: %v", err)
		}
	}
	if err := DebugInfoPeriod(ctx, redisClient(t, master.addr, redisPassword), 100); err == nil {
		t.Fatal("DebugInfoPeriod on a plain redis-server succeeded; want an error")
	}
	if err := DebugTiltPeriod(ctx, a, 5000); err != nil {
		t.Fatalf("DebugTiltPeriod: %v", err)
	}
	if got := debugParam(t, ctx, a, "tilt-period"); got != "5000" {
		t.Fatalf("SENTINEL DEBUG after DebugTiltPeriod 5000: TILT-PERIOD %q", got)
	}
	if err := DebugTiltPeriod(ctx, redisClient(t, master.addr, redisPassword), 5000); err == nil {
		t.Fatal("DebugTiltPeriod on a plain redis-server succeeded; want an error")
	}

	if got, err := GetMasterAddrByName(ctx, a, name); err != nil || got != master.addr {
		t.Fatalf("GetMasterAddrByName = %q, %v; want %s", got, err, master.addr)
	}
	m, err := GetMaster(ctx, b, name)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != name || m.Addr != master.addr || m.Quorum != 2 || !slices.Contains(m.Flags, "master") || m.ConfigEpoch != 0 {
		t.Fatalf("GetMaster = %+v; want %s at %s, quorum 2, flag master, config epoch 0", m, name, master.addr)
	}
	ms, err := Masters(ctx, a)
	if err != nil || len(ms) != 1 || ms[0].Name != name || ms[0].Addr != master.addr {
		t.Fatalf("Masters = %+v, %v; want only %s at %s", ms, err, name, master.addr)
	}

	// Replicas: the replica with the fields the fast path reads.
	if err := redisClient(t, master.addr, redisPassword).Set(ctx, "k", strings.Repeat("v", 1000), 0).Err(); err != nil {
		t.Fatal(err)
	}
	var rep Replica
	eventually(t, "Sentinel lists the replica with its offset", func() string {
		reps, err := Replicas(ctx, a, name)
		if err != nil {
			return err.Error()
		}
		if len(reps) != 1 {
			return fmt.Sprintf("%d replicas: %+v", len(reps), reps)
		}
		rep = reps[0]
		if rep.Offset < 1000 || rep.MasterLinkStatus != "ok" {
			return fmt.Sprintf("replica %+v", rep)
		}
		return ""
	})
	info, err := redisClient(t, replica.addr, redisPassword).Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Addr != replica.addr || rep.Priority != 100 || !strings.Contains(info, "run_id:"+rep.RunID) || len(rep.RunID) != 40 ||
		rep.InfoRefresh > 2*time.Second || rep.LastOKPing > 2*time.Second || !slices.Contains(rep.Flags, "slave") || Down(rep.Flags) {
		t.Fatalf("Replicas = %+v; want %s, priority 100, the replica's run id, fresh INFO and ping, up", rep, replica.addr)
	}

	// View: the shard with its replica.
	view, err := View(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := view[name]; !ok || len(view) != 1 || v.Addr != master.addr || len(v.Replicas) != 1 || v.Replicas[0].Addr != replica.addr {
		t.Fatalf("View = %+v", view)
	}
	// The same through a plain client, which pipelines the replicas.
	piped, err := View(ctx, plainA)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := piped[name]; !ok || len(piped) != 1 || v.Addr != master.addr || v.Quorum != 2 || len(v.Replicas) != 1 ||
		v.Replicas[0].Addr != replica.addr || v.Replicas[0].RunID != rep.RunID || v.Replicas[0].MasterLinkStatus != "ok" {
		t.Fatalf("View through a plain client = %+v", piped)
	}

	// Sentinels: each knows the other, by the id MYID gives.
	idB, err := MyID(ctx, b)
	if err != nil || len(idB) != 40 {
		t.Fatalf("MyID = %q, %v", idB, err)
	}
	eventually(t, "Sentinel A knows Sentinel B", func() string {
		peers, err := Sentinels(ctx, a, name)
		if err != nil {
			return err.Error()
		}
		if len(peers) != 1 || peers[0] != (Peer{Host: sb.host, Port: strconv.Itoa(sb.port), ID: idB}) {
			return fmt.Sprintf("peers %+v", peers)
		}
		return ""
	})

	// Reset: one shard matches, none for another pattern; A rediscovers
	// its replica and its peer.
	if n, err := Reset(ctx, a, "nothing-*"); err != nil || n != 0 {
		t.Fatalf("Reset of a pattern matching nothing = %d, %v", n, err)
	}
	if n, err := Reset(ctx, a, name); err != nil || n != 1 {
		t.Fatalf("Reset = %d, %v; want 1", n, err)
	}
	eventually(t, "Sentinel A rediscovers after RESET", func() string {
		reps, err := Replicas(ctx, a, name)
		peers, err2 := Sentinels(ctx, a, name)
		if err != nil || err2 != nil {
			return fmt.Sprint(err, err2)
		}
		if len(reps) != 1 || len(peers) != 1 {
			return fmt.Sprintf("%d replicas, %d Sentinels", len(reps), len(peers))
		}
		return ""
	})

	// Failover, watched through the event subscription.
	ps := Subscribe(ctx, plainA)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the PSUBSCRIBE confirmation
		t.Fatal(err)
	}
	if err := Failover(ctx, a, name); err != nil {
		t.Fatalf("Failover: %v", err)
	}
	if err := Failover(ctx, a, name); !IsFailoverInProgress(err) {
		t.Fatalf("a second Failover at once: %v; want INPROG", err)
	}
	timeout := time.After(15 * time.Second)
	for switched := false; !switched; {
		select {
		case msg := <-ps.Channel():
			if msg.Channel == "+switch-master" {
				want := fmt.Sprintf("%s %s %d %s %d", name, master.host, master.port, replica.host, replica.port)
				if msg.Payload != want {
					t.Fatalf("+switch-master %q, want %q", msg.Payload, want)
				}
				switched = true
			}
		case <-timeout:
			t.Fatal("no +switch-master within 15 s")
		}
	}
	if got, err := GetMasterAddrByName(ctx, a, name); err != nil || got != replica.addr {
		t.Fatalf("after the failover GetMasterAddrByName = %q, %v; want %s", got, err, replica.addr)
	}

	// Unregister forgets the shard; twice is fine.
	for i := 0; i < 2; i++ {
		if err := Unregister(ctx, a, name); err != nil {
			t.Fatalf("Unregister #%d: %v", i+1, err)
		}
	}
	if _, err := GetMaster(ctx, a, name); !IsNoSuchMaster(err) {
		t.Fatalf("GetMaster after Unregister: %v; want no such master", err)
	}
}

// A shard without a replica cannot fail over: SENTINEL FAILOVER answers
// NOGOODSLAVE, which IsNoGoodReplica recognises.
func TestFailoverWithoutReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	master := start(t, false, "")
	s := start(t, true, "")
	if err := Register(ctx, redisClient(t, s.addr, sentinelPassword), "solo-0", master.addr, Settings{Quorum: 1, AuthPass: redisPassword,
		DownAfterMs: 5000, FailoverTimeoutMs: 10000, ParallelSyncs: 1}); err != nil {
		t.Fatal(err)
	}
	err := Failover(ctx, sentinelClient(t, s.addr), "solo-0")
	if !IsNoGoodReplica(err) || IsFailoverInProgress(err) {
		t.Fatalf("Failover without a replica: %v; want NOGOODSLAVE", err)
	}
	if err := Failover(ctx, sentinelClient(t, s.addr), "unknown-0"); !IsNoSuchMaster(err) {
		t.Fatalf("Failover of an unknown name: %v; want no such master", err)
	}
}

func TestHelloString(t *testing.T) {
	t.Parallel()
	h := Hello{From: Peer{Host: "127.0.0.1", Port: "26379", ID: "abc"}, CurrentEpoch: 7, Name: "orders-0", MasterAddr: "127.0.0.1:6380", ConfigEpoch: 7}
	if got, want := h.String(), "127.0.0.1,26379,abc,7,orders-0,127.0.0.1,6380,7"; got != want {
		t.Fatalf("hello %q, want %q", got, want)
	}
}

// debugParam reads one parameter of SENTINEL DEBUG's list (name, value
// pairs; names in upper case).
func debugParam(t *testing.T, ctx context.Context, sc Conn, name string) string {
	t.Helper()
	cmd := redis.NewSliceCmd(ctx, "sentinel", "debug")
	if err := sc.Process(ctx, cmd); err != nil {
		t.Fatalf("SENTINEL DEBUG: %v", err)
	}
	v := cmd.Val()
	for i := 0; i+1 < len(v); i += 2 {
		if strings.EqualFold(fmt.Sprint(v[i]), name) {
			return fmt.Sprint(v[i+1])
		}
	}
	t.Fatalf("SENTINEL DEBUG has no %s: %v", name, v)
	return ""
}

// TestRegisterRidesOutATimeout stops a real Sentinel (SIGSTOP) for longer
// than a client's read timeout while Register runs: the first try times
// out and a later one registers the shard; an error that is not a timeout
// is returned at once.
func TestRegisterRidesOutATimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	master := start(t, false, "")
	s := start(t, true, "")
	opts := options(s.addr, sentinelPassword)
	opts.ReadTimeout = 500 * time.Millisecond
	conn := redis.NewClient(opts)
	t.Cleanup(func() { conn.Close() })
	info, err := redisclient.GetInfo(ctx, conn, "server")
	if err != nil {
		t.Fatal(err)
	}
	pid := int(info.Int("process_id"))
	p, err := os.FindProcess(pid)
	if pid == 0 || err != nil {
		t.Fatalf("the Sentinel's pid from INFO server: %d, %v", pid, err)
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := make(chan struct{})
	go func() {
		defer close(resumed)
		time.Sleep(700 * time.Millisecond)
		_ = p.Signal(syscall.SIGCONT)
	}()
	t.Cleanup(func() { <-resumed })
	t0 := time.Now()
	if err := Register(ctx, conn, "orders-0", master.addr, settings); err != nil {
		t.Fatalf("Register while the Sentinel was stopped for 700 ms (read timeout 500 ms): %v", err)
	}
	if took := time.Since(t0); took < 500*time.Millisecond {
		t.Fatalf("Register took %v: the Sentinel was stopped, so the first try must have timed out", took)
	}
	m, err := GetMaster(ctx, conn, "orders-0")
	if err != nil || m.Addr != master.addr || m.Quorum != settings.Quorum {
		t.Fatalf("after Register: %+v, %v; want %s with quorum %d", m, err, master.addr, settings.Quorum)
	}

	// Not a timeout (a wrong password): one try.
	bad := redis.NewClient(options(s.addr, "wrong password"))
	t.Cleanup(func() { bad.Close() })
	if err := Register(ctx, bad, "orders-1", master.addr, settings); err == nil || strings.Contains(err.Error(), "tries") {
		t.Fatalf("Register with a wrong password: %v; want the error of one try", err)
	}

	// Stopped for good: every try times out and the error says so.
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	<-resumed
	defer p.Signal(syscall.SIGCONT)
	if err := Unregister(ctx, conn, "orders-0"); err == nil || !strings.Contains(err.Error(), "3 tries, each timed out") {
		t.Fatalf("Unregister from a stopped Sentinel: %v; want a timeout after 3 tries", err)
	}
}
