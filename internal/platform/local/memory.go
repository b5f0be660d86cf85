package local

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/redis-manager/redis-manager/internal/platform"
)

// ReplicaRoom implements platform.ReplicaRoom: every instance runs on this
// host, so the master's fork (copy-on-write) and the new replica's copy of
// the dataset both come out of the host's MemAvailable.
func (p *Platform) ReplicaRoom(_ context.Context, _ platform.ID, used, cow int64) (need, have int64, bound string, err error) {
	have, err = memAvailable("/proc/meminfo")
	if err != nil {
		return 0, 0, "", err
	}
	return used + cow, have, "this host (MemAvailable of /proc/meminfo)", nil
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
