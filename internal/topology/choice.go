package topology

import (
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SentinelChoice returns the address of the replica Sentinel would promote,
// given its SENTINEL REPLICAS view, the way Redis 7.0's sentinelSelectSlave
// decides: skip replicas that are down or disconnected, whose INFO or last
// ping is older than validity, with priority 0, or whose master link has
// been down too long; then lowest priority, highest offset, lowest run id.
// It is pure.
func SentinelChoice(view []map[string]string, validity time.Duration) string {
	type cand struct {
		addr     string
		priority int64
		offset   int64
		runid    string
	}
	var cands []cand
	num := func(m map[string]string, k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	for _, r := range view {
		flags := r["flags"]
		if strings.Contains(flags, "s_down") || strings.Contains(flags, "o_down") || strings.Contains(flags, "disconnected") {
			continue
		}
		if time.Duration(num(r, "last-ok-ping-reply"))*time.Millisecond > validity ||
			time.Duration(num(r, "info-refresh"))*time.Millisecond > validity {
			continue
		}
		if num(r, "slave-priority") == 0 {
			continue
		}
		cands = append(cands, cand{addr: net.JoinHostPort(r["ip"], r["port"]), priority: num(r, "slave-priority"),
			offset: num(r, "slave-repl-offset"), runid: r["runid"]})
	}
	if len(cands) == 0 {
		return ""
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.priority != b.priority {
			return a.priority < b.priority
		}
		if a.offset != b.offset {
			return a.offset > b.offset
		}
		return a.runid < b.runid
	})
	return cands[0].addr
}
