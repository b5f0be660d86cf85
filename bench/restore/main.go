// Command restore measures backups and restores through the running
// manager, the way users run them: a shard holding a large dataset is
// backed up with POST /clusters/{name}/backups (to the file:// target),
// next to `redis-cli --rdb` of the same replica in the same run; the
// manager's resident memory is sampled during the backup against its idle
// figure; then the backup is restored into a new cluster and timed from
// the request to a Ready cluster.
//
//	go run ./bench/restore -bin bin/redis-manager -mb 600
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/bench/benchenv"
)

func main() {
	bin := flag.String("bin", "bin/redis-manager", "redis-manager binary")
	mb := flag.Int("mb", 600, "dataset size in MB (1 KB values, rdbcompression off)")
	base := flag.Int("port-base", 23600, "first port to use")
	flag.Parse()
	if err := run(*bin, *mb, *base); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(bin string, mb, base int) error {
	ctx := context.Background()
	m, err := benchenv.Start(bin, base, 40)
	if err != nil {
		return err
	}
	defer m.Stop()
	c := m.Client
	res, err := c.CreateCluster(ctx, api.CreateClusterRequest{Name: "big", Replicas: benchenv.Int(1), Persistence: "none",
		Config: map[string]string{"rdbcompression": "no"}})
	if err != nil {
		return err
	}
	if _, err := c.WaitJob(ctx, res.Job.ID, nil); err != nil {
		return err
	}
	cl, err := c.GetCluster(ctx, "big")
	if err != nil {
		return err
	}
	creds, err := c.Credentials(ctx, "big")
	if err != nil {
		return err
	}
	mc := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Master.Address, Password: creds.Password, Protocol: 2, ReadTimeout: time.Minute})
	defer mc.Close()
	keys := mb * 1000 * 1000 / 1024
	fmt.Fprintf(os.Stderr, "loading %d keys of 1 KB ...\n", keys)
	val := strings.Repeat("v", 1024-16)
	for i := 0; i < keys; i += 2000 {
		p := mc.Pipeline()
		for j := i; j < min(i+2000, keys); j++ {
			p.Set(ctx, "key:"+strconv.Itoa(j), val, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			return err
		}
	}
	if err := mc.Do(ctx, "WAIT", 1, 60000).Err(); err != nil {
		return err
	}
	replica := cl.Status.Shards[0].Replicas[0].Address

	// Plain: redis-cli --rdb from the same replica.
	dir, err := os.MkdirTemp("", "bench-restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	host, port, _ := strings.Cut(replica, ":")
	start := time.Now()
	out, err := exec.Command("redis-cli", "-h", host, "-p", port, "-a", creds.Password, "--no-auth-warning",
		"--rdb", filepath.Join(dir, "plain.rdb")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("redis-cli --rdb: %v %s", err, out)
	}
	plain := time.Since(start)
	st, err := os.Stat(filepath.Join(dir, "plain.rdb"))
	if err != nil {
		return err
	}
	os.Remove(filepath.Join(dir, "plain.rdb"))

	// Ours, through the API, with the manager's RSS sampled.
	idle := rssKB(m.Pid())
	var peak int64
	var mu sync.Mutex
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if v := rssKB(m.Pid()); v > 0 {
					mu.Lock()
					peak = max(peak, v)
					mu.Unlock()
				}
			}
		}
	}()
	start = time.Now()
	br, err := c.CreateBackup(ctx, "big", benchenv.Int(0))
	if err != nil {
		return err
	}
	if _, err := c.WaitJob(ctx, br.Job.ID, nil); err != nil {
		return err
	}
	ours := time.Since(start)
	close(stop)
	b, err := c.GetBackup(ctx, br.Backups[0].ID)
	if err != nil {
		return err
	}

	// Restore into a new cluster: request → Ready.
	start = time.Now()
	rr, err := c.RestoreBackup(ctx, b.ID, api.RestoreRequest{Cluster: "big-copy"})
	if err != nil {
		return err
	}
	if _, err := c.WaitJob(ctx, rr.Job.ID, nil); err != nil {
		return err
	}
	for {
		cl, err := c.GetCluster(ctx, "big-copy")
		if err == nil && cl.Status.Phase == api.PhaseReady {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	restore := time.Since(start)
	copyCl, _ := c.GetCluster(ctx, "big-copy")

	mbps := func(bytes int64, d time.Duration) float64 { return float64(bytes) / 1e6 / d.Seconds() }
	fmt.Printf("\nbackup of one shard, RDB %.1f MB, %d keys (redis-server %s)\n", float64(b.SizeBytes)/1e6, b.Keys, benchenv.RedisVersion())
	fmt.Printf("%-46s %8s %9s %8s\n", "method", "seconds", "MB/s", "% plain")
	fmt.Printf("%-46s %8.2f %9.1f %8s\n", "plain: redis-cli --rdb (replica → file)", plain.Seconds(), mbps(st.Size(), plain), "100%")
	fmt.Printf("%-46s %8.2f %9.1f %7.0f%%\n", "redis-manager: backup job (API → file://)", ours.Seconds(), mbps(b.SizeBytes, ours), 100*mbps(b.SizeBytes, ours)/mbps(st.Size(), plain))
	fmt.Printf("%-46s %8.2f %9.1f %7.0f%%\n", "  of which streaming (record's durationMs)", float64(b.DurationMs)/1000, mbps(b.SizeBytes, time.Duration(b.DurationMs)*time.Millisecond), 100*mbps(b.SizeBytes, time.Duration(b.DurationMs)*time.Millisecond)/mbps(st.Size(), plain))
	fmt.Printf("manager RSS: idle %.1f MB, peak during the backup %.1f MB (+%.1f MB)\n", float64(idle)/1024, float64(peak)/1024, float64(peak-idle)/1024)
	fmt.Printf("restore into a new 1×1×3 cluster, request → Ready: %.2f s (master keys %d)\n", restore.Seconds(), copyCl.Status.Shards[0].Master.Keys)
	return nil
}

func rssKB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
