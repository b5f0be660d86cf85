package e2eui

import (
	"fmt"
	"syscall"
)

// syscallKill sends SIGKILL, as a crash would.
func syscallKill(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("bad pid %d", pid)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}
