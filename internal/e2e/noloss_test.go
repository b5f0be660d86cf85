package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// This file holds the one check every "no acknowledged write is lost"
// claim of the e2e tests goes through (checkNoLoss), and the writers that
// produce the acknowledged writes it checks.
//
// The check trusts nothing the manager says about itself: the instances it
// reads are the processes running on this host under the manager's data
// dir (found in /proc, their ports taken from their process titles and
// confirmed by INFO's process_id) and the shards' masters are the ones every
// Sentinel names (SENTINEL MASTERS on each Sentinel process's port). Every
// acknowledged write carries a value unique to it, and the value is
// compared on every instance.

// write is one acknowledged write: the key, its unique value, and when the
// acknowledgement arrived.
type write struct {
	Key, Val string
	At       time.Time
}

// uniqueValue returns a value no other write of the test run uses.
func uniqueValue(prefix string, seq int) string {
	return fmt.Sprintf("%s:%d:%016x", prefix, seq, rand.Uint64())
}

// writer writes keys to one shard through a Sentinel-aware client and
// remembers which writes were acknowledged, with their values and times.
type writer struct {
	client       *redis.Client
	prefix       string
	waitReplicas int
	pause        time.Duration // between writes

	mu     sync.Mutex
	acked  []write
	errors []string
	stop   chan struct{}
	done   chan struct{}
}

func startWriter(t *testing.T, cl api.Cluster, creds api.Credentials, shard int, prefix string) *writer {
	return startWriterWait(t, cl, creds, shard, prefix, 0)
}

// startWriterWait is startWriter with each write acknowledged only after
// WAIT confirms waitReplicas replicas have it.
func startWriterWait(t *testing.T, cl api.Cluster, creds api.Credentials, shard int, prefix string, waitReplicas int) *writer {
	return startWriterPaced(t, cl, creds, shard, prefix, waitReplicas, 2*time.Millisecond)
}

// startWriterPaced is startWriterWait with pause between writes.
func startWriterPaced(t *testing.T, cl api.Cluster, creds api.Credentials, shard int, prefix string, waitReplicas int, pause time.Duration) *writer {
	w := &writer{
		waitReplicas: waitReplicas,
		pause:        pause,
		client: redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: cl.Connection.MasterNames[shard], SentinelAddrs: cl.Connection.Sentinels,
			Password: creds.Password, SentinelPassword: creds.SentinelPassword, Protocol: 2,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1,
		}),
		prefix: prefix,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go func() {
		defer close(w.done)
		ctx := context.Background()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			k := fmt.Sprintf("%s:%d", prefix, i)
			v := uniqueValue(prefix, i)
			var err error
			if w.waitReplicas > 0 {
				// Acknowledged only once WAIT says a replica has it too.
				var cmds []redis.Cmder
				cmds, err = w.client.Pipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, k, v, 0)
					p.Do(ctx, "WAIT", w.waitReplicas, 1000)
					return nil
				})
				if err == nil {
					if n, _ := cmds[1].(*redis.Cmd).Int(); n < w.waitReplicas {
						err = fmt.Errorf("WAIT: %d replicas", n)
					}
				}
			} else {
				err = w.client.Set(ctx, k, v, 0).Err()
			}
			at := time.Now()
			w.mu.Lock()
			if err != nil {
				w.errors = append(w.errors, fmt.Sprintf("%s: %v", at.Format("15:04:05.000"), err))
			} else {
				w.acked = append(w.acked, write{Key: k, Val: v, At: at})
			}
			w.mu.Unlock()
			time.Sleep(w.pause)
		}
	}()
	t.Cleanup(func() { w.Stop(); w.client.Close() })
	return w
}

// Stop ends the writes and returns the acknowledged writes and the errors.
func (w *writer) Stop() ([]write, []string) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked, w.errors
}

