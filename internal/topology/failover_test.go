package topology

import (
	"strings"
	"testing"

	"github.com/redis-manager/redis-manager/internal/sentinel"
)

func TestMajority(t *testing.T) {
	t.Parallel()
	const a, b, c = "127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"
	tests := []struct {
		name    string
		answers []string
		want    string
	}{
		{"no answers", nil, ""},
		{"one answer", []string{b}, b},
		{"all agree", []string{c, c, c}, c},
		{"majority wins", []string{a, b, b}, b},
		{"majority wins regardless of order", []string{b, a, b}, b},
		{"tie resolves to the lowest address", []string{b, a}, a},
		{"tie resolves the same in any order", []string{a, b}, a},
		{"tie, two each", []string{c, b, c, b}, b},
		{"plurality of three addresses", []string{c, a, c, b}, c},
	}
	for _, tc := range tests {
		if got := Majority(tc.answers); got != tc.want {
			t.Errorf("%s: Majority(%q) = %q, want %q", tc.name, tc.answers, got, tc.want)
		}
	}
}

// TestFailingOver pins the one definition of "is this shard failing over?".
// Before it, three definitions disagreed: the phase (evaluate) counted
// s_down, o_down, failover_in_progress and a down named master; healing
// counted s_down, o_down, failover_in_progress and promoted; a spec change
// (UpdateCluster) counted only failover_in_progress, o_down and promoted.
// The cases marked "changed" are those where UpdateCluster now refuses
// where it accepted before.
func TestFailingOver(t *testing.T) {
	t.Parallel()
	flag := func(i int, flags ...string) func(*Observation) {
		return func(obs *Observation) {
			m := obs.Sentinels[i].View["orders-0"]
			m.Flags = flags
			obs.Sentinels[i].View["orders-0"] = m
		}
	}
	tests := []struct {
		name     string
		shards   int
		replicas int
		mod      func(*Observation)
		want     bool
	}{
		{"healthy", 1, 2, func(*Observation) {}, false},
		{"a Sentinel runs the failover", 1, 2, flag(0, "master", "failover_in_progress"), true},
		{"a quorum sees the master down", 1, 2, flag(1, "master", "s_down", "o_down"), true},
		// changed for UpdateCluster: s_down is the step before o_down; a
		// spec change started now would read a master about to be replaced.
		{"one Sentinel sees the master down (s_down)", 1, 2, flag(2, "master", "s_down"), true},
		{"promoted (kept from the earlier definitions)", 1, 2, flag(0, "master", "promoted"), true},
		{"disconnected alone is not a failover", 1, 2, flag(0, "master", "disconnected"), false},
		{"a down Sentinel's stale view does not count", 1, 2, func(obs *Observation) {
			flag(0, "master", "o_down")(obs)
			obs.Sentinels[0].Up = false
		}, false},
		// changed for UpdateCluster: the master Sentinels name does not
		// answer and there is a replica to promote: its failover is coming.
		{"the named master does not answer", 1, 2, func(obs *Observation) {
			obs.Redis[0].Up, obs.Redis[0].Info = false, nil
		}, true},
		{"the named master does not answer, no replica to promote", 1, 0, func(obs *Observation) {
			obs.Redis[0].Up, obs.Redis[0].Info = false, nil
		}, false},
		{"a replica does not answer", 1, 2, func(obs *Observation) {
			obs.Redis[1].Up, obs.Redis[1].Info = false, nil
		}, false},
		{"the instance a minority names does not answer", 1, 2, func(obs *Observation) {
			m := obs.Sentinels[2].View["orders-0"]
			m.Addr = fxAddr(fxRedisPort(0, 2))
			obs.Sentinels[2].View["orders-0"] = m
			obs.Redis[2].Up, obs.Redis[2].Info = false, nil
		}, false},
		{"another shard's failover is not this shard's", 2, 1, func(obs *Observation) {
			m := obs.Sentinels[0].View["orders-1"]
			m.Flags = []string{"master", "o_down"}
			obs.Sentinels[0].View["orders-1"] = m
		}, false},
		{"another cluster's failover is not this cluster's", 1, 2, func(obs *Observation) {
			m := obs.Sentinels[0].View["other-0"]
			m.Flags = []string{"master", "failover_in_progress"}
			obs.Sentinels[0].View["other-0"] = m
		}, false},
	}
	for _, tc := range tests {
		s, obs := fxCluster(tc.shards, tc.replicas, 3)
		tc.mod(&obs)
		if got := FailingOver(s, "orders", obs, 0); got != tc.want {
			t.Errorf("%s: FailingOver = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFailingOverShard(t *testing.T) {
	t.Parallel()
	s, obs := fxCluster(3, 1, 3)
	if sh, ok := FailingOverShard(s, "orders", obs); ok {
		t.Fatalf("healthy cluster: shard %d failing over", sh)
	}
	for _, shard := range []string{"orders-2", "orders-1"} {
		m := obs.Sentinels[1].View[shard]
		m.Flags = []string{"master", "failover_in_progress"}
		obs.Sentinels[1].View[shard] = m
	}
	if sh, ok := FailingOverShard(s, "orders", obs); !ok || sh != 1 {
		t.Fatalf("FailingOverShard = %d, %v; want 1, true (the lowest)", sh, ok)
	}
	// A shard beyond the spec (being removed) is not asked about.
	s.Shards = 1
	if sh, ok := FailingOverShard(s, "orders", obs); ok {
		t.Fatalf("spec of 1 shard: shard %d failing over", sh)
	}
}

func TestSentinelFailingOver(t *testing.T) {
	t.Parallel()
	for flags, want := range map[string]bool{
		"master": false, "master,disconnected": false, "master,s_down": true, "master,s_down,o_down": true,
		"master,failover_in_progress": true, "master,promoted": true, "master,master_down": false,
	} {
		m := sentinel.Master{Flags: splitFlags(flags)}
		if got := SentinelFailingOver(m); got != want {
			t.Errorf("flags %s: %v, want %v", flags, got, want)
		}
	}
}

func splitFlags(s string) []string { return strings.Split(s, ",") }
