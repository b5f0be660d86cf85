package api

import (
	"context"
	"net/http"
	"time"
)

// EventAutoscale is the type of the event each autoscaling decision records
// (scaled, held back, or decided in a dry run), with its readings.
const EventAutoscale = "autoscale"

// Replica autoscaling signals (AutoscaleReplicas.Metric).
const (
	MetricCPU     = "cpu"     // replica CPU, percent of one core (used_cpu_sys + used_cpu_user over wall time)
	MetricOps     = "ops"     // commands per second per replica
	MetricClients = "clients" // connected clients per replica
)

// AutoscalePolicy is a cluster's autoscaling policy, the body of
// PUT /api/v1/clusters/{name}/autoscaling. Fields left out take the
// defaults of docs/autoscaling.md; GET shows them filled in.
type AutoscalePolicy struct {
	// Replicas scales the replicas of every shard together; nil: off.
	Replicas *AutoscaleReplicas `json:"replicas,omitempty"`
	// Memory raises (and optionally lowers) maxmemory; nil: off.
	Memory *AutoscaleMemory `json:"memory,omitempty"`
	// ScaleOutCooldownMs: no further scale-out (or memory raise) this long
	// after one (default 180000).
	ScaleOutCooldownMs *int64 `json:"scaleOutCooldownMs,omitempty"`
	// ScaleInCooldownMs: no scale-in (or memory lowering) this long after
	// any change (default 600000).
	ScaleInCooldownMs *int64 `json:"scaleInCooldownMs,omitempty"`
	// StabilizationMs: the signal must stay below 75 % of the target this
	// long before a replica is removed (default 900000).
	StabilizationMs *int64 `json:"stabilizationMs,omitempty"`
	// ScaleOutAfterMs: the signal must stay above the target this long
	// before a replica is added (default 60000).
	ScaleOutAfterMs *int64 `json:"scaleOutAfterMs,omitempty"`
	// FailoverWindowMs: no scaling this long after a failover (default
	// 600000).
	FailoverWindowMs *int64 `json:"failoverWindowMs,omitempty"`
	// DryRun decides and records, and changes nothing.
	DryRun bool `json:"dryRun"`
}

// AutoscaleReplicas is the replica part of a policy.
type AutoscaleReplicas struct {
	Min    int     `json:"min"`
	Max    int     `json:"max"`
	Metric string  `json:"metric"` // cpu | ops | clients
	Target float64 `json:"target"` // per replica, averaged over a shard's replicas
}

// AutoscaleMemory is the memory part of a policy.
type AutoscaleMemory struct {
	// Max is the ceiling maxmemory is never raised above ("8gb").
	Max string `json:"max"`
	// HighPercent: raise when used_memory passes this share of maxmemory
	// (default 80).
	HighPercent *float64 `json:"highPercent,omitempty"`
	// StepPercent: raise by this much (default 50; at least 10: smaller
	// changes are not worth a job).
	StepPercent *float64 `json:"stepPercent,omitempty"`
	// ForMs: used_memory must stay above HighPercent this long (default
	// 30000).
	ForMs *int64 `json:"forMs,omitempty"`
	// LowPercent: lower maxmemory by the same step when used_memory stays
	// below this share of it for the stabilization window; 0 (default):
	// never lower.
	LowPercent *float64 `json:"lowPercent,omitempty"`
	// Min is the floor maxmemory is never lowered below ("" : the
	// maxmemory when the policy was set).
	Min string `json:"min,omitempty"`
	// HeadroomPercent: a lowered maxmemory stays at least this much above
	// used_memory (default 50).
	HeadroomPercent *float64 `json:"headroomPercent,omitempty"`
}

// Autoscaling is the body of GET (and the answer to PUT)
// /api/v1/clusters/{name}/autoscaling.
type Autoscaling struct {
	Cluster string          `json:"cluster"`
	Policy  AutoscalePolicy `json:"policy"`
	// State is the engine's memory of its last changes (empty before the
	// leader's first evaluation).
	State AutoscaleState `json:"state"`
	// Decisions are the newest autoscale events, newest first.
	Decisions []Event `json:"decisions"`
}

