package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// backupAPI answers the backup endpoints from canned data and records the
// request bodies.
type backupAPI struct {
	mu     sync.Mutex
	bodies map[string]string // "METHOD path" -> body
}

func newBackupAPI(t *testing.T) (*backupAPI, *httptest.Server) {
	t.Helper()
	b := &backupAPI{bodies: map[string]string{}}
	started := testNow.Add(-90 * time.Second)
	fin := started.Add(1200 * time.Millisecond)
	backups := []api.Backup{
		{ID: "b_2", Cluster: "orders", Shard: 1, State: api.StateRunning, StartedAt: started, Job: "j_b"},
		{ID: "b_1", Cluster: "orders", Shard: 0, State: api.StateSucceeded, Target: "file:///d/orders/0/x.rdb", SizeBytes: 45_600_000,
			CRC64: "00112233aabbccdd", Keys: 1234, SourceInstance: "orders-0-1", StartedAt: started, FinishedAt: &fin, DurationMs: 1200,
			Verified: true, Job: "j_b"},
		{ID: "b_0", Cluster: "orders", Shard: 0, State: api.StateFailed, StartedAt: started.Add(-3 * time.Hour), Error: "boom", Job: "j_a"},
	}
	job := api.Job{ID: "j_new", Kind: api.JobBackup, Cluster: "orders", State: api.StatePending}
	next := started.Add(24 * time.Hour)
	mux := http.NewServeMux()
	record := func(r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.bodies[r.Method+" "+r.URL.Path] = string(body)
		b.mu.Unlock()
	}
	mux.HandleFunc("POST /api/v1/clusters/{name}/backups", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		reply(w, http.StatusAccepted, api.BackupsJob{Job: job, Backups: backups[:1]})
	})
	mux.HandleFunc("GET /api/v1/clusters/{name}/backups", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]any{"backups": backups})
	})
	mux.HandleFunc("PUT /api/v1/clusters/{name}/backup-schedule", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		reply(w, http.StatusOK, api.BackupSchedule{Cluster: "orders", Cron: "0 3 * * *", Retain: 7, MaxAgeMs: 7 * 24 * 3600 * 1000, NextSlot: &next})
	})
	mux.HandleFunc("POST /api/v1/backups/{id}/restore", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		reply(w, http.StatusAccepted, api.ClusterJob{Job: api.Job{ID: "j_restore", Kind: api.JobRestore, Cluster: "copy"}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return b, srv
}

func (b *backupAPI) body(key string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bodies[key]
}

func TestBackupCreateSendsShardOnlyWhenGiven(t *testing.T) {
	t.Parallel()
	b, srv := newBackupAPI(t)
	r := runCLI(t, false, "", "backup", "create", "orders", "--no-wait", "--server", srv.URL, "--token", "x")
	if r.err != nil || r.stdout != "j_new\n" {
		t.Fatalf("create --no-wait: %q %v", r.stdout, r.err)
	}
	if got := b.body("POST /api/v1/clusters/orders/backups"); got != "{}" {
		t.Errorf("body without --shard: %s, want {}", got)
	}
	if r := runCLI(t, false, "", "backup", "create", "orders", "--shard", "0", "--no-wait", "--server", srv.URL, "--token", "x"); r.err != nil {
		t.Fatal(r.err)
	}
	if got := b.body("POST /api/v1/clusters/orders/backups"); got != `{"shard":0}` {
		t.Errorf("body with --shard 0: %s", got)
	}
}

func TestBackupListTable(t *testing.T) {
	t.Parallel()
	_, srv := newBackupAPI(t)
	r := runCLI(t, false, "", "backup", "list", "orders", "--server", srv.URL, "--token", "x")
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := `ID   SHARD  STATE      SIZE     KEYS  VERIFIED  SOURCE      AGE
b_2  1      running    -        -     -         -           90s
b_1  0      succeeded  45.6 MB  1234  yes       orders-0-1  90s
b_0  0      failed     -        -     -         -           3h
`
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}
}

func TestBackupScheduleFlags(t *testing.T) {
	t.Parallel()
	b, srv := newBackupAPI(t)
	r := runCLI(t, false, "", "backup", "schedule", "orders", "--cron", "0 3 * * *", "--retain", "7", "--max-age", "7d", "--server", srv.URL, "--token", "x")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := b.body("PUT /api/v1/clusters/orders/backup-schedule"); got != `{"cron":"0 3 * * *","retain":7,"maxAge":"7d"}` {
		t.Errorf("body: %s", got)
	}
	for _, want := range []string{"0 3 * * * (UTC)", "newest 7 per shard", "168h0m0s", "Next slot:  2026-11-26T02:58:30Z"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, false, "", "backup", "schedule", "orders", "--retain", "3", "--server", srv.URL, "--token", "x")
	if r.err == nil || !strings.Contains(r.err.Error(), "--cron") {
		t.Errorf("--retain without --cron: %v", r.err)
	}
}

func TestBackupRestoreFlags(t *testing.T) {
	t.Parallel()
	b, srv := newBackupAPI(t)
	r := runCLI(t, false, "", "backup", "restore", "b_1", "--server", srv.URL, "--token", "x")
	if r.err == nil || !strings.Contains(r.err.Error(), "--to") {
		t.Errorf("restore without --to: %v", r.err)
	}
	r = runCLI(t, false, "", "backup", "restore", "b_1", "--to", "copy", "--single-shard", "--replicas", "0", "--no-wait", "--server", srv.URL, "--token", "x")
	if r.err != nil || r.stdout != "j_restore\n" {
		t.Fatalf("restore --no-wait: %q %v", r.stdout, r.err)
	}
	if got := b.body("POST /api/v1/backups/b_1/restore"); got != `{"cluster":"copy","singleShard":true,"replicas":0}` {
		t.Errorf("body: %s", got)
	}
}
