package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/redis-manager/redis-manager/internal/testenv"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/spec"
)

const (
	host     = "127.0.0.1"
	cluster  = "orders"
	password = "pw"
)

// instanceRoot returns a fresh platform root. Every process working under
// it is killed, by pid, when the test ends, whatever state the test left.
func instanceRoot(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed (CI must install it)")
		}
		t.Skip("redis-server not installed")
	}
	root := t.TempDir()
	t.Cleanup(func() { killUnder(t, root) })
	return root
}

// processesUnder lists the pids of live processes whose working directory
// is root or below it.
func processesUnder(root string) map[int]string {
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if err != nil || (cwd != root && !strings.HasPrefix(cwd, root+"/")) || exited(pid) {
			continue
		}
		out[pid] = cwd
	}
	return out
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil && !exited(pid)
}

func killUnder(t *testing.T, root string) {
	procs := processesUnder(root)
	for pid := range procs {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for pid := range procs {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("pid %d still running after SIGKILL", pid)
		}
	}
}

func newPlatform(t *testing.T, root, binary string) *Platform {
	t.Helper()
	p, err := New(root, binary, Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p.onRender = func(s platform.InstanceSpec) {
		rendersMu.Lock()
		defer rendersMu.Unlock()
		if c := renders[s.Endpoint.Port]; c != nil {
			c.Add(1)
		}
	}
	return p
}

// renders counts config renderings by port (ports are unique across the
// tests of this package), for tests that pass a counter.
var (
	rendersMu sync.Mutex
	renders   = map[int]*atomic.Int32{}
)

func countRenders(port int, calls *atomic.Int32) {
	if calls == nil {
		return
	}
	rendersMu.Lock()
	renders[port] = calls
	rendersMu.Unlock()
}

// redisInstance is an InstanceSpec with a minimal redis.conf, booting as
// master (no Sentinel knows it); its renderings are counted in calls.
func redisInstance(name string, port int, calls *atomic.Int32) platform.InstanceSpec {
	self := net.JoinHostPort(host, strconv.Itoa(port))
	countRenders(port, calls)
	return platform.InstanceSpec{
		ID: platform.ID{Cluster: cluster, Name: name}, Kind: platform.KindRedis, Endpoint: platform.Endpoint{Host: host, Port: port},
		Redis: &spec.RedisConfig{Password: password,
			Spec: api.ClusterSpec{Persistence: "none", MaxmemoryPolicy: "noeviction", Maxmemory: "0"}},
		Boot: &platform.BootPlan{MasterName: cluster + "-0", PlannedMaster: self},
	}
}

// handleDir is the data dir the handle of an instance names.
func handleDir(t *testing.T, in platform.Instance) string {
	t.Helper()
	var h struct {
		Pid     int    `json:"pid"`
		DataDir string `json:"dataDir"`
	}
	if err := json.Unmarshal(in.Handle, &h); err != nil {
		t.Fatalf("handle of %s: %q: %v", in.ID.Name, in.Handle, err)
	}
	if h.Pid != in.Details.Pid {
		t.Errorf("handle of %s names pid %d, details %d", in.ID.Name, h.Pid, in.Details.Pid)
	}
	return h.DataDir
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ping(ctx context.Context, t *testing.T, port int) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(host, strconv.Itoa(port)), Password: password,
		Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING the instance on %d: %v", port, err)
	}
}

// waitExit waits for the exit event of pid on events.
func waitExit(t *testing.T, events <-chan platform.InstanceEvent, name string, pid int) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Type == platform.EventExited && ev.ID.Name == name && ev.Details.Pid == pid {
				if ev.ID.Cluster != cluster || ev.At.IsZero() || !ev.Certain {
					t.Errorf("exit event = %+v", ev)
				}
				return
			}
		case <-timeout:
			t.Fatalf("no exit event for %s (pid %d) within 5s", name, pid)
		}
	}
}

func listed(ctx context.Context, t *testing.T, p *Platform) []platform.Instance {
	t.Helper()
	l, err := p.List(ctx, cluster)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return l
}

