// Command scale measures the manager holding about 1,000 Redis instances
// on this machine: by default 20 clusters × 16 shards × (1 master + 2
// replicas) with 3 Sentinels each, 960 redis-servers and 60 Sentinels,
// all created through the public API on the local platform. At steady
// state it measures the manager's CPU (share of one core, from
// /proc/<pid>/stat over -window) and RSS, next to the CPU that all
// redis-server and Sentinel processes use in the same window; /metrics
// scrape time and size and GET /api/v1/clusters latency, each with and
// without Accept-Encoding: gzip (Prometheus, browsers and Go's client
// send it); and, for a few
// SIGKILLed masters, the time until the API shows the master down and
// until another instance of its shard is the master.
//
//	go run ./bench/scale -bin bin/redis-manager
//
// It raises its file limit to the hard limit (the manager inherits it) and
// stops every process it started (the manager, every instance under the
// manager's data dir) on return, on failure and on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/bench/benchenv"
)

type config struct {
	bin                                  string
	base, clusters, shards               int
	replicas, sentinels, parallel, kills int
	requests, scrapes                    int
	window, settle                       time.Duration
	profile                              string
	managerArgs                          []string
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin/redis-manager", "redis-manager binary (-profile builds its own with -tags benchprof)")
	flag.IntVar(&c.base, "port-base", 28000, "first port to use; the instances take the next 3,999")
	flag.IntVar(&c.clusters, "clusters", 20, "clusters")
	flag.IntVar(&c.shards, "shards", 16, "shards per cluster")
	flag.IntVar(&c.replicas, "replicas", 2, "replicas per shard")
	flag.IntVar(&c.sentinels, "sentinels", 3, "Sentinels per cluster")
	flag.IntVar(&c.parallel, "parallel", 2, "clusters being created at a time")
	flag.IntVar(&c.kills, "kills", 3, "masters SIGKILLed, one after the other")
	flag.IntVar(&c.requests, "requests", 300, "GET /api/v1/clusters requests with gzip, and as many without")
	flag.IntVar(&c.scrapes, "scrapes", 10, "GET /metrics scrapes 500 ms apart with gzip, and as many without; then half as many 4 s apart")
	flag.DurationVar(&c.window, "window", 60*time.Second, "CPU measurement window")
	flag.DurationVar(&c.settle, "settle", 20*time.Second, "wait after every cluster is Ready, before measuring")
	flag.StringVar(&c.profile, "profile", "", "write a 30 s CPU profile of the manager at steady state to this file (builds the manager with -tags benchprof)")
	flag.Func("manager-arg", "an extra argument of the manager's serve (repeat), e.g. -manager-arg=--local-control-nice=0", func(v string) error {
		c.managerArgs = append(c.managerArgs, v)
		return nil
	})
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func run(c config) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	perCluster := c.shards*(1+c.replicas) + c.sentinels
	total := c.clusters * perCluster
	// The manager holds about one connection per instance (pool) and one
	// per Sentinel (events), plus its listeners and store.
	if need := uint64(2*total + 512); lim.Cur < need {
		return fmt.Errorf("file limit %d is below the %d this run needs: raise the hard limit (ulimit -Hn)", lim.Cur, need)
	}
	if 2*total > 3999 {
		return fmt.Errorf("%d instances need more ports than -port-base..+3999 holds (creates and recreations take new ones)", total)
	}
	bin := c.bin
	var extraEnv []string
	if c.profile != "" {
		dir, err := os.MkdirTemp("", "bench-scale-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "redis-manager")
		out, err := exec.Command("go", "build", "-tags", "benchprof", "-o", bin, "./cmd/redis-manager").CombinedOutput()
		if err != nil {
			return fmt.Errorf("build with -tags benchprof: %v: %s", err, out)
		}
		extraEnv = append(extraEnv, fmt.Sprintf("REDIS_MANAGER_BENCH_PPROF=127.0.0.1:%d", c.base))
	}
	for _, e := range extraEnv {
		k, v, _ := strings.Cut(e, "=")
		os.Setenv(k, v)
	}
	fmt.Printf("scale: %d clusters × %d shards × (1+%d) + %d Sentinels = %d redis-servers + %d Sentinels; redis-server %s; %d cores; file limit %d; load %s\n",
		c.clusters, c.shards, c.replicas, c.sentinels, c.clusters*c.shards*(1+c.replicas), c.clusters*c.sentinels, benchenv.RedisVersion(), numCPU(), lim.Cur, loadavg())
	m, err := benchenv.Start(bin, c.base+1, 3999, c.managerArgs...)
	if err != nil {
		return err
	}
	if ag, err := os.ReadFile(fmt.Sprintf("/proc/%d/autogroup", m.Pid())); err == nil {
		fmt.Printf("manager: %s (args %q)\n", strings.TrimSpace(string(ag)), c.managerArgs)
	}
	// Every exit path stops the manager and kills every instance under its
	// data dir: return, panic, SIGINT, SIGTERM.
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(m.Stop) }
	defer stop()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "bench: %s: stopping the manager and its instances\n", s)
		stop()
		os.Exit(130)
	}()
	ctx := context.Background()
	cl := m.Client

	// Create.
	start := time.Now()
	if err := createAll(ctx, cl, c); err != nil {
		return err
	}
	created := time.Since(start)
	fmt.Printf("created %d clusters (%d processes) in %s (%d at a time; %.1f s per cluster); load %s\n",
		c.clusters, total, created.Round(time.Second), c.parallel, created.Seconds()/float64(c.clusters), loadavg())
	if err := waitAllReady(ctx, cl, c, 5*time.Minute); err != nil {
		return err
	}
	time.Sleep(c.settle)
	fmt.Printf("steady state: every cluster Ready; load %s\n", loadavg())

	// CPU and RSS over the window, ours next to Redis's and Sentinel's.
	if err := measureCPU(m, c.window); err != nil {
		return err
	}
	if c.profile != "" {
		if err := takeProfile(c.base, c.profile); err != nil {
			return err
		}
	}
	if err := measureScrape(m, c.scrapes, 500*time.Millisecond); err != nil {
		return err
	}
	if err := measureScrape(m, max(2, c.scrapes/2), 4*time.Second); err != nil {
		return err
	}
	series, mb := lines(m)
	fmt.Printf("  %d series, %.1f MB of text\n", series, mb)
	if err := measureList(m, c.requests); err != nil {
		return err
	}
	if err := measureKills(ctx, cl, c); err != nil {
		return err
	}
	return nil
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "\nprocessor") + 1
}

