package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// forcedScaleOut is a policy whose replica decision is always "add one":
// every replica has more than one client (the manager's and the
// Sentinels' connections). Only a guard holds it back.
func forcedScaleOut() api.AutoscalePolicy {
	return api.AutoscalePolicy{
		Replicas:           &api.AutoscaleReplicas{Min: 1, Max: 2, Metric: api.MetricClients, Target: 1},
		ScaleOutAfterMs:    i64p(0),
		ScaleOutCooldownMs: i64p(0),
		FailoverWindowMs:   i64p(0),
	}
}

// checkHeld checks that a hold names its guard, says why and carries the
// round's readings.
func checkHeld(t *testing.T, ev api.Event, guard string) {
	t.Helper()
	msg, _ := ev.Details["guardMessage"].(string)
	r, _ := ev.Details["readings"].(map[string]any)
	shards, _ := r["shards"].([]any)
	if ev.Details["guard"] != guard || msg == "" || len(shards) == 0 || r["at"] == nil {
		t.Errorf("hold %q: guard %v, message %q, readings %v; want guard %s with a message and the readings", ev.Message, ev.Details["guard"], msg, r, guard)
	}
	t.Logf("held: %s", ev.Message)
}

// fill writes n keys of size bytes to c.
func fill(t *testing.T, c *redis.Client, prefix string, n, size int) {
	t.Helper()
	ctx := context.Background()
	val := strings.Repeat("x", size)
	for i := 0; i < n; i += 500 {
		if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j := i; j < min(i+500, n); j++ {
				p.Set(ctx, fmt.Sprintf("%s:%d", prefix, j), val, 0)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// slowFork makes the next fork's dump of c (BGSAVE, AOF rewrite with its
// RDB preamble, a full sync's dump) last about d: rdb-key-save-delay
// spread over the keys c has.
func slowFork(t *testing.T, c *redis.Client, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	keys, err := c.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "rdb-key-save-delay", strconv.FormatInt(d.Microseconds()/max(keys, 1), 10)).Err(); err != nil {
		t.Fatal(err)
	}
}

func infoOf(t *testing.T, c *redis.Client, section string) string {
	t.Helper()
	s, err := c.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// scaledAfter waits for the scale-out the guard held, and its job.
func scaledAfter(t *testing.T, m *testenv.Manager, name string, since time.Time, timeout time.Duration) api.Event {
	t.Helper()
	ev := waitDecisionAfter(t, m, name, "scale-out", "scaled", "", since, timeout)
	job, _ := ev.Details["job"].(string)
	if j := m.WaitJob(context.Background(), job); j.State != api.StateSucceeded {
		t.Fatalf("autoscale job %s: %s %s", job, j.State, j.Error)
	}
	return ev
}

func masterClient(t *testing.T, cl api.Cluster, creds api.Credentials) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Master.Address, Password: creds.Password, Protocol: 2})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAutoscaleHeldByAOFRewrite: an AOF rewrite that lasts about 8 s
// holds a wanted scale-out (recorded as aof-rewrite with the readings);
// the replica is added once the rewrite is done.
func TestAutoscaleHeldByAOFRewrite(t *testing.T) {
	t.Parallel()
	start := time.Now()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "aof", Replicas: intp(1)})
	creds, _ := m.Client.Credentials(ctx, "aof")
	master := masterClient(t, cl, creds)
	fill(t, master, "k", 2000, 100)
	slowFork(t, master, 8*time.Second)
	at := time.Now()
	if err := master.BgRewriteAOF(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitInfo(t, master, "persistence", func(s string) bool { return infoInt(s, "aof_rewrite_in_progress") == 1 })
	master.ConfigSet(ctx, "rdb-key-save-delay", "0") // the child has its own copy
	if _, err := m.Client.PutAutoscaling(ctx, "aof", forcedScaleOut()); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, waitDecisionAfter(t, m, "aof", "scale-out", "held", "aof-rewrite", at, 20*time.Second), "aof-rewrite")
	if infoInt(infoOf(t, master, "persistence"), "aof_rewrite_in_progress") != 1 {
		t.Fatal("the rewrite ended before the check: the hold proves nothing")
	}
	if c, _ := m.Client.GetCluster(ctx, "aof"); c.Spec.Replicas != 1 {
		t.Fatalf("replicas changed to %d during the AOF rewrite", c.Spec.Replicas)
	}
	ev := scaledAfter(t, m, "aof", at, 40*time.Second)
	if d := ev.At.Sub(at); d < 7*time.Second {
		t.Errorf("scaled %s after an AOF rewrite of about 8 s started", d)
	}
	t.Logf("MEASURE TestAutoscaleHeldByAOFRewrite: scaled %s after the rewrite started; test %s", ev.At.Sub(at).Round(100*time.Millisecond), time.Since(start).Round(time.Second))
}

