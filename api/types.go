package api

import "time"

// ClusterSpec is what a user asks for. Zero values are filled with defaults
// by the server (see Defaults).
type ClusterSpec struct {
	Shards          int               `json:"shards"`
	Replicas        int               `json:"replicas"`
	Sentinels       int               `json:"sentinels"`
	Maxmemory       string            `json:"maxmemory,omitempty"`
	MaxmemoryPolicy string            `json:"maxmemoryPolicy,omitempty"`
	Persistence     string            `json:"persistence,omitempty"`
	Config          map[string]string `json:"config,omitempty"`
	Sentinel        SentinelSettings  `json:"sentinel"`
	// FastFailover lets the manager ask Sentinel to fail over at once when
	// the platform sees the master process die, instead of waiting for
	// down-after-milliseconds (only when no acknowledged write can be lost).
	FastFailover bool `json:"fastFailover"`
	// MinReplicasToWrite maps to min-replicas-to-write: a master stops
	// accepting writes when fewer replicas are connected (0: off).
	MinReplicasToWrite int `json:"minReplicasToWrite"`
}

// SentinelSettings are the per-shard Sentinel parameters.
type SentinelSettings struct {
	DownAfterMs       int `json:"downAfterMs"`
	FailoverTimeoutMs int `json:"failoverTimeoutMs"`
	ParallelSyncs     int `json:"parallelSyncs"`
}

// CreateClusterRequest is the body of POST /api/v1/clusters. Pointer fields
// distinguish "not given" (defaulted) from an explicit zero (rejected).
type CreateClusterRequest struct {
	Name               string            `json:"name"`
	Shards             *int              `json:"shards,omitempty"`
	Replicas           *int              `json:"replicas,omitempty"`
	Sentinels          *int              `json:"sentinels,omitempty"`
	Maxmemory          string            `json:"maxmemory,omitempty"`
	MaxmemoryPolicy    string            `json:"maxmemoryPolicy,omitempty"`
	Persistence        string            `json:"persistence,omitempty"`
	Config             map[string]string `json:"config,omitempty"`
	Sentinel           *SentinelRequest  `json:"sentinel,omitempty"`
	FastFailover       *bool             `json:"fastFailover,omitempty"`
	MinReplicasToWrite *int              `json:"minReplicasToWrite,omitempty"`
}

// SentinelRequest is the optional sentinel block of a create request.
type SentinelRequest struct {
	DownAfterMs       *int `json:"downAfterMs,omitempty"`
	FailoverTimeoutMs *int `json:"failoverTimeoutMs,omitempty"`
	ParallelSyncs     *int `json:"parallelSyncs,omitempty"`
}

// Cluster phases.
const (
	PhaseCreating    = "Creating"
	PhaseReady       = "Ready"
	PhaseDegraded    = "Degraded"
	PhaseScaling     = "Scaling"
	PhaseFailingOver = "Failing-over"
	PhaseDeleting    = "Deleting"
	PhaseFailed      = "Failed"
)

// Cluster is the API view of a cluster: its spec, its last observed status and
// how clients connect.
type Cluster struct {
	Name       string        `json:"name"`
	Spec       ClusterSpec   `json:"spec"`
	Status     ClusterStatus `json:"status"`
	Connection Connection    `json:"connection"`
	CreatedAt  time.Time     `json:"createdAt"`
}

// ClusterStatus is what the control loop last observed.
type ClusterStatus struct {
	Phase      string           `json:"phase"`
	Reason     string           `json:"reason,omitempty"`
	ObservedAt *time.Time       `json:"observedAt,omitempty"`
	Shards     []ShardStatus    `json:"shards"`
	Sentinels  []SentinelStatus `json:"sentinels"`
}

// ShardStatus is one master group as observed.
type ShardStatus struct {
	Index        int              `json:"index"`
	SentinelName string           `json:"sentinelName"`
	Master       *InstanceStatus  `json:"master"`
	Replicas     []InstanceStatus `json:"replicas"`
}

