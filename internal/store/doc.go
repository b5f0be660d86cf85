// Package store keeps what the manager knows in a SQL database: clusters
// (spec, status, secrets), the instance records needed to re-adopt running
// processes, jobs and events.
//
// One schema and one implementation serve two engines: SQLite (pure Go
// driver, the embedded default) and MySQL/MariaDB (several managers may
// share one database). A small dialect value holds what differs: DDL types,
// how duplicate keys are reported, and how migrations are serialized.
//
// Open runs the versioned migrations in migrate.go at every start; they are
// recorded in schema_migrations and safe when several processes start at
// once.
//
// Passwords are encrypted with AES-256-GCM under a key kept in a file outside
// the database (crypto.go). A check value written at first start makes a
// wrong or regenerated key file stop the start, rather than leave secrets
// under two keys.
//
// Times are stored in UTC with microsecond precision and returned in UTC.
// ErrNotFound and ErrConflict are always wrapped, so test them with errors.Is;
// every unique key violation (cluster name, instance port, a second unfinished
// job for a cluster) is ErrConflict.
package store