// TestAutoscaleHeldByFullSync: a replica's full sync (its master's dump
// slowed to about 8 s) holds a wanted scale-out, recorded as full-sync
// with the readings; the replica is added once the sync is done.
func TestAutoscaleHeldByFullSync(t *testing.T) {
	t.Parallel()
	start := time.Now()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "fs", Replicas: intp(1)})
	creds, _ := m.Client.Credentials(ctx, "fs")
	master := masterClient(t, cl, creds)
	replica := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Replicas[0].Address, Password: creds.Password, Protocol: 2})
	defer replica.Close()
	fill(t, master, "k", 2000, 100)
	fullBefore := infoInt(infoOf(t, master, "stats"), "sync_full")
	slowFork(t, master, 8*time.Second)
	// A replica that was master for a moment has a history its master
	// does not know: it must sync in full.
	host, port, _ := strings.Cut(cl.Status.Shards[0].Master.Address, ":")
	at := time.Now()
	if err := replica.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := replica.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatal(err)
	}
	waitInfo(t, master, "persistence", func(s string) bool { return infoInt(s, "rdb_bgsave_in_progress") == 1 })
	master.ConfigSet(ctx, "rdb-key-save-delay", "0")
	if full := infoInt(infoOf(t, master, "stats"), "sync_full"); full != fullBefore+1 {
		t.Fatalf("sync_full %d, want %d: no full sync started", full, fullBefore+1)
	}
	if _, err := m.Client.PutAutoscaling(ctx, "fs", forcedScaleOut()); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, waitDecisionAfter(t, m, "fs", "scale-out", "held", "full-sync", at, 20*time.Second), "full-sync")
	if c, _ := m.Client.GetCluster(ctx, "fs"); c.Spec.Replicas != 1 {
		t.Fatalf("replicas changed to %d during the full sync", c.Spec.Replicas)
	}
	ev := scaledAfter(t, m, "fs", at, 40*time.Second)
	if d := ev.At.Sub(at); d < 7*time.Second {
		t.Errorf("scaled %s after a full sync of about 8 s started", d)
	}
	t.Logf("MEASURE TestAutoscaleHeldByFullSync: scaled %s after the sync started; test %s", ev.At.Sub(at).Round(100*time.Millisecond), time.Since(start).Round(time.Second))
}

