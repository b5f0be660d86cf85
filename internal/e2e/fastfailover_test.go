package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// The fast path (docs/recovery.md): when the master process dies, the
// manager asks Sentinel to fail over at once instead of waiting
// down-after-milliseconds, unless Sentinel would then promote a replica
// that is behind another.

// waitAllSentinelsName polls every Sentinel of the cluster on this host
// until all name a master other than old for the shard, and returns it and
// when that was first seen.
func waitAllSentinelsName(t *testing.T, sentinels []string, password, name, old string, timeout time.Duration) (string, time.Time) {
	t.Helper()
	ctx := context.Background()
	clients := make([]*redis.SentinelClient, len(sentinels))
	for i, s := range sentinels {
		clients[i] = redis.NewSentinelClient(&redis.Options{Addr: s, Password: password, Protocol: 2,
			DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond})
		defer clients[i].Close()
	}
	deadline := time.Now().Add(timeout)
	last := map[string]string{}
	for time.Now().Before(deadline) {
		agreed := ""
		for i, c := range clients {
			res, err := c.GetMasterAddrByName(ctx, name).Result()
			got := ""
			if err == nil && len(res) == 2 {
				got = net.JoinHostPort(res[0], res[1])
			}
			last[sentinels[i]] = got
			if got == "" || got == old || (agreed != "" && got != agreed) {
				agreed = ""
				break
			}
			agreed = got
		}
		if agreed != "" {
			return agreed, time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("after %s the Sentinels do not all name a new master of %s (old %s): %v", timeout, name, old, last)
	return "", time.Time{}
}

// failoverEventAfter waits for the failover event of a shard newer than
// since and returns it.
func failoverEventAfter(t *testing.T, m *testenv.Manager, cluster string, since time.Time, timeout time.Duration) api.Event {
	t.Helper()
	ev := waitEvent(t, m, cluster, "failover", since, timeout)
	t.Logf("failover event: %s %v", ev.Message, ev.Details)
	return ev
}

// TestFastFailover kills -9 the master of a shard with downAfterMs 5000
// under WAIT-1 writes, with the fast path on and off:
//
//   - on: every Sentinel names the new master within 2 s of the kill (well
//     under down-after-milliseconds: only a forced failover does that), and
//     the failover event records it as forced (fast, forcedAt);
//   - off: Sentinel's own path still heals, and takes at least
//     down-after-milliseconds (so the fast path really was off); the event
//     says it was not forced.
//
// Either way writes resume and no acknowledged write is lost.
func TestFastFailover(t *testing.T) {
	t.Parallel()
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprintf("fastFailover=%v", fast), func(t *testing.T) {
			t.Parallel()
			m := testenv.StartManager(t, testenv.ManagerOptions{})
			ctx := context.Background()
			name := "ffon"
			if !fast {
				name = "ffoff"
			}
			cl := createReady(t, m, api.CreateClusterRequest{Name: name, FastFailover: &fast,
				Sentinel: &api.SentinelRequest{DownAfterMs: intp(5000)}})
			if cl.Spec.FastFailover != fast || cl.Spec.Sentinel.DownAfterMs != 5000 {
				t.Fatalf("spec %+v", cl.Spec)
			}
			creds, _ := m.Client.Credentials(ctx, name)
			sentinels := hostSentinels(t, m, name, creds)
			w := startWriterWait(t, cl, creds, 0, "k", 1)
			time.Sleep(500 * time.Millisecond)
			old := *cl.Status.Shards[0].Master

			killedAt := time.Now()
			kill9(t, old.Pid)
			limit := 2 * time.Second
			if !fast {
				limit = 30 * time.Second
			}
			newMaster, namedAt := waitAllSentinelsName(t, sentinels, creds.SentinelPassword, name+"-0", old.Address, limit)
			took := namedAt.Sub(killedAt)
			t.Logf("fastFailover=%v: every Sentinel named %s %d ms after kill -9 of %s", fast, newMaster, took.Milliseconds(), old.Address)
			if !fast && took < 5*time.Second {
				t.Errorf("with fastFailover off the Sentinels named a new master %s after the kill, under down-after-milliseconds 5000: something forced it", took)
			}

			ev := failoverEventAfter(t, m, name, killedAt, 10*time.Second)
			if ev.Details["oldMaster"] != old.Address || ev.Details["newMaster"] != newMaster {
				t.Errorf("failover event names %v → %v, want %s → %s", ev.Details["oldMaster"], ev.Details["newMaster"], old.Address, newMaster)
			}
			if ev.Details["fast"] != fast {
				t.Errorf("failover event: fast = %v, want %v", ev.Details["fast"], fast)
			}
			if _, forced := ev.Details["forcedAt"]; forced != fast {
				t.Errorf("failover event: forcedAt present = %v, want %v", forced, fast)
			}
			log := m.LogTail(100000)
			if got := strings.Contains(log, "fast failover requested"); got != fast {
				t.Errorf("manager log says fast failover requested: %v, want %v", got, fast)
			}

			w.waitResumed(t, killedAt, 15*time.Second)
			cl = m.WaitPhase(ctx, name, api.PhaseReady, 30*time.Second)
			testenv.CheckStatus(t, cl, 1, 2, 3)
			time.Sleep(200 * time.Millisecond)
			acked, errs := w.Stop()
			t.Logf("%d writes acknowledged with WAIT 1, %d failed", len(acked), len(errs))
			checkNoLoss(t, m, name, creds, lossCheck{Shard: 0, Writes: acked, Min: 50, Fault: killedAt, MinAfter: 20, Replicas: 2})
		})
	}
}