func TestEnsureAdoptWatchRemove(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	root := instanceRoot(t)
	port := testenv.FreePort(t)
	const name = "orders-0-0"
	dir := filepath.Join(root, cluster, name)
	var calls atomic.Int32

	p1 := newPlatform(t, root, "")
	events1, _ := p1.Watch(ctx)
	in, err := p1.Ensure(ctx, redisInstance(name, port, &calls))
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if in.Details.Pid <= 0 || !in.Running || in.Adopted || handleDir(t, in) != dir || in.Endpoint.Port != port || in.ID.Name != name || in.Kind != platform.KindRedis {
		t.Fatalf("Ensure = %+v", in)
	}
	if calls.Load() != 1 {
		t.Fatalf("Config called %d times, want 1", calls.Load())
	}
	ping(ctx, t, port)
	if got := processesUnder(root); len(got) != 1 || got[in.Details.Pid] != dir {
		t.Fatalf("processes under the root = %v, want pid %d in %s", got, in.Details.Pid, dir)
	}

	// A second Ensure adopts the running instance.
	again, err := p1.Ensure(ctx, redisInstance(name, port, &calls))
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if !again.Adopted || !again.Running || again.Details.Pid != in.Details.Pid {
		t.Fatalf("second Ensure = %+v, want pid %d adopted", again, in.Details.Pid)
	}
	if calls.Load() != 1 {
		t.Fatalf("Config called again for an adopted instance")
	}

	// A restarted manager (a new Platform on the same root) adopts it too
	// and watches it without being its parent.
	p2 := newPlatform(t, root, "")
	events2, _ := p2.Watch(ctx)
	adopted, err := p2.Ensure(ctx, redisInstance(name, port, &calls))
	if err != nil {
		t.Fatalf("Ensure after restart: %v", err)
	}
	if !adopted.Adopted || adopted.Details.Pid != in.Details.Pid || calls.Load() != 1 {
		t.Fatalf("Ensure after restart = %+v (Config calls %d), want pid %d adopted", adopted, calls.Load(), in.Details.Pid)
	}
	if got := processesUnder(root); len(got) != 1 {
		t.Fatalf("processes under the root = %v, want only pid %d", got, in.Details.Pid)
	}
	l := listed(ctx, t, p2)
	if len(l) != 1 || !l[0].Running || l[0].Details.Pid != in.Details.Pid || l[0].ID.Name != name || l[0].Endpoint.Port != port || l[0].Kind != platform.KindRedis || handleDir(t, l[0]) != dir {
		t.Fatalf("List = %+v, want %s running as pid %d", l, name, in.Details.Pid)
	}
	// The second List answers from what the first found (the process has
	// not exited): the same.
	if again := listed(ctx, t, p2); !reflect.DeepEqual(again, l) {
		t.Fatalf("second List = %+v, first %+v", again, l)
	}

	if err := syscall.Kill(in.Details.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, events2, name, in.Details.Pid) // through the pidfd
	waitExit(t, events1, name, in.Details.Pid) // through Wait, as its parent
	if l := listed(ctx, t, p2); len(l) != 1 || l[0].Running {
		t.Fatalf("List after kill = %+v, want %s not running", l, name)
	}
	if pid, running := p2.Status(platform.ID{Cluster: cluster, Name: name}); running {
		t.Fatalf("Status after kill = pid %d running", pid)
	}

	// Ensure starts it again, rendering its config again.
	restarted, err := p2.Ensure(ctx, redisInstance(name, port, &calls))
	if err != nil {
		t.Fatalf("Ensure after kill: %v", err)
	}
	if restarted.Adopted || restarted.Details.Pid == in.Details.Pid || calls.Load() != 2 {
		t.Fatalf("Ensure after kill = %+v (Config calls %d), want a new process", restarted, calls.Load())
	}
	ping(ctx, t, port)
	for range 2 {
		if l := listed(ctx, t, p2); len(l) != 1 || !l[0].Running || l[0].Details.Pid != restarted.Details.Pid {
			t.Fatalf("List after the new start = %+v, want pid %d running", l, restarted.Details.Pid)
		}
	}
	// Right after Stop, before its watcher may have said so, List finds
	// it stopped.
	if err := p2.Stop(ctx, platform.ID{Cluster: cluster, Name: name}); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if l := listed(ctx, t, p2); len(l) != 1 || l[0].Running {
		t.Fatalf("List right after Stop = %+v, want %s not running", l, name)
	}

	if err := p2.Remove(ctx, platform.ID{Cluster: cluster, Name: name}); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if alive(restarted.Details.Pid) {
		t.Fatalf("pid %d still running after Remove", restarted.Details.Pid)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("instance dir after Remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, cluster)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty cluster dir left after Remove: %v", err)
	}
	if l := listed(ctx, t, p2); len(l) != 0 {
		t.Fatalf("List after Remove = %+v", l)
	}
	if err := p2.Remove(ctx, platform.ID{Cluster: cluster, Name: name}); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if got := processesUnder(root); len(got) != 0 {
		t.Fatalf("processes left: %v", got)
	}
}