func createAll(ctx context.Context, cl *api.Client, c config) error {
	sem := make(chan struct{}, c.parallel)
	errs := make(chan error, c.clusters)
	var wg sync.WaitGroup
	for i := 0; i < c.clusters; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t := time.Now()
			name := fmt.Sprintf("scale-%02d", i)
			res, err := cl.CreateCluster(ctx, api.CreateClusterRequest{Name: name, Shards: &c.shards, Replicas: &c.replicas, Sentinels: &c.sentinels})
			if err != nil {
				errs <- fmt.Errorf("create %s: %w", name, err)
				return
			}
			j, err := cl.WaitJob(ctx, res.Job.ID, nil)
			if err == nil && j.State != api.StateSucceeded {
				err = fmt.Errorf("job %s: %s", j.State, j.Error)
			}
			if err != nil {
				errs <- fmt.Errorf("create %s: %w", name, err)
				return
			}
			fmt.Printf("  %s created in %s; load %s\n", name, time.Since(t).Round(100*time.Millisecond), loadavg())
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(slicesOf(errs)...)
}

func slicesOf(ch chan error) []error {
	var out []error
	for e := range ch {
		out = append(out, e)
	}
	return out
}

func waitAllReady(ctx context.Context, cl *api.Client, c config, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		cls, err := cl.ListClusters(ctx)
		if err != nil {
			return err
		}
		ready := 0
		for _, x := range cls {
			if x.Status.Phase == api.PhaseReady {
				ready++
			}
		}
		if ready == c.clusters {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d clusters Ready after %s", ready, c.clusters, within)
		}
		time.Sleep(time.Second)
	}
}

// procCPU is utime+stime of pid in clock ticks.
func procCPU(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, false
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st, true
}

func rssMB(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// instancePids splits the manager's instances (benchenv.InstancePids)
// into redis-servers and Sentinels.
func instancePids(dataDir string) (redis, sentinels []int) {
	for _, pid := range benchenv.InstancePids(dataDir) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmd), "sentinel") {
			sentinels = append(sentinels, pid)
		} else {
			redis = append(redis, pid)
		}
	}
	return redis, sentinels
}

