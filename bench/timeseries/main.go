// Command timeseries measures the memory of the figures' time series
// (internal/timeseries): the bytes one instance's 24 h of 10 s samples take,
// for a moderately busy instance (timeseries.Typical) and for the worst
// case (timeseries.Worst: every figure random over a wide range at every
// sample), the Go heap of 1,000 typical instances in this process, and the
// RSS of a real manager process (`redis-manager serve`) holding 1,000
// instances' full 24 h, next to the same manager with none.
//
//	go run ./bench/timeseries -instances 1000
//
// The manager is built with -tags benchfill: only that build fills its
// series with synthetic samples before it listens
// (internal/server/benchfill.go); the production binary has no such code.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/bench/benchenv"
	"github.com/redis-manager/redis-manager/internal/timeseries"
)

func main() {
	instances := flag.Int("instances", 1000, "instances whose 24 h the manager holds")
	base := flag.Int("port-base", 23600, "first port of the managers' (unused) port range")
	flag.Parse()
	if err := run(*instances, *base); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// kept is how much of the 24 h one instance still holds.
func kept(s *timeseries.Series) time.Duration {
	m, _ := s.Query("bench-000", "24h", "bench-000-0-0", time.Now())
	n := 0
	for _, p := range m.Instances[0].Series.OpsPerSec {
		if p != nil {
			n++
		}
	}
	return time.Duration(n) * time.Duration(m.StepMs) * time.Millisecond
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func run(instances, base int) error {
	fmt.Printf("time series memory: 10 s samples for 24 h (8,640 per instance), 7 series each\n\n")
	for _, p := range []struct {
		name    string
		profile func(*rand.Rand) func(int, *api.InstanceStatus)
	}{{"typical (2,000 ops/s ±20 %, 1 GB moving, 50 clients, growing keys, hit ratio ~0.9, a few % CPU)", timeseries.Typical},
		{"worst (every figure random over a wide range at every sample)", timeseries.Worst}} {
		s := timeseries.New()
		timeseries.Fill(s, 1, p.profile)
		b, _ := s.Bytes("bench-000", "bench-000-0-0")
		fmt.Printf("  %-100s %6d bytes per instance (%.1f KiB), %s of 24 h kept\n", p.name, b, float64(b)/1024, kept(s))
	}

	before := heapAlloc()
	s := timeseries.New()
	start := time.Now()
	timeseries.Fill(s, instances, timeseries.Typical)
	took := time.Since(start)
	after := heapAlloc()
	fmt.Printf("\n  Go heap of %d typical instances' 24 h in this process: %.1f MiB (%.1f KiB per instance; filled in %s)\n",
		instances, float64(after-before)/(1<<20), float64(after-before)/float64(instances)/1024, took.Round(time.Millisecond))
	runtime.KeepAlive(s)

	bin, err := buildBenchfill()
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(bin))
	rssNone, err := managerRSS(bin, base, 0)
	if err != nil {
		return err
	}
	rssFull, err := managerRSS(bin, base, instances)
	if err != nil {
		return err
	}
	fmt.Printf("\n  manager RSS (redis-manager serve, SQLite store, no cluster, measured 5 s after it listens):\n")
	fmt.Printf("    without series:                          %6.1f MiB\n", float64(rssNone)/1024)
	fmt.Printf("    with %d instances' full 24 h series:    %6.1f MiB (+%.1f MiB, %.1f KiB per instance)\n",
		instances, float64(rssFull)/1024, float64(rssFull-rssNone)/1024, float64(rssFull-rssNone)/float64(instances))
	return nil
}

// buildBenchfill builds the manager with -tags benchfill.
func buildBenchfill() (string, error) {
	dir, err := os.MkdirTemp("", "redis-manager-bench-ts-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "redis-manager")
	cmd := exec.Command("go", "build", "-tags", "benchfill", "-o", bin, "./cmd/redis-manager")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build with -tags benchfill: %w", err)
	}
	return bin, nil
}

// managerRSS starts a manager filled with n instances' series and returns
// its VmRSS in KiB 5 s after it listens.
func managerRSS(bin string, base, n int) (int, error) {
	os.Setenv("REDIS_MANAGER_BENCH_FILL_INSTANCES", strconv.Itoa(n))
	m, err := benchenv.Start(bin, base, 10)
	if err != nil {
		return 0, err
	}
	defer m.Stop()
	time.Sleep(5 * time.Second)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.Pid()))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", m.Pid())
}
