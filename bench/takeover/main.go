// Command takeover measures how long a standby manager takes to lead after
// the leader is killed with SIGKILL in the middle of a scale job (replicas
// 2→4 of a 1×2×3 cluster), and how long until that job is finished by the
// new leader. Two managers share one MariaDB database and one data dir, as
// managers on one host do; each run uses a fresh database and data dir.
// There is no plain-tool counterpart: Sentinel has no leader election of
// its own to compare with.
//
//	go run ./bench/takeover -bin bin/redis-manager -runs 5
//
// Without -dsn it starts a throwaway MariaDB (mariadb-server must be
// installed); with -dsn mysql://user:pass@host:port/ each run creates its
// own database there (the user needs CREATE).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/bench/benchenv"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func main() {
	bin := flag.String("bin", "bin/redis-manager", "redis-manager binary")
	runs := flag.Int("runs", 5, "leader kills")
	base := flag.Int("port-base", 23800, "first port to use")
	flag.Parse()
	if err := run(*bin, *runs, *base); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(bin string, runs, base int) error {
	db, err := testenv.StartMariaDBServer()
	if err != nil {
		return err
	}
	defer db.Stop()
	var lead, job []time.Duration
	for i := 0; i < runs; i++ {
		dsn, err := db.NewDatabase(fmt.Sprintf("takeover_%d_%d", os.Getpid(), i))
		if err != nil {
			return err
		}
		l, j, err := once(bin, dsn, base)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Fprintf(os.Stderr, "run %d: standby leads after %.2fs, interrupted job done after %.2fs\n", i+1, l.Seconds(), j.Seconds())
		lead, job = append(lead, l), append(job, j)
	}
	fmt.Printf("takeover after SIGKILL of the leader during a scale job, %d runs (redis-server %s, MariaDB)\n", runs, benchenv.RedisVersion())
	fmt.Printf("%-36s  %-8s  %-8s\n", "", "median", "worst")
	fmt.Printf("%-36s  %-8s  %-8s\n", "standby is leader (health)", secs(median(lead)), secs(worst(lead)))
	fmt.Printf("%-36s  %-8s  %-8s\n", "interrupted job finished", secs(median(job)), secs(worst(job)))
	if worst(lead) > 10*time.Second {
		fmt.Println("target missed: a standby should lead within 10 s")
	}
	return nil
}

// once runs one takeover and returns the times from the SIGKILL until the
// standby says it leads and until the interrupted job succeeded.
func once(bin, dsn string, base int) (toLead, toJob time.Duration, err error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "redis-manager-bench-")
	if err != nil {
		return 0, 0, err
	}
	m1, err := benchenv.StartIn(bin, dir, base, 40, "--store", dsn, "--id", "m1")
	if err != nil {
		return 0, 0, err
	}
	defer m1.Stop()
	m2, err := benchenv.StartIn(bin, dir, base, 40, "--store", dsn, "--id", "m2")
	if err != nil {
		return 0, 0, err
	}
	defer m2.Stop()
	if h, err := m1.Client.Health(ctx); err != nil || !h.Leader {
		return 0, 0, fmt.Errorf("m1 should lead: %+v %v", h, err)
	}
	res, err := m2.Client.CreateCluster(ctx, api.CreateClusterRequest{Name: "to", Replicas: benchenv.Int(2)})
	if err != nil {
		return 0, 0, err
	}
	if j, err := m2.Client.WaitJob(ctx, res.Job.ID, nil); err != nil || j.State != api.StateSucceeded {
		return 0, 0, fmt.Errorf("create: %+v %v", j, err)
	}
	up, err := m1.Client.UpdateCluster(ctx, "to", api.UpdateClusterRequest{Replicas: benchenv.Int(4)})
	if err != nil {
		return 0, 0, err
	}
	if err := waitStep(ctx, m1.Client, up.Job.ID, "add-replicas"); err != nil {
		return 0, 0, err
	}
	killed := time.Now()
	m1.Kill()
	for {
		h, err := m2.Client.Health(ctx)
		if err == nil && h.Leader {
			toLead = time.Since(killed)
			break
		}
		if time.Since(killed) > time.Minute {
			return 0, 0, fmt.Errorf("standby not leader a minute after the kill: %+v %v", h, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		j, err := m2.Client.GetJob(ctx, up.Job.ID)
		if err == nil && j.State == api.StateSucceeded {
			toJob = time.Since(killed)
			break
		}
		if err == nil && j.State == api.StateFailed {
			return 0, 0, fmt.Errorf("scale job failed after takeover: %s", j.Error)
		}
		if time.Since(killed) > 2*time.Minute {
			return 0, 0, fmt.Errorf("scale job not done 2 minutes after the kill: %+v %v", j, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	del, err := m2.Client.DeleteCluster(ctx, "to")
	if err == nil {
		_, err = m2.Client.WaitJob(ctx, del.ID, nil)
	}
	return toLead, toJob, err
}

func waitStep(ctx context.Context, c *api.Client, id, step string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if j, err := c.GetJob(ctx, id); err == nil {
			for _, s := range j.Steps {
				if s.Name == step && s.State != api.StatePending {
					return nil
				}
			}
			if j.State == api.StateSucceeded || j.State == api.StateFailed {
				return fmt.Errorf("job %s ended before step %s", id, step)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("job %s never reached step %s", id, step)
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func worst(ds []time.Duration) time.Duration {
	w := ds[0]
	for _, d := range ds {
		w = max(w, d)
	}
	return w
}

func secs(d time.Duration) string { return strings.TrimSpace(fmt.Sprintf("%6.2fs", d.Seconds())) }