func TestListAndRemoveOfUnknown(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	p := newPlatform(t, instanceRoot(t), "")
	if l, err := p.List(ctx, "nothing"); err != nil || len(l) != 0 {
		t.Fatalf("List of an unknown cluster = %v, %v", l, err)
	}
	if err := p.Remove(ctx, platform.ID{Cluster: "nothing", Name: "nothing-0-0"}); err != nil {
		t.Fatalf("Remove of an unknown instance: %v", err)
	}
}

// Two instances of one cluster are listed apart, and removing one leaves
// the other running.
func TestTwoInstances(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	root := instanceRoot(t)
	p := newPlatform(t, root, "")
	a, b := testenv.FreePort(t), testenv.FreePort(t)
	ia, err := p.Ensure(ctx, redisInstance("orders-0-0", a, nil))
	if err != nil {
		t.Fatal(err)
	}
	ib, err := p.Ensure(ctx, redisInstance("orders-0-1", b, nil))
	if err != nil {
		t.Fatal(err)
	}
	l := listed(ctx, t, p)
	got := map[string]int{}
	for _, in := range l {
		if in.Running {
			got[in.ID.Name] = in.Details.Pid
		}
	}
	if len(l) != 2 || got["orders-0-0"] != ia.Details.Pid || got["orders-0-1"] != ib.Details.Pid {
		t.Fatalf("List = %+v", l)
	}
	if err := p.Remove(ctx, platform.ID{Cluster: cluster, Name: "orders-0-0"}); err != nil {
		t.Fatal(err)
	}
	if alive(ia.Details.Pid) || !alive(ib.Details.Pid) {
		t.Fatalf("after removing orders-0-0: its pid alive=%v, the other's alive=%v", alive(ia.Details.Pid), alive(ib.Details.Pid))
	}
	ping(ctx, t, b)
	if l := listed(ctx, t, p); len(l) != 1 || l[0].ID.Name != "orders-0-1" {
		t.Fatalf("List = %+v", l)
	}
}

func TestEnsurePortInUse(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	root := instanceRoot(t)
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	var calls atomic.Int32
	p := newPlatform(t, root, "")
	_, err = p.Ensure(ctx, redisInstance("orders-0-0", port, &calls))
	if !errors.Is(err, platform.ErrPortInUse) {
		t.Fatalf("Ensure on a port held by another process = %v, want ErrPortInUse", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(port)) || !strings.Contains(err.Error(), "orders-0-0") {
		t.Errorf("error %q does not name the instance and port", err)
	}
	if calls.Load() != 0 {
		t.Errorf("Config rendered for an instance that cannot start")
	}
	if got := processesUnder(root); len(got) != 0 {
		t.Fatalf("processes left: %v", got)
	}
	if l := listed(ctx, t, p); len(l) != 0 && l[0].Running {
		t.Fatalf("List = %+v", l)
	}
}

func TestEnsureMissingBinary(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	root := instanceRoot(t)
	binary := filepath.Join(t.TempDir(), "no-such-redis-server")
	p := newPlatform(t, root, binary)
	port := testenv.FreePort(t)
	_, err := p.Ensure(ctx, redisInstance("orders-0-0", port, nil))
	if err == nil {
		t.Fatal("Ensure with a missing binary succeeded")
	}
	if !strings.Contains(err.Error(), "orders-0-0") || !strings.Contains(err.Error(), "no-such-redis-server") ||
		!errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %q should name the instance and the missing binary", err)
	}
	if got := processesUnder(root); len(got) != 0 {
		t.Fatalf("processes left: %v", got)
	}
	if l := listed(ctx, t, p); len(l) != 1 || l[0].Running {
		t.Fatalf("List = %+v, want the instance not running", l)
	}
	// The port stays free.
	if l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port))); err != nil {
		t.Fatalf("port %d taken after a failed start: %v", port, err)
	} else {
		l.Close()
	}
}

