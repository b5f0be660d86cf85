package local

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/redis-manager/redis-manager/internal/platform"
)

// ReplicaRoom implements platform.ReplicaRoom: every instance runs on this
// host, so the master's fork (copy-on-write) and the new replica's copy of
// the dataset both come out of the host's MemAvailable and, with
// Options.MemoryLimit, out of what that cap leaves over the instances'
// resident memory; the smaller bounds.
func (p *Platform) ReplicaRoom(_ context.Context, _ platform.ID, used, cow int64) (need, have int64, bound string, err error) {
	have, err = memAvailable("/proc/meminfo")
	if err != nil {
		return 0, 0, "", err
	}
	bound = "this host (MemAvailable of /proc/meminfo)"
	if limit := p.opts.MemoryLimit; limit > 0 {
		rss, n := p.instancesRSS()
		if left := max(limit-rss, 1); left < have {
			have = left
			bound = fmt.Sprintf("--local-memory-limit %d bytes (its %d instances use %d)", limit, n, rss)
		}
	}
	return used + cow, have, bound, nil
}

// instancesRSS sums the resident memory (VmRSS) of every running instance
// under the platform's root, and counts them.
func (p *Platform) instancesRSS() (rss int64, n int) {
	clusters, _ := os.ReadDir(p.root)
	for _, c := range clusters {
		if !c.IsDir() {
			continue
		}
		instances, _ := os.ReadDir(filepath.Join(p.root, c.Name()))
		for _, in := range instances {
			pid, ok := runningPid(filepath.Join(p.root, c.Name(), in.Name()))
			if !ok {
				continue
			}
			if kb, err := statusKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:"); err == nil {
				rss += kb << 10
				n++
			}
		}
	}
	return rss, n
}

// statusKB reads one "Name: N kB" line of a /proc status file.
func statusKB(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s has no %s", path, field)
}

// memAvailable reads MemAvailable, in bytes, from a meminfo file.
func memAvailable(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: MemAvailable %q: %w", path, fields[1], err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s has no MemAvailable", path)
}
