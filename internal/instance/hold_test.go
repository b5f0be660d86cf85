package instance

import (
	"testing"
	"time"
)

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

func TestHoldDeadline(t *testing.T) {
	start := time.Date(2026, 11, 30, 22, 55, 15, 0, time.UTC)
	bound := 15 * time.Second
	for _, c := range []struct {
		name     string
		lastTilt time.Time
		want     time.Duration // after start
	}{
		{"no TILT seen: the bound", time.Time{}, bound},
		{"TILT seen early: still the bound", start.Add(-10 * time.Second), bound},
		{"TILT seen at the start", start, bound},
		{"TILT until 29 s: the bound after it (the chaos run: TILT from 22:55:15 to 22:55:44)", start.Add(29 * time.Second), 29*time.Second + bound},
		{"TILT seen past the cap: capped", start.Add(2 * time.Minute), holdTiltMax + bound},
	} {
		if got := HoldDeadline(start, c.lastTilt, bound).Sub(start); got != c.want {
			t.Errorf("%s: HoldDeadline = start+%s, want start+%s", c.name, got, c.want)
		}
	}
}
