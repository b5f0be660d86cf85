// Command failover measures how long Sentinel-aware clients cannot write
// after kill -9 of a master: from the kill to the first write sent after the
// process was gone that a replica acknowledged (SET + WAIT 1), for go-redis
// (NewFailoverClient), redis-py (Sentinel(...).master_for, Debian's
// python3-redis) and ioredis ({sentinels, name}, from npm, installed into
// a cache directory), each with its library's default settings and all
// writing at once, over N kills, for plain Sentinel (processes and
// Sentinels set up by hand, no manager) at down-after 5000 ms and at
// 1000 ms, and for Redis Manager (down-after 5000 ms, fast failover on),
// in the same run. Then, for the manager, the master and then its successor
// killed as soon as it serves: the gap after the second kill.
//
//	go run ./bench/failover -bin bin/redis-manager -runs 10 -successor-runs 5
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/bench/benchenv"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func main() {
	bin := flag.String("bin", "bin/redis-manager", "redis-manager binary")
	runs := flag.Int("runs", 10, "kills per setup")
	succ := flag.Int("successor-runs", 5, "master-then-successor kills (manager)")
	base := flag.Int("port-base", 23400, "first port to use")
	skipPlain := flag.Bool("skip-plain", false, "measure only redis-manager")
	clientList := flag.String("clients", "go-redis,redis-py,ioredis", "clients to run")
	flag.Parse()
	redis.SetLogger(quiet{})
	if err := run(*bin, *runs, *succ, *base, *skipPlain, strings.Split(*clientList, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// result is one setup's gaps per client.
type result struct {
	name string
	gaps map[string][]time.Duration
}

func (r *result) add(g map[string]time.Duration) {
	for c, d := range g {
		r.gaps[c] = append(r.gaps[c], d)
	}
}

func run(bin string, runs, succRuns, base int, skipPlain bool, want []string) error {
	ctx := context.Background()
	var rt testenv.Runtimes
	var clients []string
	for _, c := range want {
		switch c {
		case testenv.RedisPy:
			py, err := testenv.FindPython()
			if err != nil {
				fmt.Fprintf(os.Stderr, "skipping redis-py: %v\n", err)
				continue
			}
			rt.Python = py
		case testenv.IORedis:
			node, mods, err := testenv.EnsureIORedis()
			if err != nil {
				fmt.Fprintf(os.Stderr, "skipping ioredis: %v\n", err)
				continue
			}
			rt.Node, rt.NodeModules = node, mods
		}
		clients = append(clients, c)
	}
	var results []*result
	if !skipPlain {
		for _, da := range []int{5000, 1000} {
			r := &result{name: fmt.Sprintf("plain Sentinel, down-after %d ms", da), gaps: map[string][]time.Duration{}}
			p, err := startPlain(ctx, base+100, da)
			if err != nil {
				return fmt.Errorf("plain setup: %w", err)
			}
			for i := 0; i < runs; i++ {
				g, err := p.killMaster(ctx, clients, rt)
				r.add(g)
				fmt.Fprintf(os.Stderr, "%s, run %d: %s\n", r.name, i+1, fmtGaps(g))
				if err != nil {
					fmt.Fprintf(os.Stderr, "  %v; rebuilding the plain setup\n", err)
					p.stop()
					if p, err = startPlain(ctx, base+100, da); err != nil {
						return fmt.Errorf("plain setup: %w", err)
					}
				}
			}
			p.stop()
			results = append(results, r)
		}
	}

	m, err := benchenv.Start(bin, base, 40)
	if err != nil {
		return err
	}
	defer m.Stop()
	c := m.Client
	res, err := c.CreateCluster(ctx, api.CreateClusterRequest{Name: "fo", Sentinel: &api.SentinelRequest{DownAfterMs: benchenv.Int(5000)}})
	if err != nil {
		return err
	}
	if _, err := c.WaitJob(ctx, res.Job.ID, nil); err != nil {
		return err
	}
	creds, err := c.Credentials(ctx, "fo")
	if err != nil {
		return err
	}
	ours := &result{name: "Redis Manager, down-after 5000 ms", gaps: map[string][]time.Duration{}}
	var events, eventsMasters, restored []time.Duration
	for i := 0; i < runs; i++ {
		cl, err := waitReady(ctx, c, "fo", time.Time{})
		if err != nil {
			return err
		}
		cfg := testenv.WriterConfig{Sentinels: cl.Connection.Sentinels, MasterName: "fo-0", Password: creds.Password, SentinelPassword: creds.SentinelPassword}
		var killed time.Time
		g, err := measure(clients, rt, cfg, func() (time.Time, int, error) {
			killed = time.Now()
			return killed, cl.Status.Shards[0].Master.Pid, kill(cl.Status.Shards[0].Master.Pid)
		})
		ours.add(g)
		if err != nil {
			return fmt.Errorf("manager run %d: %w", i+1, err)
		}
		if _, err := waitReady(ctx, c, "fo", killed); err != nil {
			return err
		}
		back := time.Since(killed)
		restored = append(restored, back)
		ev := lastFailover(ctx, c, "fo", killed)
		if v, ok := ev["clientsRedirectedMs"].(float64); ok {
			events = append(events, time.Duration(v)*time.Millisecond)
		}
		if v, ok := ev["sentinelMastersMs"].(float64); ok {
			eventsMasters = append(eventsMasters, time.Duration(v)*time.Millisecond)
		}
		fmt.Fprintf(os.Stderr, "%s, run %d: %s; event: every Sentinel %vms, SENTINEL MASTERS %vms, writeUnavailable %vms; replicas back to spec after %.2fs\n",
			ours.name, i+1, fmtGaps(g), ev["clientsRedirectedMs"], ev["sentinelMastersMs"], ev["writeUnavailableMs"], back.Seconds())
	}
	results = append(results, ours)

	succ := &result{name: "Redis Manager: successor killed as soon as it serves", gaps: map[string][]time.Duration{}}
	succWrite := &result{name: "  same, first write taken (WAIT may return 0)", gaps: map[string][]time.Duration{}}
	first := &result{name: "  same runs, the first kill", gaps: map[string][]time.Duration{}}
	for i := 0; i < succRuns; i++ {
		cl, err := waitReady(ctx, c, "fo", time.Time{})
		if err != nil {
			return err
		}
		cfg := testenv.WriterConfig{Sentinels: cl.Connection.Sentinels, MasterName: "fo-0", Password: creds.Password, SentinelPassword: creds.SentinelPassword}
		g1, g2, w2, killed2, err := successor(ctx, clients, rt, cfg, cl, creds.Password, creds.SentinelPassword)
		first.add(g1)
		succ.add(g2)
		succWrite.add(w2)
		if err != nil {
			return fmt.Errorf("successor run %d: %w", i+1, err)
		}
		fmt.Fprintf(os.Stderr, "successor run %d: first kill %s; second kill %s; first write taken after the second kill %s\n", i+1, fmtGaps(g1), fmtGaps(g2), fmtGaps(w2))
		if _, err := waitReady(ctx, c, "fo", killed2); err != nil {
			return err
		}
	}

	fmt.Printf("\nwrite gap after kill -9 of the master (kill → first write sent after the process was gone and acknowledged with WAIT 1), 1 master, 2 replicas, 3 Sentinels, redis-server %s\n", benchenv.RedisVersion())
	fmt.Printf("%-56s %-9s %5s %8s %8s %8s\n", "setup", "client", "runs", "median", "worst", "best")
	for _, r := range append(results, first, succ, succWrite) {
		for _, cname := range clients {
			ds := r.gaps[cname]
			if len(ds) == 0 {
				continue
			}
			fmt.Printf("%-56s %-9s %5d %7.3fs %7.3fs %7.3fs\n", r.name, cname, len(ds), med(ds), worst(ds), best(ds))
		}
	}
	if len(events) > 0 {
		fmt.Printf("%-56s %-9s %5d %7.3fs %7.3fs %7.3fs\n", "Redis Manager's event: every Sentinel names it", "-", len(events), med(events), worst(events), best(events))
	}
	if len(eventsMasters) > 0 {
		fmt.Printf("%-56s %-9s %5d %7.3fs %7.3fs %7.3fs\n", "Redis Manager's event: ... in SENTINEL MASTERS too", "-", len(eventsMasters), med(eventsMasters), worst(eventsMasters), best(eventsMasters))
	}
	fmt.Printf("%-56s %-9s %5d %7.3fs %7.3fs %7.3fs\n", "Redis Manager: replica count back to spec", "-", len(restored), med(restored), worst(restored), best(restored))
	return nil
}

func fmtGaps(g map[string]time.Duration) string {
	var parts []string
	for _, c := range []string{testenv.GoRedis, testenv.RedisPy, testenv.IORedis} {
		if d, ok := g[c]; ok {
			parts = append(parts, fmt.Sprintf("%s %dms", c, d.Milliseconds()))
		}
	}
	return strings.Join(parts, ", ")
}

func kill(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("bad pid %d", pid)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// startAll starts a writer per client and waits until each has written.
func startAll(clients []string, rt testenv.Runtimes, cfg testenv.WriterConfig) ([]*testenv.Writer, error) {
	var ws []*testenv.Writer
	for _, c := range clients {
		cfg := cfg
		cfg.Prefix = fmt.Sprintf("bench:%s:%d", c, time.Now().UnixNano())
		w, err := testenv.StartWriter(c, cfg, rt)
		if err != nil {
			stopAll(ws)
			return nil, err
		}
		ws = append(ws, w)
	}
	for _, w := range ws {
		if _, err := w.FirstAckAfter(time.Now().Add(-time.Hour), 30*time.Second); err != nil {
			stopAll(ws)
			return nil, err
		}
	}
	time.Sleep(300 * time.Millisecond)
	return ws, nil
}

func stopAll(ws []*testenv.Writer) {
	for _, w := range ws {
		w.Stop()
	}
}

// measure runs every client's writer, kills, and returns each client's gap.
func measure(clients []string, rt testenv.Runtimes, cfg testenv.WriterConfig, kill func() (time.Time, int, error)) (map[string]time.Duration, error) {
	ws, err := startAll(clients, rt, cfg)
	if err != nil {
		return nil, err
	}
	defer stopAll(ws)
	killed, pid, err := kill()
	if err != nil {
		return nil, err
	}
	dead := testenv.WaitDead(pid, 5*time.Second)
	return gapsAfter(ws, killed, func(w *testenv.Writer) (time.Duration, error) { return ackGap(w, killed, dead) })
}

// ackGap is the time from the kill to the first write sent after the
// process was gone that a replica acknowledged.
func ackGap(w *testenv.Writer, killed, dead time.Time) (time.Duration, error) {
	d, err := w.FirstAckAfter(dead, 60*time.Second)
	return d + dead.Sub(killed), err
}

func gapsAfter(ws []*testenv.Writer, t time.Time, f func(*testenv.Writer) (time.Duration, error)) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	var errs []error
	for _, w := range ws {
		d, err := f(w)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[w.Client] = d
	}
	return out, errors.Join(errs...)
}

// successor kills the master, and its successor as soon as a client's
// write was acknowledged after the first kill.
func successor(ctx context.Context, clients []string, rt testenv.Runtimes, cfg testenv.WriterConfig, cl api.Cluster, password, sentinelPassword string) (g1, g2, w2 map[string]time.Duration, killed2 time.Time, err error) {
	ws, err := startAll(clients, rt, cfg)
	if err != nil {
		return nil, nil, nil, time.Time{}, err
	}
	defer stopAll(ws)
	old := cl.Status.Shards[0].Master.Address
	killed1 := time.Now()
	if err := kill(cl.Status.Shards[0].Master.Pid); err != nil {
		return nil, nil, nil, time.Time{}, err
	}
	dead1 := testenv.WaitDead(cl.Status.Shards[0].Master.Pid, 5*time.Second)
	// As soon as it serves: the first acknowledged write of any client.
	deadline := time.Now().Add(60 * time.Second)
	for serving := false; !serving; {
		for _, w := range ws {
			if _, err := w.FirstAckAfter(dead1, 0); err == nil {
				serving = true
			}
		}
		if time.Now().After(deadline) {
			return nil, nil, nil, time.Time{}, fmt.Errorf("no write acknowledged after the first kill")
		}
		time.Sleep(time.Millisecond)
	}
	next, pid, err := servingMaster(ctx, cfg.Sentinels, cfg.MasterName, old, password, sentinelPassword)
	if err != nil {
		return nil, nil, nil, time.Time{}, err
	}
	killed2 = time.Now()
	if err := kill(pid); err != nil {
		return nil, nil, nil, time.Time{}, fmt.Errorf("kill %s: %w", next, err)
	}
	dead2 := testenv.WaitDead(pid, 5*time.Second)
	g1, err1 := gapsAfter(ws, killed1, func(w *testenv.Writer) (time.Duration, error) { return ackGap(w, killed1, dead1) })
	g2, err2 := gapsAfter(ws, killed2, func(w *testenv.Writer) (time.Duration, error) { return ackGap(w, killed2, dead2) })
	w2, err3 := gapsAfter(ws, killed2, func(w *testenv.Writer) (time.Duration, error) {
		d, err := w.FirstWriteAfter(dead2, 60*time.Second)
		return d + dead2.Sub(killed2), err
	})
	return g1, g2, w2, killed2, errors.Join(err1, err2, err3)
}

// servingMaster finds the master the Sentinels name other than old, and
// its pid (INFO server).
func servingMaster(ctx context.Context, sentinels []string, name, old, password, sentinelPassword string) (string, int, error) {
	for _, s := range sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s, Password: sentinelPassword, Protocol: 2})
		res, err := sc.GetMasterAddrByName(ctx, name).Result()
		sc.Close()
		if err != nil || len(res) != 2 || net.JoinHostPort(res[0], res[1]) == old {
			continue
		}
		a := net.JoinHostPort(res[0], res[1])
		rc := redis.NewClient(&redis.Options{Addr: a, Password: password, Protocol: 2})
		info, err := rc.Info(ctx, "server").Result()
		rc.Close()
		if err != nil {
			continue
		}
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
				pid, _ := strconv.Atoi(v)
				return a, pid, nil
			}
		}
	}
	return "", 0, fmt.Errorf("no Sentinel names a master other than %s", old)
}