// AutoscaleState is what the engine keeps between rounds, and the readings
// of its last round.
type AutoscaleState struct {
	LastScaleOutAt   *time.Time `json:"lastScaleOutAt,omitempty"`
	LastScaleInAt    *time.Time `json:"lastScaleInAt,omitempty"`
	LastMemoryUpAt   *time.Time `json:"lastMemoryUpAt,omitempty"`
	LastMemoryDownAt *time.Time `json:"lastMemoryDownAt,omitempty"`
	// AboveSince: the signal has been above the target since.
	AboveSince *time.Time `json:"aboveSince,omitempty"`
	// BelowSince: the signal has been below 75 % of the target since.
	BelowSince *time.Time `json:"belowSince,omitempty"`
	// MemoryHighSince / MemoryLowSince: used_memory above HighPercent /
	// below LowPercent of maxmemory since.
	MemoryHighSince *time.Time `json:"memoryHighSince,omitempty"`
	MemoryLowSince  *time.Time `json:"memoryLowSince,omitempty"`
	// LastJob is the last job the engine started.
	LastJob string `json:"lastJob,omitempty"`
	// LastHold is the last hold recorded ("action/guard"), so a hold that
	// lasts is recorded once.
	LastHold string `json:"lastHold,omitempty"`
	// Readings are the last round's.
	Readings *AutoscaleReadings `json:"readings,omitempty"`
}

// AutoscaleReadings are what one round of the engine read.
type AutoscaleReadings struct {
	At     time.Time `json:"at"`
	Metric string    `json:"metric,omitempty"`
	Target float64   `json:"target,omitempty"`
	// Signal is the highest shard average: scale-out when it is above the
	// target, scale-in when even it is below 75 % of the target.
	Signal float64 `json:"signal"`
	// Unread, when set, says why Signal is not a reading this round (the
	// leader has no previous CPU counters of a replica: its first round,
	// or the replica restarted); the engine then decides nothing on it.
	Unread   string                   `json:"unread,omitempty"`
	Replicas int                      `json:"replicas"`
	Shards   []AutoscaleShardReadings `json:"shards"`
}

// AutoscaleShardReadings are one shard's readings.
type AutoscaleShardReadings struct {
	Shard int `json:"shard"`
	// Average is the signal averaged over the shard's replicas.
	Average  float64                    `json:"average"`
	Replicas []AutoscaleReplicaReadings `json:"replicas"`
	// The master's memory.
	Master          string  `json:"master,omitempty"`
	UsedMemoryBytes int64   `json:"usedMemoryBytes"`
	MaxmemoryBytes  int64   `json:"maxmemoryBytes"`
	MemoryPercent   float64 `json:"memoryPercent"`
	EvictedKeys     int64   `json:"evictedKeys"`
}

// AutoscaleReplicaReadings are one replica's readings.
type AutoscaleReplicaReadings struct {
	Name       string  `json:"name"`
	CPUPercent float64 `json:"cpuPercent"`
	OpsPerSec  float64 `json:"opsPerSec"`
	Clients    int64   `json:"clients"`
}

// GetAutoscaling calls GET /api/v1/clusters/{name}/autoscaling.
func (c *Client) GetAutoscaling(ctx context.Context, cluster string) (Autoscaling, error) {
	var out Autoscaling
	err := c.do(ctx, http.MethodGet, clusterPath(cluster)+"/autoscaling", nil, &out)
	return out, err
}

// PutAutoscaling calls PUT /api/v1/clusters/{name}/autoscaling.
func (c *Client) PutAutoscaling(ctx context.Context, cluster string, p AutoscalePolicy) (Autoscaling, error) {
	var out Autoscaling
	err := c.do(ctx, http.MethodPut, clusterPath(cluster)+"/autoscaling", p, &out)
	return out, err
}

// DeleteAutoscaling calls DELETE /api/v1/clusters/{name}/autoscaling
// (autoscaling off; the decisions stay in the events).
func (c *Client) DeleteAutoscaling(ctx context.Context, cluster string) error {
	return c.do(ctx, http.MethodDelete, clusterPath(cluster)+"/autoscaling", nil, nil)
}
