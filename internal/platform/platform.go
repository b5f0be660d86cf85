package platform

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrPortInUse is returned when an instance's port is held by a process the
// platform does not recognise as that instance.
var ErrPortInUse = errors.New("port in use by another process")

// Kinds of instance.
const (
	KindRedis    = "redis"
	KindSentinel = "sentinel"
)

// InstanceSpec is everything a platform needs to run one instance.
type InstanceSpec struct {
	Name    string
	Cluster string
	Kind    string // KindRedis | KindSentinel
	Host    string
	Port    int
	// Config renders the config file for a boot. It is called only when the
	// instance is (re)started, never for an instance that is adopted running,
	// with the data dir the platform chose, so the boot role can be decided
	// at that moment.
	Config func(dataDir string) (string, error)
	// KeepConfig leaves an existing config file alone (Sentinel owns and
	// rewrites its own file after the first boot).
	KeepConfig bool
}

// Instance is what runs.
type Instance struct {
	Name    string
	Cluster string
	Kind    string
	Host    string
	Port    int
	Pid     int
	DataDir string
	Running bool
	// Adopted is true when Ensure found the instance already running.
	Adopted bool
}

// Event types.
const (
	EventExited = "exited"
)

// InstanceEvent is something the platform saw happen to an instance.
type InstanceEvent struct {
	Type    string
	Name    string
	Cluster string
	Pid     int
	At      time.Time
}

// Platform runs instances. Every method is idempotent.
type Platform interface {
	// Ensure makes the instance run, adopting a running copy rather than
	// starting a second one.
	Ensure(ctx context.Context, spec InstanceSpec) (Instance, error)
	// Recover re-attaches to an instance that runs (after a manager restart)
	// so its exit is reported by Watch. It never starts anything.
	Recover(ctx context.Context, cluster, name string) (Instance, error)
	// Remove stops the instance and deletes its data. Removing an instance
	// that does not exist is not an error.
	Remove(ctx context.Context, cluster, name string) error
	// List tells what the platform has for a cluster, running or not.
	List(ctx context.Context, cluster string) ([]Instance, error)
	// Watch reports instance exits until ctx ends.
	Watch(ctx context.Context) (<-chan InstanceEvent, error)
	// Seed gives a redis-server that has not started yet its initial
	// dataset: what r yields becomes the dump.rdb it loads at its first
	// boot (a restore). The file appears only once r reaches io.EOF; an
	// error from r or ctx leaves none. Seeding an instance that runs is
	// refused (ErrRunning): its data is its own.
	Seed(ctx context.Context, cluster, name string, r io.Reader) error
}

// ErrRunning is returned by Seed for an instance that runs.
var ErrRunning = errors.New("instance is running")
