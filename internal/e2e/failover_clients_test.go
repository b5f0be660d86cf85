package e2e

import (
	"context"
	"errors"
	"net"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// Failover as Sentinel-aware clients see it: go-redis (NewFailoverClient),
// redis-py (Sentinel(...).master_for, Debian's python3-redis) and ioredis
// ({sentinels, name}, from npm), each with its library's default settings,
// writing SET + WAIT 1 through the Sentinels while the master is killed.

// clientTarget is the longest a client may be cut off by one kill -9 of a
// master, and the longest until every Sentinel names the new master. The
// issue's targets (median under 0.5 s, worst under 1 s) are measured by
// bench/failover; a test asserts that the fast path did the failover (far
// below Sentinel's own down-after of 5 s) with room for a loaded machine:
// when a Sentinel's view of the replicas' offsets is stale, the manager
// waits up to its next INFO (about a second) rather than risk promoting a
// replica that lacks acknowledged writes — 1.27 s was seen once on a
// fresh-clone CI run.
const clientTarget = 2500 * time.Millisecond

// successorBound is clientTarget for a master killed right after it was
// promoted: the forced failover then meets Sentinels still settling the
// previous one, and once (of about ten runs under load) took 7.3 s. The
// bench's median of such kills is 0.3 s; the test bounds it below what
// Sentinel alone takes after a failover (2 × failover-timeout = 20 s).
const successorBound = 15 * time.Second

// sentinelClients returns the clients whose runtime is here, and says why
// the others are left out. A runtime that is here but broken (an npm
// install that fails) fails the test.
func sentinelClients(t *testing.T) ([]string, testenv.Runtimes) {
	t.Helper()
	clients := []string{testenv.GoRedis}
	var rt testenv.Runtimes
	if py, err := testenv.FindPython(); err != nil {
		t.Logf("SKIPPING the redis-py client: %v", err)
	} else {
		rt.Python = py
		clients = append(clients, testenv.RedisPy)
	}
	node, mods, err := testenv.EnsureIORedis()
	switch {
	case err == nil:
		rt.Node, rt.NodeModules = node, mods
		clients = append(clients, testenv.IORedis)
	case errors.Is(err, testenv.ErrNoRuntime):
		t.Logf("SKIPPING the ioredis client: %v", err)
	default:
		t.Fatalf("ioredis: %v", err)
	}
	return clients, rt
}

// startClientWriters starts one writer per client and waits until each has
// a write acknowledged.
func startClientWriters(t *testing.T, clients []string, rt testenv.Runtimes, cl api.Cluster, creds api.Credentials, name string) []*testenv.Writer {
	t.Helper()
	var ws []*testenv.Writer
	for _, c := range clients {
		w, err := testenv.StartWriter(c, testenv.WriterConfig{Sentinels: cl.Connection.Sentinels, MasterName: name,
			Password: creds.Password, SentinelPassword: creds.SentinelPassword, Prefix: "w:" + c}, rt)
		if err != nil {
			t.Fatalf("start %s writer: %v", c, err)
		}
		ws = append(ws, w)
		t.Cleanup(func() { w.Stop() })
	}
	for _, w := range ws {
		if _, err := w.FirstAckAfter(time.Now().Add(-time.Hour), 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

// everySentinelNames polls every Sentinel every 2 ms from since until all
// name the same master other than old in GET-MASTER-ADDR-BY-NAME (what
// go-redis and ioredis ask) and the first Sentinel in the clients' list
// names it in SENTINEL MASTER too (redis-py reads SENTINEL MASTERS from the
// first Sentinel that answers; the Sentinel that ran the failover may show
// the old address there until its failover ends, and the manager never
// makes the first Sentinel run it while another can). It returns the new
// master and when.
func everySentinelNames(t *testing.T, sentinels []string, sentinelPassword, name, old string, since time.Time, timeout time.Duration) (string, time.Duration) {
	t.Helper()
	ctx := context.Background()
	var scs []*redis.SentinelClient
	for _, a := range sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, Password: sentinelPassword, Protocol: 2, DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond})
		defer sc.Close()
		scs = append(scs, sc)
	}
	deadline := since.Add(timeout)
	var last []string
	for {
		last = last[:0]
		agree := true
		for i, sc := range scs {
			got := "?"
			if r, err := sc.GetMasterAddrByName(ctx, name).Result(); err == nil && len(r) == 2 {
				got = net.JoinHostPort(r[0], r[1])
				if i == 0 {
					if m, err := sc.Master(ctx, name).Result(); err != nil || net.JoinHostPort(m["ip"], m["port"]) != got {
						got += " (SENTINEL MASTER " + m["ip"] + ":" + m["port"] + ")"
					}
				}
			}
			last = append(last, got)
			agree = agree && got == last[0] && got != old && !strings.Contains(got, " ") && got != "?"
		}
		if agree {
			return last[0], time.Since(since)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Sentinels do not all name a new master %s after the kill: %v", timeout, last)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fastFailoverLog returns the manager's log lines about the fast path.
func fastFailoverLog(m *testenv.Manager) string {
	var out []string
	for _, l := range strings.Split(m.LogTail(100000), "\n") {
		if strings.Contains(l, "fast failover") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// pidOf returns the pid of the redis-server at a, from INFO server.
func pidOf(t *testing.T, a, password string) int {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: a, Password: password, Protocol: 2})
	defer rc.Close()
	info, err := rc.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatalf("INFO of %s: %v", a, err)
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			return pid
		}
	}
	t.Fatalf("no process_id in INFO of %s", a)
	return 0
}

func killPid(t *testing.T, pid int) time.Time {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("bad pid %d", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	return time.Now()
}

// checkAcksFromSentinel reads the master and its replicas from a Sentinel
// and checks every acknowledged write, with its value, on every one of
// them (replicas get up to 20 s to catch up). It returns how many writes it
// checked.
func checkAcksFromSentinel(t *testing.T, sentinels []string, creds api.Credentials, name string, replicas int, acks []testenv.Ack) int {
	t.Helper()
	ctx := context.Background()
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinels[0], Password: creds.SentinelPassword, Protocol: 2})
	defer sc.Close()
	m, err := sc.GetMasterAddrByName(ctx, name).Result()
	if err != nil {
		t.Fatalf("master from Sentinel: %v", err)
	}
	addrs := []string{net.JoinHostPort(m[0], m[1])}
	reps, err := sc.Replicas(ctx, name).Result()
	if err != nil {
		t.Fatalf("replicas from Sentinel: %v", err)
	}
	for _, r := range reps {
		if !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") {
			addrs = append(addrs, net.JoinHostPort(r["ip"], r["port"]))
		}
	}
	if len(addrs) != 1+replicas {
		t.Fatalf("Sentinel lists %v up, want a master and %d replicas", addrs, replicas)
	}
	for _, a := range addrs {
		rc := redis.NewClient(&redis.Options{Addr: a, Password: creds.Password, Protocol: 2})
		deadline := time.Now().Add(20 * time.Second)
		for {
			missing, wrong, err := testenv.MissingAcks(ctx, rc, acks)
			if err != nil {
				missing = len(acks) // the replica may still be loading: retried
			}
			if wrong != "" {
				rc.Close()
				t.Fatalf("%s: %s", a, wrong)
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				rc.Close()
				t.Fatalf("%s lacks %d of %d acknowledged writes", a, missing, len(acks))
			}
			time.Sleep(100 * time.Millisecond)
		}
		rc.Close()
	}
	return len(acks)
}