// waitResumed waits until the writer has a write acknowledged after at:
// writes resumed after a fault. It fails the test after timeout.
func (w *writer) waitResumed(t *testing.T, at time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		n := len(w.acked)
		var last time.Time
		if n > 0 {
			last = w.acked[n-1].At
		}
		w.mu.Unlock()
		if last.After(at) {
			return last.Sub(at)
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	last := ""
	if n := len(w.errors); n > 0 {
		last = w.errors[n-1]
	}
	t.Fatalf("writer %s: no write acknowledged within %s after the fault at %s (%d acknowledged before; last error %q)",
		w.prefix, timeout, at.Format("15:04:05.000"), len(w.acked), last)
	return 0
}

// lossCheck is what checkNoLoss asserts for one shard.
type lossCheck struct {
	Shard    int           // shard index: the Sentinel master name is <cluster>-<Shard>
	Writes   []write       // every acknowledged write
	Min      int           // at least this many writes must have been acknowledged
	Fault    time.Time     // the last fault; zero when the check follows none
	MinAfter int           // at least this many acknowledged after Fault (default 1 when Fault is set)
	Replicas int           // the replicas the shard must have on this host (-1: do not check)
	Settle   time.Duration // how long the shard may take to settle (default 30 s)
}

// hostInstance is a Redis or Sentinel process found on this host.
type hostInstance struct {
	Pid      int
	Addr     string
	Sentinel bool
}

// hostInstances lists the live redis-server processes working under the
// manager's data dir, with the address each listens on (from its process
// title, which Redis sets to "redis-server HOST:PORT [sentinel]").
func hostInstances(t testing.TB, dataDir string) []hostInstance {
	t.Helper()
	var out []hostInstance
	for _, pid := range testenv.InstancePids(dataDir) {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if err != nil {
			continue // exited meanwhile
		}
		title := strings.Fields(strings.ReplaceAll(string(b), "\x00", " "))
		in := hostInstance{Pid: pid}
		for _, f := range title {
			if f == "[sentinel]" {
				in.Sentinel = true
			}
			if h, p, err := net.SplitHostPort(f); err == nil && h != "" && p != "" {
				if _, err := strconv.Atoi(p); err == nil {
					in.Addr = f
				}
			}
		}
		if in.Addr == "" {
			t.Fatalf("pid %d runs under %s with process title %q: no listen address in it", pid, dataDir, title)
		}
		out = append(out, in)
	}
	return out
}

// checkNoLoss asserts, for each check, that the shard's master as every
// Sentinel of the cluster names it and every replica of it running on this
// host hold every acknowledged write with its value, that enough writes
// were acknowledged, and that writes were acknowledged after the last
// fault. The instances come from /proc and Sentinel, not from the manager.
func checkNoLoss(t testing.TB, m *testenv.Manager, cluster string, creds api.Credentials, checks ...lossCheck) {
	t.Helper()
	ctx := context.Background()
	for _, ck := range checks {
		name := fmt.Sprintf("%s-%d", cluster, ck.Shard)
		// Wait until the shard has settled (a failover may still run after
		// the manager reports Ready): every Sentinel names the same master,
		// none sees it down or is failing it over, it is a master process
		// here, and its replicas here are linked.
		var master string
		var insts []string
		var problem string
		waited := time.Now()
		settle := ck.Settle
		if settle == 0 {
			settle = 30 * time.Second
		}
		for deadline := time.Now().Add(settle); ; time.Sleep(200 * time.Millisecond) {
			master, insts, problem = shardTopology(t, m, cluster, name, creds, ck.Replicas)
			if problem == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has not settled after %s: %s", name, settle, problem)
			}
		}
		if d := time.Since(waited); d > time.Second {
			t.Logf("%s settled after %.1f s", name, d.Seconds())
		}

		// Enough writes, and writes after the fault.
		if len(ck.Writes) < ck.Min {
			t.Fatalf("%s: only %d writes acknowledged, want at least %d", name, len(ck.Writes), ck.Min)
		}
		if !ck.Fault.IsZero() {
			after := 0
			for _, w := range ck.Writes {
				if w.At.After(ck.Fault) {
					after++
				}
			}
			if after < max(ck.MinAfter, 1) {
				t.Fatalf("%s: %d writes acknowledged after the fault at %s, want at least %d: writes did not resume",
					name, after, ck.Fault.Format("15:04:05.000"), max(ck.MinAfter, 1))
			}
		}

		// Let the replicas catch up, then read every value everywhere.
		mc := redis.NewClient(&redis.Options{Addr: master, Password: creds.Password, Protocol: 2})
		n, err := mc.Do(ctx, "WAIT", len(insts)-1, 10000).Int()
		mc.Close()
		if err != nil || n < len(insts)-1 {
			t.Fatalf("%s: WAIT %d on %s: %d %v", name, len(insts)-1, master, n, err)
		}
		bad := 0
		for _, addr := range insts {
			c := redis.NewClient(&redis.Options{Addr: addr, Password: creds.Password, Protocol: 2})
			missing, wrong := 0, 0
			var firstWrong string
			for i := 0; i < len(ck.Writes); i += 500 {
				batch := ck.Writes[i:min(i+500, len(ck.Writes))]
				keys := make([]string, len(batch))
				for j, w := range batch {
					keys[j] = w.Key
				}
				vals, err := c.MGet(ctx, keys...).Result()
				if err != nil {
					t.Fatalf("%s: %v", addr, err)
				}
				for j, v := range vals {
					switch s, _ := v.(string); {
					case v == nil:
						missing++
					case s != batch[j].Val:
						wrong++
						if firstWrong == "" {
							firstWrong = fmt.Sprintf("%s = %q, acknowledged %q", batch[j].Key, s, batch[j].Val)
						}
					}
				}
			}
			c.Close()
			role := "replica"
			if addr == master {
				role = "master"
			}
			if missing > 0 || wrong > 0 {
				bad++
				t.Errorf("%s %s of %s: %d of %d acknowledged writes missing, %d with another value (first: %s)",
					role, addr, name, missing, len(ck.Writes), wrong, firstWrong)
			}
		}
		if bad > 0 {
			continue
		}
		t.Logf("%s: %d acknowledged writes (%s after the fault) compared on master %s and replicas %v, all present with their values",
			name, len(ck.Writes), afterCount(ck), master, insts[1:])
	}
}

