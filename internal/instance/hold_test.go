package instance

import "testing"

func TestHoldMasterBoot(t *testing.T) {
	for _, c := range []struct {
		name     string
		replicas []map[string]string
		want     bool
	}{
		{"no replica", nil, false},
		{"a replica up", []map[string]string{{"flags": "slave", "slave-priority": "100"}}, true},
		{"its link to the dead master down: still up to Sentinel", []map[string]string{{"flags": "slave", "slave-priority": "100", "master-link-status": "err"}}, true},
		{"every replica down", []map[string]string{{"flags": "s_down,slave", "slave-priority": "100"}, {"flags": "slave,disconnected", "slave-priority": "100"}}, false},
		{"o_down", []map[string]string{{"flags": "s_down,o_down,slave", "slave-priority": "100"}}, false},
		{"priority 0 cannot be promoted", []map[string]string{{"flags": "slave", "slave-priority": "0"}}, false},
		{"one of two up", []map[string]string{{"flags": "s_down,slave,disconnected", "slave-priority": "100"}, {"flags": "slave", "slave-priority": "100"}}, true},
	} {
		if got := HoldMasterBoot(c.replicas); got != c.want {
			t.Errorf("%s: HoldMasterBoot = %v, want %v", c.name, got, c.want)
		}
	}
}
