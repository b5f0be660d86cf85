package local

import (
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
const autogroupFile = "/proc/self/autogroup"

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

// ControlPriority returns the nice value of the manager's autogroup.
func ControlPriority() (int, error) {
	cur, err := os.ReadFile(autogroupFile)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", autogroupFile, err)
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