const hz = 100 // USER_HZ on Linux

func measureCPU(m *benchenv.Manager, window time.Duration) error {
	redis, sentinels := instancePids(m.DataDir)
	sum := func(pids []int) uint64 {
		var t uint64
		for _, p := range pids {
			v, _ := procCPU(p)
			t += v
		}
		return t
	}
	load0 := loadavg()
	m0, ok := procCPU(m.Pid())
	if !ok {
		return fmt.Errorf("manager %d gone", m.Pid())
	}
	r0, s0 := sum(redis), sum(sentinels)
	t0 := time.Now()
	var rssMax float64
	for time.Since(t0) < window {
		time.Sleep(time.Second)
		rssMax = max(rssMax, rssMB(m.Pid()))
	}
	el := time.Since(t0).Seconds()
	m1, _ := procCPU(m.Pid())
	r1, s1 := sum(redis), sum(sentinels)
	share := func(d uint64) float64 { return 100 * float64(d) / hz / el }
	fmt.Printf("CPU over %.0f s (share of one core; load before %s, after %s):\n", el, load0, loadavg())
	fmt.Printf("  %-36s %7.1f %%   target < 15 %%\n", "redis-manager", share(m1-m0))
	fmt.Printf("  %-36s %7.1f %%   (%.2f %% each)\n", fmt.Sprintf("%d redis-servers, summed", len(redis)), share(r1-r0), share(r1-r0)/float64(max(1, len(redis))))
	fmt.Printf("  %-36s %7.1f %%   (%.2f %% each)\n", fmt.Sprintf("%d Sentinels, summed", len(sentinels)), share(s1-s0), share(s1-s0)/float64(max(1, len(sentinels))))
	fmt.Printf("RSS of redis-manager: %.0f MB now, %.0f MB max over the window   target < 300 MB\n", rssMB(m.Pid()), rssMax)
	return nil
}

func takeProfile(port int, path string) error {
	fmt.Printf("CPU profile, 30 s; load %s\n", loadavg())
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=30", port))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	fmt.Printf("  written to %s (go tool pprof -top %s)\n", path, path)
	return err
}

// plain is a client that never asks for gzip by itself, so each request
// says what it accepts.
var plain = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// get fetches path, with Accept-Encoding: gzip when gz, and returns the
// time until the whole answer was read and its size on the wire.
func get(m *benchenv.Manager, path string, auth, gz bool) (time.Duration, int, error) {
	req, _ := http.NewRequest(http.MethodGet, m.URL+path, nil)
	if auth {
		req.Header.Set("Authorization", "Bearer "+m.Token)
	}
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	t := time.Now()
	resp, err := plain.Do(req)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err == nil && gz != (resp.Header.Get("Content-Encoding") == "gzip") {
		err = fmt.Errorf("GET %s (gzip %v): Content-Encoding %q", path, gz, resp.Header.Get("Content-Encoding"))
	}
	return d, int(n), err
}

func encoding(gz bool) string {
	if gz {
		return "Accept-Encoding: gzip"
	}
	return "no gzip"
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p * float64(len(s)-1))
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// measureScrape scrapes 2n times, gap apart, alternately with gzip (as
// Prometheus asks) and without, so both meet the same load. With a gap
// of two observe rounds every cluster's status was written since the
// last scrape (as for Prometheus scraping every 15 s): nothing is reused.
func measureScrape(m *benchenv.Manager, n int, gap time.Duration) error {
	load0 := loadavg()
	ds := map[bool][]time.Duration{}
	size := map[bool]int{}
	for i := 0; i < 2*n; i++ {
		gz := i%2 == 0
		d, sz, err := get(m, "/metrics", false, gz)
		if err != nil {
			return err
		}
		ds[gz] = append(ds[gz], d)
		size[gz] = sz
		time.Sleep(gap)
	}
	load1 := loadavg()
	for _, gz := range []bool{true, false} {
		fmt.Printf("/metrics, %d scrapes %s apart, %s (load %s → %s): median %s, max %s   target < 1 s; %.2f MB on the wire\n",
			n, gap, encoding(gz), load0, load1, ms(pct(ds[gz], 0.5)), ms(pct(ds[gz], 1)), float64(size[gz])/1e6)
	}
	return nil
}

