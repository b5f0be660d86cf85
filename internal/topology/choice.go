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

// A forced failover (SENTINEL FAILOVER) reaches SLAVEOF NO ONE on the third
// tick of the Sentinel's timer (WAIT_START → SELECT_SLAVE →
// SEND_SLAVEOF_NOONE), and a Sentinel ticks 10 to 19 times a second: the
// command goes out between forceLeadMin and forceLeadMax after the request.
// The Sentinel then sees the promotion only in its next INFO of the
// replica, which it sends once a second while a failover runs (hard-wired
// in sentinel.c, whatever SENTINEL DEBUG info-period says); an INFO sent
// before SLAVEOF NO ONE still shows role:slave and the next comes a second
// later.
const (
	forceLeadMin   = 110 * time.Millisecond
	forceLeadMax   = 300 * time.Millisecond
	infoPeriodSlip = 1050 * time.Millisecond // 1 s plus up to a timer tick
)

// ExpectedPromotion estimates how long after a SENTINEL FAILOVER request
// the Sentinel sees its replica promoted, given infoDue, the time until the
// Sentinel's next INFO of that replica (1 s minus the age of its last one,
// from SENTINEL REPLICAS info-refresh). It is pure.
func ExpectedPromotion(infoDue time.Duration) time.Duration {
	for infoDue < 0 {
		infoDue += infoPeriodSlip
	}
	switch {
	case infoDue >= forceLeadMax:
		return infoDue
	case infoDue < forceLeadMin:
		return infoDue + infoPeriodSlip
	}
	// Between the two the INFO wins the race with probability p.
	p := float64(infoDue-forceLeadMin) / float64(forceLeadMax-forceLeadMin)
	return infoDue + time.Duration((1-p)*float64(infoPeriodSlip))
}

// ForceCandidate is a Sentinel the fast path may ask to fail a shard over.
type ForceCandidate struct {
	Addr    string
	Index   int           // position in the list clients are given; 0 is asked first
	InfoDue time.Duration // until its next INFO of the replica it would promote
}

// OrderForcing orders the Sentinels to ask, best first. The Sentinel that
// runs a failover keeps naming the old master in SENTINEL MASTERS (what
// redis-py reads) until the failover ends, when every other replica is
// reconfigured and seen so in its INFO, up to a second or more after the
// others switched on its hello; so the Sentinel clients ask first comes
// last, and the others in the order of ExpectedPromotion, then from the
// end of the clients' list. It is pure.
func OrderForcing(cands []ForceCandidate) []ForceCandidate {
	out := append([]ForceCandidate(nil), cands...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.Index == 0) != (b.Index == 0) {
			return b.Index == 0
		}
		ea, eb := ExpectedPromotion(a.InfoDue), ExpectedPromotion(b.InfoDue)
		if ea != eb {
			return ea < eb
		}
		return a.Index > b.Index
	})
	return out
}
