package topology

import (
	"sort"
	"time"

	"github.com/redis-manager/redis-manager/internal/sentinel"
)

// SentinelChoice returns the address of the replica Sentinel would promote,
// given its SENTINEL REPLICAS view (sentinel.Replicas), the way Redis 7.0's sentinelSelectSlave
// decides: skip replicas that are down or disconnected, whose INFO or last
// ping is older than validity, with priority 0, or whose master link has
// been down too long; then lowest priority, highest offset, lowest run id.
// It is pure.
func SentinelChoice(view []sentinel.Replica, validity time.Duration) string {
	var cands []sentinel.Replica
	for _, r := range view {
		if sentinel.Down(r.Flags) {
			continue
		}
		if r.LastOKPing > validity || r.InfoRefresh > validity {
			continue
		}
		if r.Priority == 0 {
			continue
		}
		cands = append(cands, r)
	}
	if len(cands) == 0 {
		return ""
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		if a.Offset != b.Offset {
			return a.Offset > b.Offset
		}
		return a.RunID < b.RunID
	})
	return cands[0].Addr
}