// lines counts the series and the size of one uncompressed scrape.
func lines(m *benchenv.Manager) (int, float64) {
	resp, err := plain.Get(m.URL + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n, float64(len(b)) / 1e6
}

// measureList sends 2n requests 20 ms apart, alternately with gzip (as
// browsers and Go's client ask) and without.
func measureList(m *benchenv.Manager, n int) error {
	load0 := loadavg()
	ds := map[bool][]time.Duration{}
	size := map[bool]int{}
	for i := 0; i < 2*n; i++ {
		gz := i%2 == 0
		d, sz, err := get(m, "/api/v1/clusters", true, gz)
		if err != nil {
			return err
		}
		ds[gz] = append(ds[gz], d)
		size[gz] = sz
		time.Sleep(20 * time.Millisecond)
	}
	load1 := loadavg()
	for _, gz := range []bool{true, false} {
		fmt.Printf("GET /api/v1/clusters, %d requests, %s (load %s → %s): median %s, p99 %s   target p99 < 50 ms; max %s; %.2f MB on the wire\n",
			n, encoding(gz), load0, load1, ms(pct(ds[gz], 0.5)), ms(pct(ds[gz], 0.99)), ms(pct(ds[gz], 1)), float64(size[gz])/1e6)
	}
	return nil
}

// measureKills SIGKILLs the master of one shard per run (a different
// cluster each time) and polls GET /api/v1/clusters/{name} until the API
// shows it down, then until another instance of the shard is an up master.
func measureKills(ctx context.Context, cl *api.Client, c config) error {
	var noticed, failed []time.Duration
	fmt.Printf("killed masters (SIGKILL; the API polled every 20 ms):\n")
	for k := 0; k < c.kills; k++ {
		name := fmt.Sprintf("scale-%02d", (k*7)%c.clusters)
		shard := (k * 5) % c.shards
		x, err := cl.GetCluster(ctx, name)
		if err != nil {
			return err
		}
		ms := x.Status.Shards[shard].Master
		if ms == nil || !ms.Up || ms.Pid == 0 {
			return fmt.Errorf("%s shard %d has no up master with a pid", name, shard)
		}
		load0 := loadavg()
		t := time.Now()
		if err := syscall.Kill(ms.Pid, syscall.SIGKILL); err != nil {
			return err
		}
		var down, over time.Duration
		for down == 0 || over == 0 {
			if time.Since(t) > 2*time.Minute {
				return fmt.Errorf("%s shard %d: no failover 2 min after the kill", name, shard)
			}
			x, err := cl.GetCluster(ctx, name)
			if err != nil {
				return err
			}
			sh := x.Status.Shards[shard]
			if down == 0 {
				for _, in := range append([]api.InstanceStatus{deref(sh.Master)}, sh.Replicas...) {
					if in.Name == ms.Name && !in.Up {
						down = time.Since(t)
					}
				}
				if sh.Master != nil && sh.Master.Name != ms.Name && sh.Master.Up {
					down = time.Since(t) // failed over before a round showed it down
				}
			}
			if over == 0 && sh.Master != nil && sh.Master.Name != ms.Name && sh.Master.Up {
				over = time.Since(t)
			}
			time.Sleep(20 * time.Millisecond)
		}
		noticed, failed = append(noticed, down), append(failed, over)
		fmt.Printf("  %s shard %d (%s): shown down after %s, new master after %s (load %s → %s)\n",
			name, shard, ms.Name, down.Round(time.Millisecond), over.Round(time.Millisecond), load0, loadavg())
		// Let the manager replace the dead instance before the next kill.
		if err := waitAllReady(ctx, cl, c, 3*time.Minute); err != nil {
			return err
		}
	}
	fmt.Printf("  median: shown down after %s, new master after %s (the Sentinels' down-after-milliseconds is 5000 by default)\n",
		pct(noticed, 0.5).Round(time.Millisecond), pct(failed, 0.5).Round(time.Millisecond))
	return nil
}

func deref(p *api.InstanceStatus) api.InstanceStatus {
	if p == nil {
		return api.InstanceStatus{}
	}
	return *p
}
