package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The local platform starts every instance in its own session (Setsid),
// and Linux's autogroup scheduler (kernel.sched_autogroup_enabled) shares
// the CPU between sessions first, then between the threads of a session.
// With a thousand instances, the manager's session is one of a thousand:
// when twenty instances want a core at once, the API and the control loop
// wait behind them. SetControlPriority gives the manager's own session the
// weight of a nice value, as a CPU request gives a manager pod its share
// on Kubernetes: it takes what it needs first (about a tenth of a core at
// a thousand instances), never more, and the instances share the rest as
// before.

// autogroupFile is the calling process's autogroup (proc(5)).
var autogroupFile = "/proc/self/autogroup"

// SetControlPriority sets the nice value of the manager's autogroup and
// returns what it was. It fails where autogroups are off or the process
// may not raise its priority (CAP_SYS_NICE).
func SetControlPriority(nice int) (before int, err error) {
	if before, err = ControlPriority(); err != nil {
		return 0, err
	}
	if before == nice {
		return before, nil
	}
	if err := os.WriteFile(autogroupFile, []byte(strconv.Itoa(nice)), 0); err != nil {
		return before, fmt.Errorf("set the manager's autogroup to nice %d: %w", nice, err)
	}
	return before, nil
}

// ErrNoAutogroup is returned where /proc/self/autogroup reads empty: the
// kernel puts this process in no autogroup (a CPU cgroup that is not an
// autogroup, or a sandboxed kernel, as on some CI machines), so there is
// no session weight to set; a container's CPU share is set by its runtime.
var ErrNoAutogroup = errors.New("the kernel shows no autogroup for this process (/proc/self/autogroup is empty): its CPU share is set elsewhere, for example by its container")

// ControlPriority returns the nice value of the manager's autogroup.
func ControlPriority() (int, error) {
	cur, err := os.ReadFile(autogroupFile)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", autogroupFile, err)
	}
	if len(bytes.TrimSpace(cur)) == 0 {
		return 0, ErrNoAutogroup
	}
	// "/autogroup-123 nice 0"
	f := strings.Fields(string(cur))
	if len(f) == 3 && f[1] == "nice" {
		if n, err := strconv.Atoi(f[2]); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("read %s: unexpected %q", autogroupFile, strings.TrimSpace(string(cur)))
}
