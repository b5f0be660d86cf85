package platform

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/internal/spec"
)

// ErrPortInUse is returned when an instance's endpoint is held by a process
// the platform does not recognise as that instance.
var ErrPortInUse = errors.New("port in use by another process")

// ErrNoCapacity is returned by Reserve when the platform has no endpoint
// left to give.
var ErrNoCapacity = errors.New("no free endpoint")

// Kinds of instance.
const (
	KindRedis    = "redis"
	KindSentinel = "sentinel"
)

// ID names an instance: its cluster and its own name. It is the identity;
// an address is not (a platform may move an instance to another host).
type ID struct {
	Cluster string
	Name    string
}

func (id ID) String() string { return id.Cluster + "/" + id.Name }

// Endpoint is where an instance is reached. Host is an IP address (v4 or
// v6) or a DNS name; String is the only way an address is formatted.
type Endpoint struct {
	Host string
	Port int
}

// String returns host:port, with brackets around an IPv6 host.
func (e Endpoint) String() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// ParseEndpoint parses host:port (an IPv6 host in brackets).
func ParseEndpoint(s string) (Endpoint, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return Endpoint{}, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return Endpoint{}, fmt.Errorf("address %q: bad port", s)
	}
	return Endpoint{Host: h, Port: port}, nil
}

// Capacity is how many more instances a platform can give endpoints to,
// and what limits them, for messages: "only Free of the Total Unit in Limit
// are free".
type Capacity struct {
	Free, Total int
	Unit        string // "ports", "addresses"
	Limit       string // "--port-range 17000-17999"
}

// Want is one instance Reserve should find an endpoint for.
type Want struct {
	ID   ID
	Kind string // KindRedis | KindSentinel
}

// InstanceSpec is everything a platform needs to run one instance.
type InstanceSpec struct {
	ID       ID
	Kind     string // KindRedis | KindSentinel
	Endpoint Endpoint
	// Redis is the redis-server's configuration (Kind KindRedis). The
	// platform fills Dir (where the data lives) and ReplicaOf (from Boot)
	// when the instance boots.
	Redis *spec.RedisConfig
	// Sentinel is the Sentinel's configuration (Kind KindSentinel); the
	// platform fills Dir. Sentinel owns and rewrites its own file after
	// the first boot, so an existing file is kept.
	Sentinel *spec.SentinelConfig
	// Boot is what the boot decision of a redis-server needs
	// (internal/instance.Decide); the platform runs it right before each
	// boot, never for an instance that is adopted running.
	Boot *BootPlan
}

// BootPlan is the input of a redis-server's boot decision: whom to ask
// and what to fall back on while no Sentinel knows the shard.
type BootPlan struct {
	// MasterName is the shard's Sentinel master name.
	MasterName string
	// PlannedMaster is the address that is master while no Sentinel
	// knows the shard (a new cluster): ordinal 0, or the current master of
	// a shard a replica is added to.
	PlannedMaster string
	// Sentinels are the addresses of the cluster's Sentinels.
	Sentinels        []string
	SentinelPassword string
}

// Details is what a person needs to find an instance on its platform: the
// API shows it. Local: the pid; Kubernetes: the pod and node.
type Details struct {
	Pid  int    `json:"pid,omitempty"`
	Pod  string `json:"pod,omitempty"`
	Node string `json:"node,omitempty"`
}

// Instance is what runs.
type Instance struct {
	ID       ID
	Kind     string
	Endpoint Endpoint
	// Handle is the platform's own record of the instance (local: pid and
	// data dir), opaque to everyone else: the store saves it as it is and
	// Recover gets it back.
	Handle  []byte
	Details Details
	Running bool
	// Adopted is true when Ensure found the instance already running.
	Adopted bool
}

// Event types.
const (
	// EventExited: the instance's process or container ended, or it may
	// have (see Certain).
	EventExited = "exited"
)

// InstanceEvent is something the platform saw happen to an instance.
type InstanceEvent struct {
	Type string
	ID   ID
	// Certain is true when the platform knows the instance is dead (its
	// process was reaped or its pidfd reported the exit; a container
	// terminated; a pod was deleted), false when it only suspects it (a
	// node stopped reporting). Only a certain death may shorten a
	// failover.
	Certain bool
	Details Details
	At      time.Time
}