// InstanceStatus is one redis-server as observed.
type InstanceStatus struct {
	Name             string `json:"name"`
	Address          string `json:"address"`
	Role             string `json:"role"`
	Up               bool   `json:"up"`
	Pid              int    `json:"pid,omitempty"`
	Pod              string `json:"pod,omitempty"`  // Kubernetes: the pod
	Node             string `json:"node,omitempty"` // Kubernetes: its node
	MasterLinkStatus string `json:"masterLinkStatus,omitempty"`
	LagBytes         int64  `json:"lagBytes"`
	Keys             int64  `json:"keys"`
	UsedMemoryBytes  int64  `json:"usedMemoryBytes,omitempty"`
	// Figures from the instance's INFO (0 or absent when unknown). The
	// cumulative ones count since the process started; rates and ratios
	// come from their differences (GET /api/v1/clusters/{name}/metrics).
	OpsPerSec        int64   `json:"opsPerSec,omitempty"`        // instantaneous_ops_per_sec
	ConnectedClients int64   `json:"connectedClients,omitempty"` // connected_clients
	MaxmemoryBytes   int64   `json:"maxmemoryBytes,omitempty"`   // maxmemory (0: no limit)
	KeyspaceHits     int64   `json:"keyspaceHits,omitempty"`     // cumulative
	KeyspaceMisses   int64   `json:"keyspaceMisses,omitempty"`   // cumulative
	UsedCPUSeconds   float64 `json:"usedCpuSeconds,omitempty"`   // used_cpu_sys + used_cpu_user, cumulative
	EvictedKeys      int64   `json:"evictedKeys,omitempty"`      // cumulative
	// More of the same INFO, for /metrics (the names of redis_exporter).
	RedisVersion          string  `json:"redisVersion,omitempty"`          // redis_version
	RedisMode             string  `json:"redisMode,omitempty"`             // redis_mode
	MaxmemoryPolicy       string  `json:"maxmemoryPolicy,omitempty"`       // maxmemory_policy
	UptimeSeconds         int64   `json:"uptimeSeconds,omitempty"`         // uptime_in_seconds
	CommandsProcessed     int64   `json:"commandsProcessed,omitempty"`     // total_commands_processed, cumulative
	BlockedClients        int64   `json:"blockedClients,omitempty"`        // blocked_clients
	MaxClients            int64   `json:"maxClients,omitempty"`            // maxclients
	MasterReplOffset      int64   `json:"masterReplOffset,omitempty"`      // master_repl_offset
	ExpiredKeys           int64   `json:"expiredKeys,omitempty"`           // cumulative
	NetInputBytes         int64   `json:"netInputBytes,omitempty"`         // total_net_input_bytes, cumulative
	NetOutputBytes        int64   `json:"netOutputBytes,omitempty"`        // total_net_output_bytes, cumulative
	CPUSysSeconds         float64 `json:"cpuSysSeconds,omitempty"`         // used_cpu_sys, cumulative
	CPUUserSeconds        float64 `json:"cpuUserSeconds,omitempty"`        // used_cpu_user, cumulative
	ConnectedReplicas     int64   `json:"connectedReplicas,omitempty"`     // connected_slaves
	RDBLastBgsaveStatus   string  `json:"rdbLastBgsaveStatus,omitempty"`   // rdb_last_bgsave_status: ok or err
	LatestForkUsec        int64   `json:"latestForkUsec,omitempty"`        // latest_fork_usec
	MemFragmentationRatio float64 `json:"memFragmentationRatio,omitempty"` // mem_fragmentation_ratio
	// MasterLastIOSecondsAgo is a replica's master_last_io_seconds_ago
	// (-1 while its link is down).
	MasterLastIOSecondsAgo int64 `json:"masterLastIoSecondsAgo,omitempty"`
	// DBs are the keys per database of INFO keyspace, by name ("db0").
	DBs map[string]DBKeys `json:"dbs,omitempty"`
	// Commands are the calls per command of INFO commandstats ("get"),
	// for /metrics only: the leader keeps them in memory, they are not
	// stored, and the API does not send them.
	Commands map[string]CommandStat `json:"commands,omitempty"`
	// ReplicaLinks are the replicas a master lists (INFO replication slaveN).
	ReplicaLinks []ReplicaLink `json:"replicaLinks,omitempty"`
}

// DBKeys are one database's keys (INFO keyspace).
type DBKeys struct {
	Keys    int64 `json:"keys"`
	Expires int64 `json:"expires"`
}

