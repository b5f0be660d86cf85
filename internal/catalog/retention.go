package catalog

import (
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
)

// PruneSelect picks, from a cluster's backups newest first, the scheduled
// ones retention removes: per shard, succeeded backups beyond the newest
// retain, or older than maxAge (never the newest succeeded one), and failed
// ones older than a succeeded one. Running backups and backups taken by
// hand stay. It is pure.
func PruneSelect(all []store.Backup, retain int, maxAge time.Duration, now time.Time) []store.Backup {
	kept := map[int]int{}
	var out []store.Backup
	for _, b := range all {
		if b.ScheduledFor == nil {
			continue
		}
		switch b.State {
		case api.StateSucceeded:
			if kept[b.Shard] == 0 {
				kept[b.Shard] = 1
				continue
			}
			if (retain > 0 && kept[b.Shard] >= retain) || (maxAge > 0 && now.Sub(b.StartedAt) > maxAge) {
				out = append(out, b)
				continue
			}
			kept[b.Shard]++
		case api.StateFailed:
			if kept[b.Shard] > 0 {
				out = append(out, b)
			}
		}
	}
	return out
}
