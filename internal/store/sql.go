package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/redis-manager/redis-manager/api"
)

// dialect is what differs between the engines. The queries themselves are
// shared: both engines take ? placeholders, and every statement sticks to
// the SQL both understand.
type dialect struct {
	name string
	// ddl expands the engine-specific placeholders of migration statements.
	ddl *strings.Replacer
	// transactionalDDL: a migration and its version row commit together.
	// MySQL commits DDL implicitly, so there each statement is made
	// re-runnable instead (see alreadyApplied).
	transactionalDDL bool
	// isDuplicate reports a unique or primary key violation.
	isDuplicate func(error) bool
	// alreadyApplied reports a DDL error that means the statement already
	// ran (a migration interrupted half-way is being run again).
	alreadyApplied func(error) bool
	// lockMigrations serializes migrations between processes sharing the
	// database. It returns the function that releases the lock.
	lockMigrations func(ctx context.Context, conn *sql.Conn) (unlock func(), err error)
	// nowMs is the database's clock in milliseconds since the Unix epoch,
	// as an SQL expression (leases).
	nowMs string
	// lockUpdate and lockShared end a SELECT that locks the row it reads
	// until the transaction ends (SQLite's IMMEDIATE transactions already
	// exclude every other writer).
	lockUpdate, lockShared string
}

var sqliteDialect = dialect{
	name: "sqlite",
	ddl: strings.NewReplacer(
		"{{time}}", "TEXT",
		"{{table}}", "",
	),
	transactionalDDL: true,
	isDuplicate: func(err error) bool {
		var e *sqlite.Error
		if !errors.As(err, &e) {
			return false
		}
		return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
	alreadyApplied: func(error) bool { return false },
	// Migrations run in IMMEDIATE transactions (see openSQLite), which
	// already exclude every other writer of the file.
	lockMigrations: func(context.Context, *sql.Conn) (func(), error) { return func() {}, nil },
	nowMs:          "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)",
}

var mysqlDialect = dialect{
	name: "mysql",
	ddl: strings.NewReplacer(
		"{{time}}", "DATETIME(6)",
		// Binary collation: names compare exactly, as they do in SQLite
		// ("Orders" and "orders" are two clusters in both engines).
		"{{table}}", " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
	),
	isDuplicate: func(err error) bool {
		var e *mysql.MySQLError
		// 1062 ER_DUP_ENTRY, 1586 ER_DUP_ENTRY_WITH_KEY_NAME
		return errors.As(err, &e) && (e.Number == 1062 || e.Number == 1586)
	},
	alreadyApplied: func(err error) bool {
		var e *mysql.MySQLError
		// 1050 table exists, 1060 duplicate column, 1061 duplicate key name,
		// 1091 can't drop a column or key that is gone
		return errors.As(err, &e) && (e.Number == 1050 || e.Number == 1060 || e.Number == 1061 || e.Number == 1091)
	},
	lockMigrations: func(ctx context.Context, conn *sql.Conn) (func(), error) {
		// A named lock per database; it is held by this session and dies
		// with it if the process does.
		const name = "LEFT(CONCAT('redis-manager-migrate:', DATABASE()), 64)"
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+name+", 120)").Scan(&got); err != nil {
			return nil, fmt.Errorf("take migration lock: %w", err)
		}
		if !got.Valid || got.Int64 != 1 {
			return nil, errors.New("take migration lock: another process held it for 120s")
		}
		return func() {
			// Released with a fresh context: the caller's may be done.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = conn.ExecContext(ctx, "DO RELEASE_LOCK("+name+")")
		}, nil
	},
	nowMs:      "CAST(ROUND(UNIX_TIMESTAMP(NOW(6)) * 1000) AS SIGNED)",
	lockUpdate: " FOR UPDATE",
	// LOCK IN SHARE MODE, not FOR SHARE: MariaDB knows only this spelling.
	lockShared: " LOCK IN SHARE MODE",
}

