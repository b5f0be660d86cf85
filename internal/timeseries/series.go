package timeseries

import (
	"math"
	"sort"
	"sync"
	"time"
	"unsafe"

	"github.com/redis-manager/redis-manager/api"
)

const (
	// Step is the sampling interval.
	Step = 10 * time.Second
	// Window is how long samples are kept.
	Window = 24 * time.Hour

	stepSec     = int64(Step / time.Second)
	windowSlots = int64(Window / Step)

	// MaxBytesPerInstance caps the encoded bytes of an instance's closed
	// chunks; past it the oldest chunks are dropped (only series that
	// change wildly at every sample come near it, see docs/metrics.md).
	MaxBytesPerInstance = 96 << 10

	// staleAfter: a status observed longer ago than this gives no sample
	// (no leader is observing; the charts show a gap, not a flat line).
	staleAfter = 30 * time.Second
)

// The series of an instance, in stored units.
const (
	sOps     = iota // ops/s
	sMemKiB         // used memory, KiB
	sClients        // connected clients
	sKeys           // keys
	sHit            // hit ratio in 1/10000; -1: no lookups or unknown
	sLag            // replica lag, bytes
	sCPU            // share of one core in 1/10 %; -1: unknown
	numSeries
)

// Series holds every instance's samples. It is safe for concurrent use.
type Series struct {
	mu       sync.Mutex
	clusters map[string]map[string]*instance
	lastSlot int64 // newest slot sampled, 0 before the first
}

type instance struct {
	shard    int
	role     string
	lastSeen int64 // slot of the last sample
	prev     counters
	chunks   []chunk // closed, oldest first
	bytes    int     // encoded bytes in chunks
	open     openChunk
}

// counters are the cumulative figures of the previous sample, for rates.
type counters struct {
	ok           bool
	at           time.Time
	hits, misses int64
	cpu          float64
	hit, cpuRate int64 // the rates computed then, reused while the observation is the same
}

type openChunk struct {
	start   int64 // first slot; -1: none
	present uint64
	vals    [chunkSlots][numSeries]int64
}

// New returns empty series.
func New() *Series {
	return &Series{clusters: map[string]map[string]*instance{}}
}

// Slot is the 10 s slot of t.
func Slot(t time.Time) int64 { return t.Unix() / stepSec }