// Platform runs instances. Every method is idempotent.
type Platform interface {
	// Reserve gives each wanted instance an endpoint no taken endpoint
	// and no other wanted instance has. It stores nothing: the caller
	// records the endpoints, and passes every recorded one as taken.
	// ErrNoCapacity when the platform has none left.
	Reserve(ctx context.Context, want []Want, taken []Endpoint) (map[ID]Endpoint, error)
	// Capacity tells how many more instances fit beside the taken
	// endpoints, and what limits them.
	Capacity(taken []Endpoint) Capacity
	// Ensure makes the instance run, adopting a running copy rather than
	// starting a second one.
	Ensure(ctx context.Context, spec InstanceSpec) (Instance, error)
	// Recover re-attaches to an instance that runs (after a manager
	// restart), given the handle Ensure returned (nil if none was
	// recorded), so its death is reported by Watch. It never starts
	// anything.
	Recover(ctx context.Context, id ID, handle []byte) (Instance, error)
	// Remove stops the instance and deletes its data. Removing an instance
	// that does not exist is not an error.
	Remove(ctx context.Context, id ID) error
	// List tells what the platform has for a cluster, running or not.
	List(ctx context.Context, cluster string) ([]Instance, error)
	// Watch reports instance deaths until ctx ends.
	Watch(ctx context.Context) (<-chan InstanceEvent, error)
	// Describe returns what a person needs to know of an instance, from
	// its handle (nil: nothing).
	Describe(handle []byte) Details
	// Seed gives a redis-server that has not started yet its initial
	// dataset (a restore): the platform fetches the source where the
	// instance's data lives (local: into its data dir, from the manager;
	// Kubernetes: an init container of the pod), checks it (an RDB's
	// structure and CRC64, the recorded size and CRC64) and only then
	// places it as the dump.rdb the instance loads at its first boot. A
	// failed fetch or check leaves nothing. Seeding an instance that runs
	// is refused (ErrRunning): its data is its own.
	Seed(ctx context.Context, id ID, src SeedSource) error
	// TaskRunner runs verify and restore transfers next to the data.
	TaskRunner
}

// SeedSource is a restore's dataset: an object in a backup target, with
// what it must be.
type SeedSource struct {
	// TargetURL is the backup target (file:// or s3://) and Key the
	// object's key in it.
	TargetURL string
	Key       string
	// Size and CRC64 are what the backup recorded (0 and "": unknown).
	Size  int64
	CRC64 string
	// Progress, when set, is told the bytes fetched so far, from time to
	// time (where the fetch runs in the caller's process).
	Progress func(n int64)
}

// ErrRunning is returned by Seed for an instance that runs.
var ErrRunning = errors.New("instance is running")

// Task kinds: one-off work next to an instance's data, for backups and
// restores (local: a child process of the manager; Kubernetes: a Job).
const (
	// TaskFetch fetches and checks a seed source into Task.Dir/dump.rdb
	// (instance.FetchSeed).
	TaskFetch = "fetch"
	// TaskCountKeys loads Task.Dir/dump.rdb into a throwaway redis-server
	// and counts its keys.
	TaskCountKeys = "count-keys"
	// TaskSnapshot streams an instance's RDB to a backup target
	// (backup.Run): Task.Snapshot says from where to where.
	TaskSnapshot = "snapshot"
)

// SnapshotSource is what a snapshot task copies and where it goes.
type SnapshotSource struct {
	// Addr is the instance (host:port) the RDB is read from, Password its
	// password (handed to the task out of band, never on a command line).
	Addr, Password string
	// TargetURL and Key are where the object goes.
	TargetURL, Key string
	// SizeHint sizes the upload's parts (the source's used_memory).
	SizeHint int64
}

// Task is one piece of one-off work.
type Task struct {
	Kind string // TaskFetch | TaskCountKeys | TaskSnapshot
	// Dir is the task's scratch directory.
	Dir      string
	Seed     SeedSource     // TaskFetch
	Snapshot SnapshotSource // TaskSnapshot
}

// TaskProgress is what a running task reports.
type TaskProgress struct {
	Bytes   int64  `json:"bytes,omitempty"`   // fetched so far
	Percent string `json:"percent,omitempty"` // loaded so far
}

// TaskResult is what a task found.
type TaskResult struct {
	Bytes int64  `json:"bytes,omitempty"`
	CRC64 string `json:"crc64,omitempty"`
	Keys  int64  `json:"keys"`
	// The rest of a snapshot's backup.Result.
	NoChecksum   bool   `json:"noChecksum,omitempty"`
	RDBVersion   int    `json:"rdbVersion,omitempty"`
	RedisVersion string `json:"redisVersion,omitempty"`
	KeysCounted  bool   `json:"keysCounted,omitempty"`
	Object       string `json:"object,omitempty"`
	DurationMs   int64  `json:"durationMs,omitempty"`
}

