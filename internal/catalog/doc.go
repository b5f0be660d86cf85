// Package catalog knows the backups as records and objects: the sidecar
// stored next to each object (and the record it rebuilds on import), the
// URL a target gives an object, which scheduled backups retention removes,
// which backups a restore brings back together, and whether a downloaded
// RDB is the one a record describes.
//
// It knows no cluster, job or controller: the backup engine
// (internal/backup) moves the bytes, the controller runs the jobs, and
// this package decides about records.
package catalog