// sqlStore implements Store on database/sql for both engines.
type sqlStore struct {
	db *sql.DB
	// reads serves the reads of GET /api/v1/clusters and /metrics
	// (ClusterRevs, GetClusters, UnfinishedJobs, the backup records and
	// schedules): read-only connections beside db's one on SQLite
	// (openSQLiteReads), db itself on MySQL.
	reads *sql.DB
	d     dialect
	seal  *sealer
}

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) Close() error {
	if s.reads != nil && s.reads != s.db {
		s.reads.Close()
	}
	return s.db.Close()
}

// Times are stored in UTC with microsecond precision as fixed-width text,
// which SQLite keeps as TEXT (so it sorts) and MySQL parses into DATETIME(6).
const timeLayout = "2006-01-02 15:04:05.000000"

func timeArg(t time.Time) string { return t.UTC().Format(timeLayout) }

func nullTimeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return timeArg(*t)
}

// now is the current time as the store keeps it.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// dbTime scans a stored time: time.Time from MySQL (parseTime), text from
// SQLite.
type dbTime struct {
	t     time.Time
	valid bool
}

func (d *dbTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*d = dbTime{}
		return nil
	case time.Time:
		*d = dbTime{t: v.UTC(), valid: true}
		return nil
	case string:
		return d.parse(v)
	case []byte:
		return d.parse(string(v))
	default:
		return fmt.Errorf("stored time: unexpected %T", v)
	}
}

func (d *dbTime) parse(s string) error {
	t, err := time.ParseInLocation(timeLayout, s, time.UTC)
	if err != nil {
		return fmt.Errorf("stored time %q: %w", s, err)
	}
	*d = dbTime{t: t, valid: true}
	return nil
}

func (d dbTime) ptr() *time.Time {
	if !d.valid {
		return nil
	}
	t := d.t
	return &t
}

// rowsAffected returns how many rows the statement matched (MySQL is opened
// with clientFoundRows, SQLite always counts matches).
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// inTx runs fn in a transaction and commits it when fn returns nil. When
// ctx carries a fence (WithFence), the transaction checks it first.
func (s *sqlStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.inTxOp(ctx, "write", fn)
}

// inTxOp is inTx naming the operation for a refused fence.
func (s *sqlStore) inTxOp(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	return s.inTxUnfenced(ctx, func(tx *sql.Tx) error {
		if err := s.checkFence(ctx, tx, op); err != nil {
			return err
		}
		return fn(tx)
	})
}

// inTxUnfenced is inTx without the fence check (the lease itself).
func (s *sqlStore) inTxUnfenced(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// checkKey makes sure the key file is the one this database's secrets were
// written with, so a lost or swapped key file stops the start instead of
// silently mixing secrets under two keys. The first start records a check
// value.
func (s *sqlStore) checkKey(ctx context.Context) error {
	const where, plain = "key check", "redis-manager key check v1"
	for range 2 {
		var stored string
		err := s.db.QueryRowContext(ctx, "SELECT value_enc FROM key_check WHERE id = 1").Scan(&stored)
		if err == nil {
			got, err := s.seal.open(stored, where)
			if err != nil || got != plain {
				return fmt.Errorf("the database's secrets were written with another key: %w", ErrDecrypt)
			}
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read key check: %w", err)
		}
		enc, err := s.seal.seal(plain, where)
		if err != nil {
			return err
		}
		_, err = s.db.ExecContext(ctx, "INSERT INTO key_check (id, value_enc) VALUES (1, ?)", enc)
		if err == nil {
			return nil
		}
		if !s.d.isDuplicate(err) {
			return fmt.Errorf("write key check: %w", err)
		}
		// Another process recorded its key first: compare with that one.
	}
	return errors.New("key check: could not read or write the check row")
}

// Clusters.

const clusterCols = "name, spec, status, password_enc, sentinel_password_enc, created_at, next_password_enc, old_password_enc, rotation_ends_at, next_sentinel_password_enc, old_sentinel_password_enc, rev"

func (s *sqlStore) CreateClusterWithJob(ctx context.Context, c Cluster, j Job) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.insertCluster(ctx, tx, c); err != nil {
			return err
		}
		return s.insertJob(ctx, tx, j)
	})
	if err != nil {
		return fmt.Errorf("create cluster %q: %w", c.Name, err)
	}
	return nil
}