// TestKillMasterSentinelClients: kill -9 of the master under SET + WAIT 1
// writes of every client. Every Sentinel names the new master within the
// target, every client writes again within it, and every acknowledged
// write (before and after the fault) is on every instance Sentinel lists,
// with its value.
func TestKillMasterSentinelClients(t *testing.T) {
	t.Parallel()
	clients, rt := sentinelClients(t)
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "fc"}) // down-after 5000 ms
	creds, _ := m.Client.Credentials(ctx, "fc")
	ws := startClientWriters(t, clients, rt, cl, creds, "fc-0")
	time.Sleep(500 * time.Millisecond)
	before := map[string]int{}
	for _, w := range ws {
		before[w.Client] = len(w.Acks())
	}
	old := cl.Status.Shards[0].Master.Address
	killed := killPid(t, cl.Status.Shards[0].Master.Pid)
	newMaster, named := everySentinelNames(t, cl.Connection.Sentinels, creds.SentinelPassword, "fc-0", old, killed, 10*time.Second)
	t.Logf("every Sentinel names %s %d ms after the kill", newMaster, named.Milliseconds())
	if named > clientTarget {
		t.Errorf("every Sentinel named the new master after %s, target %s", named, clientTarget)
	}
	for _, w := range ws {
		d, err := w.FirstAckAfter(killed, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: writes back %d ms after the kill", w.Client, d.Milliseconds())
		if d > clientTarget {
			t.Errorf("%s was cut off %s, target %s", w.Client, d, clientTarget)
		}
	}
	time.Sleep(500 * time.Millisecond)
	var all []testenv.Ack
	for _, w := range ws {
		acks := w.Stop()
		after := 0
		for _, a := range acks {
			if a.Issued.After(killed) {
				after++
			}
		}
		// A floor: the check below must have something to check.
		if before[w.Client] < 20 || after < 5 {
			t.Errorf("%s: %d writes acknowledged before the kill, %d after: too few to check", w.Client, before[w.Client], after)
		}
		t.Logf("%s: %d acknowledged writes (%d before the kill, %d sent after it), %d failed attempts", w.Client, len(acks), before[w.Client], after, w.Errors())
		all = append(all, acks...)
	}
	m.WaitPhase(ctx, "fc", api.PhaseReady, 60*time.Second)
	n := checkAcksFromSentinel(t, cl.Connection.Sentinels, creds, "fc-0", 2, all)
	t.Logf("%d acknowledged writes checked with their values on the master and both replicas Sentinel lists: 0 lost", n)
	ev := fcEvent(t, m, "fc", "failover", killed, 15*time.Second)
	if ev.Details["clientsRedirectedMs"] == nil || ev.Details["everySentinelAt"] == nil || ev.Details["writeUnavailableMs"] == nil {
		t.Errorf("failover event without what clients see: %v", ev.Details)
	}
	t.Logf("failover event: %s", ev.Message)
	t.Logf("manager:\n%s", fastFailoverLog(m))
}