// CommandStat is one command's cumulative figures (INFO commandstats).
type CommandStat struct {
	Calls int64 `json:"calls"`
	Usec  int64 `json:"usec"`
}

// ReplicaLink is one replica as its master lists it.
type ReplicaLink struct {
	Address    string `json:"address"`
	State      string `json:"state"`
	Offset     int64  `json:"offset"`
	LagSeconds int64  `json:"lagSeconds"`
}

// SentinelStatus is one Sentinel as observed.
type SentinelStatus struct {
	Name     string   `json:"name"`
	Address  string   `json:"address"`
	Up       bool     `json:"up"`
	Pid      int      `json:"pid,omitempty"`
	Pod      string   `json:"pod,omitempty"`
	Node     string   `json:"node,omitempty"`
	Monitors []string `json:"monitors"`
	// Tilt is true while the Sentinel is in TILT mode (INFO sentinel).
	Tilt bool `json:"tilt,omitempty"`
	// Masters are this Sentinel's entries for the cluster's shards
	// (SENTINEL MASTERS and REPLICAS, as the observe loop reads them).
	Masters []SentinelMaster `json:"masters,omitempty"`
}

// SentinelMaster is one shard as one Sentinel monitors it.
type SentinelMaster struct {
	Name        string `json:"name"`
	Address     string `json:"address"`
	Quorum      int    `json:"quorum"`
	ConfigEpoch int64  `json:"configEpoch"`
	OKReplicas  int    `json:"okReplicas"` // replicas it does not flag s_down or o_down
}

// Connection tells clients how to reach the cluster through Sentinel.
type Connection struct {
	Sentinels   []string `json:"sentinels"`
	MasterNames []string `json:"masterNames"`
	PasswordRef string   `json:"passwordRef"`
}

// Credentials is the body of GET /api/v1/clusters/{name}/credentials.
type Credentials struct {
	Password         string `json:"password"`
	SentinelPassword string `json:"sentinelPassword"`
	// PreviousPassword is, during a rotation's grace period, the password
	// the cluster still accepts until PreviousPasswordValidUntil.
	PreviousPassword           string     `json:"previousPassword,omitempty"`
	PreviousSentinelPassword   string     `json:"previousSentinelPassword,omitempty"`
	PreviousPasswordValidUntil *time.Time `json:"previousPasswordValidUntil,omitempty"`
}

// Job kinds.
const (
	JobCreate          = "create"
	JobScale           = "scale"
	JobDelete          = "delete"
	JobFailover        = "failover"
	JobBackup          = "backup"
	JobRestore         = "restore"
	JobReplaceInstance = "replace-instance"
	// JobBackupDelete removes a backup's object, sidecar and record.
	JobBackupDelete = "backup-delete"
	// JobBackupVerify loads a backup into a throwaway redis-server.
	JobBackupVerify = "backup-verify"
	// JobRotateCredentials adds a new password next to the old one and
	// switches to it; JobFinishRotation removes the old one.
	JobRotateCredentials = "rotate-credentials"
	JobFinishRotation    = "finish-rotation"
)

// Job and step states.
const (
	StatePending   = "pending"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
)

// Job is the durable record of one operation.
type Job struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	Cluster    string     `json:"cluster"`
	State      string     `json:"state"`
	Progress   float64    `json:"progress"`
	Message    string     `json:"message"`
	Steps      []Step     `json:"steps"`
	Error      string     `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// Done reports whether the job reached a final state.
func (j Job) Done() bool { return j.State == StateSucceeded || j.State == StateFailed }

// Step is one idempotent part of a job.
type Step struct {
	Name       string     `json:"name"`
	State      string     `json:"state"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// Event is an observed fact with a timestamp.
