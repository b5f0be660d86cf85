package autoscale

import (
	"fmt"
	"math"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// Guard names: why a decision was held back (the event's details.guard).
const (
	GuardFailingOver    = "failing-over"
	GuardFailoverWindow = "failover-window"
	GuardJob            = "job-running"
	GuardBgsave         = "bgsave"
	GuardAOFRewrite     = "aof-rewrite"
	GuardFullSync       = "full-sync"
	GuardMemory         = "replica-memory"
	GuardBacklog        = "repl-backlog"
	GuardCooldown       = "cooldown"
	GuardLimit          = "limit"
	GuardRefused        = "refused"
	GuardUnknown        = "no-readings"
)

// Guard is one reason to hold a decision back.
type Guard struct {
	Name    string
	Message string
}

// ObservedGuards are the guard rails an observation alone shows: a shard
// failing over (Sentinel flags its master down or failing over), a
// BGSAVE, an AOF rewrite or a full sync on any instance of the cluster. A
// fork doubles the memory a write-heavy master touches and a full sync is
// a fork plus a transfer: a scale that adds another sync, or a config
// change, waits until they are done.
func ObservedGuards(cs api.ClusterSpec, cluster string, obs topology.Observation) []Guard {
	var out []Guard
	if shard, ok := topology.FailingOverShard(cs, cluster, obs); ok {
		out = append(out, Guard{GuardFailingOver, fmt.Sprintf("shard %d is failing over", shard)})
	}
	for _, ro := range obs.Redis {
		if !ro.Up {
			continue
		}
		name := ro.In.Name
		var syncs []Guard
		for _, r := range ro.Info.Replicas() {
			if r.State == "wait_bgsave" || r.State == "send_bulk" {
				syncs = append(syncs, Guard{GuardFullSync, fmt.Sprintf("%s is sending a full sync to %s (state %s)", name, r.Addr, r.State)})
			}
		}
		if ro.Info.Int("master_sync_in_progress") == 1 {
			syncs = append(syncs, Guard{GuardFullSync, name + " is in a full sync with its master (master_sync_in_progress:1)"})
		}
		// A master's dump for a replica is the full sync, named as such.
		out = append(out, syncs...)
		if ro.Info.Int("rdb_bgsave_in_progress") == 1 && len(syncs) == 0 {
			out = append(out, Guard{GuardBgsave, name + " runs a BGSAVE (rdb_bgsave_in_progress:1)"})
		}
		if ro.Info.Int("aof_rewrite_in_progress") == 1 {
			out = append(out, Guard{GuardAOFRewrite, name + " rewrites its AOF (aof_rewrite_in_progress:1)"})
		}
	}
	return out
}

// FailoverWindow is the guard of a recent failover: the replicas of the
// new master have just resynced, and another may still follow.
func FailoverWindow(last *api.Event, now time.Time, window time.Duration) []Guard {
	if last == nil || window <= 0 {
		return nil
	}
	if ago := now.Sub(last.At); ago < window {
		return []Guard{{GuardFailoverWindow, fmt.Sprintf("a failover %s ago (%s); no scaling within %s of one", ago.Round(time.Second), last.Message, window)}}
	}
	return nil
}

// MemoryRoom is the guard of a new replica's sync on the master's side:
// the master forks (its copy-on-write grows up to what it rewrites during
// the dump, its last fork's rdb_last_cow_size being the best estimate) and,
// on one host, the replica loads a copy of used_memory. need and have come
// from the platform (Platform's ReplicaRoom).
func MemoryRoom(master string, need, have int64, bound string) []Guard {
	if have <= 0 || need <= have {
		return nil
	}
	return []Guard{{GuardMemory, fmt.Sprintf("a new replica's sync from %s needs %d bytes (used_memory plus the last copy-on-write) and %s has %d", master, need, bound, have)}}
}

// Backlog is what a shard's replication backlog must hold so a new
// replica's full sync does not loop: the writes that arrive while the
// master dumps and the replica loads must still be in the backlog when
// the replica asks to continue. The sync time is estimated from the last
// dump (rdb_last_bgsave_time_sec, at least 1 s) plus a transfer and a
// load of used_memory at 100 MB/s each; the backlog must hold twice the
// writes of that time.
func Backlog(used int64, lastBgsaveSec int64, writeRate float64) (syncTime time.Duration, need int64) {
	dump := float64(max(lastBgsaveSec, 1))
	secs := dump + 2*float64(used)/100e6
	syncTime = time.Duration(secs * float64(time.Second))
	need = int64(math.Ceil(2 * writeRate * secs))
	return syncTime, need
}
