package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"
)

// A migration is one version of the schema. Statements use the SQL both
// engines accept, with placeholders the dialect expands:
//
//	{{time}}   a UTC time with microseconds (TEXT in SQLite, DATETIME(6) in MySQL)
//	{{table}}  table options (MySQL: InnoDB, utf8mb4, binary collation)
//
// Where an engine needs different SQL, put it in sqlite or mysql; those run
// after the common statements. Migrations are append-only: never edit one
// that has shipped, add the next version.
//
// On MySQL, DDL commits implicitly, so a migration interrupted half-way is
// run again from its first statement: write statements that can run twice
// (CREATE TABLE IF NOT EXISTS; an index or column that already exists is
// accepted, see dialect.alreadyApplied).
type migration struct {
	version int
	name    string
	common  []string
	sqlite  []string
	mysql   []string
	// rerun reports an error that, for this migration's statements only,
	// means a run interrupted half-way got past the statement already.
	rerun func(error) bool
}

var migrations = []migration{
	{
		version: 1,
		name:    "clusters, instances, jobs, events, key check",
		common: []string{
			`CREATE TABLE IF NOT EXISTS clusters (
				name VARCHAR(255) NOT NULL PRIMARY KEY,
				spec LONGTEXT NOT NULL,
				status LONGTEXT NOT NULL,
				password_enc TEXT NOT NULL,
				sentinel_password_enc TEXT NOT NULL,
				created_at {{time}} NOT NULL
			){{table}}`,
			`CREATE TABLE IF NOT EXISTS instances (
				name VARCHAR(255) NOT NULL PRIMARY KEY,
				cluster VARCHAR(255) NOT NULL,
				kind VARCHAR(32) NOT NULL,
				shard INT NOT NULL,
				ordinal INT NOT NULL,
				host VARCHAR(255) NOT NULL,
				port INT NOT NULL,
				pid INT NOT NULL,
				data_dir TEXT NOT NULL,
				created_at {{time}} NOT NULL,
				CONSTRAINT instances_port_unique UNIQUE (port)
			){{table}}`,
			`CREATE INDEX instances_cluster ON instances (cluster)`,
			// active_cluster: see "Jobs" in sql.go.
			`CREATE TABLE IF NOT EXISTS jobs (
				id VARCHAR(255) NOT NULL PRIMARY KEY,
				kind VARCHAR(64) NOT NULL,
				cluster VARCHAR(255) NOT NULL,
				state VARCHAR(32) NOT NULL,
				active_cluster VARCHAR(255) NULL,
				progress DOUBLE NOT NULL,
				message LONGTEXT NOT NULL,
				steps LONGTEXT NOT NULL,
				error LONGTEXT NOT NULL,
				params LONGTEXT NULL,
				created_at {{time}} NOT NULL,
				started_at {{time}} NULL,
				finished_at {{time}} NULL,
				CONSTRAINT jobs_one_unfinished_per_cluster UNIQUE (active_cluster)
			){{table}}`,
			`CREATE INDEX jobs_cluster_created ON jobs (cluster, created_at)`,
			`CREATE INDEX jobs_state_created ON jobs (state, created_at)`,
			`CREATE TABLE IF NOT EXISTS events (
				id VARCHAR(255) NOT NULL PRIMARY KEY,
				cluster VARCHAR(255) NOT NULL,
				shard INT NULL,
				type VARCHAR(64) NOT NULL,
				at {{time}} NOT NULL,
				message LONGTEXT NOT NULL,
				details LONGTEXT NULL
			){{table}}`,
			`CREATE INDEX events_cluster_at ON events (cluster, at)`,
			// One row, encrypted with the key file: tells at start whether
			// the key file is the one the secrets were written with.
			`CREATE TABLE IF NOT EXISTS key_check (
				id INT NOT NULL PRIMARY KEY,
				value_enc TEXT NOT NULL
			){{table}}`,
		},
	},
	{
		version: 2,
		name:    "backups, backup schedules",
		common: []string{
			// Records outlive their cluster: no foreign key. key_count, not
			// keys: KEYS is reserved in MySQL.
			`CREATE TABLE IF NOT EXISTS backups (
				id VARCHAR(255) NOT NULL PRIMARY KEY,
				cluster VARCHAR(255) NOT NULL,
				shard INT NOT NULL,
				state VARCHAR(32) NOT NULL,
				job_id VARCHAR(255) NOT NULL,
				target_url TEXT NOT NULL,
				object_key TEXT NOT NULL,
				object_url TEXT NOT NULL,
				size_bytes BIGINT NOT NULL,
				crc64 VARCHAR(32) NOT NULL,
				key_count BIGINT NOT NULL,
				source_instance VARCHAR(255) NOT NULL,
				started_at {{time}} NOT NULL,
				finished_at {{time}} NULL,
				duration_ms BIGINT NOT NULL,
				verified INT NOT NULL,
				error LONGTEXT NOT NULL,
				schedule_slot {{time}} NULL,
				source_spec LONGTEXT NULL
			){{table}}`,
			`CREATE INDEX backups_cluster_started ON backups (cluster, started_at)`,
			`CREATE INDEX backups_started ON backups (started_at)`,
			`CREATE TABLE IF NOT EXISTS backup_schedules (
				cluster VARCHAR(255) NOT NULL PRIMARY KEY,
				cron VARCHAR(255) NOT NULL,
				retain INT NOT NULL,
				max_age_ms BIGINT NOT NULL,
				last_slot {{time}} NULL,
				created_at {{time}} NOT NULL,
				updated_at {{time}} NOT NULL
			){{table}}`,
		},
	},
	{
		version: 3,
		name:    "leases",
		common: []string{
			// One row per named lease (the leader lease: "leader").
			// expires_ms is by the database's clock (dialect.nowMs); epoch
			// is the fencing token, see sql_lease.go.
			`CREATE TABLE IF NOT EXISTS leases (
				name VARCHAR(255) NOT NULL PRIMARY KEY,
				holder VARCHAR(255) NOT NULL,
				epoch BIGINT NOT NULL,
				expires_ms BIGINT NOT NULL
			){{table}}`,
		},
	},
	{
		version: 4,
		name:    "instances: unique endpoint (host, port), platform handle instead of pid and data dir",
		// An endpoint is unique, not a port: on Kubernetes every
		// redis-server listens on 6379 under its own DNS name, and locally
		// each instance may have its own loopback address. The pid and data
		// dir become the platform's opaque handle (local: JSON).
		//
		// SQLite cannot drop a constraint in place: the table is rebuilt,
		// inside the migration's transaction.
		sqlite: []string{
			`CREATE TABLE instances_v4 (
				name VARCHAR(255) NOT NULL PRIMARY KEY,
				cluster VARCHAR(255) NOT NULL,
				kind VARCHAR(32) NOT NULL,
				shard INT NOT NULL,
				ordinal INT NOT NULL,
				host VARCHAR(255) NOT NULL,
				port INT NOT NULL,
				handle LONGTEXT NOT NULL,
				created_at {{time}} NOT NULL,
				CONSTRAINT instances_endpoint_unique UNIQUE (host, port)
			)`,
			`INSERT INTO instances_v4 (name, cluster, kind, shard, ordinal, host, port, handle, created_at)
				SELECT name, cluster, kind, shard, ordinal, host, port,
					CASE WHEN pid = 0 AND data_dir = '' THEN '' ELSE json_object('pid', pid, 'dataDir', data_dir) END,
					created_at
				FROM instances`,
			`DROP TABLE instances`,
			`ALTER TABLE instances_v4 RENAME TO instances`,
			`CREATE INDEX instances_cluster ON instances (cluster)`,
		},
		// Each statement can run again after an interruption: an existing
		// column or key and a dropped one are accepted
		// (dialect.alreadyApplied), and the copy of pid and data dir into
		// the handle, run again once they are dropped, fails with "unknown
		// column" (rerun), after it succeeded the first time.
		mysql: []string{
			`ALTER TABLE instances ADD COLUMN handle LONGTEXT NULL`,
			`UPDATE instances SET handle = CASE WHEN pid = 0 AND data_dir = '' THEN '' ELSE JSON_OBJECT('pid', pid, 'dataDir', data_dir) END WHERE handle IS NULL`,
			`ALTER TABLE instances ADD CONSTRAINT instances_endpoint_unique UNIQUE (host, port)`,
			`ALTER TABLE instances DROP INDEX instances_port_unique`,
			`ALTER TABLE instances DROP COLUMN pid`,
			`ALTER TABLE instances DROP COLUMN data_dir`,
			`ALTER TABLE instances MODIFY handle LONGTEXT NOT NULL`,
		},
		rerun: func(err error) bool {
			var e *mysql.MySQLError
			return errors.As(err, &e) && e.Number == 1054 // unknown column
		},
	},
	{
		version: 5,
		name:    "backups.repl_offset",
		common: []string{
			`ALTER TABLE backups ADD COLUMN repl_offset BIGINT NULL`,
		},
	},
	{
		version: 6,
		name:    "clusters: password rotation",
		common: []string{
			`ALTER TABLE clusters ADD COLUMN next_password_enc TEXT NULL`,
			`ALTER TABLE clusters ADD COLUMN old_password_enc TEXT NULL`,
			`ALTER TABLE clusters ADD COLUMN rotation_ends_at {{time}} NULL`,
			`ALTER TABLE clusters ADD COLUMN next_sentinel_password_enc TEXT NULL`,
			`ALTER TABLE clusters ADD COLUMN old_sentinel_password_enc TEXT NULL`,
		},
	},
	{
		version: 7,
		name:    "admission lock",
		// One row that every admission (a job that adds instances, with
		// its capacity check) locks, so concurrent creates and scales
		// cannot be admitted past the platform's capacity.
		common: []string{
			`CREATE TABLE IF NOT EXISTS admission_lock (id INT NOT NULL PRIMARY KEY){{table}}`,
		},
		sqlite: []string{`INSERT OR IGNORE INTO admission_lock (id) VALUES (1)`},
		mysql:  []string{`INSERT IGNORE INTO admission_lock (id) VALUES (1)`},
	},
	{
		version: 8,
		name:    "users, API tokens, sessions, audit log",
		// Secrets are stored as hashes only: a password's argon2id hash,
		// a token's and a session id's SHA-256 (both are 32 random bytes,
		// so a fast hash is enough). See sql_auth.go.
		common: []string{
			`CREATE TABLE IF NOT EXISTS users (
				name VARCHAR(255) NOT NULL PRIMARY KEY,
				password_hash TEXT NOT NULL,
				role VARCHAR(32) NOT NULL,
				created_at {{time}} NOT NULL
			){{table}}`,
			`CREATE TABLE IF NOT EXISTS api_tokens (
				name VARCHAR(255) NOT NULL PRIMARY KEY,
				token_hash VARCHAR(64) NOT NULL,
				role VARCHAR(32) NOT NULL,
				created_at {{time}} NOT NULL,
				expires_at {{time}} NULL,
				last_used_at {{time}} NULL,
				CONSTRAINT api_tokens_hash_unique UNIQUE (token_hash)
			){{table}}`,
			`CREATE TABLE IF NOT EXISTS sessions (
				id_hash VARCHAR(64) NOT NULL PRIMARY KEY,
				principal VARCHAR(255) NOT NULL,
				kind VARCHAR(16) NOT NULL,
				role VARCHAR(32) NOT NULL,
				csrf VARCHAR(255) NOT NULL,
				created_at {{time}} NOT NULL,
				last_seen_at {{time}} NOT NULL
			){{table}}`,
			`CREATE INDEX sessions_principal ON sessions (kind, principal)`,
			`CREATE INDEX sessions_last_seen ON sessions (last_seen_at)`,
		},
		// The audit log's id orders entries written in the same
		// microsecond.
		sqlite: []string{
			`CREATE TABLE IF NOT EXISTS audit_log (
				id INTEGER PRIMARY KEY AUTOINCREMENT,
				at TEXT NOT NULL,
				principal VARCHAR(255) NOT NULL,
				kind VARCHAR(16) NOT NULL,
				remote VARCHAR(255) NOT NULL,
				method VARCHAR(16) NOT NULL,
				path TEXT NOT NULL,
				status INT NOT NULL,
				summary TEXT NOT NULL
			)`,
			`CREATE INDEX audit_log_at ON audit_log (at)`,
		},
		mysql: []string{
			`CREATE TABLE IF NOT EXISTS audit_log (
				id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
				at DATETIME(6) NOT NULL,
				principal VARCHAR(255) NOT NULL,
				kind VARCHAR(16) NOT NULL,
				remote VARCHAR(255) NOT NULL,
				method VARCHAR(16) NOT NULL,
				path TEXT NOT NULL,
				status INT NOT NULL,
				summary TEXT NOT NULL
			) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
			`CREATE INDEX audit_log_at ON audit_log (at)`,
		},
	},
	{
		version: 9,
		name:    "alerts, alert rules, silences, webhooks, deliveries",
		// An alert's id is its identity (rule, cluster, shard, instance);
		// its body is the api.Alert as JSON. A webhook's secret is sealed
		// like a cluster password (crypto.go). See sql_alerts.go.
		common: []string{
			`CREATE TABLE IF NOT EXISTS alerts (
				id VARCHAR(512) NOT NULL PRIMARY KEY,
				cluster VARCHAR(255) NOT NULL,
				state VARCHAR(16) NOT NULL,
				body TEXT NOT NULL,
				updated_at {{time}} NOT NULL
			){{table}}`,
			`CREATE TABLE IF NOT EXISTS alert_rules (
				cluster VARCHAR(255) NOT NULL PRIMARY KEY,
				rules TEXT NOT NULL
			){{table}}`,
			`CREATE TABLE IF NOT EXISTS silences (
				id VARCHAR(64) NOT NULL PRIMARY KEY,
				body TEXT NOT NULL,
				ends_at {{time}} NOT NULL
			){{table}}`,
			`CREATE TABLE IF NOT EXISTS webhooks (
				name VARCHAR(255) NOT NULL PRIMARY KEY,
				position INT NOT NULL,
				url TEXT NOT NULL,
				format VARCHAR(16) NOT NULL,
				secret_enc TEXT NOT NULL
			){{table}}`,
		},
		sqlite: []string{
			`CREATE TABLE IF NOT EXISTS deliveries (
				id INTEGER PRIMARY KEY AUTOINCREMENT,
				at TEXT NOT NULL,
				body TEXT NOT NULL
			)`,
		},
		mysql: []string{
			`CREATE TABLE IF NOT EXISTS deliveries (
				id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
				at DATETIME(6) NOT NULL,
				body TEXT NOT NULL
			) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
		},
	},
	{
		version: 10,
		name:    "outbox: notifications not yet delivered",
		// One row per notification and webhook until it is delivered or
		// its last attempt failed; a manager claims a row until
		// claimed_until. See sql_outbox.go.
		sqlite: []string{
			`CREATE TABLE IF NOT EXISTS outbox (
				id INTEGER PRIMARY KEY AUTOINCREMENT,
				created_at TEXT NOT NULL,
				webhook VARCHAR(255) NOT NULL,
				body TEXT NOT NULL,
				attempts INT NOT NULL,
				last_error TEXT NOT NULL,
				last_status INT NOT NULL,
				next_at TEXT NOT NULL,
				claimed_by VARCHAR(255) NOT NULL,
				claimed_until TEXT NULL
			)`,
		},
		mysql: []string{
			`CREATE TABLE IF NOT EXISTS outbox (
				id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
				created_at DATETIME(6) NOT NULL,
				webhook VARCHAR(255) NOT NULL,
				body TEXT NOT NULL,
				attempts INT NOT NULL,
				last_error TEXT NOT NULL,
				last_status INT NOT NULL,
				next_at DATETIME(6) NOT NULL,
				claimed_by VARCHAR(255) NOT NULL,
				claimed_until DATETIME(6) NULL
			) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
		},
	},
	{
		version: 11,
		name:    "autoscaling policies and state",
		// A policy is the api.AutoscalePolicy as JSON, with its defaults
		// filled in; the state is the engine's api.AutoscaleState (last
		// changes, since when a signal holds, last readings), written by
		// the leader with its fence. The decisions are events. See
		// sql_autoscale.go.
		common: []string{
			`CREATE TABLE IF NOT EXISTS autoscale_policies (
				cluster VARCHAR(255) NOT NULL PRIMARY KEY,
				policy TEXT NOT NULL,
				updated_at {{time}} NOT NULL
			){{table}}`,
			`CREATE TABLE IF NOT EXISTS autoscale_state (
				cluster VARCHAR(255) NOT NULL PRIMARY KEY,
				state TEXT NOT NULL,
				updated_at {{time}} NOT NULL
			){{table}}`,
		},
	},
	{
		version: 12,
		name:    "clusters.rev, clusters.spec_rev",
		// rev: a new random value at every write of a cluster's row;
		// spec_rev: the same at every write but a status's
		// (ClusterRevs). Readers that keep what they derived from a
		// cluster (the encoded GET /api/v1/clusters, the /metrics text)
		// compare them instead of reading and decoding every status.
		common: []string{
			`ALTER TABLE clusters ADD COLUMN rev BIGINT NOT NULL DEFAULT 0`,
			`ALTER TABLE clusters ADD COLUMN spec_rev BIGINT NOT NULL DEFAULT 0`,
		},
	},
}

// migrate brings the schema to the latest version. It is safe to run from
// several processes at once: SQLite serializes them with IMMEDIATE
// transactions, MySQL with a named lock (GET_LOCK) per database.
func migrate(ctx context.Context, db *sql.DB, d dialect) error {
	return migrateTo(ctx, db, d, migrations)
}

// migrateTo applies the given migrations (a prefix of migrations; tests
// stop at an older version).
func migrateTo(ctx context.Context, db *sql.DB, d dialect, migrations []migration) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()

	unlock, err := d.lockMigrations(ctx, conn)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer unlock()

	if _, err := conn.ExecContext(ctx, d.ddl.Replace(`CREATE TABLE IF NOT EXISTS schema_migrations (
			version INT NOT NULL PRIMARY KEY,
			name VARCHAR(255) NOT NULL,
			applied_at {{time}} NOT NULL
		){{table}}`)); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}

	latest := migrations[len(migrations)-1].version
	var current sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if current.Int64 > int64(latest) {
		return fmt.Errorf("migrate: the database is at schema version %d, newer than this binary knows (%d); upgrade redis-manager", current.Int64, latest)
	}

	for _, m := range migrations {
		if int64(m.version) <= current.Int64 {
			continue
		}
		if err := applyMigration(ctx, conn, d, m); err != nil {
			return fmt.Errorf("migrate to version %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

// execer is what both *sql.Conn and *sql.Tx offer.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func applyMigration(ctx context.Context, conn *sql.Conn, d dialect, m migration) (err error) {
	var q execer = conn
	if d.transactionalDDL {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				_ = tx.Rollback()
				return
			}
			err = tx.Commit()
		}()
		q = tx
	}

	// Checked again under the lock or transaction: another process may have
	// applied it since MAX(version) was read.
	var one int
	switch err := q.QueryRowContext(ctx, "SELECT 1 FROM schema_migrations WHERE version = ?", m.version).Scan(&one); {
	case err == nil:
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}

	stmts := append([]string(nil), m.common...)
	switch d.name {
	case sqliteDialect.name:
		stmts = append(stmts, m.sqlite...)
	case mysqlDialect.name:
		stmts = append(stmts, m.mysql...)
	}
	for i, stmt := range stmts {
		if _, err := q.ExecContext(ctx, d.ddl.Replace(stmt)); err != nil && !d.alreadyApplied(err) && (m.rerun == nil || !m.rerun(err)) {
			return fmt.Errorf("statement %d: %w", i+1, err)
		}
	}
	_, err = q.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
		m.version, m.name, timeArg(now()))
	return err
}