// TestAutoscaleRaisesBacklog: a master with a 16 KiB replication backlog
// and ~400 KB/s of writes: a new replica's sync would outrun the backlog
// and start over. The scale-out is held (repl-backlog, with the readings)
// while a config job raises repl-backlog-size; then the replica is added
// and syncs in full exactly once.
func TestAutoscaleRaisesBacklog(t *testing.T) {
	t.Parallel()
	start := time.Now()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "bl", Replicas: intp(1), Config: map[string]string{"repl-backlog-size": "16kb"}})
	creds, _ := m.Client.Credentials(ctx, "bl")
	master := masterClient(t, cl, creds)
	if got, _ := master.ConfigGet(ctx, "repl-backlog-size").Result(); got["repl-backlog-size"] != "16384" {
		t.Fatalf("repl-backlog-size %v, want 16384", got)
	}
	// ~400 KB/s: a 4 KB value every 10 ms.
	wctx, stopWrites := context.WithCancel(ctx)
	defer stopWrites()
	writes := make(chan error, 1)
	go func() {
		val := strings.Repeat("w", 4096)
		var err error
		for i := 0; wctx.Err() == nil; i++ {
			if e := master.Set(wctx, fmt.Sprintf("w:%d", i%5000), val, 0).Err(); e != nil && wctx.Err() == nil && err == nil {
				err = e
			}
			time.Sleep(10 * time.Millisecond)
		}
		writes <- err
	}()
	time.Sleep(3 * time.Second) // two observe rounds: a write rate
	fullBefore := infoInt(infoOf(t, master, "stats"), "sync_full")
	at := time.Now()
	if _, err := m.Client.PutAutoscaling(ctx, "bl", forcedScaleOut()); err != nil {
		t.Fatal(err)
	}
	held := waitDecisionAfter(t, m, "bl", "scale-out", "held", "repl-backlog", at, 20*time.Second)
	checkHeld(t, held, "repl-backlog")
	raise, _ := held.Details["job"].(string)
	if raise == "" || !strings.Contains(held.Message, "raising repl-backlog-size to") {
		t.Fatalf("the backlog hold started no config job: %s", held.Message)
	}
	if j := m.WaitJob(ctx, raise); j.State != api.StateSucceeded {
		t.Fatalf("backlog job %s: %s %s", raise, j.State, j.Error)
	}
	c, _ := m.Client.GetCluster(ctx, "bl")
	want, err := spec.ParseSize(c.Spec.Config["repl-backlog-size"])
	if err != nil || want <= 16384 {
		t.Fatalf("spec repl-backlog-size %q after the raise", c.Spec.Config["repl-backlog-size"])
	}
	ev := scaledAfter(t, m, "bl", at, 40*time.Second)
	if !ev.At.After(held.At) {
		t.Errorf("the replica was added (%s) before the backlog was raised (%s)", ev.At, held.At)
	}
	c = m.WaitPhase(ctx, "bl", api.PhaseReady, 30*time.Second)
	if len(c.Status.Shards[0].Replicas) != 2 {
		t.Fatalf("%d replicas after the scale-out", len(c.Status.Shards[0].Replicas))
	}
	got, _ := master.ConfigGet(ctx, "repl-backlog-size").Result()
	if n, _ := strconv.ParseInt(got["repl-backlog-size"], 10, 64); n != want {
		t.Errorf("the master's repl-backlog-size is %v, want %d", got, want)
	}
	// The new replica synced once; with the writes going on, a sync that
	// outran the backlog would start over: wait and count again.
	time.Sleep(5 * time.Second)
	stopWrites()
	if err := <-writes; err != nil {
		t.Errorf("writes failed during the autoscale actions: %v", err)
	}
	full := infoInt(infoOf(t, master, "stats"), "sync_full")
	if full != fullBefore+1 {
		t.Errorf("sync_full %d → %d across the scale-out, want exactly one full sync", fullBefore, full)
	}
	t.Logf("MEASURE TestAutoscaleRaisesBacklog: repl-backlog-size 16384 → %d; full syncs %d; test %s", want, full-fullBefore, time.Since(start).Round(time.Second))
}

