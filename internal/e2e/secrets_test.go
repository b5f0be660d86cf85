package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", to read the store's tables

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestSecretsAtRest runs jobs of every kind that touch a cluster's
// passwords (create, failover, scale, backup, restore into a new cluster)
// and then looks for the cluster and Sentinel passwords of both clusters
// everywhere the manager keeps things: the bytes of manager.db, its -wal
// and -shm files (read while the manager runs, and again after a SIGKILL,
// which leaves the WAL uncheckpointed), every row of every table, the job
// and event JSON the API serves, and the manager's log at debug level.
// A positive control (the cluster's name, which is stored in plain text)
// proves each search sees the data.
func TestSecretsAtRest(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	name := fmt.Sprintf("sec%d", time.Now().UnixNano()%1_000_000)
	createReady(t, m, api.CreateClusterRequest{Name: name, Replicas: intp(1)})
	creds, err := m.Client.Credentials(ctx, name)
	if err != nil || creds.Password == "" || creds.SentinelPassword == "" {
		t.Fatalf("credentials %+v %v", creds, err)
	}
	m.WaitJob(ctx, failoverWhenIdle(t, m, name, 0).ID)
	scaleTo(t, m, name, api.UpdateClusterRequest{Replicas: intp(2)}, "")
	bj, err := m.Client.CreateBackup(ctx, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(ctx, bj.Job.ID)
	copyName := name + "c"
	rr, err := m.Client.RestoreBackup(ctx, bj.Backups[0].ID, api.RestoreRequest{Cluster: copyName})
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(ctx, rr.Job.ID)
	copyCreds, err := m.Client.Credentials(ctx, copyName)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"cluster password": creds.Password, "Sentinel password": creds.SentinelPassword,
		"restored cluster password": copyCreds.Password, "restored Sentinel password": copyCreds.SentinelPassword,
	}
	lookFor := func(where string, data []byte) {
		t.Helper()
		for what, s := range secrets {
			if len(s) < 8 {
				t.Fatalf("%s %q is too short to search for", what, s)
			}
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("the %s is in %s in plain text", what, where)
			}
		}
	}

	// The API's job and event JSON.
	jobs, err := m.Client.ListJobs(ctx, "")
	if err != nil || len(jobs) < 5 {
		t.Fatalf("%d jobs, want at least 5: %v", len(jobs), err)
	}
	jb, _ := json.Marshal(jobs)
	lookFor("the jobs the API lists", jb)
	for _, c := range []string{name, copyName} {
		evs, err := m.Client.ClusterEvents(ctx, c)
		if err != nil || len(evs) == 0 {
			t.Fatalf("events of %s: %d %v", c, len(evs), err)
		}
		eb, _ := json.Marshal(evs)
		lookFor("the events of "+c, eb)
	}

	// The database files, while the manager runs and after a SIGKILL.
	files := func(when string) {
		t.Helper()
		var all []byte
		for _, f := range []string{"manager.db", "manager.db-wal", "manager.db-shm"} {
			b, err := os.ReadFile(filepath.Join(m.DataDir, f))
			if err != nil {
				t.Fatalf("%s %s: %v", when, f, err)
			}
			if f != "manager.db-shm" && len(b) == 0 {
				t.Fatalf("%s %s is empty: the search would find nothing", when, f)
			}
			lookFor(f+" "+when, b)
			all = append(all, b...)
		}
		if !bytes.Contains(all, []byte(copyName)) {
			t.Fatalf("%s: the cluster name %q is in none of the database files: the search cannot see the data", when, copyName)
		}
	}
	files("while the manager runs")
	m.Kill()
	files("after a SIGKILL")

	// Every row of every table, read through SQLite from a copy of the
	// files (the WAL replayed, as the store would see it).
	dir := t.TempDir()
	for _, f := range []string{"manager.db", "manager.db-wal", "manager.db-shm"} {
		copyFile(t, filepath.Join(m.DataDir, f), filepath.Join(dir, f))
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "manager.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows := dumpTables(t, db, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if !strings.Contains(rows["clusters"], copyName) || !strings.Contains(rows["jobs"], "restore") {
		t.Fatalf("the table dump misses what it must hold: clusters %q", rows["clusters"])
	}
	for table, text := range rows {
		lookFor("table "+table, []byte(text))
	}

	// The log, at debug level.
	log, err := os.ReadFile(filepath.Join(m.DataDir, "manager.log"))
	if err != nil || !bytes.Contains(log, []byte(copyName)) {
		t.Fatalf("manager.log does not name %s: %v", copyName, err)
	}
	lookFor("manager.log", log)
	if t.Failed() {
		return
	}
	t.Logf("4 secrets searched in 3 database files (twice), %d tables, %d jobs, the events of 2 clusters and %d bytes of log: none found", len(rows), len(jobs), len(log))
}

// dumpTables returns every row of every table the query lists, one text
// per table: each column's value as text (blobs as raw bytes).
func dumpTables(t *testing.T, db *sql.DB, listTables string) map[string]string {
	t.Helper()
	ctx := context.Background()
	tr, err := db.QueryContext(ctx, listTables)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for tr.Next() {
		var n string
		if err := tr.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	tr.Close()
	if len(tables) < 5 {
		t.Fatalf("only %d tables: %v", len(tables), tables)
	}
	out := map[string]string{}
	for _, table := range tables {
		rs, err := db.QueryContext(ctx, "SELECT * FROM `"+table+"`")
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		cols, _ := rs.Columns()
		var b strings.Builder
		for rs.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				t.Fatalf("dump %s: %v", table, err)
			}
			for _, v := range vals {
				switch x := v.(type) {
				case []byte:
					b.Write(x)
				case nil:
				default:
					fmt.Fprint(&b, x)
				}
				b.WriteByte('\t')
			}
			b.WriteByte('\n')
		}
		if err := rs.Err(); err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		rs.Close()
		out[table] = b.String()
	}
	return out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