type Event struct {
	ID      string         `json:"id"`
	Cluster string         `json:"cluster"`
	Shard   *int           `json:"shard,omitempty"`
	Type    string         `json:"type"`
	At      time.Time      `json:"at"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// ClusterJob is the 202 body of create and scale.
type ClusterJob struct {
	Cluster *Cluster `json:"cluster,omitempty"`
	Job     Job      `json:"job"`
}

// Health is the body of GET /api/v1/health.
type Health struct {
	Status string `json:"status"`
	// Leader is true when this manager leads (runs the control loop and
	// the jobs); every manager serves the API.
	Leader bool `json:"leader"`
	// LeaderID is the id (--id) of the manager holding the leader lease,
	// as this manager last read it; Epoch is the lease's epoch, which
	// increases at each takeover.
	LeaderID string `json:"leaderId"`
	Epoch    int64  `json:"epoch"`
	Version  string `json:"version"`
}

// ErrorBody is the JSON form of every error.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail names what went wrong; Field is set for invalid input.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// UpdateClusterRequest is the body of PATCH /api/v1/clusters/{name}. Only
// the fields given change. Config, when given, replaces the whole user
// config map. Force allows changes that drop data.
type UpdateClusterRequest struct {
	Shards             *int              `json:"shards,omitempty"`
	Replicas           *int              `json:"replicas,omitempty"`
	Sentinels          *int              `json:"sentinels,omitempty"`
	Maxmemory          *string           `json:"maxmemory,omitempty"`
	MaxmemoryPolicy    *string           `json:"maxmemoryPolicy,omitempty"`
	Persistence        *string           `json:"persistence,omitempty"`
	Config             map[string]string `json:"config,omitempty"`
	Sentinel           *SentinelRequest  `json:"sentinel,omitempty"`
	FastFailover       *bool             `json:"fastFailover,omitempty"`
	MinReplicasToWrite *int              `json:"minReplicasToWrite,omitempty"`
	Force              bool              `json:"force,omitempty"`
}

// FailoverRequest is the body of POST /api/v1/clusters/{name}/failover.
type FailoverRequest struct {
	Shard int `json:"shard"`
}

// Backup is the record of one RDB snapshot of one shard.
type Backup struct {
	ID      string `json:"id"`
	Cluster string `json:"cluster"`
	Shard   int    `json:"shard"`
	// State is running, succeeded or failed.
	State string `json:"state"`
	// Target is the URL of the stored object (empty until it exists).
	Target    string `json:"target"`
	SizeBytes int64  `json:"sizeBytes"`
	// CRC64 is the CRC-64/Jones of the RDB, 16 hex digits, as Redis
	// writes it in the RDB's trailer.
	CRC64 string `json:"crc64"`
	// Keys is the number of keys in the snapshot, all databases.
	Keys           int64      `json:"keys"`
	SourceInstance string     `json:"sourceInstance"`
	StartedAt      time.Time  `json:"startedAt"`
	FinishedAt     *time.Time `json:"finishedAt,omitempty"`
	DurationMs     int64      `json:"durationMs"`
	// Verified is true when the RDB's CRC64 matched and its structure and
	// key count parsed while it streamed (and no later verify refuted it).
	Verified bool   `json:"verified"`
	Error    string `json:"error,omitempty"`
	// Job is the backup job that took it; the backups one job took (one
	// per shard) form a set that a restore brings back together.
	Job string `json:"job,omitempty"`
	// ScheduledFor is the schedule slot this backup ran for; empty for a
	// backup asked for by hand. Retention applies to scheduled backups only.
	ScheduledFor *time.Time `json:"scheduledFor,omitempty"`
	// ReplOffset is the replication offset the snapshot holds: its source's
	// offset when the snapshot began, never below the master's offset when
	// the backup job started, so every write acknowledged before the request
	// is in it. 0 (absent) for backups taken before it was recorded.
	ReplOffset int64 `json:"replOffset,omitempty"`
}

// CreateBackupRequest is the body of POST /api/v1/clusters/{name}/backups;
// Shard nil means every shard.
type CreateBackupRequest struct {
	Shard *int `json:"shard,omitempty"`
}

// BackupsJob is the 202 body of POST /api/v1/clusters/{name}/backups.
type BackupsJob struct {
	Job     Job      `json:"job"`
	Backups []Backup `json:"backups"`
}

// RestoreRequest is the body of POST /api/v1/backups/{id}/restore. The new
// cluster's spec is the source cluster's spec at backup time, with as many
// shards as the backups restored, and the fields given here replaced.
type RestoreRequest struct {
	// Cluster is the name of the new cluster; it must not exist.
	Cluster string `json:"cluster"`
	// SingleShard restores only this backup, into a one-shard cluster.
	// Without it, every backup of the set (the backups taken by the same
	// job, one per shard) is restored, backup of the i-th lowest shard into
	// shard i.
	SingleShard        bool              `json:"singleShard,omitempty"`
	Replicas           *int              `json:"replicas,omitempty"`
	Sentinels          *int              `json:"sentinels,omitempty"`
	Maxmemory          *string           `json:"maxmemory,omitempty"`
	MaxmemoryPolicy    *string           `json:"maxmemoryPolicy,omitempty"`
	Persistence        *string           `json:"persistence,omitempty"`
	Config             map[string]string `json:"config,omitempty"`
	FastFailover       *bool             `json:"fastFailover,omitempty"`
	MinReplicasToWrite *int              `json:"minReplicasToWrite,omitempty"`
}

// BackupScheduleRequest is the body of PUT
// /api/v1/clusters/{name}/backup-schedule.
type BackupScheduleRequest struct {
	// Cron is a 5-field cron expression (minute hour day-of-month month
	// day-of-week), or 6 fields with seconds first, or @hourly, @daily,
	// @weekly, @monthly, @yearly; evaluated in UTC.
	Cron string `json:"cron"`
	// Retain keeps the newest N scheduled backups per shard (0: no limit).
	Retain *int `json:"retain,omitempty"`
	// MaxAge removes scheduled backups older than this, as a Go duration
	// ("168h") or in days ("7d"). MaxAgeMs is the same in milliseconds.
	MaxAge   string `json:"maxAge,omitempty"`
	MaxAgeMs *int64 `json:"maxAgeMs,omitempty"`
}

// BackupSchedule is a cluster's backup schedule.
type BackupSchedule struct {
	Cluster  string `json:"cluster"`
	Cron     string `json:"cron"`
	Retain   int    `json:"retain"`
	MaxAgeMs int64  `json:"maxAgeMs"`
	// LastSlot is the last slot a backup job was started for.
	LastSlot *time.Time `json:"lastSlot,omitempty"`
	// NextSlot is the next slot the schedule fires at.
	NextSlot  *time.Time `json:"nextSlot,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
}

