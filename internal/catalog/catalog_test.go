package catalog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPruneSelect(t *testing.T) {
	t.Parallel()
	now := utc("2026-11-25T12:00:00Z")
	var all []store.Backup
	add := func(id string, shard int, state string, ago time.Duration, scheduled bool) {
		b := store.Backup{Backup: api.Backup{ID: id, Shard: shard, State: state, StartedAt: now.Add(-ago)}}
		if scheduled {
			slot := b.StartedAt
			b.ScheduledFor = &slot
		}
		all = append(all, b) // callers add newest first, like ListBackups
	}
	add("s0-running", 0, api.StateRunning, 0, true)
	add("s0-a", 0, api.StateSucceeded, 1*time.Hour, true)
	add("s1-a", 1, api.StateSucceeded, 1*time.Hour, true)
	add("s0-failed-new", 0, api.StateFailed, 90*time.Minute, true)
	add("manual", 0, api.StateSucceeded, 2*time.Hour, false)
	add("s0-b", 0, api.StateSucceeded, 3*time.Hour, true)
	add("s1-b", 1, api.StateSucceeded, 3*time.Hour, true)
	add("s0-c", 0, api.StateSucceeded, 5*time.Hour, true)
	add("s1-failed-old", 1, api.StateFailed, 6*time.Hour, true)
	add("s0-d", 0, api.StateSucceeded, 30*time.Hour, true)
	add("manual-old", 0, api.StateSucceeded, 300*time.Hour, false)

	ids := func(bs []store.Backup) string {
		var out []string
		for _, b := range bs {
			out = append(out, b.ID)
		}
		return fmt.Sprint(out)
	}
	for _, tc := range []struct {
		retain int
		maxAge time.Duration
		want   string
	}{
		{0, 0, "[s0-failed-new s1-failed-old]"},
		{2, 0, "[s0-failed-new s0-c s1-failed-old s0-d]"},
		{1, 0, "[s0-failed-new s0-b s1-b s0-c s1-failed-old s0-d]"},
		{0, 4 * time.Hour, "[s0-failed-new s0-c s1-failed-old s0-d]"},
		{3, 24 * time.Hour, "[s0-failed-new s1-failed-old s0-d]"},
		// The newest success of a shard stays whatever its age.
		{1, time.Minute, "[s0-failed-new s0-b s1-b s0-c s1-failed-old s0-d]"},
	} {
		if got := ids(PruneSelect(all, tc.retain, tc.maxAge, now)); got != tc.want {
			t.Errorf("PruneSelect(retain %d, maxAge %s) = %s, want %s", tc.retain, tc.maxAge, got, tc.want)
		}
	}
}

func TestMatchRecord(t *testing.T) {
	t.Parallel()
	b := store.Backup{Backup: api.Backup{CRC64: "00112233aabbccdd", SizeBytes: 100}}
	if err := MatchRecord(backup.Result{CRC64: "00112233aabbccdd", Bytes: 100}, b); err != nil {
		t.Errorf("matching result: %v", err)
	}
	for _, res := range []backup.Result{{CRC64: "ffffffffffffffff", Bytes: 100}, {CRC64: "00112233aabbccdd", Bytes: 99}} {
		if err := MatchRecord(res, b); !errors.Is(err, backup.ErrCorrupt) {
			t.Errorf("MatchRecord(%+v) = %v, want ErrCorrupt", res, err)
		}
	}
}

