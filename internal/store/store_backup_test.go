package store

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// The backup tables, on every engine like TestStore.
var backupStoreTests = []struct {
	name string
	fn   func(t *testing.T, e *env)
}{
	{"backup records", testBackupRecords},
	{"backup job lanes", testBackupJobLanes},
	{"backup job and slot in one transaction", testBackupJobSlot},
	{"concurrent scheduled runs of one slot", testBackupSlotRace},
	{"backup schedules", testBackupSchedules},
}

func TestStoreBackups(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range backupStoreTests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, newEnv(t, eng))
				})
			}
		})
	}
}

func testBackup(id, cluster string, shard int, started time.Time) Backup {
	return Backup{
		Backup: api.Backup{ID: id, Cluster: cluster, Shard: shard, State: api.StateRunning, StartedAt: started,
			Job: "job-" + id, SourceInstance: fmt.Sprintf("%s-%d-1", cluster, shard)},
		TargetURL: "s3://bucket/prefix?endpoint=http%3A%2F%2F127.0.0.1%3A9000&pathStyle=true",
	}
}

func testBackupRecords(t *testing.T, e *env) {
	ctx := t.Context()
	a := testBackup("b1", "orders", 0, base)
	spec := testCluster("orders").Spec
	a.SourceSpec = &spec
	if err := e.s.PutBackup(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.GetBackup(ctx, "b1")
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("GetBackup = %+v, %v\nwant %+v", got, err, a)
	}

	// Put replaces every field.
	fin := base.Add(3 * time.Second)
	slot := base.Add(-time.Minute)
	a.State, a.Target, a.ObjectKey = api.StateSucceeded, "s3://bucket/prefix/orders/0/x.rdb", "orders/0/x.rdb"
	a.SizeBytes, a.CRC64, a.Keys, a.Verified = 1<<40, "0123456789abcdef", 12345, true
	a.FinishedAt, a.DurationMs, a.ScheduledFor, a.Error = &fin, 3000, &slot, "first attempt: connection lost"
	if err := e.s.PutBackup(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, err := e.s.GetBackup(ctx, "b1"); err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("after update: GetBackup = %+v, %v\nwant %+v", got, err, a)
	}

	// Newest first, per cluster or all; a record without spec reads back nil.
	for i, b := range []Backup{
		testBackup("b2", "orders", 1, base.Add(time.Minute)),
		testBackup("b3", "other", 0, base.Add(2*time.Minute)),
		testBackup("b0", "orders", 0, base.Add(-time.Minute)),
	} {
		if err := e.s.PutBackup(ctx, b); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	ids := func(bs []Backup) []string {
		var out []string
		for _, b := range bs {
			out = append(out, b.ID)
		}
		return out
	}
	if bs, err := e.s.ListBackups(ctx, "orders"); err != nil || fmt.Sprint(ids(bs)) != "[b2 b1 b0]" {
		t.Errorf("ListBackups(orders) = %v, %v; want [b2 b1 b0]", ids(bs), err)
	} else if bs[0].SourceSpec != nil {
		t.Errorf("spec of a record stored without one: %+v", bs[0].SourceSpec)
	}
	if bs, err := e.s.ListBackups(ctx, ""); err != nil || fmt.Sprint(ids(bs)) != "[b3 b2 b1 b0]" {
		t.Errorf("ListBackups() = %v, %v; want [b3 b2 b1 b0]", ids(bs), err)
	}
	if bs, err := e.s.ListBackups(ctx, "none"); err != nil || len(bs) != 0 {
		t.Errorf("ListBackups(none) = %v, %v", ids(bs), err)
	}

	if err := e.s.DeleteBackup(ctx, "b1"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		e.s.DeleteBackup(ctx, "b1"),
		func() error { _, err := e.s.GetBackup(ctx, "b1"); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted backup: %v, want ErrNotFound", err)
		}
	}
}

func testBackupJobLanes(t *testing.T, e *env) {
	ctx := t.Context()
	mustCreate(t, e, testCluster("q")) // its create job is pending
	b1 := testBackup("b1", "q", 0, base)
	if err := e.s.CreateBackupJob(ctx, testJob("backup-1", "q", api.JobBackup, base), []Backup{b1}, nil); err != nil {
		t.Fatalf("backup beside a create job: %v", err)
	}
	// One backup of a cluster at a time; a refused one stores nothing.
	b2 := testBackup("b2", "q", 1, base)
	err := e.s.CreateBackupJob(ctx, testJob("backup-2", "q", api.JobBackup, base), []Backup{b2}, nil)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("second backup job: %v, want ErrConflict", err)
	}
	if _, err := e.s.GetJob(ctx, "backup-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("job of the refused backup: %v", err)
	}
	if _, err := e.s.GetBackup(ctx, "b2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("record of the refused backup: %v", err)
	}
	// Changes of the cluster still conflict with each other, not with the backup.
	if err := e.s.CreateJob(ctx, testJob("scale-1", "q", api.JobScale, base)); !errors.Is(err, ErrConflict) {
		t.Errorf("scale beside the create: %v, want ErrConflict", err)
	}
	// Verifies and deletes of stored backups hold nothing.
	for i := range 2 {
		for _, kind := range []string{api.JobBackupVerify, api.JobBackupDelete} {
			if err := e.s.CreateJob(ctx, testJob(fmt.Sprintf("%s-%d", kind, i), "q", kind, base)); err != nil {
				t.Errorf("%s job %d: %v", kind, i, err)
			}
		}
	}
	// The lane frees when the backup finishes, running or not in between.
	j, _ := e.s.GetJob(ctx, "backup-1")
	j.State = api.StateRunning
	if err := e.s.UpdateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := e.s.CreateBackupJob(ctx, testJob("backup-2", "q", api.JobBackup, base), []Backup{b2}, nil); !errors.Is(err, ErrConflict) {
		t.Errorf("second backup while the first runs: %v, want ErrConflict", err)
	}
	j.State = api.StateSucceeded
	if err := e.s.UpdateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := e.s.CreateBackupJob(ctx, testJob("backup-2", "q", api.JobBackup, base), []Backup{b2}, nil); err != nil {
		t.Errorf("backup once the first finished: %v", err)
	}
	if bs, _ := e.s.ListBackups(ctx, "q"); len(bs) != 2 {
		t.Errorf("%d records, want 2", len(bs))
	}
}

