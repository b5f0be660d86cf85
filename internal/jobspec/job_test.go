package jobspec

import (
	"strings"
	"testing"
	"time"
)

// idAlphabet is Crockford's base 32, as NewID writes it.
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
