// Command console measures the web console against a large store: the
// server's time to render the overview and a cluster page with 100
// clusters and 1,000 instances recorded (median and p99 over -requests
// sequential requests each, signed in, over one keep-alive loopback
// connection: from the request's first byte sent to the answer's last byte
// read), and the bytes a first load of each page moves (the HTML and every
// asset it loads, as headless Chromium reports them in the DevTools
// network events, encoded sizes with headers, cache disabled).
//
//	go run ./bench/console -bin bin/redis-manager -requests 200
//
// The store is a throwaway MariaDB database seeded directly through the
// store package: 100 clusters of 2 shards and 3 Sentinels, half with 2
// replicas per shard (9 instances) and half with 3 (11 instances): 1,000
// instances, with statuses as the observe loop writes them (most Ready,
// some Degraded with a replica down and lag, one Failed with a master
// down), events with failovers, jobs and backups. No redis-server runs.
//
// So that no manager tries to heal those instances, the manager measured is
// a standby: before it starts, the benchmark takes the store's leader lease
// under another id ("bench-holder", for an hour) and keeps it, so the
// manager never leads; it serves the API and the console from the store as
// every standby does (docs/ha.md), and its control loop never runs.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/bench/benchenv"
	"github.com/redis-manager/redis-manager/internal/e2eui"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/leader"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func main() {
	bin := flag.String("bin", "bin/redis-manager", "redis-manager binary")
	requests := flag.Int("requests", 200, "timed requests per page")
	clusters := flag.Int("clusters", 100, "clusters in the store (10 instances each on average)")
	base := flag.Int("port-base", 24800, "first port of the manager's (unused) port range")
	flag.Parse()
	if err := run(*bin, *requests, *clusters, *base); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(bin string, requests, clusters, base int) error {
	ctx := context.Background()
	db, err := testenv.StartMariaDBServer()
	if err != nil {
		return err
	}
	defer db.Stop()
	dsn, err := db.NewDatabase(fmt.Sprintf("console_%d", os.Getpid()))
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "redis-manager-bench-console-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, dsn, filepath.Join(dir, "secret.key"))
	if err != nil {
		return err
	}
	defer st.Close()
	seeded := time.Now()
	instances, err := seed(ctx, st, clusters)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	fmt.Fprintf(os.Stderr, "seeded %d clusters, %d instances in %.1fs\n", clusters, instances, time.Since(seeded).Seconds())
	// Another id holds the leader lease: the manager below stays a standby.
	if _, held, err := st.AcquireLease(ctx, leader.LeaseName, "bench-holder", time.Hour); err != nil || !held {
		return fmt.Errorf("take the leader lease: held %v, %v", held, err)
	}
	m, err := benchenv.StartIn(bin, dir, base, 40, "--store", dsn, "--id", "bench-standby")
	if err != nil {
		return err
	}
	defer m.Stop()
	if h, err := m.Client.Health(ctx); err != nil || h.Leader {
		return fmt.Errorf("the measured manager must be a standby: %+v %v", h, err)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if err := signIn(hc, m.URL, m.Token); err != nil {
		return err
	}
	name := fmt.Sprintf("c%03d", clusters/2) // a cluster of the larger shape
	pages := []struct{ what, path, page string }{
		{"overview", "/", "overview"},
		{"cluster page", "/clusters/" + name, "cluster"},
	}
	type result struct {
		median, p99, worst time.Duration
		bytes              int
	}
	results := map[string]result{}
	for _, p := range pages {
		var times []time.Duration
		size := 0
		for i := -10; i < requests; i++ { // 10 warm-up requests
			d, n, err := get(hc, m.URL+p.path, p.page)
			if err != nil {
				return fmt.Errorf("%s: %w", p.what, err)
			}
			if i >= 0 {
				times = append(times, d)
			}
			size = n
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		results[p.what] = result{times[len(times)/2], times[(len(times)*99+99)/100-1], times[len(times)-1], size}
	}
	loads, err := firstLoads(m.URL, m.Token, pages[0].path, pages[1].path)
	if err != nil {
		return err
	}
	fmt.Printf("console render, %d clusters / %d instances in the store (MariaDB), standby manager, signed in; %d sequential requests per page after 10 warm-up\n",
		clusters, instances, requests)
	fmt.Printf("%-14s  %-9s  %-9s  %-9s  %-10s  %-24s\n", "page", "median", "p99", "worst", "HTML", "first load (requests)")
	for i, p := range pages {
		r := results[p.what]
		fmt.Printf("%-14s  %-9s  %-9s  %-9s  %-10s  %s (%d)\n", p.what, ms(r.median), ms(r.p99), ms(r.worst), kb(int64(r.bytes)),
			kb(loads[i].Bytes), loads[i].Requests)
	}
	fmt.Printf("manager RSS after the run: %s (VmRSS of pid %d; its series of the 1,000 instances hold only the run's minutes)\n", rss(m.Pid()), m.Pid())
	for i, p := range pages {
		var urls []string
		for u := range loads[i].ByURL {
			urls = append(urls, u)
		}
		sort.Strings(urls)
		fmt.Printf("first load of the %s (%s):", p.what, p.path)
		for _, u := range urls {
			fmt.Printf(" %s %s;", u, kb(loads[i].ByURL[u]))
		}
		fmt.Println()
	}
	return nil
}

// signIn makes a console session with the admin token (POST
// /api/v1/session {"token"}); the jar keeps the cookie.
func signIn(hc *http.Client, base, token string) error {
	body, _ := json.Marshal(map[string]string{"token": token})
	res, err := hc.Post(base+"/api/v1/session", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return fmt.Errorf("sign in: POST /api/v1/session answered %d %s", res.StatusCode, b)
	}
	return nil
}

// get fetches a page and checks it is the signed-in page asked for.
func get(hc *http.Client, url, page string) (time.Duration, int, error) {
	start := time.Now()
	res, err := hc.Get(url)
	if err != nil {
		return 0, 0, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if res.StatusCode != 200 || !strings.Contains(string(b), `data-page="`+page+`"`) {
		return 0, 0, fmt.Errorf("GET %s: %d, not the %s page: %.200s", url, res.StatusCode, page, b)
	}
	return d, len(b), nil
}

// firstLoads signs in in headless Chromium (a session cookie set from
// the token sign-in) and loads each path once with the cache disabled.
func firstLoads(base, token string, paths ...string) ([]e2eui.Transfer, error) {
	b, err := e2eui.StartBrowser()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	t := &benchT{}
	defer t.cleanup()
	tab := b.NewTab(t, base)
	var out []e2eui.Transfer
	err = t.try(func() {
		tab.Go("/sign-in")
		e2eui.Eval[bool](tab, fmt.Sprintf(`fetch("/api/v1/session", {method: "POST", headers: {"Content-Type": "application/json"},
			body: JSON.stringify({token: %q})}).then(r => r.ok)`, token))
		for _, p := range paths {
			tr := tab.FirstLoad(p, time.Second)
			if pg := tab.Page(); pg == "sign-in" || pg == "" {
				t.Fatalf("%s in Chromium shows page %q: not signed in", p, pg)
			}
			out = append(out, tr)
		}
	})
	return out, err
}

// benchT is e2eui.T outside a test: Fatal stops the step being tried.
type benchT struct {
	failed   bool
	cleanups []func()
}

type fatal struct{ msg string }

func (t *benchT) Helper()                           {}
func (t *benchT) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (t *benchT) Fatal(args ...any)                 { t.failed = true; panic(fatal{fmt.Sprint(args...)}) }
func (t *benchT) Fatalf(format string, args ...any) { t.Fatal(fmt.Sprintf(format, args...)) }
func (t *benchT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *benchT) Failed() bool                      { return t.failed }

func (t *benchT) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

func (t *benchT) try(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%s", f.msg)
		}
	}()
	f()
	return nil
}

// seed records clusters (half 2×(1+2)+3 = 9 instances, half 2×(1+3)+3 =
// 11) with their instances, statuses, events, jobs and backups, and returns
// the number of instances.
func seed(ctx context.Context, st store.Store, n int) (int, error) {
	rng := rand.New(rand.NewPCG(13, 13))
	now := time.Now().UTC()
	port := 20000
	total := 0
	for c := 0; c < n; c++ {
		name := fmt.Sprintf("c%03d", c)
		replicas := 2
		if c >= n/2 {
			replicas = 3
		}
		spec := api.ClusterSpec{Shards: 2, Replicas: replicas, Sentinels: 3, Maxmemory: "1gb", MaxmemoryPolicy: "allkeys-lru",
			Persistence: "rdb", Sentinel: api.SentinelSettings{DownAfterMs: 5000, FailoverTimeoutMs: 10000, ParallelSyncs: 1}, FastFailover: true}
		created := now.Add(-time.Duration(rng.IntN(30*24)) * time.Hour)
		observed := now.Add(-time.Duration(rng.IntN(2000)) * time.Millisecond)
		status := api.ClusterStatus{Phase: api.PhaseReady, ObservedAt: &observed}
		var insts []store.Instance
		addr := func() (string, int) { port++; return "127.0.0.1", port }
		for sh := 0; sh < 2; sh++ {
			ss := api.ShardStatus{Index: sh, SentinelName: fmt.Sprintf("%s-%d", name, sh)}
			keys := int64(50000 + rng.IntN(2000000))
			for o := 0; o <= replicas; o++ {
				h, p := addr()
				in := store.Instance{Name: fmt.Sprintf("%s-%d-%d", name, sh, o), Cluster: name, Kind: store.KindRedis, Shard: sh, Ordinal: o,
					Host: h, Port: p, CreatedAt: created}
				insts = append(insts, in)
				hits := int64(rng.IntN(50_000_000))
				is := api.InstanceStatus{Name: in.Name, Address: fmt.Sprintf("%s:%d", h, p), Up: true, Pid: 100000 + port, Keys: keys,
					UsedMemoryBytes: int64(200<<20 + rng.IntN(700<<20)), MaxmemoryBytes: 1 << 30,
					OpsPerSec: int64(rng.IntN(20000)), ConnectedClients: int64(5 + rng.IntN(300)),
					KeyspaceHits: hits, KeyspaceMisses: hits / int64(5+rng.IntN(20)), UsedCPUSeconds: float64(rng.IntN(90000)) / 10,
					EvictedKeys: int64(rng.IntN(1000))}
				if o == 0 {
					is.Role = "master"
					v := is
					ss.Master = &v
				} else {
					is.Role, is.MasterLinkStatus, is.LagBytes = "replica", "up", int64(rng.IntN(400))
					ss.Replicas = append(ss.Replicas, is)
				}
			}
			status.Shards = append(status.Shards, ss)
		}
		for s := 0; s < 3; s++ {
			h, p := addr()
			in := store.Instance{Name: fmt.Sprintf("%s-sentinel-%d", name, s), Cluster: name, Kind: store.KindSentinel, Shard: -1, Ordinal: s,
				Host: h, Port: p, CreatedAt: created}
			insts = append(insts, in)
			status.Sentinels = append(status.Sentinels, api.SentinelStatus{Name: in.Name, Address: fmt.Sprintf("%s:%d", h, p), Up: true,
				Pid: 100000 + port, Monitors: []string{name + "-0", name + "-1"}})
		}
		switch {
		case c%17 == 3: // a replica down, another lagging
			status.Phase, status.Reason = api.PhaseDegraded, fmt.Sprintf("replica %s-1-1 is down", name)
			r := &status.Shards[1].Replicas[0]
			r.Up, r.MasterLinkStatus, r.LagBytes, r.Keys, r.UsedMemoryBytes = false, "down", 0, 0, 0
			status.Shards[1].Replicas[1].LagBytes = 48 << 20
		case c == 42: // a master down and no quorum to replace it
			status.Phase, status.Reason = api.PhaseFailed, fmt.Sprintf("shard 0 has no master: %s-0-0 is down and 2 of 3 Sentinels are down", name)
			status.Shards[0].Master.Up = false
			status.Sentinels[1].Up, status.Sentinels[2].Up = false, false
		}
		job := jobspec.New(api.JobCreate, name, created)
		cl := store.Cluster{Name: name, Spec: spec, Status: status, Password: randomHex(rng), SentinelPassword: randomHex(rng), CreatedAt: created}
		if err := st.CreateClusterWithJob(ctx, cl, job); err != nil {
			return 0, err
		}
		started, finished := created.Add(50*time.Millisecond), created.Add(1800*time.Millisecond)
		job.State, job.Progress, job.Message, job.StartedAt, job.FinishedAt = api.StateSucceeded, 1, "cluster is ready", &started, &finished
		job.Steps = []api.Step{{Name: "start-instances", State: api.StateSucceeded, StartedAt: &started, FinishedAt: &finished},
			{Name: "wait-ready", State: api.StateSucceeded, StartedAt: &started, FinishedAt: &finished}}
		if err := st.UpdateJob(ctx, job); err != nil {
			return 0, err
		}
		for _, in := range insts {
			if err := st.PutInstance(ctx, in); err != nil {
				return 0, err
			}
		}
		total += len(insts)
		if err := st.AddEvent(ctx, api.Event{ID: jobspec.NewID("e"), Cluster: name, Type: "created", At: finished,
			Message: fmt.Sprintf("cluster created: 2 shards × %d replicas, 3 Sentinels", replicas)}); err != nil {
			return 0, err
		}
		// A failover a night, for a week, on a third of the clusters.
		if c%3 == 0 {
			for d := 7; d >= 1; d-- {
				at := now.Add(-time.Duration(d)*24*time.Hour + time.Duration(rng.IntN(3600))*time.Second)
				sh := rng.IntN(2)
				detected, promoted := at.Add(-900*time.Millisecond), at.Add(-300*time.Millisecond)
				if err := st.AddEvent(ctx, api.Event{ID: jobspec.NewID("e"), Cluster: name, Shard: &sh, Type: "failover", At: at,
					Message: fmt.Sprintf("failover of %s-%d", name, sh),
					Details: map[string]any{"oldMaster": fmt.Sprintf("127.0.0.1:%d", port-5), "newMaster": fmt.Sprintf("127.0.0.1:%d", port-4),
						"detectedAt": detected, "promotedAt": promoted, "switchedAt": at, "fast": true, "writeUnavailableMs": 1100}}); err != nil {
					return 0, err
				}
			}
		}
		// A nightly backup of each shard for a week.
		for d := 7; d >= 1; d-- {
			for sh := 0; sh < 2; sh++ {
				at := now.Add(-time.Duration(d) * 24 * time.Hour)
				fin := at.Add(4 * time.Second)
				b := store.Backup{Backup: api.Backup{ID: jobspec.NewID("b"), Cluster: name, Shard: sh, State: api.StateSucceeded,
					Target: fmt.Sprintf("file:///var/backups/%s/%d/%d.rdb", name, sh, at.Unix()), SizeBytes: int64(100<<20 + rng.IntN(400<<20)),
					CRC64: fmt.Sprintf("%016x", rng.Uint64()), Keys: int64(rng.IntN(2000000)), SourceInstance: fmt.Sprintf("%s-%d-1", name, sh),
					StartedAt: at, FinishedAt: &fin, DurationMs: 4000, Verified: true}, TargetURL: "file:///var/backups", ObjectKey: fmt.Sprintf("%s/%d/%d.rdb", name, sh, at.Unix()), SourceSpec: &spec}
				if err := st.PutBackup(ctx, b); err != nil {
					return 0, err
				}
			}
		}
	}
	return total, nil
}

// rss is a process's resident set size as /proc says.
func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func randomHex(rng *rand.Rand) string { return fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func kb(n int64) string { return fmt.Sprintf("%.1f kB", float64(n)/1000) }
