package instance

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/internal/platform"
)

func TestRole(t *testing.T) {
	t.Parallel()
	const a, b, c = "127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"
	tests := []struct {
		name    string
		answers []string
		self    string
		planned string
		want    string
	}{
		{"new shard, planned master boots as master", nil, a, a, ""},
		{"new shard, others replicate the planned master", nil, b, a, a},
		{"empty answers are no answers", []string{}, b, a, a},
		{"Sentinels override the plan", []string{b, b, b}, c, a, b},
		{"the old master comes back as a replica", []string{b, b, b}, a, a, b},
		{"self named master boots as master", []string{b, b, b}, b, a, ""},
		{"majority wins", []string{a, b, b}, c, a, b},
		{"majority wins regardless of order", []string{b, a, b}, c, a, b},
		{"self named by a majority but not all replicates the other (mid-failover)", []string{a, b, b}, b, a, a},
		{"self named by every answer boots as master", []string{b, b, b}, b, a, ""},
		{"self named by a minority follows the majority", []string{a, b, b}, a, a, b},
		{"a single answer is enough", []string{c}, a, a, c},
		{"tie resolves to the lowest address", []string{b, a}, c, c, a},
		{"tie resolves the same in any order", []string{a, b}, c, c, a},
		{"tie, two each", []string{c, b, c, b}, a, a, b},
		{"a tie with self replicates the other", []string{b, a}, a, c, b},
		{"no plan and no answers", nil, a, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Role(tc.answers, tc.self, tc.planned); got != tc.want {
				t.Fatalf("Role(%q, self %s, planned %s) = %q, want %q", tc.answers, tc.self, tc.planned, got, tc.want)
			}
		})
	}
}

// mapAsker answers from a map: an address, or an error for a Sentinel that
// does not answer; a missing Sentinel hangs until the deadline.
type mapAsker map[string]any

func (m mapAsker) MasterAddr(ctx context.Context, sentinel, password, masterName string) (string, error) {
	if password != "spw" || masterName != "orders-0" {
		return "", errors.New("wrong question")
	}
	switch v := m[sentinel].(type) {
	case string:
		return v, nil
	case error:
		return "", v
	}
	<-ctx.Done()
	return "", ctx.Err()
}

func TestDecide(t *testing.T) {
	t.Parallel()
	const a, b, self = "127.0.0.1:7000", "[::1]:7001", "127.0.0.1:7002"
	plan := platform.BootPlan{MasterName: "orders-0", PlannedMaster: a, Sentinels: []string{"s0", "s1", "s2"}, SentinelPassword: "spw"}
	tests := []struct {
		name string
		ask  mapAsker
		want Decision
	}{
		{"no Sentinel knows the shard: the plan", mapAsker{"s0": errors.New("no such master"), "s1": "", "s2": errors.New("refused")}, Decision{a, []string{}}},
		{"every answer names self: master", mapAsker{"s0": self, "s1": self, "s2": self}, Decision{"", []string{self, self, self}}},
		{"a Sentinel that hangs gives no answer", mapAsker{"s0": self, "s1": self}, Decision{"", []string{self, self}}},
		{"one answer for another master fences the boot", mapAsker{"s0": self, "s1": self, "s2": b}, Decision{b, []string{self, self, b}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			got := Decide(context.Background(), plan, self, tc.ask)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Decide = %+v, want %+v", got, tc.want)
			}
			if d := time.Since(start); d > AskTimeout+500*time.Millisecond {
				t.Errorf("Decide took %s; Sentinels must be asked at once, %s each", d, AskTimeout)
			}
		})
	}
}