// TestFastFailoverDeclines makes the replica Sentinel would promote fall
// behind the other one when the master dies, and checks that the fast path
// declines (forcing the failover then would promote the replica that lacks
// acknowledged writes) and that nothing acknowledged is lost.
//
// How, with real processes: replica A gets replica-priority 1 (the other,
// B, keeps 100), so Sentinel's choice is A whatever the offsets. A is
// stopped (SIGSTOP), 40 MB are written to the master and acknowledged by B
// (WAIT 1), and the master is killed -9: most of those bytes were still in
// the master's output buffer for A, so A, resumed right after the kill,
// stays behind B. The fast path must see that Sentinel would promote A and
// stay out. Once it has declined, A gets priority 100 again, so that
// Sentinel's own failover after down-after-milliseconds picks B, the
// replica with every acknowledged write. A fast path that forced the
// failover would have had A promoted and the 40 MB lost.
func TestFastFailoverDeclines(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	const name = "ffd"
	cl := createReady(t, m, api.CreateClusterRequest{Name: name,
		Sentinel: &api.SentinelRequest{DownAfterMs: intp(6000)}})
	creds, _ := m.Client.Credentials(ctx, name)
	sentinels := hostSentinels(t, m, name, creds)
	old := *cl.Status.Shards[0].Master
	a, b := cl.Status.Shards[0].Replicas[0], cl.Status.Shards[0].Replicas[1]

	ac := redis.NewClient(&redis.Options{Addr: a.Address, Password: creds.Password, Protocol: 2})
	defer ac.Close()
	if err := ac.ConfigSet(ctx, "replica-priority", "1").Err(); err != nil {
		t.Fatal(err)
	}
	waitSentinelsSeePriority(t, sentinels, creds.SentinelPassword, name+"-0", a.Address, "1")

	w := startWriterWait(t, cl, creds, 0, "k", 1)
	time.Sleep(500 * time.Millisecond)

	// A stops; 40 MB go to the master and B acknowledges them.
	if err := syscall.Kill(a.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped, stoppedAt := true, time.Now()
	defer func() {
		if stopped {
			_ = syscall.Kill(a.Pid, syscall.SIGCONT)
		}
	}()
	mc := redis.NewClient(&redis.Options{Addr: old.Address, Password: creds.Password, Protocol: 2, ReadTimeout: 10 * time.Second})
	defer mc.Close()
	bulk := make([]write, 640)
	val := make([]byte, 64<<10)
	_, err := mc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range bulk {
			for j := 0; j < len(val); j += 8 {
				x := rand.Uint64()
				for k := 0; k < 8; k++ {
					val[j+k] = 'a' + byte(x>>(8*k))%26
				}
			}
			bulk[i] = write{Key: fmt.Sprintf("bulk:%d", i), Val: string(val)}
			p.Set(ctx, bulk[i].Key, bulk[i].Val, 0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := mc.Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n < 1 {
		t.Fatalf("WAIT 1 for the bulk writes: %d %v", n, err)
	}
	ackedAt := time.Now()
	for i := range bulk {
		bulk[i].At = ackedAt
	}
	bc := redis.NewClient(&redis.Options{Addr: b.Address, Password: creds.Password, Protocol: 2})
	bInfo, _ := bc.Info(ctx, "replication").Result()
	bc.Close()

	killedAt := time.Now()
	kill9(t, old.Pid)
	time.Sleep(100 * time.Millisecond)
	if err := syscall.Kill(a.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	t.Logf("A %s stopped %d ms; master killed; B %s at offset %s", a.Address, time.Since(stoppedAt).Milliseconds(), b.Address, infoField(bInfo, "slave_repl_offset"))

	// The fast path declines.
	logPath := filepath.Join(m.DataDir, "manager.log")
	declined := ""
	for deadline := time.Now().Add(5500 * time.Millisecond); time.Now().Before(deadline) && declined == ""; time.Sleep(50 * time.Millisecond) {
		lb, _ := os.ReadFile(logPath)
		for _, l := range strings.Split(string(lb), "\n") {
			if strings.Contains(l, "shard="+name+"-0") && strings.Contains(l, "fast failover") && !strings.Contains(l, "level=DEBUG") {
				if strings.Contains(l, "fast failover requested") {
					t.Fatalf("the fast path forced a failover although Sentinel would promote %s, which is behind %s:\n%s", a.Address, b.Address, l)
				}
				if strings.Contains(l, "fast failover declined") {
					declined = l
				}
			}
		}
	}
	if declined == "" {
		t.Fatalf("no fast failover decline logged within 5.5 s of the kill")
	}
	t.Logf("declined %d ms after the kill: %s", time.Since(killedAt).Milliseconds(), declined)
	if !strings.Contains(declined, "no Sentinel would promote the most up-to-date replica") {
		t.Errorf("declined for another reason than the Sentinel's choice: %s", declined)
	}
	if time.Since(killedAt) > 5500*time.Millisecond {
		t.Fatalf("the decline came too late to reset the priority before Sentinel's own failover")
	}
	// Sentinel's own failover picks B now.
	if err := ac.ConfigSet(ctx, "replica-priority", "100").Err(); err != nil {
		t.Fatal(err)
	}
	newMaster, namedAt := waitAllSentinelsName(t, sentinels, creds.SentinelPassword, name+"-0", old.Address, 30*time.Second)
	t.Logf("every Sentinel named %s %d ms after the kill", newMaster, namedAt.Sub(killedAt).Milliseconds())
	if newMaster != b.Address {
		t.Errorf("Sentinel promoted %s, want %s (the replica with every acknowledged write)", newMaster, b.Address)
	}
	if namedAt.Sub(killedAt) < 6*time.Second {
		t.Errorf("new master named %s after the kill, under down-after-milliseconds: the failover was forced", namedAt.Sub(killedAt))
	}
	ev := failoverEventAfter(t, m, name, killedAt, 10*time.Second)
	if ev.Details["fast"] != false || ev.Details["forcedAt"] != nil {
		t.Errorf("failover event records a forced failover: %v", ev.Details)
	}

	w.waitResumed(t, namedAt, 15*time.Second)
	cl = m.WaitPhase(ctx, name, api.PhaseReady, 60*time.Second)
	testenv.CheckStatus(t, cl, 1, 2, 3)
	time.Sleep(200 * time.Millisecond)
	acked, errs := w.Stop()
	t.Logf("%d writes acknowledged with WAIT 1 (%d failed) besides the 40 MB", len(acked), len(errs))
	checkNoLoss(t, m, name, creds, lossCheck{Shard: 0, Writes: append(bulk, acked...), Min: len(bulk) + 50, Fault: killedAt, MinAfter: 20, Replicas: 2})
}

// waitSentinelsSeePriority waits until every Sentinel lists the replica
// with the priority.
func waitSentinelsSeePriority(t *testing.T, sentinels []string, password, name, replica, priority string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		seen := 0
		for _, s := range sentinels {
			c := redis.NewClient(&redis.Options{Addr: s, Password: password, Protocol: 2})
			reps, _ := c.Do(ctx, "sentinel", "replicas", name).Slice()
			c.Close()
			for _, r := range reps {
				p := pairs(r)
				if net.JoinHostPort(p["ip"], p["port"]) == replica && p["slave-priority"] == priority {
					seen++
				}
			}
		}
		if seen == len(sentinels) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("Sentinels do not see replica-priority %s on %s", priority, replica)
}
