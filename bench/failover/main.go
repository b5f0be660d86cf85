// Command failover measures write unavailability after kill -9 of a master:
// from the kill to the first write acknowledged with WAIT 1 on the new
// master, through a Sentinel-aware client, over N runs, for plain Sentinel
// (processes and Sentinels set up by hand, down-after 5000 ms, no manager)
// and for Redis Manager (same settings, fast failover on), in the same run.
// For the manager it also measures the time until the replica count is back
// to spec (the cluster is Ready again).
//
//	go run ./bench/failover -bin bin/redis-manager -runs 20
package main

import (
	"context"
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
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/bench/benchenv"
)

func main() {
	bin := flag.String("bin", "bin/redis-manager", "redis-manager binary")
	runs := flag.Int("runs", 20, "kills per setup")
	base := flag.Int("port-base", 23400, "first port to use")
	skipPlain := flag.Bool("skip-plain", false, "measure only redis-manager")
	flag.Parse()
	redis.SetLogger(quiet{})
	if err := run(*bin, *runs, *base, *skipPlain); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

const downAfterMs = 5000

func run(bin string, runs, base int, skipPlain bool) error {
	ctx := context.Background()
	var plain []time.Duration
	plainUnsettled := 0
	if !skipPlain {
		p, err := startPlain(ctx, base+100)
		if err != nil {
			return fmt.Errorf("plain setup: %w", err)
		}
		for i := 0; i < runs; i++ {
			d, err := p.killMaster(ctx)
			if d > 0 {
				fmt.Fprintf(os.Stderr, "plain run %d: writes unavailable %.2fs\n", i+1, d.Seconds())
				plain = append(plain, d)
			}
			if err != nil {
				// Plain Sentinel did not settle after the run (counted
				// below); start a fresh setup for the next one.
				fmt.Fprintf(os.Stderr, "plain run %d: %v; rebuilding the plain setup\n", i+1, err)
				plainUnsettled++
				p.stop()
				if p, err = startPlain(ctx, base+100); err != nil {
					return fmt.Errorf("plain setup: %w", err)
				}
			}
		}
		p.stop()
	}

	m, err := benchenv.Start(bin, base, 40)
	if err != nil {
		return err
	}
	defer m.Stop()
	c := m.Client
	res, err := c.CreateCluster(ctx, api.CreateClusterRequest{Name: "fo", Sentinel: &api.SentinelRequest{DownAfterMs: benchenv.Int(downAfterMs)}})
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
	var ours, restored []time.Duration
	for i := 0; i < runs; i++ {
		cl, err := waitReady(ctx, c, "fo", time.Time{})
		if err != nil {
			return err
		}
		w := startWriter(cl.Connection.Sentinels, "fo-0", creds.Password, creds.SentinelPassword)
		time.Sleep(300 * time.Millisecond)
		if err := syscall.Kill(cl.Status.Shards[0].Master.Pid, syscall.SIGKILL); err != nil {
			return err
		}
		killed := time.Now()
		d, err := w.firstAckAfter(killed, 60*time.Second)
		w.stop()
		if err != nil {
			return fmt.Errorf("manager run %d: %w", i, err)
		}
		if _, err := waitReady(ctx, c, "fo", killed); err != nil {
			return err
		}
		back := time.Since(killed)
		fmt.Fprintf(os.Stderr, "manager run %d: writes unavailable %.2fs, replicas back to spec after %.2fs\n", i+1, d.Seconds(), back.Seconds())
		ours = append(ours, d)
		restored = append(restored, back)
	}

	fmt.Printf("\nwrite unavailability after kill -9 of the master, %d runs each, down-after %d ms (redis-server %s)\n", runs, downAfterMs, benchenv.RedisVersion())
	fmt.Printf("%-44s %8s %8s %8s\n", "setup", "median", "worst", "best")
	if len(plain) > 0 {
		fmt.Printf("%-44s %7.2fs %7.2fs %7.2fs\n", "plain Sentinel (no manager)", med(plain), worst(plain), best(plain))
	}
	fmt.Printf("%-44s %7.2fs %7.2fs %7.2fs\n", "Redis Manager (fast failover)", med(ours), worst(ours), best(ours))
	fmt.Printf("%-44s %7.2fs %7.2fs %7.2fs\n", "Redis Manager: replica count back to spec", med(restored), worst(restored), best(restored))
	if len(plain) > 0 {
		fmt.Printf("median speed-up: %.1fx\n", med(plain)/med(ours))
	}
	if plainUnsettled > 0 {
		fmt.Printf("plain Sentinel did not settle after %d of %d runs (the setup was rebuilt)\n", plainUnsettled, runs)
	}
	return nil
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

// ack is one acknowledged write: when it was sent and when WAIT 1 returned.
type ack struct{ issued, at time.Time }

// writer writes with WAIT 1 through a Sentinel-aware client and records
// when writes were acknowledged.
type writer struct {
	client *redis.Client
	mu     sync.Mutex
	acks   []ack
	done   chan struct{}
	wg     sync.WaitGroup
}

func startWriter(sentinels []string, master, password, sentinelPassword string) *writer {
	w := &writer{
		client: redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: master, SentinelAddrs: sentinels, Password: password, SentinelPassword: sentinelPassword,
			Protocol: 2, DialTimeout: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
			WriteTimeout: 500 * time.Millisecond, MaxRetries: -1,
		}),
		done: make(chan struct{}),
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		ctx := context.Background()
		for i := 0; ; i++ {
			select {
			case <-w.done:
				return
			default:
			}
			issued := time.Now()
			cmds, err := w.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "bench:"+strconv.Itoa(i), i, 0)
				p.Do(ctx, "WAIT", 1, 500)
				return nil
			})
			if err == nil {
				if n, _ := cmds[1].(*redis.Cmd).Int(); n >= 1 {
					w.mu.Lock()
					w.acks = append(w.acks, ack{issued: issued, at: time.Now()})
					w.mu.Unlock()
					continue
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return w
}

func (w *writer) firstAckAfter(t time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for _, a := range w.acks {
			// Sent after the kill, so the old master cannot have taken it.
			if a.issued.After(t) {
				w.mu.Unlock()
				return a.at.Sub(t), nil
			}
		}
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no acknowledged write within %s of the kill", timeout)
}

func (w *writer) stop() {
	close(w.done)
	w.wg.Wait()
	w.client.Close()
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

func startPlain(ctx context.Context, port int) (*plain, error) {
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

// killMaster kills the master, measures the write gap, then brings the old
// master back by hand as a replica of the new one (the plain way) and waits
// until the setup is healthy again.
func (p *plain) killMaster(ctx context.Context) (time.Duration, error) {
	mp, err := p.masterPort(ctx)
	if err != nil {
		return 0, err
	}
	w := startWriter(p.sentAddrs, "plain", plainPass, "")
	time.Sleep(300 * time.Millisecond)
	p.mu.Lock()
	_ = p.redis[mp].Process.Kill()
	p.mu.Unlock()
	killed := time.Now()
	d, err := w.firstAckAfter(killed, 60*time.Second)
	w.stop()
	if err != nil {
		return 0, err
	}
	newPort, err := p.masterPort(ctx)
	if err != nil {
		return d, err
	}
	if err := p.startRedis(mp, newPort); err != nil {
		return d, err
	}
	return d, p.waitHealthy(ctx, 2)
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
