// Command replica measures how long a new replica takes to reach
// master_link_status:up when a shard holds a large dataset: through
// redis-manager (`PATCH replicas +1`, the manager starts it as a replica of
// the master Sentinel names) and by hand (a plain redis-server and
// `redis-cli REPLICAOF`), against the same master in the same run.
//
//	go run ./bench/replica -bin bin/redis-manager -gb 1
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/bench/benchenv"
)

func main() {
	bin := flag.String("bin", "bin/redis-manager", "redis-manager binary")
	gb := flag.Float64("gb", 1, "dataset size in GB (1 KB values)")
	base := flag.Int("port-base", 23200, "first port to use")
	flag.Parse()
	if err := run(*bin, *gb, *base); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(bin string, gb float64, base int) error {
	ctx := context.Background()
	m, err := benchenv.Start(bin, base, 20)
	if err != nil {
		return err
	}
	defer m.Stop()
	c := m.Client
	res, err := c.CreateCluster(ctx, api.CreateClusterRequest{Name: "sync", Replicas: benchenv.Int(0), Persistence: "none"})
	if err != nil {
		return err
	}
	if _, err := c.WaitJob(ctx, res.Job.ID, nil); err != nil {
		return err
	}
	cl, err := c.GetCluster(ctx, "sync")
	if err != nil {
		return err
	}
	creds, err := c.Credentials(ctx, "sync")
	if err != nil {
		return err
	}
	master := cl.Status.Shards[0].Master.Address
	mc := redis.NewClient(&redis.Options{Addr: master, Password: creds.Password, Protocol: 2, ReadTimeout: time.Minute})
	defer mc.Close()

	keys := int(gb * 1e9 / 1024)
	fmt.Printf("loading %d keys of 1 KB into %s ...\n", keys, master)
	if err := load(ctx, mc, keys); err != nil {
		return err
	}
	info, _ := mc.Info(ctx, "memory").Result()
	fmt.Printf("master used_memory: %s\n", field(info, "used_memory_human"))

	// Plain: a redis-server started by hand, then REPLICAOF with redis-cli.
	plain, err := plainReplica(ctx, base+15, master, creds.Password)
	if err != nil {
		return fmt.Errorf("plain replica: %w", err)
	}

	// Ours: PATCH replicas 0 -> 1.
	start := time.Now()
	up, err := c.UpdateCluster(ctx, "sync", api.UpdateClusterRequest{Replicas: benchenv.Int(1)})
	if err != nil {
		return err
	}
	var linkUp time.Duration
	for linkUp == 0 {
		cl, err := c.GetCluster(ctx, "sync")
		if err == nil && len(cl.Status.Shards[0].Replicas) == 1 {
			r := cl.Status.Shards[0].Replicas[0]
			rc := redis.NewClient(&redis.Options{Addr: r.Address, Password: creds.Password, Protocol: 2})
			if info, err := rc.Info(ctx, "replication").Result(); err == nil && field(info, "master_link_status") == "up" {
				linkUp = time.Since(start)
			}
			rc.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.WaitJob(ctx, up.Job.ID, nil); err != nil {
		return err
	}
	jobDone := time.Since(start)

	fmt.Printf("\nnew replica to master_link_status:up, %.2f GB dataset (redis-server %s)\n", gb, benchenv.RedisVersion())
	fmt.Printf("%-40s %8s\n", "method", "seconds")
	fmt.Printf("%-40s %8.2f\n", "plain: redis-cli REPLICAOF", plain.Seconds())
	fmt.Printf("%-40s %8.2f  (%+.1f%% vs plain)\n", "redis-manager: scale replicas 0→1", linkUp.Seconds(), 100*(linkUp.Seconds()/plain.Seconds()-1))
	fmt.Printf("%-40s %8.2f  (job also waits for every Sentinel to list it)\n", "redis-manager: whole scale job", jobDone.Seconds())
	return nil
}

func load(ctx context.Context, c *redis.Client, keys int) error {
	val := strings.Repeat("v", 1024-16)
	for i := 0; i < keys; i += 2000 {
		p := c.Pipeline()
		for j := i; j < min(i+2000, keys); j++ {
			p.Set(ctx, "key:"+strconv.Itoa(j), val, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

func field(info, name string) string {
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return v
		}
	}
	return ""
}

// plainReplica starts a redis-server with the same replication settings the
// manager uses, runs `redis-cli REPLICAOF`, waits for the link, and stops it.
func plainReplica(ctx context.Context, port int, master, password string) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "plain-replica-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsave \"\"\nmasterauth %s\nrequirepass %s\nrepl-diskless-sync yes\nrepl-diskless-sync-delay 0\n",
		port, dir, password, password)
	if err := os.WriteFile(filepath.Join(dir, "redis.conf"), []byte(conf), 0o600); err != nil {
		return 0, err
	}
	srv := exec.Command("redis-server", filepath.Join(dir, "redis.conf"))
	if err := srv.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Password: password, Protocol: 2})
	defer rc.Close()
	for rc.Ping(ctx).Err() != nil {
		time.Sleep(10 * time.Millisecond)
	}
	host, mport, _ := strings.Cut(master, ":")
	start := time.Now()
	out, err := exec.Command("redis-cli", "-p", strconv.Itoa(port), "-a", password, "--no-auth-warning", "REPLICAOF", host, mport).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("redis-cli: %v %s", err, out)
	}
	for {
		info, err := rc.Info(ctx, "replication").Result()
		if err == nil && field(info, "master_link_status") == "up" {
			return time.Since(start), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}