// Task error kinds, so callers can tell a refuted backup from a target out
// of reach across a process boundary.
const (
	TaskErrCorrupt  = "corrupt"   // wraps backup.ErrCorrupt
	TaskErrNotFound = "not-found" // wraps backup.ErrNotFound
	TaskErrRefuted  = "refuted"   // wraps ErrRefuted
)

// ErrRefuted is a task's finding that the data is not what it should be
// (redis-server refused the file).
var ErrRefuted = errors.New("refuted")

// TaskLine is one line of a task's output protocol (JSON lines on stdout):
// progress lines, then a result or an error.
type TaskLine struct {
	Progress *TaskProgress `json:"progress,omitempty"`
	Result   *TaskResult   `json:"result,omitempty"`
	Error    *TaskError    `json:"error,omitempty"`
}

// TaskError is a task's failure: Kind is one of the TaskErr kinds or "".
type TaskError struct {
	Kind    string `json:"kind,omitempty"`
	Message string `json:"message"`
}

// TaskRunner runs tasks.
type TaskRunner interface {
	// RunTask runs t to its end, telling progress (may be nil) what it
	// reports. Its error wraps backup.ErrCorrupt, backup.ErrNotFound or
	// ErrRefuted when the task found the data bad.
	RunTask(ctx context.Context, t Task, progress func(TaskProgress)) (TaskResult, error)
}

// LogReader is what a platform may offer besides Platform: the end of an
// instance's own log (redis.log), where Redis writes the crash report of a
// crash (the command and key it was running). The controller uses it to
// say what preceded a crash loop; a platform without it only loses that
// detail.
type LogReader interface {
	// LogTail returns up to limit bytes from the end of the instance's log.
	LogTail(ctx context.Context, id ID, limit int) ([]byte, error)
}

// OrderedRemoval is what a platform implements when it can remove only the
// highest ordinals of a shard or of the Sentinels (a Kubernetes
// StatefulSet): scaling in then removes those, moving the master away first
// when it is one of them.
type OrderedRemoval interface {
	RemovesHighestOrdinalFirst() bool
}

// MasterPointer is what a platform implements when it points something at
// each shard's master for clients that do not speak Sentinel (Kubernetes:
// the role label behind the <cluster>-<shard>-master Service). The
// controller calls it whenever it learns a shard's master; it takes the
// pointer off every other instance of the shard before putting it on the
// master.
type MasterPointer interface {
	PointMaster(ctx context.Context, cluster string, shard int, master ID) error
}

// Dialer is what a platform implements when it knows better than the
// system resolver where its instances' names point (Kubernetes: pod DNS
// names, from the pods it watches). The controller dials instances and
// Sentinels with it.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// SelfRestart is what a platform implements when it restarts a dead
// instance on its own, without the manager (Kubernetes: the kubelet
// restarts a container at once). That the instance runs again then says
// nothing about the process that died: the fast failover judges the death
// by the certain event and the closed port alone.
type SelfRestart interface {
	RestartsOnItsOwn() bool
}

// Departed is what a platform implements when an instance it reported
// dead may still run for a moment at an address its name no longer leads
// to (Kubernetes: a deleted pod's container until the kubelet has killed
// it). DepartedAddr returns that address (host:port), if it knows one.
type Departed interface {
	DepartedAddr(id ID) (string, bool)
}

// SlowStart is what a platform implements when starting an instance takes
// seconds (scheduling a pod, binding its volume): a create then starts the
// redis-servers and the Sentinels at the same time.
type SlowStart interface {
	StartsSlowly() bool
}

// Locks serialise work by key (an instance, a StatefulSet): one lock per
// key, made on first use.
type Locks struct {
	mu sync.Mutex
	m  map[string]*sync.Mutex
}

// Lock locks key and returns its unlock.
func (l *Locks) Lock(key string) func() {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*sync.Mutex{}
	}
	k, ok := l.m[key]
	if !ok {
		k = &sync.Mutex{}
		l.m[key] = k
	}
	l.mu.Unlock()
	k.Lock()
	return k.Unlock
}

// ReplicaRoom is an optional platform interface: whether a new replica's
// initial sync from a master fits in memory. The master forks for the dump
// (its copy-on-write grows with what is written meanwhile) and the new
// replica loads a copy of the dataset.
type ReplicaRoom interface {
	// ReplicaRoom returns what the sync needs given the master's
	// used_memory and copy-on-write size, what there is for it (0:
	// unknown, no bound) and what bounds it, for messages.
	ReplicaRoom(ctx context.Context, master ID, used, cow int64) (need, have int64, bound string, err error)
}
