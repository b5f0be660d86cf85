package timeseries

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

func TestChunkRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := map[string]func(i, s int) int64{
		"constant": func(i, s int) int64 { return 42 },
		"zero":     func(i, s int) int64 { return 0 },
		"noisy":    func(i, s int) int64 { return 1000 + rng.Int64N(400) - 200 },
		"extremes": func(i, s int) int64 {
			return []int64{math.MinInt64, math.MaxInt64, 0, -1, 1}[(i+s)%5]
		},
		"random": func(i, s int) int64 { return int64(rng.Uint64()) },
	}
	for name, gen := range cases {
		for _, present := range []uint64{^uint64(0), 1, 1 << 63, 0x5555_0000_ffff_0001} {
			var vals [chunkSlots][numSeries]int64
			for i := 0; i < chunkSlots; i++ {
				for s := 0; s < numSeries; s++ {
					vals[i][s] = gen(i, s)
				}
			}
			c := chunk{start: 640, present: present, data: encodeChunk(present, &vals)}
			seen := 0
			decodeChunk(c, func(slot int64, v *[numSeries]int64) {
				i := slot - 640
				if present&(1<<i) == 0 {
					t.Fatalf("%s: slot %d decoded but not present", name, slot)
				}
				if *v != vals[i] {
					t.Fatalf("%s present %x slot %d: got %v want %v", name, present, slot, *v, vals[i])
				}
				seen++
			})
			if want := popcount(present); seen != want {
				t.Fatalf("%s: decoded %d slots, want %d", name, seen, want)
			}
		}
	}
	// A constant series costs no bits per point.
	var vals [chunkSlots][numSeries]int64
	if n := len(encodeChunk(^uint64(0), &vals)); n != 2*numSeries {
		t.Fatalf("constant chunk is %d bytes, want %d (a varint and a width byte per series)", n, 2*numSeries)
	}
}

func popcount(x uint64) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

func status(at time.Time, masters ...api.InstanceStatus) api.ClusterStatus {
	st := api.ClusterStatus{ObservedAt: &at}
	for i := range masters {
		m := masters[i]
		st.Shards = append(st.Shards, api.ShardStatus{Index: i, Master: &m})
	}
	return st
}

func TestAddQueryRatesAndGaps(t *testing.T) {
	s := New()
	t0 := time.Unix(1_764_530_000, 0) // a multiple of 10 s
	in := api.InstanceStatus{Name: "c-0-0", Role: "master", Up: true, OpsPerSec: 100, UsedMemoryBytes: 2048 * 1024, ConnectedClients: 3, Keys: 10}
	// sample 0: first, no rates; 1: 30 hits 10 misses, 0.5 s CPU over 10 s;
	// 2: down (gap); 3: counters went back (restart): no rates; 4: no lookups.
	steps := []struct {
		up                 bool
		hits, misses       int64
		cpu                float64
		wantHit, wantCPU   *float64
		wantOps, wantClnts float64
	}{
		{true, 100, 100, 10, nil, nil, 100, 3},
		{true, 130, 110, 10.5, ptr(0.75), ptr(5), 100, 3},
		{false, 0, 0, 0, nil, nil, 0, 0},
		{true, 5, 1, 0.1, nil, nil, 100, 3},
		{true, 5, 1, 0.2, nil, ptr(1), 100, 3},
	}
	for i, st := range steps {
		now := t0.Add(time.Duration(i) * Step)
		x := in
		x.Up, x.KeyspaceHits, x.KeyspaceMisses, x.UsedCPUSeconds = st.up, st.hits, st.misses, st.cpu
		s.Add("c", status(now, x), now)
	}
	m, ok := s.Query("c", "1h", "", t0.Add(4*Step))
	if !ok || len(m.Times) != 360 || m.StepMs != 10000 || len(m.Instances) != 1 {
		t.Fatalf("query: ok=%v times=%d step=%d instances=%d", ok, len(m.Times), m.StepMs, len(m.Instances))
	}
	if last := m.Times[359]; last != t0.Add(4*Step).Unix() {
		t.Fatalf("last time %d, want %d", last, t0.Add(4*Step).Unix())
	}
	got := m.Instances[0]
	if got.Name != "c-0-0" || got.Role != "master" || got.Shard != 0 {
		t.Fatalf("instance %+v", got)
	}
	for i, st := range steps {
		p := 355 + i
		if !st.up {
			if got.Series.OpsPerSec[p] != nil || got.Series.CPUPercent[p] != nil {
				t.Fatalf("step %d: down instance has values", i)
			}
			continue
		}
		checkPoint(t, i, "opsPerSec", got.Series.OpsPerSec[p], &st.wantOps)
		checkPoint(t, i, "clients", got.Series.Clients[p], &st.wantClnts)
		checkPoint(t, i, "usedMemoryBytes", got.Series.UsedMemoryBytes[p], ptr(2048*1024))
		checkPoint(t, i, "hitRatio", got.Series.HitRatio[p], st.wantHit)
		checkPoint(t, i, "cpuPercent", got.Series.CPUPercent[p], st.wantCPU)
		checkPoint(t, i, "lagBytes", got.Series.LagBytes[p], ptr(0))
	}
	if got.Series.Keys[354] != nil {
		t.Fatal("a point before the first sample is not null")
	}
	if _, ok := s.Query("c", "2h", "", t0); ok {
		t.Fatal("range 2h accepted")
	}
	if m, _ := s.Query("c", "1h", "other", t0); len(m.Instances) != 0 {
		t.Fatal("instance filter ignored")
	}
}

