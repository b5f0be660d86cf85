// Command create measures how long a cluster takes from the create request
// to Ready, for 1×2×3 and 2×2×3 clusters, next to the same setup done by
// hand the plain way (redis-server processes, REPLICAOF in the config,
// SENTINEL MONITOR + SET, then waiting until every Sentinel sees the
// replicas and the other Sentinels) in the same run.
//
//	go run ./bench/create -bin bin/redis-manager -runs 5
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
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/bench/benchenv"
)

func main() {
	bin := flag.String("bin", "bin/redis-manager", "redis-manager binary")
	runs := flag.Int("runs", 5, "runs per shape")
	base := flag.Int("port-base", 23000, "first port to use")
	flag.Parse()
	if err := run(*bin, *runs, *base); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type shape struct{ shards, replicas, sentinels int }

func (s shape) String() string { return fmt.Sprintf("%d×%d×%d", s.shards, s.replicas, s.sentinels) }

func run(bin string, runs, base int) error {
	ctx := context.Background()
	m, err := benchenv.Start(bin, base, 100)
	if err != nil {
		return err
	}
	defer m.Stop()
	c := m.Client
	dir := m.DataDir

	fmt.Printf("create → Ready, %d runs each (redis-server %s)\n", runs, benchenv.RedisVersion())
	fmt.Printf("%-8s  %-28s  %-28s\n", "shape", "redis-manager median (min–max)", "plain by hand median (min–max)")
	for _, s := range []shape{{1, 2, 3}, {2, 2, 3}} {
		var ours, plain []time.Duration
		for i := 0; i < runs; i++ {
			d, err := createOnce(ctx, c, s, i)
			if err != nil {
				return err
			}
			ours = append(ours, d)
			d, err = plainOnce(ctx, filepath.Join(dir, "plain"), base+100+i%2*50, s)
			if err != nil {
				return fmt.Errorf("plain setup: %w", err)
			}
			plain = append(plain, d)
		}
		fmt.Printf("%-8s  %-28s  %-28s\n", s, summary(ours), summary(plain))
	}
	return nil
}

func summary(ds []time.Duration) string {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	r := func(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
	return fmt.Sprintf("%s (%s–%s)", r(ds[len(ds)/2]), r(ds[0]), r(ds[len(ds)-1]))
}

// createOnce times POST /clusters until GET shows Ready, then deletes.
func createOnce(ctx context.Context, c *api.Client, s shape, i int) (time.Duration, error) {
	name := fmt.Sprintf("bench-%d", i)
	start := time.Now()
	res, err := c.CreateCluster(ctx, api.CreateClusterRequest{Name: name, Shards: &s.shards, Replicas: &s.replicas, Sentinels: &s.sentinels})
	if err != nil {
		return 0, err
	}
	for {
		cl, err := c.GetCluster(ctx, name)
		if err != nil {
			return 0, err
		}
		if cl.Status.Phase == api.PhaseReady {
			break
		}
		if j, err := c.GetJob(ctx, res.Job.ID); err == nil && j.State == api.StateFailed {
			return 0, fmt.Errorf("create failed: %s", j.Error)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	job, err := c.DeleteCluster(ctx, name)
	if err != nil {
		return 0, err
	}
	_, err = c.WaitJob(ctx, job.ID, nil)
	return took, err
}

// plainOnce does the same setup by hand, the way a script would: start the
// processes, wait for replication, MONITOR + SET on every Sentinel, wait
// until every Sentinel lists the replicas and the other Sentinels.
func plainOnce(ctx context.Context, root string, port int, s shape) (time.Duration, error) {
	os.RemoveAll(root)
	defer os.RemoveAll(root)
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}()
	start := time.Now()
	startProc := func(name, conf string, sentinel bool) error {
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		f := filepath.Join(d, "redis.conf")
		if err := os.WriteFile(f, []byte(conf+"\ndir "+d+"\n"), 0o600); err != nil {
			return err
		}
		args := []string{f}
		if sentinel {
			args = append(args, "--sentinel")
		}
		cmd := exec.Command("redis-server", args...)
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
		return nil
	}
	p := port
	var sentinels, masters []string
	for i := 0; i < s.sentinels; i++ {
		if err := startProc(fmt.Sprintf("s%d", i), fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel resolve-hostnames no", p), true); err != nil {
			return 0, err
		}
		sentinels = append(sentinels, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		p++
	}
	var replicas []string
	for sh := 0; sh < s.shards; sh++ {
		master := p
		masters = append(masters, strconv.Itoa(master))
		for o := 0; o <= s.replicas; o++ {
			conf := fmt.Sprintf("port %d\nbind 127.0.0.1\nrepl-diskless-sync-delay 0\nsave \"\"", p)
			if o > 0 {
				conf += fmt.Sprintf("\nreplicaof 127.0.0.1 %d", master)
				replicas = append(replicas, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			}
			if err := startProc(fmt.Sprintf("r%d-%d", sh, o), conf, false); err != nil {
				return 0, err
			}
			p++
		}
	}
	waitFor := func(check func() bool) error {
		deadline := time.Now().Add(60 * time.Second)
		for !check() {
			if time.Now().After(deadline) {
				return fmt.Errorf("timed out")
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}
	for _, r := range replicas {
		c := redis.NewClient(&redis.Options{Addr: r, Protocol: 2, DisableIdentity: true})
		err := waitFor(func() bool {
			info, err := c.Info(ctx, "replication").Result()
			return err == nil && strings.Contains(info, "master_link_status:up")
		})
		c.Close()
		if err != nil {
			return 0, err
		}
	}
	for _, sa := range sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sa, Protocol: 2, DisableIdentity: true})
		err := waitFor(func() bool { return sc.Ping(ctx).Err() == nil })
		for i, m := range masters {
			if err == nil {
				err = sc.Monitor(ctx, fmt.Sprintf("plain-%d", i), "127.0.0.1", m, strconv.Itoa(s.sentinels/2+1)).Err()
			}
			if err == nil {
				err = sc.Set(ctx, fmt.Sprintf("plain-%d", i), "down-after-milliseconds", "5000").Err()
			}
		}
		sc.Close()
		if err != nil {
			return 0, err
		}
	}
	for _, sa := range sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sa, Protocol: 2, DisableIdentity: true})
		err := waitFor(func() bool {
			for i := range masters {
				m, err := sc.Master(ctx, fmt.Sprintf("plain-%d", i)).Result()
				if err != nil || m["num-slaves"] != strconv.Itoa(s.replicas) || m["num-other-sentinels"] != strconv.Itoa(s.sentinels-1) {
					return false
				}
			}
			return true
		})
		sc.Close()
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