// insertCluster inserts c; ErrConflict when the name is taken.
func (s *sqlStore) insertCluster(ctx context.Context, tx *sql.Tx, c Cluster) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now()
	}
	spec, err := json.Marshal(c.Spec)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	status, err := json.Marshal(c.Status)
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	pw, err := s.seal.seal(c.Password, secretPlace("password", c.Name))
	if err != nil {
		return err
	}
	spw, err := s.seal.seal(c.SentinelPassword, secretPlace("sentinel password", c.Name))
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx,
		"INSERT INTO clusters (name, spec, status, password_enc, sentinel_password_enc, created_at, rev, spec_rev) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		c.Name, string(spec), string(status), pw, spw, timeArg(c.CreatedAt), newRev(), newRev())
	if s.d.isDuplicate(err) {
		return fmt.Errorf("name is taken: %w", ErrConflict)
	}
	return err
}

func (s *sqlStore) scanCluster(row interface{ Scan(...any) error }) (Cluster, error) {
	var (
		c             Cluster
		spec, status  string
		pwEnc, spwEnc string
		created       dbTime
		next, old     sql.NullString
		nextS, oldS   sql.NullString
		endsAt        dbTime
	)
	if err := row.Scan(&c.Name, &spec, &status, &pwEnc, &spwEnc, &created, &next, &old, &endsAt, &nextS, &oldS, &c.Rev); err != nil {
		return Cluster{}, err
	}
	if err := s.openRotation(&c, next, old, nextS, oldS, endsAt); err != nil {
		return Cluster{}, err
	}
	if err := json.Unmarshal([]byte(spec), &c.Spec); err != nil {
		return Cluster{}, fmt.Errorf("decode spec of cluster %q: %w", c.Name, err)
	}
	if status != "" {
		if err := json.Unmarshal([]byte(status), &c.Status); err != nil {
			return Cluster{}, fmt.Errorf("decode status of cluster %q: %w", c.Name, err)
		}
	}
	var err error
	if c.Password, err = s.seal.open(pwEnc, secretPlace("password", c.Name)); err != nil {
		return Cluster{}, err
	}
	if c.SentinelPassword, err = s.seal.open(spwEnc, secretPlace("sentinel password", c.Name)); err != nil {
		return Cluster{}, err
	}
	c.CreatedAt = created.t
	return c, nil
}

func (s *sqlStore) GetCluster(ctx context.Context, name string) (Cluster, error) {
	row := s.db.QueryRowContext(ctx, "SELECT "+clusterCols+" FROM clusters WHERE name = ?", name)
	c, err := s.scanCluster(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Cluster{}, fmt.Errorf("get cluster %q: %w", name, err)
	}
	return c, nil
}

func (s *sqlStore) ListClusters(ctx context.Context) ([]Cluster, error) {
	return s.listClusters(ctx, clusterCols)
}

// clusterColsNoStatus reads an empty status, which scanCluster leaves zero.
var clusterColsNoStatus = strings.Replace(clusterCols, "status,", "'' AS status,", 1)

func (s *sqlStore) ListClustersWithoutStatus(ctx context.Context) ([]Cluster, error) {
	return s.listClusters(ctx, clusterColsNoStatus)
}

