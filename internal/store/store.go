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
}

// Instance kinds.
const (
	KindRedis    = "redis"
	KindSentinel = "sentinel"
)

// Instance is the record of one redis-server or Sentinel the manager runs:
// enough to re-adopt it after a manager restart (pid, port, data dir).
type Instance struct {
	Name      string // <cluster>-<shard>-<ordinal> or <cluster>-sentinel-<ordinal>
	Cluster   string
	Kind      string // KindRedis | KindSentinel
	Shard     int    // -1 for sentinels
	Ordinal   int
	Host      string
	Port      int
	Pid       int
	DataDir   string
	CreatedAt time.Time
}

// Job is the stored form of a job: the API view plus the parameters the job
// runner needs to resume it.
type Job struct {
	api.Job
	Params json.RawMessage
}

// Store is the metadata store. Implementations: SQLite and MySQL/MariaDB,
// one schema. All methods are safe for concurrent use.
type Store interface {
	// CreateClusterWithJob inserts the cluster and its first job atomically.
	// ErrConflict when the name is taken.
	CreateClusterWithJob(ctx context.Context, c Cluster, j Job) error
	GetCluster(ctx context.Context, name string) (Cluster, error)
	ListClusters(ctx context.Context) ([]Cluster, error)
	UpdateClusterSpec(ctx context.Context, name string, spec api.ClusterSpec) error
	UpdateClusterStatus(ctx context.Context, name string, status api.ClusterStatus) error
	// DeleteCluster removes the cluster and its instance records (jobs and
	// events stay as history). ErrNotFound when absent.
	DeleteCluster(ctx context.Context, name string) error

	// PutInstance inserts or replaces the record with that name.
	// ErrConflict when another instance already holds the port.
	PutInstance(ctx context.Context, in Instance) error
	ListInstances(ctx context.Context, cluster string) ([]Instance, error)
	// ListAllInstances lists the instances of every cluster.
	ListAllInstances(ctx context.Context) ([]Instance, error)
	DeleteInstance(ctx context.Context, name string) error

	// CreateJob inserts a pending job. ErrConflict when the job's cluster
	// already has a job that is pending or running.
	CreateJob(ctx context.Context, j Job) error
	// UpdateJob stores state, progress, message, steps, error, times, params.
	UpdateJob(ctx context.Context, j Job) error
	GetJob(ctx context.Context, id string) (Job, error)
	// ListJobs lists jobs newest first; cluster "" means all.
	ListJobs(ctx context.Context, cluster string) ([]Job, error)
	// UnfinishedJobs lists pending and running jobs, oldest first.
	UnfinishedJobs(ctx context.Context) ([]Job, error)

	AddEvent(ctx context.Context, e api.Event) error
	// ListEvents lists a cluster's events newest first, at most limit.
	ListEvents(ctx context.Context, cluster string, limit int) ([]api.Event, error)

	Close() error
}
