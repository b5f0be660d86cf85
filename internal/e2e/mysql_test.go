package e2e

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestManagerOnMariaDB runs the manager with --store mysql:// against a real
// MariaDB: create, restart (state comes back from MySQL), delete. The rows
// are read from MariaDB directly (the cluster, its instances, its jobs and
// events, no password in any row), and no SQLite file appears in the data
// dir: the test cannot pass on SQLite.
func TestManagerOnMariaDB(t *testing.T) {
	t.Parallel()
	dsn := testenv.StartMariaDB(t)
	m := testenv.StartManager(t, testenv.ManagerOptions{Args: []string{"--store", dsn}})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "onmysql", Replicas: intp(1)})
	testenv.CheckStatus(t, cl, 1, 1, 3)
	creds, _ := m.Client.Credentials(ctx, "onmysql")

	db := openMySQL(t, dsn)
	var clusters int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM clusters WHERE name = 'onmysql'").Scan(&clusters); err != nil || clusters != 1 {
		t.Fatalf("clusters row of onmysql in MariaDB: %d %v", clusters, err)
	}
	want := []string{"onmysql-0-0", "onmysql-0-1", "onmysql-sentinel-0", "onmysql-sentinel-1", "onmysql-sentinel-2"}
	if got := queryStrings(t, db, "SELECT name FROM instances WHERE cluster = 'onmysql'"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("instances rows in MariaDB: %v, want %v", got, want)
	}
	jobRows := queryStrings(t, db, "SELECT CONCAT(id, ' ', kind, ' ', state) FROM jobs WHERE cluster = 'onmysql'")
	jobs, err := m.Client.ListJobs(ctx, "onmysql")
	if err != nil || len(jobs) != 1 || len(jobRows) != 1 || jobRows[0] != jobs[0].ID+" create succeeded" {
		t.Fatalf("jobs rows in MariaDB %v, API %+v %v", jobRows, jobs, err)
	}
	if evs := queryStrings(t, db, "SELECT type FROM events WHERE cluster = 'onmysql'"); strings.Join(evs, " ") != "created" {
		t.Errorf("events rows in MariaDB: %v", evs)
	}
	rows := dumpTables(t, db, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
	for table, text := range rows {
		for _, s := range []string{creds.Password, creds.SentinelPassword} {
			if strings.Contains(text, s) {
				t.Errorf("a password is in plain text in MariaDB table %s", table)
			}
		}
	}
	noSQLite := func() {
		t.Helper()
		found, _ := filepath.Glob(filepath.Join(m.DataDir, "*.db*"))
		if len(found) > 0 {
			t.Fatalf("SQLite files in the data dir of a manager on MariaDB: %v", found)
		}
	}
	noSQLite()

	m.Kill()
	m.Restart()
	cl = m.WaitPhase(ctx, "onmysql", api.PhaseReady, 10*time.Second)
	testenv.CheckStatus(t, cl, 1, 1, 3)
	jobs, err = m.Client.ListJobs(ctx, "onmysql")
	if err != nil || len(jobs) != 1 || jobs[0].State != api.StateSucceeded {
		t.Fatalf("jobs from MySQL after restart: %+v %v", jobs, err)
	}
	job, err := m.Client.DeleteCluster(ctx, "onmysql")
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(ctx, job.ID)
	if pids := testenv.InstancePids(m.DataDir); len(pids) != 0 {
		t.Fatalf("processes left: %v", pids)
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM clusters WHERE name = 'onmysql'").Scan(&clusters); err != nil || clusters != 0 {
		t.Fatalf("clusters row after delete: %d %v", clusters, err)
	}
	if got := queryStrings(t, db, "SELECT name FROM instances WHERE cluster = 'onmysql'"); len(got) != 0 {
		t.Fatalf("instances rows after delete: %v", got)
	}
	if got := queryStrings(t, db, "SELECT CONCAT(kind, ' ', state) FROM jobs WHERE cluster = 'onmysql'"); strings.Join(got, ",") != "create succeeded,delete succeeded" {
		t.Fatalf("jobs rows after delete: %v", got)
	}
	noSQLite()
	if _, err := os.Stat(filepath.Join(m.DataDir, "manager.db")); !os.IsNotExist(err) {
		t.Fatalf("manager.db in the data dir: %v", err)
	}
}

// openMySQL opens the mysql://user:pass@host:port/db DSN testenv gives with
// database/sql.
func openMySQL(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("MariaDB at %s: %v", u.Host, err)
	}
	return db
}

// queryStrings returns the single string column of a query's rows, sorted.
func queryStrings(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rs, err := db.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