// RotateCredentialsRequest is the body of POST
// /api/v1/clusters/{name}/credentials/rotate.
type RotateCredentialsRequest struct {
	// GraceMs is how long the old password stays valid after the new one
	// is in use (default 3600000, one hour; 0 removes it at once).
	GraceMs *int64 `json:"graceMs,omitempty"`
}

// ImportBackupsRequest is the body of POST /api/v1/backups/import.
type ImportBackupsRequest struct {
	// Target is a file:// or s3:// target URL, as for --backup-target.
	Target string `json:"target"`
}

// ImportBackupsResult is the answer of POST /api/v1/backups/import.
type ImportBackupsResult struct {
	// Imported are the records created from sidecars.
	Imported []Backup `json:"imported"`
	// Known counts backups whose object already had a record.
	Known int `json:"known"`
	// Skipped lists objects that could not be imported, with the reason.
	Skipped []string `json:"skipped"`
}

// Metrics is the body of GET /api/v1/clusters/{name}/metrics: every
// series has one value per time, nil (JSON null) where the instance had
// no sample.
type Metrics struct {
	Cluster string `json:"cluster"`
	Range   string `json:"range"`
	// StepMs is the time between points: 10 s for 1h, averages of 30 s
	// for 6h and of 120 s for 24h.
	StepMs int64 `json:"stepMs"`
	// Times are the points' times in Unix seconds, oldest first.
	Times     []int64           `json:"times"`
	Instances []InstanceMetrics `json:"instances"`
}

// InstanceMetrics is one instance's series; Role is its role at its last
// sample.
type InstanceMetrics struct {
	Name   string       `json:"name"`
	Shard  int          `json:"shard"`
	Role   string       `json:"role"`
	Series MetricSeries `json:"series"`
}

// MetricSeries are an instance's series. HitRatio is 0–1 (hits over
// lookups in the step), CPUPercent the share of one core (0–100+).
type MetricSeries struct {
	OpsPerSec       []*float64 `json:"opsPerSec"`
	UsedMemoryBytes []*float64 `json:"usedMemoryBytes"`
	Clients         []*float64 `json:"clients"`
	Keys            []*float64 `json:"keys"`
	HitRatio        []*float64 `json:"hitRatio"`
	LagBytes        []*float64 `json:"lagBytes"`
	CPUPercent      []*float64 `json:"cpuPercent"`
}