// ObjectURL must name objects exactly as the targets do: import compares
// URLs to tell known objects from new ones.
func TestObjectURLMatchesTargets(t *testing.T) {
	t.Parallel()
	s3 := testenv.StartS3(t)
	dir := t.TempDir()
	for _, target := range []string{
		"file://" + dir,
		"file://" + dir + "/sub/",
		s3.URL(""),
		s3.URL("prefix"),
		s3.URL("deep/prefix/"),
	} {
		tg, err := backup.OpenTarget(t.Context(), target, backup.WithCredentials(s3.AccessKeyID, s3.SecretAccessKey))
		if err != nil {
			t.Fatal(err)
		}
		key := backup.ObjectKey("orders", 1, utc("2026-11-25T03:00:00Z"))
		got, err := tg.Put(t.Context(), key, strings.NewReader("x"), 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := ObjectURL(target, key); got != want {
			t.Errorf("target %s: Put says %s, ObjectURL says %s", target, got, want)
		}
	}
}

func TestRestoreSet(t *testing.T) {
	t.Parallel()
	rec := func(id string, shard int, state, job string) store.Backup {
		return store.Backup{Backup: api.Backup{ID: id, Shard: shard, State: state, Job: job}}
	}
	ok := api.StateSucceeded
	all := []store.Backup{
		rec("b2", 2, ok, "j1"), rec("b0", 0, ok, "j1"), rec("b1", 1, ok, "j1"),
		rec("x0", 0, ok, "j2"), rec("x1", 1, api.StateFailed, "j2"),
		rec("m0", 0, ok, ""),
	}
	ids := func(bs []store.Backup) string {
		var out []string
		for _, b := range bs {
			out = append(out, b.ID)
		}
		return fmt.Sprint(out)
	}
	tests := []struct {
		name       string
		b          store.Backup
		single     bool
		jobMembers []string
		want       string // ids in shard order, or a substring of the error
		wantErr    bool
	}{
		{"the whole set, ordered by shard", all[1], false, []string{"b0", "b1", "b2"}, "[b0 b1 b2]", false},
		{"the job unknown (imported): the records of the job", all[1], false, nil, "[b0 b1 b2]", false},
		{"single shard", all[2], true, []string{"b0", "b1", "b2"}, "[b1]", false},
		{"a backup of no job is alone", all[5], false, nil, "[m0]", false},
		{"a member deleted", all[1], false, []string{"b0", "b1", "b2", "b3"}, "backup b3 was deleted", true},
		{"a member failed", all[3], false, []string{"x0", "x1"}, "backup x1 of shard 1 is failed", true},
		{"a member failed, job unknown", all[3], false, nil, "backup x1 of shard 1 is failed", true},
		{"a failed member can be left out with single", all[3], true, nil, "[x0]", false},
	}
	for _, tc := range tests {
		set, err := RestoreSet(tc.b, tc.single, all, tc.jobMembers)
		switch {
		case tc.wantErr && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "singleShard")):
			t.Errorf("%s: %v, want an error naming %q and singleShard", tc.name, err, tc.want)
		case !tc.wantErr && (err != nil || ids(set) != tc.want):
			t.Errorf("%s: %s, %v; want %s", tc.name, ids(set), err, tc.want)
		}
	}
}

// A sidecar written for a record rebuilds that record on import.
func TestSidecarRoundTrip(t *testing.T) {
	t.Parallel()
	target := "file://" + t.TempDir()
	tg, err := backup.OpenTarget(t.Context(), target)
	if err != nil {
		t.Fatal(err)
	}
	started, finished := utc("2026-11-25T03:00:00Z"), utc("2026-11-25T03:00:02Z")
	slot := started
	src := api.ClusterSpec{Shards: 2, Replicas: 1, Sentinels: 3}
	key := backup.ObjectKey("orders", 1, started)
	u, err := tg.Put(t.Context(), key, strings.NewReader("rdb"), 3)
	if err != nil {
		t.Fatal(err)
	}
	res := backup.Result{Bytes: 3, CRC64: "00112233aabbccdd", Keys: 42, RDBVersion: 11, RedisVersion: "7.0.15", KeysCounted: true}
	b := store.Backup{Backup: api.Backup{ID: "b_1", Cluster: "orders", Shard: 1, State: api.StateSucceeded, Target: u,
		SizeBytes: 3, CRC64: res.CRC64, Keys: 42, SourceInstance: "orders-1-1", StartedAt: started, FinishedAt: &finished,
		DurationMs: 2000, Verified: true, Job: "job_1", ScheduledFor: &slot},
		TargetURL: target, ObjectKey: key, SourceSpec: &src}
	if err := WriteSidecar(t.Context(), tg, b, res); err != nil {
		t.Fatal(err)
	}
	sc, err := ReadSidecar(t.Context(), tg, key)
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.Result(); got != res {
		t.Errorf("Result = %+v, want %+v", got, res)
	}
	if u != ObjectURL(target, key) {
		t.Fatalf("Put says %s, ObjectURL %s", u, ObjectURL(target, key))
	}
	got := ImportedBackup(sc, "ignored", 9, target, key, u)
	if fmt.Sprintf("%+v %+v", got.Backup, *got.SourceSpec) != fmt.Sprintf("%+v %+v", b.Backup, src) ||
		got.TargetURL != target || got.ObjectKey != key {
		t.Errorf("imported record:\n got %+v\nwant %+v", got, b)
	}
	if _, err := ReadSidecar(t.Context(), tg, backup.ObjectKey("orders", 0, started)); err == nil {
		t.Error("ReadSidecar of an object with no sidecar succeeded")
	}
}