// TestAutoscaleCPUSignal: the cpu metric reads a replica's CPU from INFO
// used_cpu_* deltas: idle it stays below the target; a redis-benchmark
// read load against the replica raises it past the target and a replica
// is added, the event carrying the CPU reading.
func TestAutoscaleCPUSignal(t *testing.T) {
	t.Parallel()
	start := time.Now()
	bench, err := exec.LookPath("redis-benchmark")
	if err != nil {
		t.Skip("redis-benchmark (redis-tools) not installed")
	}
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "cpu", Replicas: intp(1)})
	creds, _ := m.Client.Credentials(ctx, "cpu")
	// The target is low enough that the loaded replica passes it on a
	// busy 2-core host too, and far above an idle replica's ~0.1 %: with
	// ~55 runnable processes on 2 cores, a process gets ~4 % of a core,
	// and the loaded replica read 2.4–4.8 % (38 % on a quiet host).
	const target = 2.0
	p := api.AutoscalePolicy{
		Replicas:        &api.AutoscaleReplicas{Min: 1, Max: 2, Metric: api.MetricCPU, Target: target},
		ScaleOutAfterMs: i64p(2000), FailoverWindowMs: i64p(0),
	}
	if _, err := m.Client.PutAutoscaling(ctx, "cpu", p); err != nil {
		t.Fatal(err)
	}
	// Idle: readings below the target, no decision.
	idle := waitReadings(t, m, "cpu", 3, 20*time.Second)
	if idle.Signal >= target {
		t.Fatalf("idle replica CPU %g %%, not below the target %g", idle.Signal, target)
	}
	if evs := autoscaleEvents(t, m, "cpu"); len(evs) != 0 {
		t.Fatalf("idle, the engine decided: %s", evs[0].Message)
	}
	host, port, _ := strings.Cut(cl.Status.Shards[0].Replicas[0].Address, ":")
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	loadAt := time.Now()
	load := exec.CommandContext(lctx, bench, "-h", host, "-p", port, "-a", creds.Password, "-t", "get", "-c", "20", "-n", "100000000", "-q")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	// The CPU readings while the load runs, for the log (and the reason
	// when no replica comes).
	var (
		mu   sync.Mutex
		seen []string
	)
	go func() {
		for lctx.Err() == nil {
			if as, err := m.Client.GetAutoscaling(ctx, "cpu"); err == nil && as.State.Readings != nil {
				mu.Lock()
				if len(seen) < 60 {
					seen = append(seen, fmt.Sprintf("%s %g", as.State.Readings.At.Format("05.0"), as.State.Readings.Signal))
				}
				mu.Unlock()
			}
			time.Sleep(2 * time.Second)
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		t.Logf("cpu readings under load (s.f %%): %v", seen)
	}()
	ev := scaledAfter(t, m, "cpu", loadAt, 60*time.Second)
	stop()
	_ = load.Wait()
	r, _ := ev.Details["readings"].(map[string]any)
	signal, _ := r["signal"].(float64)
	if r["metric"] != api.MetricCPU || signal <= target {
		t.Errorf("scale-out readings %v: want metric cpu above %g", r, target)
	}
	t.Logf("MEASURE TestAutoscaleCPUSignal: idle %g %%, under load %g %% (target %g); scaled %s after the load; test %s", idle.Signal, signal, target,
		ev.At.Sub(loadAt).Round(100*time.Millisecond), time.Since(start).Round(time.Second))
}

// waitReadings waits for n rounds of readings after now and returns the
// last.
func waitReadings(t *testing.T, m *testenv.Manager, name string, n int, timeout time.Duration) api.AutoscaleReadings {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last time.Time
	var r api.AutoscaleReadings
	for seen := 0; seen < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d rounds of readings not within %s", n, timeout)
		}
		as, err := m.Client.GetAutoscaling(context.Background(), name)
		if err == nil && as.State.Readings != nil && as.State.Readings.At.After(last) {
			if !last.IsZero() {
				seen++
			}
			last, r = as.State.Readings.At, *as.State.Readings
		}
		time.Sleep(200 * time.Millisecond)
	}
	return r
}

// TestAutoscaleClientsSignal: the clients metric: 40 idle connections to
// the replica put it past a target of 20 clients per replica and a
// replica is added; before them the engine decided nothing.
func TestAutoscaleClientsSignal(t *testing.T) {
	t.Parallel()
	start := time.Now()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "cli", Replicas: intp(1)})
	const target = 20.0
	p := api.AutoscalePolicy{
		Replicas:        &api.AutoscaleReplicas{Min: 1, Max: 2, Metric: api.MetricClients, Target: target},
		ScaleOutAfterMs: i64p(2000), FailoverWindowMs: i64p(0),
	}
	if _, err := m.Client.PutAutoscaling(ctx, "cli", p); err != nil {
		t.Fatal(err)
	}
	idle := waitReadings(t, m, "cli", 2, 20*time.Second)
	if idle.Signal >= target {
		t.Fatalf("baseline clients %g, not below the target %g", idle.Signal, target)
	}
	if evs := autoscaleEvents(t, m, "cli"); len(evs) != 0 {
		t.Fatalf("at the baseline, the engine decided: %s", evs[0].Message)
	}
	connAt := time.Now()
	for i := 0; i < 40; i++ {
		c, err := net.Dial("tcp", cl.Status.Shards[0].Replicas[0].Address)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	ev := scaledAfter(t, m, "cli", connAt, 40*time.Second)
	r, _ := ev.Details["readings"].(map[string]any)
	signal, _ := r["signal"].(float64)
	if r["metric"] != api.MetricClients || signal < 40 {
		t.Errorf("scale-out readings %v: want clients at least 40", r)
	}
	t.Logf("MEASURE TestAutoscaleClientsSignal: baseline %g clients, then %g (target %g); scaled %s after the connections; test %s", idle.Signal, signal, target,
		ev.At.Sub(connAt).Round(100*time.Millisecond), time.Since(start).Round(time.Second))
}

