package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// Errors callers branch on.
var (
	// ErrNotFound: no row with that key.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique name is taken, or the cluster already has an
	// unfinished job of a changing kind.
	ErrConflict = errors.New("conflict")
)

// Cluster is the stored form of a cluster. Password and SentinelPassword are
// plain text in memory only; the store encrypts them (AES-GCM) at rest.
type Cluster struct {
	Name             string
	Spec             api.ClusterSpec
	Status           api.ClusterStatus
	Password         string
	SentinelPassword string
	CreatedAt        time.Time
	// Rotation is a password rotation in progress (see StartRotation).
	Rotation Rotation
	// Rev changes at every write of the cluster (spec, status, passwords,
	// rotation): read back, not written (see ClusterRevs).
	Rev int64
}

// ClusterRev is a cluster's name and revisions: Rev changes at every
// write of the cluster (Cluster.Rev), SpecRev at every write but its
// status's (UpdateClusterStatus).
type ClusterRev struct {
	Name    string
	Rev     int64
	SpecRev int64
}

// Admission is what an admission check sees (Store.Admit).
type Admission struct {
	Instances  []Instance                 // every instance record
	Unfinished []Job                      // pending and running jobs, with their parameters
	Specs      map[string]api.ClusterSpec // every cluster's spec
}

// Rotation is the state of a password rotation. Next is set when it is
// asked for and applied to every instance by a job, which then makes it the
// Password and keeps the previous one as Old, accepted until EndsAt (or
// until the rotation is finished by hand). Both are secrets, encrypted at
// rest like Password.
type Rotation struct {
	Next   string
	Old    string
	EndsAt *time.Time
	// NextSentinel and OldSentinel are the same for the Sentinels' own
	// password, rotated with the cluster's.
	NextSentinel string
	OldSentinel  string
}

// Active reports whether a rotation is under way: asked for, or in grace.
func (r Rotation) Active() bool { return r.Next != "" || r.Old != "" }

// Accepted lists every password an instance must accept now: the
// cluster's, and the next or previous one of a rotation.
func (c Cluster) Accepted() []string {
	return accepted(c.Password, c.Rotation.Next, c.Rotation.Old)
}

// SentinelAccepted is Accepted for the Sentinels' own password.
func (c Cluster) SentinelAccepted() []string {
	return accepted(c.SentinelPassword, c.Rotation.NextSentinel, c.Rotation.OldSentinel)
}

func accepted(current string, others ...string) []string {
	out := []string{current}
	for _, p := range others {
		if p != "" && p != current {
			out = append(out, p)
		}
	}
	return out
}

// Instance kinds.
const (
	KindRedis    = "redis"
	KindSentinel = "sentinel"
)

// Instance is the record of one redis-server or Sentinel the manager runs:
// its identity (cluster, name), its endpoint (host and port; the host may be
// a DNS name or an IPv6 address), and the platform's opaque handle, which
// is enough to re-adopt it after a manager restart.
type Instance struct {
	Name    string // <cluster>-<shard>-<ordinal> or <cluster>-sentinel-<ordinal>
	Cluster string
	Kind    string // KindRedis | KindSentinel
	Shard   int    // -1 for sentinels
	Ordinal int
	Host    string
	Port    int
	// Handle is what the platform returned for the instance (local: JSON
	// with pid and data dir), saved as it is; nil before its first start.
	Handle    []byte
	CreatedAt time.Time
}

// Job is the stored form of a job: the API view plus the parameters the job
// runner needs to resume it.
type Job struct {
	api.Job
	Params json.RawMessage
}

// Backup is the stored form of a backup: the API view plus where its object
// lives and what a restore needs.
type Backup struct {
	api.Backup
	// TargetURL is the target the object was written to (--backup-target
	// at the time); restores, verifies and deletes open it again.
	TargetURL string
	// ObjectKey is the object's key in the target (backup.ObjectKey); it
	// is set before each attempt, so a resumed job finds an object written
	// just before a crash.
	ObjectKey string
	// SourceSpec is the source cluster's spec when the backup was taken:
	// the defaults of a restore, even after the source is gone.
	SourceSpec *api.ClusterSpec
}

// BackupSchedule is a cluster's backup schedule.
type BackupSchedule struct {
	Cluster string
	Cron    string
	Retain  int
	MaxAge  time.Duration
	// LastSlot is the last slot a backup job was stored for; it is written
	// in the same transaction as that job (CreateBackupJob).
	LastSlot  *time.Time
	CreatedAt time.Time
	// UpdatedAt is when cron or retention last changed; slots before it
	// never fire.
	UpdatedAt time.Time
}

// JobLock is what a job of this kind holds while it is pending or running,
// so that two jobs holding the same value never run at once:
//
//   - jobs that change a cluster (create, scale, failover, restore, delete,
//     replace-instance) hold the cluster's name: one at a time;
//   - backups hold "<cluster>#backup": one backup of a cluster at a time,
//     beside any change (a snapshot only reads a replica, and a failover or
//     a repair must never wait for a long backup);
//   - verifying or deleting a stored backup holds nothing ("").
func JobLock(kind, cluster string) string {
	switch kind {
	case api.JobBackup:
		return cluster + "#backup"
	case api.JobBackupDelete, api.JobBackupVerify:
		return ""
	}
	return cluster
}