func testBackupJobSlot(t *testing.T, e *env) {
	ctx := t.Context()
	slot1 := base.Add(time.Hour)
	// No schedule: no slot to take.
	err := e.s.CreateBackupJob(ctx, testJob("s0", "c", api.JobBackup, base), []Backup{testBackup("b0", "c", 0, base)}, &slot1)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("slot without a schedule: %v, want ErrConflict", err)
	}
	if err := e.s.PutBackupSchedule(ctx, BackupSchedule{Cluster: "c", Cron: "0 * * * *", Retain: 3, UpdatedAt: base}); err != nil {
		t.Fatal(err)
	}
	finish := func(id string) {
		t.Helper()
		j, err := e.s.GetJob(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		j.State = api.StateSucceeded
		if err := e.s.UpdateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	b1 := testBackup("b1", "c", 0, base)
	b1.ScheduledFor = &slot1
	if err := e.s.CreateBackupJob(ctx, testJob("s1", "c", api.JobBackup, base), []Backup{b1}, &slot1); err != nil {
		t.Fatal(err)
	}
	if s, err := e.s.GetBackupSchedule(ctx, "c"); err != nil || s.LastSlot == nil || !s.LastSlot.Equal(slot1) {
		t.Fatalf("last slot %v, %v; want %v", s.LastSlot, err, slot1)
	}
	finish("s1")
	// The same slot, or an earlier one, never runs twice; nothing is stored.
	for i, slot := range []time.Time{slot1, slot1.Add(-time.Hour)} {
		id := fmt.Sprintf("again-%d", i)
		err := e.s.CreateBackupJob(ctx, testJob(id, "c", api.JobBackup, base), []Backup{testBackup("b-"+id, "c", 0, base)}, &slot)
		if !errors.Is(err, ErrConflict) {
			t.Errorf("slot %v again: %v, want ErrConflict", slot, err)
		}
		if _, err := e.s.GetJob(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("job of a refused slot: %v", err)
		}
		if _, err := e.s.GetBackup(ctx, "b-"+id); !errors.Is(err, ErrNotFound) {
			t.Errorf("record of a refused slot: %v", err)
		}
	}
	// A job conflict leaves the slot free for a later try.
	mustCreate(t, e, testCluster("c")) // not a conflict: the create holds the cluster lane only
	if err := e.s.CreateJob(ctx, testJob("manual", "c", api.JobBackup, base)); err != nil {
		t.Fatal(err)
	}
	slot2 := slot1.Add(time.Hour)
	if err := e.s.CreateBackupJob(ctx, testJob("s2", "c", api.JobBackup, base), nil, &slot2); !errors.Is(err, ErrConflict) {
		t.Fatalf("slot while a backup runs: %v, want ErrConflict", err)
	}
	if s, _ := e.s.GetBackupSchedule(ctx, "c"); s.LastSlot == nil || !s.LastSlot.Equal(slot1) {
		t.Errorf("last slot after a refused job: %v, want %v", s.LastSlot, slot1)
	}
	finish("manual")
	if err := e.s.CreateBackupJob(ctx, testJob("s2", "c", api.JobBackup, base), nil, &slot2); err != nil {
		t.Errorf("slot once the lane is free: %v", err)
	}
	// Deleting the cluster takes the schedule, not the backups.
	if err := e.s.DeleteCluster(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetBackupSchedule(ctx, "c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("schedule after DeleteCluster: %v, want ErrNotFound", err)
	}
	if b, err := e.s.GetBackup(ctx, "b1"); err != nil || b.ScheduledFor == nil || !b.ScheduledFor.Equal(slot1) {
		t.Errorf("backup after DeleteCluster: %+v, %v", b, err)
	}
}

func testBackupSlotRace(t *testing.T, e *env) {
	ctx := t.Context()
	if err := e.s.PutBackupSchedule(ctx, BackupSchedule{Cluster: "r", Cron: "* * * * *"}); err != nil {
		t.Fatal(err)
	}
	slot := base
	exactlyOneWins(t, "concurrent runs of one slot", func(i int) error {
		id := fmt.Sprintf("race-%d", i)
		return e.s.CreateBackupJob(ctx, testJob(id, "r", api.JobBackup, base), []Backup{testBackup("b"+id, "r", 0, base)}, &slot)
	})
	if bs, _ := e.s.ListBackups(ctx, "r"); len(bs) != 1 {
		t.Errorf("%d records, want 1", len(bs))
	}
}

func testBackupSchedules(t *testing.T, e *env) {
	ctx := t.Context()
	want := BackupSchedule{Cluster: "orders", Cron: "0 3 * * *", Retain: 7, MaxAge: 168 * time.Hour, CreatedAt: base, UpdatedAt: base}
	if err := e.s.PutBackupSchedule(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, err := e.s.GetBackupSchedule(ctx, "orders"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("GetBackupSchedule = %+v, %v\nwant %+v", got, err, want)
	}
	// A slot is recorded; a later Put keeps it and the creation time.
	slot := base.Add(time.Hour)
	if err := e.s.CreateBackupJob(ctx, testJob("j", "orders", api.JobBackup, base), nil, &slot); err != nil {
		t.Fatal(err)
	}
	later := base.Add(time.Minute)
	if err := e.s.PutBackupSchedule(ctx, BackupSchedule{Cluster: "orders", Cron: "*/5 * * * * *", CreatedAt: later, UpdatedAt: later}); err != nil {
		t.Fatal(err)
	}
	want = BackupSchedule{Cluster: "orders", Cron: "*/5 * * * * *", LastSlot: &slot, CreatedAt: base, UpdatedAt: later}
	if got, err := e.s.GetBackupSchedule(ctx, "orders"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("after a second Put: %+v, %v\nwant %+v", got, err, want)
	}
	if err := e.s.PutBackupSchedule(ctx, BackupSchedule{Cluster: "a", Cron: "@daily"}); err != nil {
		t.Fatal(err)
	}
	list, err := e.s.ListBackupSchedules(ctx)
	if err != nil || len(list) != 2 || list[0].Cluster != "a" || list[1].Cluster != "orders" {
		t.Errorf("ListBackupSchedules = %+v, %v", list, err)
	}
	if err := e.s.DeleteBackupSchedule(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		e.s.DeleteBackupSchedule(ctx, "orders"),
		func() error { _, err := e.s.GetBackupSchedule(ctx, "orders"); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted schedule: %v, want ErrNotFound", err)
		}
	}
}
