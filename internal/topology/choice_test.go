package topology

import (
	"fmt"
	"testing"
	"time"
)

func TestSentinelChoice(t *testing.T) {
	t.Parallel()
	rep := func(port, priority, offset int, runid, flags string) map[string]string {
		return map[string]string{"ip": "127.0.0.1", "port": fmt.Sprint(port), "flags": flags, "slave-priority": fmt.Sprint(priority),
			"slave-repl-offset": fmt.Sprint(offset), "runid": runid, "last-ok-ping-reply": "100", "info-refresh": "200"}
	}
	validity := 3 * time.Second
	tests := []struct {
		name string
		view []map[string]string
		want string
	}{
		{"highest offset wins", []map[string]string{rep(1, 100, 10, "a", "slave"), rep(2, 100, 30, "b", "slave")}, "127.0.0.1:2"},
		{"lower priority beats offset", []map[string]string{rep(1, 50, 10, "a", "slave"), rep(2, 100, 30, "b", "slave")}, "127.0.0.1:1"},
		{"priority 0 never", []map[string]string{rep(1, 0, 99, "a", "slave"), rep(2, 100, 30, "b", "slave")}, "127.0.0.1:2"},
		{"down or disconnected skipped", []map[string]string{rep(1, 100, 99, "a", "slave,s_down"), rep(2, 100, 98, "b", "slave,disconnected"), rep(3, 100, 1, "c", "slave")}, "127.0.0.1:3"},
		{"equal offsets: lowest run id", []map[string]string{rep(1, 100, 10, "b", "slave"), rep(2, 100, 10, "a", "slave")}, "127.0.0.1:2"},
		{"stale INFO skipped", func() []map[string]string {
			stale := rep(1, 100, 99, "a", "slave")
			stale["info-refresh"] = "5000"
			return []map[string]string{stale, rep(2, 100, 1, "b", "slave")}
		}(), "127.0.0.1:2"},
		{"no candidate", []map[string]string{rep(1, 0, 10, "a", "slave")}, ""},
	}
	for _, tc := range tests {
		if got := SentinelChoice(tc.view, validity); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