// Add records one sample of every instance of a cluster's observed status
// at now's slot. Instances that are down, and statuses observed more than
// 30 s before now, give none.
func (s *Series) Add(cluster string, st api.ClusterStatus, now time.Time) {
	if st.ObservedAt == nil || now.Sub(*st.ObservedAt) > staleAfter {
		return
	}
	at := *st.ObservedAt
	slot := Slot(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	insts := s.clusters[cluster]
	if insts == nil {
		insts = map[string]*instance{}
		s.clusters[cluster] = insts
	}
	for _, sh := range st.Shards {
		if sh.Master != nil {
			s.addInstance(insts, sh.Index, *sh.Master, at, slot)
		}
		for _, r := range sh.Replicas {
			s.addInstance(insts, sh.Index, r, at, slot)
		}
	}
	if slot > s.lastSlot {
		s.lastSlot = slot
	}
}

func (s *Series) addInstance(insts map[string]*instance, shard int, is api.InstanceStatus, at time.Time, slot int64) {
	if !is.Up {
		return
	}
	in := insts[is.Name]
	if in == nil {
		in = &instance{open: openChunk{start: -1}}
		insts[is.Name] = in
	}
	in.shard, in.role = shard, is.Role
	var v [numSeries]int64
	v[sOps] = is.OpsPerSec
	v[sMemKiB] = (is.UsedMemoryBytes + 512) / 1024
	v[sClients] = is.ConnectedClients
	v[sKeys] = is.Keys
	v[sLag] = is.LagBytes
	v[sHit], v[sCPU] = in.rates(is, at)
	in.append(slot, &v)
}

// rates turns the cumulative counters into the hit ratio and the CPU share
// since the previous sample; -1 on the first sample and after a counter
// went back (the process restarted), which starts a new baseline.
func (in *instance) rates(is api.InstanceStatus, at time.Time) (hit, cpu int64) {
	p := in.prev
	if p.ok && at.Equal(p.at) {
		return p.hit, p.cpuRate
	}
	hit, cpu = -1, -1
	if p.ok && is.KeyspaceHits >= p.hits && is.KeyspaceMisses >= p.misses && is.UsedCPUSeconds >= p.cpu && at.After(p.at) {
		dh, dm := is.KeyspaceHits-p.hits, is.KeyspaceMisses-p.misses
		if dh+dm > 0 {
			hit = int64(math.Round(float64(dh) * 1000 / float64(dh+dm)))
		}
		cpu = int64(math.Round((is.UsedCPUSeconds - p.cpu) / at.Sub(p.at).Seconds() * 1000))
	}
	in.prev = counters{ok: true, at: at, hits: is.KeyspaceHits, misses: is.KeyspaceMisses, cpu: is.UsedCPUSeconds, hit: hit, cpuRate: cpu}
	return hit, cpu
}

// append stores v at slot: once per slot, never before the open chunk.
func (in *instance) append(slot int64, v *[numSeries]int64) {
	start := slot - slot%chunkSlots
	if in.open.start != start {
		if in.open.start > start {
			return // the clock went back
		}
		in.seal()
		in.open.start = start
	}
	bit := uint64(1) << (slot - start)
	if in.open.present&bit != 0 {
		return
	}
	in.open.present |= bit
	in.open.vals[slot-start] = *v
	in.lastSeen = slot
}

// seal closes the open chunk, then drops what is past the window or the
// cap.
func (in *instance) seal() {
	if in.open.start >= 0 && in.open.present != 0 {
		c := chunk{start: in.open.start, present: in.open.present, data: encodeChunk(in.open.present, &in.open.vals)}
		in.chunks = append(in.chunks, c)
		in.bytes += len(c.data)
	}
	in.open = openChunk{start: -1}
	in.trim(in.lastSeen)
}

func (in *instance) trim(now int64) {
	drop := 0
	for drop < len(in.chunks) {
		c := in.chunks[drop]
		if c.start+chunkSlots > now-windowSlots && in.bytes <= MaxBytesPerInstance {
			break
		}
		in.bytes -= len(c.data)
		drop++
	}
	if drop > 0 {
		// Copy, so the dropped chunks' array does not stay reachable.
		in.chunks = append([]chunk(nil), in.chunks[drop:]...)
	}
}

// Retain drops the clusters not in names, and instances without a sample
// for 24 h; it trims every instance to the window.
func (s *Series) Retain(names []string, now time.Time) {
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	slot := Slot(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	for cl, insts := range s.clusters {
		if !keep[cl] {
			delete(s.clusters, cl)
			continue
		}
		for name, in := range insts {
			if in.lastSeen <= slot-windowSlots {
				delete(insts, name)
				continue
			}
			in.trim(slot)
		}
	}
}

// Bytes is the memory the series of one instance take: the encoded
// chunks, their headers and the instance's fixed part (its open chunk is
// most of it). ok is false for an unknown instance.
func (s *Series) Bytes(cluster, name string) (n int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.clusters[cluster][name]
	if in == nil {
		return 0, false
	}
	return in.size(), true
}

func (in *instance) size() int {
	return int(unsafe.Sizeof(*in)) + cap(in.chunks)*int(unsafe.Sizeof(chunk{})) + in.bytes
}

// Ranges are the ranges the metrics endpoint serves, with their steps.
var Ranges = map[string]time.Duration{"1h": Step, "6h": 3 * Step, "24h": 12 * Step}

// rangeLen is the length of each range.
var rangeLen = map[string]time.Duration{"1h": time.Hour, "6h": 6 * time.Hour, "24h": 24 * time.Hour}

// Query returns a cluster's series over rng ("1h", "6h" or "24h"; ok false
// otherwise), ending at the newest sampled slot; instance "" means every
// instance. Points of 6h and 24h average the samples of their step.
func (s *Series) Query(cluster, rng, instance string, now time.Time) (m api.Metrics, ok bool) {
	step, ok := Ranges[rng]
	if !ok {
		return api.Metrics{}, false
	}
	k := int64(step / Step)               // slots per point
	points := int64(rangeLen[rng] / step) // 360 or 720
	s.mu.Lock()
	defer s.mu.Unlock()
	end := s.lastSlot
	if end == 0 {
		end = Slot(now)
	}
	lastBucket := end / k
	firstBucket := lastBucket - points + 1
	from, to := firstBucket*k, (lastBucket+1)*k // slots [from, to)
	m = api.Metrics{Cluster: cluster, Range: rng, StepMs: step.Milliseconds(), Times: make([]int64, points), Instances: []api.InstanceMetrics{}}
	for i := range m.Times {
		m.Times[i] = (firstBucket + int64(i)) * k * stepSec
	}
	names := make([]string, 0, len(s.clusters[cluster]))
	for name := range s.clusters[cluster] {
		if instance == "" || name == instance {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		in := s.clusters[cluster][name]
		var sum [numSeries][]float64
		var cnt [numSeries][]int32
		for j := range sum {
			sum[j] = make([]float64, points)
			cnt[j] = make([]int32, points)
		}
		add := func(slot int64, v *[numSeries]int64) {
			if slot < from || slot >= to {
				return
			}
			b := slot/k - firstBucket
			for j := 0; j < numSeries; j++ {
				if (j == sHit || j == sCPU) && v[j] < 0 {
					continue
				}
				sum[j][b] += float64(v[j])
				cnt[j][b]++
			}
		}
		for _, c := range in.chunks {
			if c.start+chunkSlots > from && c.start < to {
				decodeChunk(c, add)
			}
		}
		if in.open.start >= 0 {
			for b := 0; b < chunkSlots; b++ {
				if in.open.present&(1<<b) != 0 {
					add(in.open.start+int64(b), &in.open.vals[b])
				}
			}
		}
		scale := [numSeries]float64{sOps: 1, sMemKiB: 1024, sClients: 1, sKeys: 1, sHit: 1.0 / 1000, sLag: 1, sCPU: 0.1}
		var out [numSeries][]*float64
		for j := range out {
			out[j] = make([]*float64, points)
			vals := make([]float64, points) // one allocation for the pointers' targets
			for b := range out[j] {
				if cnt[j][b] > 0 {
					vals[b] = sum[j][b] / float64(cnt[j][b]) * scale[j]
					out[j][b] = &vals[b]
				}
			}
		}
		m.Instances = append(m.Instances, api.InstanceMetrics{Name: name, Shard: in.shard, Role: in.role, Series: api.MetricSeries{
			OpsPerSec: out[sOps], UsedMemoryBytes: out[sMemKiB], Clients: out[sClients], Keys: out[sKeys],
			HitRatio: out[sHit], LagBytes: out[sLag], CPUPercent: out[sCPU]}})
	}
	return m, true
}