// TestAutoscaleLowersMemory: with lowPercent set, a maxmemory of 64mb
// holding ~7 MB is lowered step by step (each after the stabilisation
// and the cooldown), never below used_memory plus the headroom, without
// an eviction, and stops where one more step would pass lowPercent's
// hysteresis; it is never raised again.
func TestAutoscaleLowersMemory(t *testing.T) {
	t.Parallel()
	start := time.Now()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "low", Replicas: intp(1), Maxmemory: "64mb", MaxmemoryPolicy: "allkeys-lru"})
	creds, _ := m.Client.Credentials(ctx, "low")
	master := masterClient(t, cl, creds)
	fill(t, master, "k", 5000, 1000)
	p := api.AutoscalePolicy{
		Memory: &api.AutoscaleMemory{Max: "64mb", Min: "8mb", HighPercent: f64p(80), LowPercent: f64p(20),
			StepPercent: f64p(50), HeadroomPercent: f64p(50), ForMs: i64p(1000)},
		StabilizationMs: i64p(3000), ScaleInCooldownMs: i64p(3000), ScaleOutCooldownMs: i64p(3000), FailoverWindowMs: i64p(0),
	}
	if _, err := m.Client.PutAutoscaling(ctx, "low", p); err != nil {
		t.Fatal(err)
	}
	// Lowered until used_memory is at or above lowPercent of maxmemory:
	// then nothing more happens for several stabilisation windows.
	deadline := time.Now().Add(90 * time.Second)
	var downs []api.Event
	quietSince := time.Now()
	for time.Since(quietSince) < 12*time.Second {
		if time.Now().After(deadline) {
			t.Fatalf("maxmemory still changing after 90 s")
		}
		var n []api.Event
		for _, e := range autoscaleEvents(t, m, "low") {
			if e.Details["outcome"] == "scaled" {
				n = append(n, e)
			}
		}
		if len(n) != len(downs) {
			downs, quietSince = n, time.Now()
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(downs) < 2 {
		t.Fatalf("%d changes, want at least two lowering steps", len(downs))
	}
	for i, e := range downs {
		if e.Details["action"] != "memory-down" {
			t.Errorf("change %d is %s, want only memory-down: %s", i, e.Details["action"], e.Message)
		}
		to, _ := e.Details["to"].(float64)
		r, _ := e.Details["readings"].(map[string]any)
		shards, _ := r["shards"].([]any)
		s0, _ := shards[0].(map[string]any)
		used, _ := s0["usedMemoryBytes"].(float64)
		if to < used*1.5 {
			t.Errorf("lowered to %.0f, below used %.0f plus 50 %% headroom", to, used)
		}
		if i > 0 {
			if gap := e.At.Sub(downs[i-1].At); gap < 3*time.Second {
				t.Errorf("lowering steps %s apart, within the 3 s cooldown", gap)
			}
		}
		t.Logf("%s", e.Message)
	}
	job, _ := downs[len(downs)-1].Details["job"].(string)
	m.WaitJob(ctx, job)
	got, _ := master.ConfigGet(ctx, "maxmemory").Result()
	maxmem, _ := strconv.ParseInt(got["maxmemory"], 10, 64)
	mem := infoOf(t, master, "memory")
	used := infoInt(mem, "used_memory")
	if maxmem >= 64<<20 || maxmem < 8<<20 || maxmem < used*3/2 {
		t.Errorf("maxmemory %d after lowering (used %d): want below 64mb, at least 8mb and used + 50 %%", maxmem, used)
	}
	if pct := float64(used) / float64(maxmem) * 100; pct < 20 && float64(maxmem)/1.5 >= max(float64(used)*1.5, 8<<20)*1.1 {
		t.Errorf("stopped at %d (%.0f %% used) though another step fits", maxmem, pct)
	}
	if ev := infoInt(infoOf(t, master, "stats"), "evicted_keys"); ev != 0 {
		t.Errorf("evicted_keys %d after lowering, want 0", ev)
	}
	if n, _ := master.DBSize(ctx).Result(); n != 5000 {
		t.Errorf("%d keys after lowering, want 5000", n)
	}
	t.Logf("MEASURE TestAutoscaleLowersMemory: 64mb → %d bytes in %d steps (used %d); evictions 0; test %s", maxmem, len(downs), used, time.Since(start).Round(time.Second))
}

// TestAutoscaleFailingOver: with the signal above the target, a shard
// failing over holds the scale-out (failing-over: its master is stopped
// and the Sentinels, which may not promote the replica yet, still name
// it); once the failover is done, the failover window holds it
// (failover-window); after the window, the replica is added.
func TestAutoscaleFailingOver(t *testing.T) {
	t.Parallel()
	start := time.Now()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "fo", Replicas: intp(1), Sentinel: &api.SentinelRequest{DownAfterMs: intp(2000)}})
	creds, _ := m.Client.Credentials(ctx, "fo")
	replica := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Replicas[0].Address, Password: creds.Password, Protocol: 2})
	defer replica.Close()
	// The Sentinels may not promote the replica while its priority is 0:
	// the shard stays failing over as long as the master is stopped.
	if err := replica.ConfigSet(ctx, "replica-priority", "0").Err(); err != nil {
		t.Fatal(err)
	}
	old := cl.Status.Shards[0].Master
	if err := syscall.Kill(old.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(old.Pid, syscall.SIGCONT) })
	stopped := time.Now()
	waitAPIState(t, "the master seen down", 20*time.Second, func() bool {
		c, err := m.Client.GetCluster(ctx, "fo")
		return err == nil && len(c.Status.Shards) == 1 && !c.Status.Shards[0].Master.Up
	})
	const window = 15 * time.Second
	p := forcedScaleOut()
	p.FailoverWindowMs = i64p(window.Milliseconds())
	if _, err := m.Client.PutAutoscaling(ctx, "fo", p); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, waitDecisionAfter(t, m, "fo", "scale-out", "held", "failing-over", stopped, 20*time.Second), "failing-over")
	if c, _ := m.Client.GetCluster(ctx, "fo"); c.Spec.Replicas != 1 {
		t.Fatalf("replicas changed to %d while failing over", c.Spec.Replicas)
	}
	// Let the replica be promoted, and force the failover now (the
	// Sentinels would retry on their own only after twice the failover
	// timeout).
	if err := replica.ConfigSet(ctx, "replica-priority", "100").Err(); err != nil {
		t.Fatal(err)
	}
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: cl.Connection.Sentinels[0], Password: creds.SentinelPassword, Protocol: 2})
	defer sentinel.Close()
	waitAPIState(t, "a Sentinel failover started", 30*time.Second, func() bool {
		err := sentinel.Failover(ctx, cl.Connection.MasterNames[0]).Err()
		return err == nil || strings.Contains(fmt.Sprint(err), "INPROG")
	})
	var promoted api.Cluster
	waitAPIState(t, "the replica promoted", 40*time.Second, func() bool {
		c, err := m.Client.GetCluster(ctx, "fo")
		promoted = c
		return err == nil && len(c.Status.Shards) == 1 && c.Status.Shards[0].Master.Name != old.Name && c.Status.Shards[0].Master.Up
	})
	_ = syscall.Kill(old.Pid, syscall.SIGCONT)
	win := waitDecisionAfter(t, m, "fo", "scale-out", "held", "failover-window", stopped, 30*time.Second)
	checkHeld(t, win, "failover-window")
	ev := scaledAfter(t, m, "fo", stopped, window+60*time.Second)
	// The window runs from the newest failover before the scale (the one
	// the guard read).
	fos, err := m.Client.ClusterEvents(ctx, "fo")
	if err != nil {
		t.Fatal(err)
	}
	var failoverAt time.Time
	for _, e := range fos {
		if e.Type == "failover" {
			t.Logf("failover event %s: %s", e.At.Format(time.RFC3339Nano), e.Message)
			if !e.At.After(ev.At) && e.At.After(failoverAt) {
				failoverAt = e.At
			}
		}
	}
	if failoverAt.IsZero() {
		t.Fatal("no failover event before the scale-out")
	}
	if d := ev.At.Sub(failoverAt); d < window {
		t.Errorf("scaled %s after the failover, inside the %s window", d, window)
	}
	t.Logf("MEASURE TestAutoscaleFailingOver: new master %s; scaled %s after the failover (window %s); test %s", promoted.Status.Shards[0].Master.Name,
		ev.At.Sub(failoverAt).Round(100*time.Millisecond), window, time.Since(start).Round(time.Second))
}