func (s *sqlStore) listClusters(ctx context.Context, cols string) ([]Cluster, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+cols+" FROM clusters ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	defer rows.Close()
	var out []Cluster
	for rows.Next() {
		c, err := s.scanCluster(rows)
		if err != nil {
			return nil, fmt.Errorf("list clusters: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	return out, nil
}

func (s *sqlStore) GetClusters(ctx context.Context, names []string) ([]Cluster, error) {
	if len(names) == 0 {
		return nil, nil
	}
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	rows, err := s.reads.QueryContext(ctx, "SELECT "+clusterCols+" FROM clusters WHERE name IN (?"+strings.Repeat(", ?", len(names)-1)+") ORDER BY name", args...)
	if err != nil {
		return nil, fmt.Errorf("get clusters: %w", err)
	}
	defer rows.Close()
	var out []Cluster
	for rows.Next() {
		c, err := s.scanCluster(rows)
		if err != nil {
			return nil, fmt.Errorf("get clusters: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get clusters: %w", err)
	}
	return out, nil
}

func (s *sqlStore) ClusterRevs(ctx context.Context) ([]ClusterRev, error) {
	rows, err := s.reads.QueryContext(ctx, "SELECT name, rev, spec_rev FROM clusters ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list cluster revisions: %w", err)
	}
	defer rows.Close()
	var out []ClusterRev
	for rows.Next() {
		var r ClusterRev
		if err := rows.Scan(&r.Name, &r.Rev, &r.SpecRev); err != nil {
			return nil, fmt.Errorf("list cluster revisions: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list cluster revisions: %w", err)
	}
	return out, nil
}

// newRev is a cluster row's next revision: random, so writers on several
// managers need no coordination, and never 0 (a row from before
// migration 12 until its first write).
func newRev() int64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return int64(binary.BigEndian.Uint64(b[:])>>1) | 1
}

func (s *sqlStore) UpdateClusterSpec(ctx context.Context, name string, spec api.ClusterSpec) error {
	if err := s.updateClusterJSON(ctx, "spec", name, spec, true); err != nil {
		return fmt.Errorf("update spec of cluster %q: %w", name, err)
	}
	return nil
}

func (s *sqlStore) UpdateClusterStatus(ctx context.Context, name string, status api.ClusterStatus) error {
	if err := s.updateClusterJSON(ctx, "status", name, status, false); err != nil {
		return fmt.Errorf("update status of cluster %q: %w", name, err)
	}
	return nil
}

// updateClusterJSON stores v as the JSON of column (a constant, never
// input), with a new rev, and a new spec_rev when spec is set.
func (s *sqlStore) updateClusterJSON(ctx context.Context, column, name string, v any, spec bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	set, args := "UPDATE clusters SET "+column+" = ?, rev = ?", []any{string(b), newRev()}
	if spec {
		set, args = set+", spec_rev = ?", append(args, newRev())
	}
	return s.write(ctx, "update cluster "+column, func(q execer) error {
		n, err := rowsAffected(q.ExecContext(ctx, set+" WHERE name = ?", append(args, name)...))
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

func (s *sqlStore) DeleteCluster(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, "DELETE FROM clusters WHERE name = ?", name))
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM instances WHERE cluster = ?", name); err != nil {
			return err
		}
		// Backups outlive their cluster; its schedule and autoscaling
		// policy do not.
		for _, table := range []string{"backup_schedules", "autoscale_policies", "autoscale_state"} {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE cluster = ?", name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete cluster %q: %w", name, err)
	}
	return nil
}

// Instances.

const instanceCols = "name, cluster, kind, shard, ordinal, host, port, handle, created_at"

// PutInstance updates the record with that name or inserts it. It is not an
// engine upsert: MySQL's ON DUPLICATE KEY UPDATE, on a table with two unique
// keys, would update the row that holds the port when only the port
// collides, overwriting another instance's record. The handle is stored as
// text ("" for none): every platform's handle is JSON.
func (s *sqlStore) PutInstance(ctx context.Context, in Instance) error {
	if in.CreatedAt.IsZero() {
		in.CreatedAt = now()
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// created_at is kept: it is when the record first appeared.
		n, err := rowsAffected(tx.ExecContext(ctx,
			"UPDATE instances SET cluster = ?, kind = ?, shard = ?, ordinal = ?, host = ?, port = ?, handle = ? WHERE name = ?",
			in.Cluster, in.Kind, in.Shard, in.Ordinal, in.Host, in.Port, string(in.Handle), in.Name))
		if err != nil || n > 0 {
			return err
		}
		_, err = tx.ExecContext(ctx,
			"INSERT INTO instances ("+instanceCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			in.Name, in.Cluster, in.Kind, in.Shard, in.Ordinal, in.Host, in.Port, string(in.Handle), timeArg(in.CreatedAt))
		return err
	})
	if s.d.isDuplicate(err) {
		// The transaction is over, so this read cannot deadlock on the
		// single SQLite connection.
		var holder string
		if qerr := s.db.QueryRowContext(ctx, "SELECT name FROM instances WHERE host = ? AND port = ?", in.Host, in.Port).Scan(&holder); qerr == nil && holder != in.Name {
			return fmt.Errorf("put instance %q: %s is held by instance %q: %w", in.Name, net.JoinHostPort(in.Host, strconv.Itoa(in.Port)), holder, ErrConflict)
		}
		return fmt.Errorf("put instance %q: %w", in.Name, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("put instance %q: %w", in.Name, err)
	}
	return nil
}

func (s *sqlStore) ListInstances(ctx context.Context, cluster string) ([]Instance, error) {
	out, err := s.queryInstances(ctx, "SELECT "+instanceCols+" FROM instances WHERE cluster = ? ORDER BY shard, ordinal, name", cluster)
	if err != nil {
		return nil, fmt.Errorf("list instances of cluster %q: %w", cluster, err)
	}
	return out, nil
}

func (s *sqlStore) ListAllInstances(ctx context.Context) ([]Instance, error) {
	out, err := s.queryInstances(ctx, "SELECT "+instanceCols+" FROM instances ORDER BY cluster, shard, ordinal, name")
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	return out, nil
}

func (s *sqlStore) queryInstances(ctx context.Context, query string, args ...any) ([]Instance, error) {
	return s.queryInstancesIn(ctx, s.db, query, args...)
}

// querier is what both *sql.DB and *sql.Tx offer for reads.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *sqlStore) queryInstancesIn(ctx context.Context, q querier, query string, args ...any) ([]Instance, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Instance
	for rows.Next() {
		var (
			in      Instance
			h       string
			created dbTime
		)
		if err := rows.Scan(&in.Name, &in.Cluster, &in.Kind, &in.Shard, &in.Ordinal, &in.Host, &in.Port, &h, &created); err != nil {
			return nil, err
		}
		if h != "" {
			in.Handle = []byte(h)
		}
		in.CreatedAt = created.t
		out = append(out, in)
	}
	return out, rows.Err()
}

// DeleteInstance returns ErrNotFound when there is no such record, like
// DeleteCluster; callers that delete idempotently check for it.
func (s *sqlStore) DeleteInstance(ctx context.Context, name string) error {
	err := s.write(ctx, "delete instance", func(q execer) error {
		n, err := rowsAffected(q.ExecContext(ctx, "DELETE FROM instances WHERE name = ?", name))
		if err == nil && n == 0 {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete instance %q: %w", name, err)
	}
	return nil
}

// Jobs.
//
// "One unfinished job per lane" is a unique index, not a check: the column
// active_cluster holds the job's lane (the cluster's name for changing jobs,
// "<cluster>#backup" for backups) while the job is pending or running and NULL once it is done (both engines allow many NULLs in a
// unique index). Two managers creating a job for the same cluster at once
// cannot both succeed, on either engine, without any locking read.

const jobCols = "id, kind, cluster, state, progress, message, steps, error, params, created_at, started_at, finished_at"

func unfinished(state string) bool { return state == api.StatePending || state == api.StateRunning }

// activeCluster is the value of active_cluster for a job: its JobLock
// while it is unfinished, NULL otherwise.
func activeCluster(j Job) any {
	if unfinished(j.State) {
		if lock := JobLock(j.Kind, j.Cluster); lock != "" {
			return lock
		}
	}
	return nil
}

// jobArgs encodes the JSON columns of a job.
func jobArgs(j Job) (steps string, params any, err error) {
	b, err := json.Marshal(j.Steps)
	if err != nil {
		return "", nil, fmt.Errorf("encode steps: %w", err)
	}
	if len(j.Params) > 0 {
		if !json.Valid(j.Params) {
			return "", nil, errors.New("params are not valid JSON")
		}
		params = string(j.Params)
	}
	return string(b), params, nil
}

// insertJob inserts j in tx; State "" is stored as pending and a zero
// CreatedAt as now.
func (s *sqlStore) insertJob(ctx context.Context, tx *sql.Tx, j Job) error {
	if j.State == "" {
		j.State = api.StatePending
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = now()
	}
	steps, params, err := jobArgs(j)
	if err != nil {
		return fmt.Errorf("job %q: %w", j.ID, err)
	}
	if lock := activeCluster(j); lock != nil {
		// Name the job in the way for a useful message; the unique index
		// below is what makes the rule hold under concurrency.
		var id, kind, state string
		err := tx.QueryRowContext(ctx, "SELECT id, kind, state FROM jobs WHERE active_cluster = ?", lock).Scan(&id, &kind, &state)
		if err == nil {
			return fmt.Errorf("job %q: cluster %q already has unfinished job %q (%s, %s): %w", j.ID, j.Cluster, id, kind, state, ErrConflict)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("job %q: %w", j.ID, err)
		}
	}
	_, err = tx.ExecContext(ctx,
		"INSERT INTO jobs ("+jobCols+", active_cluster) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		j.ID, j.Kind, j.Cluster, j.State, j.Progress, j.Message, steps, j.Error, params,
		timeArg(j.CreatedAt), nullTimeArg(j.StartedAt), nullTimeArg(j.FinishedAt), activeCluster(j))
	if s.d.isDuplicate(err) {
		return fmt.Errorf("job %q: the id is taken or cluster %q already has an unfinished job: %w", j.ID, j.Cluster, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("job %q: %w", j.ID, err)
	}
	return nil
}

func (s *sqlStore) CreateJob(ctx context.Context, j Job) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error { return s.insertJob(ctx, tx, j) })
	if err != nil {
		return fmt.Errorf("create %s job for cluster %q: %w", j.Kind, j.Cluster, err)
	}
	return nil
}

func (s *sqlStore) UpdateJob(ctx context.Context, j Job) error {
	steps, params, err := jobArgs(j)
	if err == nil {
		var n int64
		err = s.write(ctx, "update job", func(q execer) error {
			var err error
			n, err = rowsAffected(q.ExecContext(ctx,
				"UPDATE jobs SET state = ?, active_cluster = ?, progress = ?, message = ?, steps = ?, error = ?, params = ?, started_at = ?, finished_at = ? WHERE id = ?",
				j.State, activeCluster(j), j.Progress, j.Message, steps, j.Error, params,
				nullTimeArg(j.StartedAt), nullTimeArg(j.FinishedAt), j.ID))
			return err
		})
		switch {
		case s.d.isDuplicate(err):
			err = fmt.Errorf("cluster %q already has another unfinished job: %w", j.Cluster, ErrConflict)
		case err == nil && n == 0:
			err = ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("update job %q: %w", j.ID, err)
	}
	return nil
}

func (s *sqlStore) GetJob(ctx context.Context, id string) (Job, error) {
	jobs, err := s.queryJobs(ctx, "SELECT "+jobCols+" FROM jobs WHERE id = ?", id)
	if err == nil && len(jobs) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return Job{}, fmt.Errorf("get job %q: %w", id, err)
	}
	return jobs[0], nil
}

func (s *sqlStore) ListJobs(ctx context.Context, cluster string) ([]Job, error) {
	var (
		jobs []Job
		err  error
	)
	if cluster == "" {
		jobs, err = s.queryJobs(ctx, "SELECT "+jobCols+" FROM jobs ORDER BY created_at DESC, id DESC")
	} else {
		jobs, err = s.queryJobs(ctx, "SELECT "+jobCols+" FROM jobs WHERE cluster = ? ORDER BY created_at DESC, id DESC", cluster)
	}
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

func (s *sqlStore) UnfinishedJobs(ctx context.Context) ([]Job, error) {
	jobs, err := s.queryJobsIn(ctx, s.reads, "SELECT "+jobCols+" FROM jobs WHERE state IN (?, ?) ORDER BY created_at, id",
		api.StatePending, api.StateRunning)
	if err != nil {
		return nil, fmt.Errorf("list unfinished jobs: %w", err)
	}
	return jobs, nil
}

func (s *sqlStore) JobsSince(ctx context.Context, since time.Time) ([]Job, error) {
	jobs, err := s.queryJobs(ctx, "SELECT "+jobCols+" FROM jobs WHERE state IN (?, ?) OR finished_at >= ? ORDER BY created_at, id",
		api.StatePending, api.StateRunning, timeArg(since))
	if err != nil {
		return nil, fmt.Errorf("list jobs since %s: %w", since.Format(time.RFC3339), err)
	}
	return jobs, nil
}

func (s *sqlStore) queryJobs(ctx context.Context, query string, args ...any) ([]Job, error) {
	return s.queryJobsIn(ctx, s.db, query, args...)
}

func (s *sqlStore) queryJobsIn(ctx context.Context, q querier, query string, args ...any) ([]Job, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		var (
			j                          Job
			steps                      string
			params                     sql.NullString
			created, started, finished dbTime
		)
		if err := rows.Scan(&j.ID, &j.Kind, &j.Cluster, &j.State, &j.Progress, &j.Message, &steps, &j.Error, &params, &created, &started, &finished); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(steps), &j.Steps); err != nil {
			return nil, fmt.Errorf("decode steps of job %q: %w", j.ID, err)
		}
		if params.Valid {
			j.Params = json.RawMessage(params.String)
		}
		j.CreatedAt, j.StartedAt, j.FinishedAt = created.t, started.ptr(), finished.ptr()
		out = append(out, j)
	}
	return out, rows.Err()
}

// Events.

// newEventID returns an id that sorts by creation time (nanoseconds, then
// randomness), so events recorded within one microsecond still list in the
// order they were added.
func newEventID() string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%016x%s", time.Now().UnixNano(), hex.EncodeToString(r[:]))
}