// shardTopology reads a shard's master and replicas from the Sentinel and
// Redis processes on this host: the master every Sentinel names, then every
// process of the cluster replicating from it. problem says what is not
// settled yet ("" when all is).
func shardTopology(t testing.TB, m *testenv.Manager, cluster, name string, creds api.Credentials, replicas int) (master string, insts []string, problem string) {
	t.Helper()
	ctx := context.Background()
	var redisProcs, sentinelProcs []hostInstance
	for _, in := range hostInstances(t, m.DataDir) {
		if in.Sentinel {
			sentinelProcs = append(sentinelProcs, in)
		} else {
			redisProcs = append(redisProcs, in)
		}
	}
	sentinels := clusterSentinels(t, sentinelProcs, cluster, creds)
	for _, s := range sentinels {
		sc := redis.NewClient(&redis.Options{Addr: s, Password: creds.SentinelPassword, Protocol: 2})
		ms, err := sc.Do(ctx, "sentinel", "masters").Slice()
		sc.Close()
		if err != nil {
			return "", nil, fmt.Sprintf("SENTINEL MASTERS on %s: %v", s, err)
		}
		got := ""
		for _, mm := range ms {
			p := pairs(mm)
			if p["name"] != name {
				continue
			}
			got = net.JoinHostPort(p["ip"], p["port"])
			for _, f := range []string{"s_down", "o_down", "failover_in_progress"} {
				if strings.Contains(p["flags"], f) {
					return "", nil, fmt.Sprintf("Sentinel %s: master %s flags %s", s, got, p["flags"])
				}
			}
		}
		if got == "" {
			return "", nil, fmt.Sprintf("Sentinel %s does not monitor %s", s, name)
		}
		if master != "" && got != master {
			return "", nil, fmt.Sprintf("Sentinels disagree on the master of %s: %s and %s", name, master, got)
		}
		master = got
	}
	type replInfo struct{ role, master, link string }
	members := map[string]replInfo{}
	for _, in := range redisProcs {
		c := redis.NewClient(&redis.Options{Addr: in.Addr, Password: creds.Password, Protocol: 2, MaxRetries: -1})
		info, err := c.Info(ctx, "server", "replication").Result()
		c.Close()
		if err != nil {
			continue // another cluster's instance, or one still loading
		}
		if pid := infoField(info, "process_id"); pid != strconv.Itoa(in.Pid) {
			t.Fatalf("redis on %s answers as pid %s, the process title said %d", in.Addr, pid, in.Pid)
		}
		ri := replInfo{role: infoField(info, "role"), link: infoField(info, "master_link_status")}
		if ri.role == "slave" {
			ri.master = net.JoinHostPort(infoField(info, "master_host"), infoField(info, "master_port"))
		}
		members[in.Addr] = ri
	}
	if ri, ok := members[master]; !ok || ri.role != "master" {
		return "", nil, fmt.Sprintf("the master Sentinels name for %s, %s, is not a master process of %s on this host (%+v)", name, master, cluster, ri)
	}
	insts = []string{master}
	for addr, ri := range members {
		if ri.role == "slave" && ri.master == master {
			if ri.link != "up" {
				return "", nil, fmt.Sprintf("replica %s of %s: master link %s", addr, name, ri.link)
			}
			insts = append(insts, addr)
		}
	}
	sort.Strings(insts[1:])
	if replicas >= 0 && len(insts)-1 != replicas {
		return "", nil, fmt.Sprintf("%d replica processes of master %s on this host (%v), want %d", len(insts)-1, master, insts[1:], replicas)
	}
	return master, insts, ""
}

// hostSentinels returns the addresses of the Sentinel processes of a
// cluster running on this host.
func hostSentinels(t testing.TB, m *testenv.Manager, cluster string, creds api.Credentials) []string {
	t.Helper()
	var procs []hostInstance
	for _, in := range hostInstances(t, m.DataDir) {
		if in.Sentinel {
			procs = append(procs, in)
		}
	}
	return clusterSentinels(t, procs, cluster, creds)
}

