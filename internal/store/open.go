package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Open connects to the store named by dsn, brings its schema up to date and
// checks that keyFile holds the key the database's secrets were written with.
//
// DSN forms:
//
//	sqlite:///abs/path/manager.db    (sqlite://relative/path.db is relative to the working dir)
//	mysql://USER:PASS@HOST:PORT/DB   (MySQL or MariaDB; DB must exist; driver options may follow as ?key=value)
//
// keyFile holds a raw 32-byte AES-256 key. It is created (mode 0600, random)
// when missing; a file of any other length is refused.
func Open(ctx context.Context, dsn string, keyFile string) (Store, error) {
	key, err := loadKey(keyFile)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	seal, err := newSealer(key)
	if err != nil {
		return nil, fmt.Errorf("open store: key file %s: %w", keyFile, err)
	}
	db, d, where, err := openDB(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := migrate(ctx, db, d); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	s := &sqlStore{db: db, reads: db, d: d, seal: seal}
	if err := s.checkKey(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: key file %s: %w", where, keyFile, err)
	}
	if d.name == sqliteDialect.name {
		if s.reads, err = openSQLiteReads(ctx, strings.TrimPrefix(dsn, "sqlite://")); err != nil {
			db.Close()
			return nil, fmt.Errorf("open store %s: %w", where, err)
		}
	}
	return s, nil
}

// openSQLiteReads opens read-only connections beside the one that
// writes, for the reads of the API's hot paths (sqlStore.reads): in WAL
// mode they run beside the writer, so GET /api/v1/clusters does not
// queue behind the observe loop's status writes or another read that
// decodes every cluster on the one connection. A read started after a
// write returned sees it.
func openSQLiteReads(ctx context.Context, path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Set("mode", "ro")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("read-only connection: %w", err)
	}
	return db, nil
}

// openDB parses dsn, opens the database and waits for a first successful
// ping. where names the database for messages, without any password.
func openDB(ctx context.Context, dsn string) (db *sql.DB, d dialect, where string, err error) {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return nil, dialect{}, "", errors.New("DSN must look like sqlite:///path/to/manager.db or mysql://user:pass@host:port/db")
	}
	switch scheme {
	case "sqlite":
		return openSQLite(ctx, rest)
	case "mysql":
		return openMySQL(ctx, dsn)
	default:
		return nil, dialect{}, "", fmt.Errorf("DSN scheme %q is not supported; use sqlite:// or mysql://", scheme)
	}
}

func openSQLite(ctx context.Context, path string) (*sql.DB, dialect, string, error) {
	if path == "" {
		return nil, dialect{}, "", errors.New("sqlite DSN has no file path (want sqlite:///abs/path/manager.db)")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, dialect{}, "", fmt.Errorf("sqlite DSN path %q: query parameters and '?'/'#' in paths are not supported", path)
	}
	where := "sqlite " + path
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, dialect{}, "", fmt.Errorf("%s: %w", where, err)
	}
	// IMMEDIATE transactions take the write lock up front, so two writers
	// wait on busy_timeout instead of failing on a lock upgrade.
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, dialect{}, "", fmt.Errorf("%s: %w", where, err)
	}
	// One connection: SQLite has one writer anyway, and a single connection
	// never meets SQLITE_BUSY from itself.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, dialect{}, "", fmt.Errorf("%s: %w", where, err)
	}
	return db, sqliteDialect, where, nil
}

// mysqlConfig turns mysql://USER:PASS@HOST:PORT/DB?opts into a driver
// config. Options the store depends on are forced whatever the DSN says.
func mysqlConfig(dsn string) (*mysql.Config, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// url.Error quotes the whole DSN, password included: keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("mysql DSN is not a valid URL (percent-encode special characters in the password): %v", err)
	}
	if u.Host == "" {
		return nil, errors.New("mysql DSN has no host (want mysql://user:pass@host:port/db)")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, fmt.Errorf("mysql DSN %s: want exactly one database name in the path", u.Redacted())
	}
	cfg := mysql.NewConfig()
	if u.RawQuery != "" {
		// Let the driver parse its own options (tls, timeout, ...).
		cfg, err = mysql.ParseDSN("/?" + u.RawQuery)
		if err != nil {
			return nil, fmt.Errorf("mysql DSN %s: options: %w", u.Redacted(), err)
		}
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	cfg.DBName = db
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.MultiStatements = false
	// UPDATE reports matched rows, not changed rows, so "no such row" can be
	// told apart from "row already had these values".
	cfg.ClientFoundRows = true
	if cfg.Collation == "" || !strings.HasPrefix(cfg.Collation, "utf8mb4") {
		cfg.Collation = "utf8mb4_general_ci"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	// A manager paused or cut off in the middle of a transaction must not
	// hold its row locks (the lease row above all: a standby's takeover
	// waits on it) for longer than a lease lasts. The server closes a
	// connection idle this long and rolls its transaction back; the store's
	// transactions never wait on anything but the database.
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, ok := cfg.Params["wait_timeout"]; !ok {
		cfg.Params["wait_timeout"] = strconv.Itoa(int(idleSessionTimeout / time.Second))
	}
	return cfg, nil
}

// idleSessionTimeout is the MySQL session's wait_timeout (see mysqlConfig):
// shorter than the leader lease's TTL (internal/leader).
const idleSessionTimeout = 3 * time.Second

func openMySQL(ctx context.Context, dsn string) (*sql.DB, dialect, string, error) {
	cfg, err := mysqlConfig(dsn)
	if err != nil {
		return nil, dialect{}, "", err
	}
	where := fmt.Sprintf("mysql %s@%s/%s", cfg.User, cfg.Addr, cfg.DBName)
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, dialect{}, "", fmt.Errorf("%s: %w", where, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(5)
	db.SetConnMaxLifetime(5 * time.Minute)
	// Idle pooled connections are dropped before the server's wait_timeout
	// closes them.
	db.SetConnMaxIdleTime(idleSessionTimeout / 2)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			switch me.Number {
			case 1049: // ER_BAD_DB_ERROR
				return nil, dialect{}, "", fmt.Errorf("%s: database %q does not exist; create it first (CREATE DATABASE `%s` CHARACTER SET utf8mb4)", where, cfg.DBName, cfg.DBName)
			case 1044: // ER_DBACCESS_DENIED_ERROR
				return nil, dialect{}, "", fmt.Errorf("%s: user %q may not use database %q (does it exist, and is it granted?): %w", where, cfg.User, cfg.DBName, err)
			}
		}
		return nil, dialect{}, "", fmt.Errorf("%s: %w", where, err)
	}
	return db, mysqlDialect, where, nil
}
