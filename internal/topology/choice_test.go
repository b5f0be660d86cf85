package topology

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/internal/sentinel"
)

func TestSentinelChoice(t *testing.T) {
	t.Parallel()
	rep := func(port, priority, offset int, runid, flags string) sentinel.Replica {
		return sentinel.Replica{Addr: net.JoinHostPort("127.0.0.1", fmt.Sprint(port)), Flags: strings.Split(flags, ","), Priority: int64(priority),
			Offset: int64(offset), RunID: runid, LastOKPing: 100 * time.Millisecond, InfoRefresh: 200 * time.Millisecond}
	}
	validity := 3 * time.Second
	tests := []struct {
		name string
		view []sentinel.Replica
		want string
	}{
		{"highest offset wins", []sentinel.Replica{rep(1, 100, 10, "a", "slave"), rep(2, 100, 30, "b", "slave")}, "127.0.0.1:2"},
		{"lower priority beats offset", []sentinel.Replica{rep(1, 50, 10, "a", "slave"), rep(2, 100, 30, "b", "slave")}, "127.0.0.1:1"},
		{"priority 0 never", []sentinel.Replica{rep(1, 0, 99, "a", "slave"), rep(2, 100, 30, "b", "slave")}, "127.0.0.1:2"},
		{"down or disconnected skipped", []sentinel.Replica{rep(1, 100, 99, "a", "slave,s_down"), rep(2, 100, 98, "b", "slave,disconnected"), rep(3, 100, 1, "c", "slave")}, "127.0.0.1:3"},
		{"equal offsets: lowest run id", []sentinel.Replica{rep(1, 100, 10, "b", "slave"), rep(2, 100, 10, "a", "slave")}, "127.0.0.1:2"},
		{"stale INFO skipped", func() []sentinel.Replica {
			stale := rep(1, 100, 99, "a", "slave")
			stale.InfoRefresh = 5000 * time.Millisecond
			return []sentinel.Replica{stale, rep(2, 100, 1, "b", "slave")}
		}(), "127.0.0.1:2"},
		{"o_down skipped", []sentinel.Replica{rep(1, 100, 99, "a", "slave,s_down,o_down"), rep(2, 100, 1, "b", "slave")}, "127.0.0.1:2"},
		{"stale ping skipped", func() []sentinel.Replica {
			stale := rep(1, 100, 99, "a", "slave")
			stale.LastOKPing = 4 * time.Second
			return []sentinel.Replica{stale, rep(2, 100, 1, "b", "slave")}
		}(), "127.0.0.1:2"},
		{"exactly at validity still counts", func() []sentinel.Replica {
			edge := rep(1, 100, 99, "a", "slave")
			edge.InfoRefresh = validity
			return []sentinel.Replica{edge, rep(2, 100, 1, "b", "slave")}
		}(), "127.0.0.1:1"},
		{"no candidate", []sentinel.Replica{rep(1, 0, 10, "a", "slave")}, ""},
	}
	for _, tc := range tests {
		if got := SentinelChoice(tc.view, validity); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestOrderForcing(t *testing.T) {
	t.Parallel()
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	// The next INFO comes after SLAVEOF NO ONE: promotion seen then.
	if got := ExpectedPromotion(ms(600)); got != ms(600) {
		t.Fatalf("600 ms → %v", got)
	}
	// It comes before: a whole period later.
	if got := ExpectedPromotion(ms(50)); got != ms(50)+infoPeriodSlip {
		t.Fatalf("50 ms → %v", got)
	}
	// Overdue: the INFO goes out at the next tick, before SLAVEOF NO ONE.
	if got := ExpectedPromotion(ms(-30)); got != ms(-30)+infoPeriodSlip {
		t.Fatalf("-30 ms → %v", got)
	}
	// In between, later is better than earlier, up to forceLeadMax.
	if !(ExpectedPromotion(ms(250)) < ExpectedPromotion(ms(150))) || ExpectedPromotion(ms(300)) > ExpectedPromotion(ms(250)) {
		t.Fatalf("race window not monotone: %v %v %v", ExpectedPromotion(ms(150)), ExpectedPromotion(ms(250)), ExpectedPromotion(ms(300)))
	}
	cands := []ForceCandidate{
		{Addr: "s0", Index: 0, InfoDue: ms(400)}, // first in the clients' list: last resort
		{Addr: "s1", Index: 1, InfoDue: ms(900)},
		{Addr: "s2", Index: 2, InfoDue: ms(350)},
	}
	got := OrderForcing(cands)
	if got[0].Addr != "s2" || got[1].Addr != "s1" || got[2].Addr != "s0" {
		t.Fatalf("order %+v", got)
	}
	// Equal estimates: the one clients ask last first.
	got = OrderForcing([]ForceCandidate{{Addr: "s1", Index: 1, InfoDue: ms(500)}, {Addr: "s2", Index: 2, InfoDue: ms(500)}})
	if got[0].Addr != "s2" {
		t.Fatalf("order %+v", got)
	}
	// Alone, the first Sentinel still runs it.
	if got := OrderForcing(cands[:1]); len(got) != 1 || got[0].Addr != "s0" {
		t.Fatalf("order %+v", got)
	}
}