// clusterSentinels keeps the Sentinel processes the cluster's Sentinel
// password opens and whose INFO names the pid found: the port really is
// that process's.
func clusterSentinels(t testing.TB, procs []hostInstance, cluster string, creds api.Credentials) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, in := range procs {
		c := redis.NewClient(&redis.Options{Addr: in.Addr, Password: creds.SentinelPassword, Protocol: 2, MaxRetries: -1})
		info, err := c.Info(ctx, "server").Result()
		c.Close()
		if err != nil {
			continue // another cluster's Sentinel
		}
		if pid := infoField(info, "process_id"); pid != strconv.Itoa(in.Pid) {
			t.Fatalf("Sentinel on %s answers as pid %s, the process title said %d", in.Addr, pid, in.Pid)
		}
		out = append(out, in.Addr)
	}
	if len(out) == 0 {
		t.Fatalf("no Sentinel process of %s runs on this host", cluster)
	}
	sort.Strings(out)
	return out
}

func afterCount(ck lossCheck) string {
	if ck.Fault.IsZero() {
		return "no fault"
	}
	n := 0
	for _, w := range ck.Writes {
		if w.At.After(ck.Fault) {
			n++
		}
	}
	return strconv.Itoa(n)
}

func infoField(info, key string) string {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+":"); ok {
			return v
		}
	}
	return ""
}

// failRecorder stands in for the test in TestCheckNoLossCatches: it
// records failures instead of failing the test.
type failRecorder struct {
	testing.TB
	msgs []string
}

func (r *failRecorder) Helper()                   {}
func (r *failRecorder) Logf(string, ...any)       {}
func (r *failRecorder) Errorf(f string, a ...any) { r.msgs = append(r.msgs, fmt.Sprintf(f, a...)) }
func (r *failRecorder) Fatalf(f string, a ...any) {
	r.Errorf(f, a...)
	runtime.Goexit()
}

// failures runs checkNoLoss against a recorder and returns what it reported.
func failures(t *testing.T, m *testenv.Manager, cluster string, creds api.Credentials, ck lossCheck) string {
	r := &failRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		checkNoLoss(r, m, cluster, creds, ck)
	}()
	<-done
	return strings.Join(r.msgs, "\n")
}

// TestCheckNoLossCatches proves the shared check can fail: on a real
// cluster it reports a changed value, a missing key, too few acknowledged
// writes, no write after the fault, and a replica missing from this host,
// and passes on the intact data.
func TestCheckNoLossCatches(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "ck", Replicas: intp(1), Sentinels: intp(1)})
	creds, _ := m.Client.Credentials(ctx, "ck")
	master := cl.Status.Shards[0].Master.Address
	before := writeAcked(t, master, creds.Password, "a", 0, 300)
	fault := time.Now()
	time.Sleep(10 * time.Millisecond)
	writes := append(before, writeAcked(t, master, creds.Password, "a", 300, 300)...)
	ok := lossCheck{Shard: 0, Writes: writes, Min: 600, Fault: fault, MinAfter: 300, Replicas: 1, Settle: time.Second}
	if got := failures(t, m, "ck", creds, ok); got != "" {
		t.Fatalf("intact data reported:\n%s", got)
	}

	cases := []struct {
		name, want string
		ck         func() lossCheck
		damage     func(c *redis.Client)
	}{
		{"too few writes", "only 600 writes acknowledged, want at least 601",
			func() lossCheck { c := ok; c.Min = 601; return c }, nil},
		{"no write after the fault", "writes did not resume",
			func() lossCheck { c := ok; c.Writes = before; c.Min = 1; return c }, nil},
		{"a replica missing", "1 replica processes of master",
			func() lossCheck { c := ok; c.Replicas = 2; return c }, nil},
		{"a changed value", "0 of 600 acknowledged writes missing, 1 with another value",
			func() lossCheck { return ok }, func(c *redis.Client) { c.Set(ctx, writes[17].Key, "something else", 0) }},
		{"a lost key", "2 of 600 acknowledged writes missing",
			func() lossCheck { return ok }, func(c *redis.Client) { c.Del(ctx, writes[3].Key, writes[400].Key) }},
	}
	mc := redis.NewClient(&redis.Options{Addr: master, Password: creds.Password, Protocol: 2})
	defer mc.Close()
	for _, c := range cases {
		if c.damage != nil {
			c.damage(mc)
		}
		got := failures(t, m, "ck", creds, c.ck())
		if !strings.Contains(got, c.want) {
			t.Errorf("%s: check reported %q, want %q", c.name, got, c.want)
		}
		if c.damage != nil {
			for _, w := range writes {
				mc.Set(ctx, w.Key, w.Val, 0)
			}
		}
	}
}
