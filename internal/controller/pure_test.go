package controller

import (
	"strings"
	"testing"
	"time"
)

func TestBootRole(t *testing.T) {
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
			if got := bootRole(tc.answers, tc.self, tc.planned); got != tc.want {
				t.Fatalf("bootRole(%q, self %s, planned %s) = %q, want %q", tc.answers, tc.self, tc.planned, got, tc.want)
			}
		})
	}
}

const idAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func TestNewID(t *testing.T) {
	t.Parallel()
	before := time.Now().UnixMilli()
	id := NewID("job")
	after := time.Now().UnixMilli()
	if !strings.HasPrefix(id, "job_") || len(id) != len("job_")+20 {
		t.Fatalf("NewID(job) = %q, want job_ and 20 characters", id)
	}
	body := strings.TrimPrefix(id, "job_")
	var ms int64
	for i, r := range body {
		k := strings.IndexRune(idAlphabet, r)
		if k < 0 {
			t.Fatalf("NewID = %q: %q is not in the Crockford alphabet", id, r)
		}
		if i < 10 {
			ms = ms<<5 | int64(k)
		}
	}
	if ms < before || ms > after {
		t.Fatalf("NewID = %q encodes %d ms, want between %d and %d", id, ms, before, after)
	}
	if got := NewID("evt"); !strings.HasPrefix(got, "evt_") {
		t.Fatalf("NewID(evt) = %q", got)
	}

	seen := make(map[string]bool, 10000)
	for i := 0; i < 10000; i++ {
		id := NewID("job")
		if seen[id] {
			t.Fatalf("NewID repeated %q after %d ids", id, i)
		}
		seen[id] = true
	}

	// Ids from a later millisecond sort after earlier ones, whatever the
	// random part.
	for i := 0; i < 5; i++ {
		first := NewID("job")
		start := time.Now().UnixMilli()
		for time.Now().UnixMilli() <= start+1 {
			time.Sleep(200 * time.Microsecond)
		}
		second := NewID("job")
		if !(first < second) {
			t.Fatalf("NewID not sortable by time: %q then %q", first, second)
		}
	}
}