// waitAPIState polls f every 200 ms until it returns true.
func waitAPIState(t *testing.T, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAutoscaleReplicaMemory: a manager whose local instances may use 150
// MB together (--local-memory-limit): with ~60 MB in the master, the
// instances already use more than that, so a new replica's sync (the
// master's used memory plus its copy-on-write) does not fit and the
// scale-out is held (replica-memory, with the readings). Once the data
// is gone (FLUSHALL, MEMORY PURGE), the replica is added.
func TestAutoscaleReplicaMemory(t *testing.T) {
	t.Parallel()
	start := time.Now()
	m := testenv.StartManager(t, testenv.ManagerOptions{Args: []string{"--local-memory-limit", "150mb"}})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "rm", Replicas: intp(1)})
	creds, _ := m.Client.Credentials(ctx, "rm")
	master := masterClient(t, cl, creds)
	replica := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Replicas[0].Address, Password: creds.Password, Protocol: 2})
	defer replica.Close()
	fill(t, master, "k", 60000, 1000)
	if err := master.Do(ctx, "WAIT", 1, 10000).Err(); err != nil {
		t.Fatal(err)
	}
	used := infoInt(infoOf(t, master, "memory"), "used_memory")
	var rss int64
	for _, pid := range testenv.InstancePids(m.DataDir) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				rss += kb << 10
			}
		}
	}
	if left := 150<<20 - rss; left >= used {
		t.Fatalf("the instances use %d of 150 MB, leaving %d for a sync of %d: the cap would not bind", rss, left, used)
	}
	at := time.Now()
	if _, err := m.Client.PutAutoscaling(ctx, "rm", forcedScaleOut()); err != nil {
		t.Fatal(err)
	}
	held := waitDecisionAfter(t, m, "rm", "scale-out", "held", "replica-memory", at, 30*time.Second)
	checkHeld(t, held, "replica-memory")
	if msg, _ := held.Details["guardMessage"].(string); !strings.Contains(msg, "--local-memory-limit") {
		t.Errorf("the hold does not name the cap: %s", msg)
	}
	time.Sleep(4 * time.Second) // two more rounds: still held
	if c, _ := m.Client.GetCluster(ctx, "rm"); c.Spec.Replicas != 1 {
		t.Fatalf("replicas changed to %d while the sync would not fit", c.Spec.Replicas)
	}
	clearAt := time.Now()
	for _, c := range []*redis.Client{master, replica} {
		if c == master {
			if err := c.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Do(ctx, "MEMORY", "PURGE").Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The replica frees its copy as the FLUSHALL reaches it.
	time.Sleep(time.Second)
	_ = replica.Do(ctx, "MEMORY", "PURGE").Err()
	ev := scaledAfter(t, m, "rm", clearAt, 40*time.Second)
	t.Logf("MEASURE TestAutoscaleReplicaMemory: held with %d used and %d resident of 150 MB; scaled %s after the data went; test %s", used, rss,
		ev.At.Sub(clearAt).Round(100*time.Millisecond), time.Since(start).Round(time.Second))
}