func TestEnsureConfigRejected(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	root := instanceRoot(t)
	p := newPlatform(t, root, "")
	events, _ := p.Watch(ctx)
	port := testenv.FreePort(t)
	s := redisInstance("orders-0-0", port, nil)
	s.Redis.Spec.Config = map[string]string{"bogus-directive": "yes"}
	start := time.Now()
	_, err := p.Ensure(ctx, s)
	if err == nil {
		t.Fatal("Ensure with a config redis-server rejects succeeded")
	}
	for _, want := range []string{"orders-0-0", "exited at start", "bogus-directive", "Bad directive"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a rejected config took %s to report", d)
	}
	if got := processesUnder(root); len(got) != 0 {
		t.Fatalf("processes left: %v", got)
	}
	select {
	case ev := <-events:
		if ev.ID.Name != "orders-0-0" || ev.Type != platform.EventExited || !ev.Certain {
			t.Errorf("event = %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Error("no exit event for the instance that failed to start")
	}
}

func TestEnsureConfigError(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	root := instanceRoot(t)
	p := newPlatform(t, root, "")
	s := redisInstance("orders-0-0", testenv.FreePort(t), nil)
	s.Redis = nil
	_, err := p.Ensure(ctx, s)
	if err == nil || !strings.Contains(err.Error(), "render config of orders-0-0") {
		t.Fatalf("Ensure = %v, want the rendering error wrapped with the instance name", err)
	}
	if got := processesUnder(root); len(got) != 0 {
		t.Fatalf("processes left: %v", got)
	}
}

// Sentinel rewrites its own file; a restart keeps it (KeepConfig), so the
// Sentinel keeps its identity and what it monitors.
func TestSentinelKeepsItsConfig(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	root := instanceRoot(t)
	p := newPlatform(t, root, "")
	port := testenv.FreePort(t)
	const name = "orders-sentinel-0"
	var calls atomic.Int32
	countRenders(port, &calls)
	s := platform.InstanceSpec{
		ID: platform.ID{Cluster: cluster, Name: name}, Kind: platform.KindSentinel, Endpoint: platform.Endpoint{Host: host, Port: port},
		Sentinel: &spec.SentinelConfig{Password: password},
	}
	first, err := p.Ensure(ctx, s)
	if err != nil {
		t.Fatalf("Ensure Sentinel: %v", err)
	}
	if _, err := os.Stat(filepath.Join(handleDir(t, first), "sentinel.conf")); err != nil {
		t.Fatalf("no sentinel.conf: %v", err)
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: net.JoinHostPort(host, strconv.Itoa(port)), Password: password,
		Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer sc.Close()
	myID := func() string {
		t.Helper()
		cmd := redis.NewStringCmd(ctx, "sentinel", "myid")
		if err := sc.Process(ctx, cmd); err != nil {
			t.Fatalf("SENTINEL MYID: %v", err)
		}
		return cmd.Val()
	}
	id := myID()
	// Wait until Sentinel has written its id into its file.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(handleDir(t, first), "sentinel.conf"))
		if strings.Contains(string(b), "sentinel myid "+id) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Sentinel did not write its id into sentinel.conf:\n%s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := p.Stop(ctx, platform.ID{Cluster: cluster, Name: name}); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if alive(first.Details.Pid) {
		t.Fatalf("pid %d alive after Stop", first.Details.Pid)
	}
	if _, err := os.Stat(handleDir(t, first)); err != nil {
		t.Fatalf("Stop removed the data dir: %v", err)
	}
	second, err := p.Ensure(ctx, s)
	if err != nil {
		t.Fatalf("Ensure after Stop: %v", err)
	}
	if second.Adopted || second.Details.Pid == first.Details.Pid {
		t.Fatalf("Ensure after Stop = %+v, want a new process", second)
	}
	if calls.Load() != 1 {
		t.Fatalf("Config rendered %d times, want once: Sentinel's own file must be kept", calls.Load())
	}
	if got := myID(); got != id {
		t.Fatalf("Sentinel id after restart = %s, want %s", got, id)
	}
}

// A root reached through a symlink (a data dir on a mounted volume, /tmp
// on macOS) must not stop adoption: the kernel reports the resolved path
// as the process's working directory.
func TestAdoptThroughSymlinkedRoot(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	root := instanceRoot(t)
	link := filepath.Join(t.TempDir(), "instances")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	p := newPlatform(t, link, "")
	in, err := p.Ensure(ctx, redisInstance("orders-0-0", port, nil))
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	p2 := newPlatform(t, link, "")
	again, err := p2.Ensure(ctx, redisInstance("orders-0-0", port, nil))
	if err != nil {
		t.Fatalf("Ensure after restart through a symlinked root: %v", err)
	}
	if !again.Adopted || again.Details.Pid != in.Details.Pid {
		t.Fatalf("Ensure after restart = %+v, want pid %d adopted", again, in.Details.Pid)
	}
	if l := listed(ctx, t, p2); len(l) != 1 || !l[0].Running {
		t.Fatalf("List = %+v, want the instance running", l)
	}
}

func TestSeed(t *testing.T) {
	t.Parallel()
	root := instanceRoot(t)
	p := newPlatform(t, root, "")
	ctx := ctxT(t)

	// An RDB from a real instance.
	srcPort := testenv.FreePort(t)
	if _, err := p.Ensure(ctx, redisInstance("orders-0-0", srcPort, nil)); err != nil {
		t.Fatal(err)
	}
	src := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(host, strconv.Itoa(srcPort)), Password: password, Protocol: 2})
	defer src.Close()
	for i := range 100 {
		if err := src.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rdb, err := os.ReadFile(filepath.Join(p.dir(cluster, "orders-0-0"), "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}

	// The RDB as a backup object, whole and cut short.
	objects := t.TempDir()
	target := "file://" + objects
	if err := os.WriteFile(filepath.Join(objects, "whole.rdb"), rdb, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(objects, "short.rdb"), rdb[:len(rdb)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	whole := platform.SeedSource{TargetURL: target, Key: "whole.rdb", Size: int64(len(rdb))}

	// A running instance is never seeded.
	if err := p.Seed(ctx, platform.ID{Cluster: cluster, Name: "orders-0-0"}, whole); !errors.Is(err, platform.ErrRunning) {
		t.Errorf("seed a running instance: %v, want ErrRunning", err)
	}

	// A source that ends early leaves nothing: no dump.rdb, no temporary file.
	dir := p.dir(cluster, "orders-1-0")
	if err := p.Seed(ctx, platform.ID{Cluster: cluster, Name: "orders-1-0"}, platform.SeedSource{TargetURL: target, Key: "short.rdb"}); err == nil || !strings.Contains(err.Error(), "orders-1-0") {
		t.Fatalf("seed from a truncated object: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind after a failed seed: %v", entries)
	}
	// Nor does a whole RDB that is not the recorded one.
	other := whole
	other.CRC64 = "0000000000000000"
	if err := p.Seed(ctx, platform.ID{Cluster: cluster, Name: "orders-1-0"}, other); err == nil || !strings.Contains(err.Error(), "CRC64") {
		t.Fatalf("seed of an RDB with another CRC64 than recorded: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind after a refused seed: %v", entries)
	}

	// Seeded, the instance boots with the data.
	if err := p.Seed(ctx, platform.ID{Cluster: cluster, Name: "orders-1-0"}, whole); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	if _, err := p.Ensure(ctx, redisInstance("orders-1-0", port, nil)); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(host, strconv.Itoa(port)), Password: password, Protocol: 2})
	defer c.Close()
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 100 {
		t.Errorf("seeded instance holds %d keys (%v), want 100", n, err)
	}
	if v, err := c.Get(ctx, "k42").Result(); err != nil || v != "42" {
		t.Errorf("k42 = %q, %v", v, err)
	}
}
