package catalog

import (
	"fmt"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/store"
)

// ImportedBackup builds a record from a sidecar. It is pure.
func ImportedBackup(sc Sidecar, cluster string, shard int, target, key, objURL string) store.Backup {
	if sc.Cluster != "" {
		cluster, shard = sc.Cluster, sc.Shard
	}
	b := store.Backup{
		Backup: api.Backup{ID: sc.ID, Cluster: cluster, Shard: shard, State: api.StateSucceeded, Target: objURL,
			SizeBytes: sc.SizeBytes, CRC64: sc.CRC64, Keys: sc.Keys, SourceInstance: sc.SourceInstance,
			StartedAt: sc.StartedAt.UTC(), Job: sc.Job, ScheduledFor: sc.ScheduledFor, ReplOffset: sc.ReplOffset,
			Verified: !sc.NoChecksum && (sc.Verified == nil || *sc.Verified)},
		TargetURL:  target,
		ObjectKey:  key,
		SourceSpec: sc.SourceSpec,
	}
	if !sc.FinishedAt.IsZero() {
		fin := sc.FinishedAt.UTC()
		b.FinishedAt = &fin
		b.DurationMs = fin.Sub(b.StartedAt).Milliseconds()
	}
	return b
}

// MatchRecord checks a downloaded RDB against its record: a valid RDB
// that is not the one backed up (replaced, truncated at a valid point) is
// refused too. It is pure.
func MatchRecord(res backup.Result, b store.Backup) error {
	if b.CRC64 != "" && res.CRC64 != b.CRC64 {
		return fmt.Errorf("%w: CRC64 %s, the record says %s", backup.ErrCorrupt, res.CRC64, b.CRC64)
	}
	if b.SizeBytes > 0 && res.Bytes != b.SizeBytes {
		return fmt.Errorf("%w: %d bytes, the record says %d", backup.ErrCorrupt, res.Bytes, b.SizeBytes)
	}
	return nil
}
