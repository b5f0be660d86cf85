package autoscale

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// Sample is what one instance's cumulative counters were at one round, to
// turn the next round's into rates.
type Sample struct {
	At       time.Time
	CPU      float64 // used_cpu_sys + used_cpu_user, seconds
	Commands int64   // total_commands_processed
	Offset   int64   // master_repl_offset
	RunID    string  // a restarted process starts its counters again
}

// Samples are the last samples by instance name.
type Samples map[string]Sample

// Read computes a round's readings from an observation and the previous
// round's samples, and returns this round's samples. A replica's CPU is its
// CPU seconds over wall time, in percent of one core; its ops/s the
// difference of total_commands_processed over wall time
// (instantaneous_ops_per_sec on the first round); on the first round a
// replica's CPU cannot be read, and the readings say so (Unread); clients
// connected_clients (which counts the manager's and the Sentinels'
// connections too). A
// shard's average is over its replicas that answer; a shard without one
// counts its master, which then serves the reads.
func Read(cs api.ClusterSpec, metric string, obs topology.Observation, prev Samples) (api.AutoscaleReadings, Samples) {
	now := obs.At
	next := Samples{}
	out := api.AutoscaleReadings{At: now, Metric: metric, Replicas: cs.Replicas}
	var unread []string // instances without a previous sample
	for shard := 0; shard < cs.Shards; shard++ {
		sr := api.AutoscaleShardReadings{Shard: shard, Replicas: []api.AutoscaleReplicaReadings{}}
		var replicas, masters []api.AutoscaleReplicaReadings
		for _, ro := range obs.Redis {
			if ro.In.Shard != shard || !ro.Up {
				continue
			}
			cur := Sample{At: now, CPU: ro.Info.Float("used_cpu_sys") + ro.Info.Float("used_cpu_user"),
				Commands: ro.Info.Int("total_commands_processed"), Offset: ro.Info.Int("master_repl_offset"), RunID: ro.Info["run_id"]}
			next[ro.In.Name] = cur
			rr := api.AutoscaleReplicaReadings{Name: ro.In.Name, Clients: ro.Info.Int("connected_clients"),
				OpsPerSec: float64(ro.Info.Int("instantaneous_ops_per_sec"))}
			p, ok := prev[ro.In.Name]
			fresh := ok && p.RunID == cur.RunID && cur.At.After(p.At)
			if !fresh {
				unread = append(unread, ro.In.Name)
			} else {
				dt := cur.At.Sub(p.At).Seconds()
				if d := cur.CPU - p.CPU; d >= 0 {
					rr.CPUPercent = round(d / dt * 100)
				}
				if d := cur.Commands - p.Commands; d >= 0 {
					rr.OpsPerSec = round(float64(d) / dt)
				}
			}
			switch ro.Info["role"] {
			case "slave":
				replicas = append(replicas, rr)
			case "master":
				masters = append(masters, rr)
				if sr.Master == "" || ro.Info.Int("connected_slaves") > 0 {
					sr.Master = ro.In.Name
					sr.UsedMemoryBytes = ro.Info.Int("used_memory")
					sr.MaxmemoryBytes = ro.Info.Int("maxmemory")
					sr.EvictedKeys = ro.Info.Int("evicted_keys")
					if sr.MaxmemoryBytes > 0 {
						sr.MemoryPercent = round(float64(sr.UsedMemoryBytes) / float64(sr.MaxmemoryBytes) * 100)
					}
				}
			}
		}
		sort.Slice(replicas, func(i, j int) bool { return replicas[i].Name < replicas[j].Name })
		sr.Replicas = replicas
		from := replicas
		if len(from) == 0 {
			from = masters
		}
		if metric == api.MetricCPU {
			for _, r := range from {
				if slices.Contains(unread, r.Name) && out.Unread == "" {
					out.Unread = fmt.Sprintf("no previous CPU counters of %s (the leader's first round, or it restarted): its CPU is read from the next round", r.Name)
				}
			}
		}
		if len(from) > 0 {
			var sum float64
			for _, r := range from {
				sum += value(r, metric)
			}
			sr.Average = round(sum / float64(len(from)))
		}
		if sr.Replicas == nil {
			sr.Replicas = []api.AutoscaleReplicaReadings{}
		}
		if sr.Average > out.Signal {
			out.Signal = sr.Average
		}
		out.Shards = append(out.Shards, sr)
	}
	return out, next
}

func value(r api.AutoscaleReplicaReadings, metric string) float64 {
	switch metric {
	case api.MetricCPU:
		return r.CPUPercent
	case api.MetricClients:
		return float64(r.Clients)
	default:
		return r.OpsPerSec
	}
}

func round(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

// WriteRate is the bytes per second a shard's master writes to its
// replication stream (master_repl_offset over wall time). ok is false when
// there is no previous sample to compare with (the first round of a policy
// or of a leader, or the master restarted or changed).
func WriteRate(master string, obs topology.Observation, prev Samples) (rate float64, ok bool) {
	for _, ro := range obs.Redis {
		if ro.In.Name != master || !ro.Up {
			continue
		}
		p, found := prev[master]
		off := ro.Info.Int("master_repl_offset")
		if !found || p.RunID != ro.Info["run_id"] || !obs.At.After(p.At) || off < p.Offset {
			return 0, false
		}
		return float64(off-p.Offset) / obs.At.Sub(p.At).Seconds(), true
	}
	return 0, false
}
