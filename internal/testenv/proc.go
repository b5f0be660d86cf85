package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ContainerPid finds, on this host, the process named comm that runs in
// the container whose ID is containerID (its cgroup path names the ID), or
// 0. The Kubernetes tests and benchmarks use it to kill redis-server inside
// a container, where it is PID 1 and ignores a kill from within.
func ContainerPid(containerID, comm string) int {
	if containerID == "" {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range procs {
		c, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil || strings.TrimSpace(string(c)) != comm {
			continue
		}
		cg, err := os.ReadFile(filepath.Join(d, "cgroup"))
		if err != nil || !strings.Contains(string(cg), containerID) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		return pid
	}
	return 0
}

// WaitDead returns when the process is gone (or a zombie), or when timeout
// has passed: SIGKILL takes effect when the process next runs, and on a
// busy host a dying master may still answer a write or two after kill(2)
// returned.
func WaitDead(pid int, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			break
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	return time.Now()
}