// lastFailover returns the details of the failover event after since.
func lastFailover(ctx context.Context, c *api.Client, name string, since time.Time) map[string]any {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		evs, _ := c.ClusterEvents(ctx, name)
		for _, e := range evs {
			if e.Type == "failover" && !e.At.Before(since) {
				return e.Details
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return map[string]any{}
}

func sorted(ds []time.Duration) []time.Duration {
	out := append([]time.Duration(nil), ds...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
func med(ds []time.Duration) float64   { return sorted(ds)[len(ds)/2].Seconds() }
func worst(ds []time.Duration) float64 { return sorted(ds)[len(ds)-1].Seconds() }
func best(ds []time.Duration) float64  { return sorted(ds)[0].Seconds() }

// waitReady waits until the cluster is Ready as observed after since.
func waitReady(ctx context.Context, c *api.Client, name string, since time.Time) (api.Cluster, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		cl, err := c.GetCluster(ctx, name)
		if err == nil && cl.Status.Phase == api.PhaseReady && cl.Status.ObservedAt != nil && cl.Status.ObservedAt.After(since) {
			jobs, _ := c.ListJobs(ctx, name)
			busy := false
			for _, j := range jobs {
				busy = busy || !j.Done()
			}
			if !busy {
				return cl, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return api.Cluster{}, fmt.Errorf("%s not Ready", name)
}

// plain is a master, two replicas and three Sentinels set up by hand with
// the same settings, no manager.
type plain struct {
	dir       string
	redis     map[int]*exec.Cmd // port -> process
	sentinels []*exec.Cmd
	sentAddrs []string
	mu        sync.Mutex
}

const plainPass = "plainbenchpassword"

func (p *plain) startRedis(port int, replicaOf int) error {
	d := filepath.Join(p.dir, strconv.Itoa(port))
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsave \"\"\nrequirepass %s\nmasterauth %s\nrepl-diskless-sync yes\nrepl-diskless-sync-delay 0\nreplica-announce-ip 127.0.0.1\n",
		port, d, plainPass, plainPass)
	if replicaOf > 0 {
		conf += fmt.Sprintf("replicaof 127.0.0.1 %d\n", replicaOf)
	}
	f := filepath.Join(d, "redis.conf")
	if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
		return err
	}
	cmd := exec.Command("redis-server", f)
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	p.mu.Lock()
	p.redis[port] = cmd
	p.mu.Unlock()
	return waitPort(port)
}

func waitPort(port int) error {
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("port %d not up", port)
}

func startPlain(ctx context.Context, port, downAfterMs int) (*plain, error) {
	dir, err := os.MkdirTemp("", "plain-sentinel-")
	if err != nil {
		return nil, err
	}
	p := &plain{dir: dir, redis: map[int]*exec.Cmd{}}
	master := port
	for i := 0; i < 3; i++ {
		of := 0
		if i > 0 {
			of = master
		}
		if err := p.startRedis(port+i, of); err != nil {
			return nil, err
		}
	}
	for i := 0; i < 3; i++ {
		sp := port + 10 + i
		d := filepath.Join(dir, "s"+strconv.Itoa(i))
		os.MkdirAll(d, 0o700)
		conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel resolve-hostnames no\nsentinel announce-ip 127.0.0.1\n"+
			"sentinel monitor plain 127.0.0.1 %d 2\nsentinel auth-pass plain %s\nsentinel down-after-milliseconds plain %d\nsentinel failover-timeout plain 10000\n",
			sp, d, master, plainPass, downAfterMs)
		f := filepath.Join(d, "sentinel.conf")
		if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		cmd := exec.Command("redis-server", f, "--sentinel")
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		go func() { _ = cmd.Wait() }()
		p.sentinels = append(p.sentinels, cmd)
		p.sentAddrs = append(p.sentAddrs, fmt.Sprintf("127.0.0.1:%d", sp))
	}
	return p, p.waitHealthy(ctx, 2)
}

// waitHealthy waits until every Sentinel sees the master, n replicas up and
// the two other Sentinels.
func (p *plain) waitHealthy(ctx context.Context, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ok := true
		for _, a := range p.sentAddrs {
			sc := redis.NewSentinelClient(&redis.Options{Addr: a, Protocol: 2})
			m, err := sc.Master(ctx, "plain").Result()
			reps, rerr := sc.Replicas(ctx, "plain").Result()
			sc.Close()
			up := 0
			for _, r := range reps {
				if !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") {
					up++
				}
			}
			if err != nil || rerr != nil || m["num-other-sentinels"] != "2" || up != n || strings.Contains(m["flags"], "down") {
				ok = false
			}
		}
		if ok {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("plain Sentinel setup not healthy")
}

// masterPort returns the master every Sentinel names, once they agree and
// it really runs as master.
func (p *plain) masterPort(ctx context.Context) (int, error) {
	deadline := time.Now().Add(time.Minute)
	var names map[string]bool
	for time.Now().Before(deadline) {
		names = map[string]bool{}
		for _, a := range p.sentAddrs {
			sc := redis.NewSentinelClient(&redis.Options{Addr: a, Protocol: 2})
			res, err := sc.GetMasterAddrByName(ctx, "plain").Result()
			sc.Close()
			if err == nil && len(res) == 2 {
				names[res[1]] = true
			}
		}
		if len(names) == 1 {
			for port := range names {
				rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port, Password: plainPass, Protocol: 2})
				info, err := rc.Info(ctx, "replication").Result()
				rc.Close()
				if err == nil && strings.Contains(info, "role:master") {
					return strconv.Atoi(port)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("the Sentinels do not agree on a running master: they name %v", names)
}

// killMaster kills the master while every client writes, measures each
// client's gap, then brings the old master back by hand as a replica of the
// new one (the plain way) and waits until the setup is healthy again.
func (p *plain) killMaster(ctx context.Context, clients []string, rt testenv.Runtimes) (map[string]time.Duration, error) {
	mp, err := p.masterPort(ctx)
	if err != nil {
		return nil, err
	}
	gaps, err := measure(clients, rt, testenv.WriterConfig{Sentinels: p.sentAddrs, MasterName: "plain", Password: plainPass}, func() (time.Time, int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		killed := time.Now()
		err := p.redis[mp].Process.Kill()
		return killed, p.redis[mp].Process.Pid, err
	})
	if err != nil {
		return gaps, err
	}
	newPort, err := p.masterPort(ctx)
	if err != nil {
		return gaps, err
	}
	if err := p.startRedis(mp, newPort); err != nil {
		return gaps, err
	}
	return gaps, p.waitHealthy(ctx, 2)
}

func (p *plain) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.redis {
		_ = c.Process.Kill()
	}
	for _, c := range p.sentinels {
		_ = c.Process.Kill()
	}
	time.Sleep(200 * time.Millisecond)
	os.RemoveAll(p.dir)
}

// quiet drops go-redis' own log lines (failover client chatter).
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
