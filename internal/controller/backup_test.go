package controller

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseCron(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"0 3 * * *", "*/2 * * * * *", "@daily", "@hourly", " 15 */6 * * 1-5 ", "0 0 29 2 *"} {
		if _, err := parseCron(ok); err != nil {
			t.Errorf("parseCron(%q): %v", ok, err)
		}
	}
	for expr, want := range map[string]string{
		"":                      "required",
		"bogus":                 "not a cron expression",
		"61 * * * *":            "not a cron expression",
		"* * * * * * *":         "not a cron expression",
		"@every 1h":             "@every is not supported",
		"CRON_TZ=UTC 0 3 * * *": "time zones",
		"0 0 30 2 *":            "never fires",
	} {
		if _, err := parseCron(expr); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseCron(%q) = %v, want an error saying %q", expr, err, want)
		}
	}
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
		s, err := parseCron(tc.cron)
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

func TestParseMaxAge(t *testing.T) {
	t.Parallel()
	ms := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		s    string
		ms   *int64
		want time.Duration
		err  string
	}{
		{"", nil, 0, ""},
		{"168h", nil, 168 * time.Hour, ""},
		{"7d", nil, 168 * time.Hour, ""},
		{"1.5d", nil, 36 * time.Hour, ""},
		{"", ms(60000), time.Minute, ""},
		{"1m", ms(60000), time.Minute, ""},
		{"1m", ms(1000), 0, "maxAgeMs"},
		{"week", nil, 0, "maxAge"},
		{"-1h", nil, 0, "maxAge"},
		{"", ms(-1), 0, "maxAgeMs"},
	} {
		got, err := parseMaxAge(tc.s, tc.ms)
		var fe *spec.FieldError
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseMaxAge(%q, %v) = %s, %v; want %s", tc.s, tc.ms, got, err, tc.want)
		case tc.err != "" && (!errors.As(err, &fe) || fe.Field != tc.err):
			t.Errorf("parseMaxAge(%q, %v) = %v, want an error on field %s", tc.s, tc.ms, err, tc.err)
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

func TestRestoreCreateRequest(t *testing.T) {
	t.Parallel()
	src := api.ClusterSpec{Shards: 3, Replicas: 2, Sentinels: 5, Maxmemory: "256mb", MaxmemoryPolicy: "allkeys-lru",
		Persistence: "aof", Config: map[string]string{"hz": "20"},
		Sentinel:     api.SentinelSettings{DownAfterMs: 3000, FailoverTimeoutMs: 20000, ParallelSyncs: 2},
		FastFailover: false, MinReplicasToWrite: 2}

	got, err := spec.FromCreateRequest(restoreCreateRequest(&src, 3, api.RestoreRequest{Cluster: "copy"}))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(src) {
		t.Errorf("spec of a plain restore:\n got %+v\nwant %+v (the source's)", got, src)
	}
	// The request's fields replace the source's; the shard count is the set's.
	one, zero, mem := 1, 0, "1gb"
	got, err = spec.FromCreateRequest(restoreCreateRequest(&src, 1, api.RestoreRequest{Cluster: "copy", Replicas: &zero, Sentinels: &one, Maxmemory: &mem}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Shards != 1 || got.Replicas != 0 || got.Sentinels != 1 || got.Maxmemory != "1gb" || got.MinReplicasToWrite != 0 || got.Config["hz"] != "20" {
		t.Errorf("spec with replacements: %+v", got)
	}
	// Without a source spec (an imported backup of an old manager): defaults.
	got, err = spec.FromCreateRequest(restoreCreateRequest(nil, 2, api.RestoreRequest{Cluster: "copy"}))
	if err != nil || got.Shards != 2 || got.Replicas != spec.DefaultReplicas || got.Sentinels != spec.DefaultSentinels {
		t.Errorf("spec without a source: %+v, %v", got, err)
	}
	// The copy does not share the source's config map.
	req := restoreCreateRequest(&src, 3, api.RestoreRequest{Cluster: "copy"})
	req.Config["hz"] = "5"
	if src.Config["hz"] != "20" {
		t.Error("restoreCreateRequest shares the source's config map")
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