func ptr(f float64) *float64 { return &f }

func checkPoint(t *testing.T, step int, name string, got, want *float64) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Fatalf("step %d %s: got %v, want %v", step, name, deref(got), deref(want))
	case math.Abs(*got-*want) > 1e-9:
		t.Fatalf("step %d %s: got %v, want %v", step, name, *got, *want)
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// fill samples one instance for 24 h, across many chunks, with gen's
// values for sample i.
func fill(s *Series, t0 time.Time, gen func(i int, is *api.InstanceStatus)) time.Time {
	now := t0
	for i := 0; i < int(windowSlots); i++ {
		now = t0.Add(time.Duration(i) * Step)
		is := api.InstanceStatus{Name: "c-0-0", Role: "master", Up: true}
		gen(i, &is)
		s.Add("c", status(now, is), now)
	}
	return now
}

func TestDownsampleAveragesAndWindow(t *testing.T) {
	s := New()
	t0 := time.Unix(1_764_000_000, 0)
	end := fill(s, t0, func(i int, is *api.InstanceStatus) { is.OpsPerSec = int64(i) })
	m, _ := s.Query("c", "24h", "", end)
	if len(m.Times) != 720 || m.StepMs != 120000 {
		t.Fatalf("24h: %d points, step %d", len(m.Times), m.StepMs)
	}
	ops := m.Instances[0].Series.OpsPerSec
	// Each point averages 12 consecutive samples; the values are the sample
	// numbers, so a full point's average is its middle.
	full := 0
	for b, v := range ops {
		if v == nil {
			continue
		}
		first := (m.Times[b] - t0.Unix()) / 10
		if first >= 0 && first+11 <= int64(windowSlots)-1 {
			full++
			if want := float64(first) + 5.5; math.Abs(*v-want) > 1e-9 {
				t.Fatalf("point %d: %v, want %v", b, *v, want)
			}
		}
	}
	if full < 718 {
		t.Fatalf("only %d full points of 720", full)
	}
	m6, _ := s.Query("c", "6h", "", end)
	if len(m6.Times) != 720 || m6.StepMs != 30000 {
		t.Fatalf("6h: %d points, step %d", len(m6.Times), m6.StepMs)
	}
	if v := m6.Instances[0].Series.OpsPerSec[719]; v == nil {
		t.Fatal("6h: newest point is null")
	}
	// The window: after another day with no sample, trimming and Retain
	// drop the instance; a cluster not listed is dropped at once.
	s.Retain([]string{"c"}, end.Add(time.Hour))
	if _, ok := s.Bytes("c", "c-0-0"); !ok {
		t.Fatal("instance dropped within 24 h of its last sample")
	}
	s.Retain([]string{"c"}, end.Add(Window+Step))
	if _, ok := s.Bytes("c", "c-0-0"); ok {
		t.Fatal("instance kept 24 h after its last sample")
	}
	fill(s, t0, func(int, *api.InstanceStatus) {})
	s.Retain(nil, end)
	if _, ok := s.Bytes("c", "c-0-0"); ok {
		t.Fatal("deleted cluster's series kept")
	}
}

// TestBytesPerInstance pins the memory figures documented in
// docs/metrics.md: a busy instance's 24 h stay under 64 KiB, a worst case
// (every figure random over its whole range at every sample) stays under
// the cap.
func TestBytesPerInstance(t *testing.T) {
	t0 := time.Unix(1_764_000_000, 0)
	s := New()
	fill(s, t0, Typical(rand.New(rand.NewPCG(3, 4))))
	typical, _ := s.Bytes("c", "c-0-0")
	if typical > 64<<10 {
		t.Fatalf("typical instance takes %d bytes, want <= 64 KiB", typical)
	}
	s = New()
	fill(s, t0, Worst(rand.New(rand.NewPCG(5, 6))))
	worst, _ := s.Bytes("c", "c-0-0")
	if worst > MaxBytesPerInstance+16<<10 {
		t.Fatalf("worst case takes %d bytes, want <= cap %d + fixed part", worst, MaxBytesPerInstance)
	}
	t.Logf("bytes per instance for 24 h: typical %d, worst %d", typical, worst)
}
