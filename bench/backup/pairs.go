package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
)

// runPairs is the -pairs mode: the figure the backup engine is held to.
// One redis-server with sizeMB of 1 KB values, diskless SYNC (what managed
// instances use), and n pairs of backups of it run one after the other:
// backup.Run to file:// in a child process, then `redis-cli --rdb FILE`.
// Running the two alternately, rather than all of one and then all of the
// other, spreads a change in the machine's load over both. Each pair gives
// a ratio of our rate to redis-cli's; the summary is the median of those
// ratios and the median rate of each.
func runPairs(sizeMB, n int, profileDir string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "redis-manager-bench-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	password := randomHex(16)
	rdb, stopRedis, keys, err := startPopulated(ctx, filepath.Join(dir, "redis"), password, sizeMB)
	if err != nil {
		return err
	}
	defer stopRedis()
	addr := rdb.Options().Addr
	if err := rdb.ConfigSet(ctx, "repl-diskless-sync", "yes").Err(); err != nil {
		return err
	}
	mem, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return err
	}
	sizeHint := infoInt(mem, "used_memory")

	var ratios, ours, cli []float64
	var peak, rdbBytes int64
	fmt.Printf("\n%-5s %-28s %-28s %s\n", "pair", "backup.Run → file://", "redis-cli --rdb FILE", "ours / redis-cli")
	for i := range n {
		d := filepath.Join(dir, "file-target")
		var extra []string
		if profileDir != "" {
			extra = []string{"-cpuprofile", filepath.Join(profileDir, "backup-"+strconv.Itoa(i+1)+".pprof")}
		}
		m, err := childBackup(self, "file://"+d, addr, password, sizeHint, extra...)
		os.RemoveAll(d)
		if err != nil {
			return fmt.Errorf("pair %d, backup.Run: %w", i+1, err)
		}
		if !m.Verified || m.Keys != keys {
			return fmt.Errorf("pair %d, backup.Run: verified %v, %d keys, want %d", i+1, m.Verified, m.Keys, keys)
		}
		peak, rdbBytes = max(peak, m.PeakRSS-m.IdleRSS), m.Bytes
		f := filepath.Join(dir, "redis-cli.rdb")
		c, err := redisCLI(addr, password, f)
		os.Remove(f)
		if err != nil {
			return fmt.Errorf("pair %d, redis-cli: %w", i+1, err)
		}
		if c.Bytes != m.Bytes {
			return fmt.Errorf("pair %d: redis-cli got %d bytes, backup.Run %d", i+1, c.Bytes, m.Bytes)
		}
		ro, rc := float64(m.Bytes)/1e6/m.Seconds, float64(c.Bytes)/1e6/c.Seconds
		ours, cli, ratios = append(ours, ro), append(cli, rc), append(ratios, ro/rc)
		fmt.Printf("%-5d %5.2f s %6.1f MB/s CPU %4.2f s  %5.2f s %6.1f MB/s CPU %4.2f s  %5.1f %%  (our last byte at %.2f s)\n",
			i+1, m.Seconds, ro, m.CPU, c.Seconds, rc, c.CPU, 100*ro/rc, m.LastByte)
	}
	fmt.Printf("\nredis-server %s, %d keys, %d bytes of RDB, %d CPUs, diskless SYNC, file target, %d pairs\n",
		redisVersion(), keys, rdbBytes, runtime.NumCPU(), n)
	fmt.Printf("median: backup.Run %.1f MB/s, redis-cli --rdb %.1f MB/s; ours/redis-cli per pair: median %.1f %% (min %.1f %%, max %.1f %%)\n",
		med(ours), med(cli), 100*med(ratios), 100*minOf(ratios), 100*maxOf(ratios))
	fmt.Printf("peak RSS of backup.Run above idle: %.1f MiB (highest over the pairs)\n", float64(peak)/(1<<20))
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average at the end: %s", l)
	}
	return nil
}

func med(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
