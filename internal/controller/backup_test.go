package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/internal/schedule"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestLatestSlot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cron, after, now, want string // want "" for none
	}{
		// Nothing due yet.
		{"0 3 * * *", "2026-11-25T03:00:00Z", "2026-11-25T12:00:00Z", ""},
		{"0 3 * * *", "2026-11-25T02:00:00Z", "2026-11-25T02:59:59Z", ""},
		// Due exactly at now, and just after.
		{"0 3 * * *", "2026-11-25T02:00:00Z", "2026-11-25T03:00:00Z", "2026-11-25T03:00:00Z"},
		{"0 3 * * *", "2026-11-24T03:00:00Z", "2026-11-25T03:00:00.2Z", "2026-11-25T03:00:00Z"},
		// A manager down for days runs the latest missed slot once.
		{"0 3 * * *", "2026-11-01T03:00:00Z", "2026-11-25T12:00:00Z", "2026-11-25T03:00:00Z"},
		{"0 3 * * *", "2025-11-01T03:00:00Z", "2026-11-25T02:00:00Z", "2026-11-24T03:00:00Z"},
		// Seconds: every 2 s.
		{"*/2 * * * * *", "2026-11-25T03:00:00Z", "2026-11-25T03:00:05.9Z", "2026-11-25T03:00:04Z"},
		{"*/2 * * * * *", "2026-11-25T03:00:04Z", "2026-11-25T03:00:05.9Z", ""},
		// A sparse schedule far in the past: a slot found only by looking back far.
		{"0 0 1 1 *", "2020-01-01T00:00:00Z", "2026-11-25T03:00:00Z", "2026-01-01T00:00:00Z"},
		// Dense within a window, empty after it.
		{"* 0 * * * *", "2026-11-25T02:00:00Z", "2026-11-25T03:30:00Z", "2026-11-25T03:00:59Z"},
	}
	for _, tc := range tests {
		s, err := schedule.Parse(tc.cron)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := latestSlot(s, utc(tc.after), utc(tc.now))
		switch {
		case tc.want == "" && ok:
			t.Errorf("latestSlot(%q, after %s, now %s) = %s, want none", tc.cron, tc.after, tc.now, got)
		case tc.want != "" && (!ok || !got.Equal(utc(tc.want))):
			t.Errorf("latestSlot(%q, after %s, now %s) = %s %v, want %s", tc.cron, tc.after, tc.now, got, ok, tc.want)
		}
	}
}

func TestSourceOrder(t *testing.T) {
	t.Parallel()
	srcs := []backupSource{
		{Name: "o-0-0", Master: true, Offset: 0},
		{Name: "o-0-2", Offset: 100},
		{Name: "o-0-1", Offset: 120},
		{Name: "o-0-3", Offset: 100},
	}
	orderSources(srcs)
	var names []string
	for _, s := range srcs {
		names = append(names, s.Name)
	}
	if fmt.Sprint(names) != "[o-0-1 o-0-2 o-0-3 o-0-0]" {
		t.Errorf("order %v: want the most advanced replica first, the master last", names)
	}
	tried := map[string]int{}
	var picks []string
	for range 6 {
		s := pickSource(srcs, tried)
		tried[s.Name]++
		picks = append(picks, s.Name)
	}
	if fmt.Sprint(picks) != "[o-0-1 o-0-2 o-0-3 o-0-0 o-0-1 o-0-2]" {
		t.Errorf("retries went to %v: want every instance once before any twice", picks)
	}
	if s := pickSource([]backupSource{{Name: "o-0-0", Master: true}}, map[string]int{"o-0-0": 2}); s.Name != "o-0-0" {
		t.Errorf("a lone master is retried: got %v", s)
	}
}

func TestTransferProgressMessage(t *testing.T) {
	t.Parallel()
	p := newTransferProgress(nil, "snapshot")
	start := time.Now()
	p.start(0, "from orders-0-1", 1, 2_000_000)
	p.shards[0].bytes, p.shards[0].started = 1_000_000, start.Add(-time.Second)
	p.start(1, "from orders-1-2", 2, 0)
	p.shards[1].started = start.Add(-time.Second)
	p.done(2, 5_100_000)
	frac, msg := p.summary(start)
	want := "shard 0 snapshot from orders-0-1: 1.0 MB at 1.0 MB/s; shard 1 snapshot from orders-1-2: 0 B at 0 B/s (attempt 2); shard 2: done, 5.1 MB"
	if msg != want {
		t.Errorf("message:\n %s\nwant\n %s", msg, want)
	}
	if frac < 0.49 || frac > 0.51 {
		t.Errorf("fraction %.3f, want 0.5 (half of one, nothing of another, all of the third)", frac)
	}
}