// TestKillMasterThenSuccessorSentinelClients: the master killed, then the
// replica promoted in its place as soon as a client wrote to it, then the
// next one: every client writes again within the target each time (the
// second and third failover are as fast as the first), nothing
// acknowledged is lost, and the shard is recorded as crash-looping.
func TestKillMasterThenSuccessorSentinelClients(t *testing.T) {
	t.Parallel()
	clients, rt := sentinelClients(t)
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "fs"})
	creds, _ := m.Client.Credentials(ctx, "fs")
	ws := startClientWriters(t, clients, rt, cl, creds, "fs-0")
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	master := cl.Status.Shards[0].Master.Address
	pid := cl.Status.Shards[0].Master.Pid
	var kills []time.Time
	for k := 0; k < 3; k++ {
		killed := killPid(t, pid)
		kills = append(kills, killed)
		// As soon as the successor serves: the first write any client had
		// acknowledged after the kill.
		served := false
		for deadline := time.Now().Add(10 * time.Second); !served; {
			for _, w := range ws {
				if _, err := w.FirstAckAfter(killed, 0); err == nil {
					served = true
				}
			}
			if !served && time.Now().After(deadline) {
				t.Fatalf("kill %d: no client wrote within 10 s", k+1)
			}
			time.Sleep(time.Millisecond)
		}
		next, named := everySentinelNames(t, cl.Connection.Sentinels, creds.SentinelPassword, "fs-0", master, killed, 10*time.Second)
		t.Logf("kill %d of %s: every Sentinel names %s after %d ms", k+1, master, next, named.Milliseconds())
		if named > successorBound {
			t.Errorf("kill %d: every Sentinel named the new master after %s, bound %s", k+1, named, successorBound)
		}
		master, pid = next, pidOf(t, next, creds.Password)
		if k < 2 {
			// The next kill needs a replica holding every acknowledged
			// write: one acknowledged a write to this master (WAIT 1).
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for _, w := range ws {
		for k, killed := range kills {
			d, err := w.FirstAckAfter(killed, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			// A client that had not reconnected before the next kill is
			// judged by that one.
			if k+1 < len(kills) && killed.Add(d).After(kills[k+1]) {
				t.Logf("%s: kill %d: no write before the next kill (%d ms later)", w.Client, k+1, kills[k+1].Sub(killed).Milliseconds())
				continue
			}
			t.Logf("%s: kill %d: writes back after %d ms", w.Client, k+1, d.Milliseconds())
			if d > successorBound {
				t.Errorf("%s: kill %d: cut off %s, bound %s", w.Client, k+1, d, successorBound)
			}
		}
	}
	var all []testenv.Ack
	for _, w := range ws {
		acks := w.Stop()
		if len(acks) < 20 {
			t.Errorf("%s: only %d acknowledged writes", w.Client, len(acks))
		}
		all = append(all, acks...)
	}
	m.WaitPhase(ctx, "fs", api.PhaseReady, 90*time.Second)
	n := checkAcksFromSentinel(t, cl.Connection.Sentinels, creds, "fs-0", 2, all)
	t.Logf("%d acknowledged writes checked with their values on the master and both replicas Sentinel lists: 0 lost", n)
	ev := fcEvent(t, m, "fs", "crash-loop", start, 15*time.Second)
	if deaths, _ := ev.Details["deaths"].([]any); len(deaths) < 3 {
		t.Errorf("crash-loop event: %v", ev.Details)
	}
	t.Logf("crash-loop event: %s", ev.Message)
	log := fastFailoverLog(m)
	t.Logf("manager:\n%s", log)
	if c := strings.Count(log, "fast failover requested"); c < 3 {
		t.Errorf("fast failover forced %d times for 3 kills; declined %d times", c, strings.Count(log, "fast failover declined"))
	}
}

// fcEvent waits for an event of the type at or after since.
func fcEvent(t *testing.T, m *testenv.Manager, cluster, typ string, since time.Time, timeout time.Duration) api.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		evs, _ := m.Client.ClusterEvents(context.Background(), cluster)
		sort.Slice(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
		for _, e := range evs {
			if e.Type == typ && !e.At.Before(since) {
				return e
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %s event within %s", typ, timeout)
	return api.Event{}
}