// Store is the metadata store. Implementations: SQLite and MySQL/MariaDB,
// one schema. All methods are safe for concurrent use.
type Store interface {
	// CreateClusterWithJob inserts the cluster and its first job atomically.
	// ErrConflict when the name is taken.
	CreateClusterWithJob(ctx context.Context, c Cluster, j Job) error
	GetCluster(ctx context.Context, name string) (Cluster, error)
	ListClusters(ctx context.Context) ([]Cluster, error)
	// ListClustersWithoutStatus is ListClusters with every Status zero:
	// the observe loop replaces the statuses each round, and decoding the
	// stored ones (~1.4 MB of JSON at 1,000 instances) was 8 % of its
	// CPU (docs/monitoring.md, Scale).
	ListClustersWithoutStatus(ctx context.Context) ([]Cluster, error)
	// ClusterRevs lists every cluster's name and revision, by name: one
	// small read that tells which clusters changed since they were last
	// read (a cluster whose Rev is unchanged is unchanged).
	ClusterRevs(ctx context.Context) ([]ClusterRev, error)
	// GetClusters reads the named clusters in one read, by name; names
	// not found are left out.
	GetClusters(ctx context.Context, names []string) ([]Cluster, error)
	UpdateClusterSpec(ctx context.Context, name string, spec api.ClusterSpec) error
	UpdateClusterStatus(ctx context.Context, name string, status api.ClusterStatus) error
	// Admit runs check on the instances, unfinished jobs and cluster specs
	// as they are and, when it passes, stores the cluster (nil: none) and
	// the job, in one transaction that no other Admit runs beside: an
	// admission check and what it admits cannot interleave with another's.
	// check's error is returned (wrapped) and nothing is stored; otherwise
	// as CreateClusterWithJob and CreateJob.
	Admit(ctx context.Context, c *Cluster, j Job, check func(Admission) error) error
	// StartRotation stores next and nextSentinel as the cluster's next
	// passwords and the job that applies them, in one transaction.
	// ErrConflict when a rotation is already under way or the job
	// conflicts (see CreateJob).
	StartRotation(ctx context.Context, name, next, nextSentinel string, j Job) error
	// DueRotations lists the clusters whose rotation's grace period ended
	// at or before now (no secret is read).
	DueRotations(ctx context.Context, now time.Time) ([]string, error)
	// SetRotation stores the cluster's passwords and rotation state.
	SetRotation(ctx context.Context, name, password, sentinelPassword string, r Rotation) error
	// DeleteCluster removes the cluster, its instance records and its
	// backup schedule (jobs, events and backups stay as history).
	// ErrNotFound when absent.
	DeleteCluster(ctx context.Context, name string) error

	// PutInstance inserts or replaces the record with that name.
	// ErrConflict when another instance already holds the endpoint (host
	// and port).
	PutInstance(ctx context.Context, in Instance) error
	ListInstances(ctx context.Context, cluster string) ([]Instance, error)
	// ListAllInstances lists the instances of every cluster.
	ListAllInstances(ctx context.Context) ([]Instance, error)
	DeleteInstance(ctx context.Context, name string) error

	// CreateJob inserts a pending job. ErrConflict when another pending or
	// running job holds the same JobLock.
	CreateJob(ctx context.Context, j Job) error
	// UpdateJob stores state, progress, message, steps, error, times, params.
	UpdateJob(ctx context.Context, j Job) error
	GetJob(ctx context.Context, id string) (Job, error)
	// ListJobs lists jobs newest first; cluster "" means all.
	ListJobs(ctx context.Context, cluster string) ([]Job, error)
	// UnfinishedJobs lists pending and running jobs, oldest first.
	UnfinishedJobs(ctx context.Context) ([]Job, error)
	// JobsSince lists the pending and running jobs and those that
	// finished at or after since, oldest first (the live stream).
	JobsSince(ctx context.Context, since time.Time) ([]Job, error)

	AddEvent(ctx context.Context, e api.Event) error
	// ListEvents lists a cluster's events newest first, at most limit.
	ListEvents(ctx context.Context, cluster string, limit int) ([]api.Event, error)

	// CreateBackupJob inserts a pending backup job and its backup records
	// in one transaction. When slot is not nil it also records *slot as the
	// last slot of the cluster's backup schedule, in the same transaction:
	// ErrConflict when that slot or a later one is already recorded, or when
	// the job conflicts (see CreateJob). Either way nothing is stored.
	CreateBackupJob(ctx context.Context, j Job, backups []Backup, slot *time.Time) error
	// PutBackup inserts or replaces the record with that id.
	PutBackup(ctx context.Context, b Backup) error
	GetBackup(ctx context.Context, id string) (Backup, error)
	// ListBackups lists backups newest first (start time, then id); cluster
	// "" means all.
	ListBackups(ctx context.Context, cluster string) ([]Backup, error)
	// DeleteBackup removes a record. ErrNotFound when absent.
	DeleteBackup(ctx context.Context, id string) error

	// PutBackupSchedule inserts a schedule or replaces its cron, retention
	// and UpdatedAt; the last slot and CreatedAt are kept.
	PutBackupSchedule(ctx context.Context, s BackupSchedule) error
	GetBackupSchedule(ctx context.Context, cluster string) (BackupSchedule, error)
	ListBackupSchedules(ctx context.Context) ([]BackupSchedule, error)
	// DeleteBackupSchedule removes a schedule. ErrNotFound when absent.
	// DeleteCluster removes the cluster's schedule too.
	DeleteBackupSchedule(ctx context.Context, cluster string) error

	// Leases are the leader lease and its fence (lease.go).
	Leases

	// Access is users, tokens, sessions and the audit log (auth.go).
	Access

	// Alerts is alert states, rule overrides, silences, webhooks and
	// deliveries (alerts.go).
	Alerts

	// Autoscaling is the policies and the engine's state (autoscale.go).
	Autoscaling

	Close() error
}