// AddEvent stores e. An empty ID is generated and a zero At is now.
func (s *sqlStore) AddEvent(ctx context.Context, e api.Event) error {
	if e.ID == "" {
		e.ID = newEventID()
	}
	if e.At.IsZero() {
		e.At = now()
	}
	var details any
	if e.Details != nil {
		b, err := json.Marshal(e.Details)
		if err != nil {
			return fmt.Errorf("add event %s to cluster %q: encode details: %w", e.Type, e.Cluster, err)
		}
		details = string(b)
	}
	err := s.write(ctx, "add event", func(q execer) error {
		_, err := q.ExecContext(ctx,
			"INSERT INTO events (id, cluster, shard, type, at, message, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
			e.ID, e.Cluster, e.Shard, e.Type, timeArg(e.At), e.Message, details)
		return err
	})
	if s.d.isDuplicate(err) {
		err = fmt.Errorf("event id %q is taken: %w", e.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("add event %s to cluster %q: %w", e.Type, e.Cluster, err)
	}
	return nil
}

// ListEvents lists newest first; limit <= 0 means no limit.
func (s *sqlStore) ListEvents(ctx context.Context, cluster string, limit int) ([]api.Event, error) {
	query := "SELECT id, cluster, shard, type, at, message, details FROM events WHERE cluster = ? ORDER BY at DESC, id DESC"
	args := []any{cluster}
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	out, err := s.queryEvents(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list events of cluster %q: %w", cluster, err)
	}
	return out, nil
}

func (s *sqlStore) queryEvents(ctx context.Context, query string, args ...any) ([]api.Event, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []api.Event
	for rows.Next() {
		var (
			e       api.Event
			shard   sql.NullInt64
			at      dbTime
			details sql.NullString
		)
		if err := rows.Scan(&e.ID, &e.Cluster, &shard, &e.Type, &at, &e.Message, &details); err != nil {
			return nil, err
		}
		if shard.Valid {
			v := int(shard.Int64)
			e.Shard = &v
		}
		e.At = at.t
		if details.Valid {
			if err := json.Unmarshal([]byte(details.String), &e.Details); err != nil {
				return nil, fmt.Errorf("decode details of event %q: %w", e.ID, err)
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
