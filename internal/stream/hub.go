package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// Source is what the hub reads, in the API's forms.
type Source interface {
	ListClusters(ctx context.Context) ([]api.Cluster, error)
	// JobsSince lists the unfinished jobs and those finished at or after
	// since, oldest first.
	JobsSince(ctx context.Context, since time.Time) ([]api.Job, error)
	UnfinishedJobs(ctx context.Context) ([]api.Job, error)
	// RecentEvents lists a cluster's newest events, newest first.
	RecentEvents(ctx context.Context, cluster string, limit int) ([]api.Event, error)
}

const (
	// Interval is how often the store is read while someone listens.
	Interval = 500 * time.Millisecond
	// jobReads is how many times per Interval the unfinished jobs alone
	// are read (one indexed query), so the progress of a job shorter
	// than a second is still seen on its way.
	jobReads = 5
	// Buffer is how many reads with changes (one batch of frames each) a
	// subscriber may fall behind before it is dropped (its client
	// reconnects): 32, about 16 s.
	Buffer = 32
	// figuresEvery: a cluster whose status changed only in its figures
	// (ops/s, memory, CPU, … which move at every observation) is sent at
	// most this often; any other change is sent at once.
	figuresEvery = 10 * time.Second
	// eventsPerPoll is how many of a cluster's newest events one poll
	// reads when its newest event changed.
	eventsPerPoll = 100
	// finishedWindow: each poll reads the jobs finished this recently, so
	// a job that starts and ends between two polls is still seen (with
	// room for the leader's clock being ahead of this manager's).
	finishedWindow = time.Minute
)

// Frame is one encoded server-sent event, ready to write.
type Frame struct {
	Cluster string // the cluster it is about, for ?cluster=
	Data    []byte
}

// Sub is one subscriber.
type Sub struct {
	cluster string
	ch      chan []Frame
	ready   bool // receives broadcasts; guarded by Hub.mu
}

// C delivers, after the snapshot, the frames of each read that changed
// something; it is closed when the subscriber fell too far behind or the
// hub stopped.
func (s *Sub) C() <-chan []Frame { return s.ch }

// Hub is the shared poller and its subscribers.
type Hub struct {
	src      Source
	log      *slog.Logger
	interval time.Duration

	mu     sync.Mutex
	subs   map[*Sub]struct{}
	cancel context.CancelFunc // of the running poller; nil when none
	primed chan struct{}      // closed after the running poller's first read
	st     state
}

// state is what the poller read last.
type state struct {
	clusters map[string]clusterState
	jobs     map[string]jobState
	events   map[string]eventMark // cluster → newest event sent or seen
}

// eventMark is an event's place in the store's order (at, then id).
type eventMark struct {
	at time.Time
	id string
}

func (m eventMark) before(e api.Event) bool {
	return m.at.Before(e.At) || (m.at.Equal(e.At) && m.id < e.ID)
}

type clusterState struct {
	frame []byte
	shape uint64 // hash of the JSON without the figures
	all   uint64 // hash of the whole JSON but observedAt
	sent  time.Time
}

type jobState struct {
	cluster string
	done    bool
	frame   []byte
	hash    uint64
}

// New returns a hub reading src.
func New(src Source, log *slog.Logger) *Hub {
	return &Hub{src: src, log: log, interval: Interval, subs: map[*Sub]struct{}{}}
}

// ErrStopped is returned by Subscribe when ctx ends first.
var ErrStopped = errors.New("stream: subscription abandoned")

// Subscribe adds a subscriber for one cluster ("" for all). It returns the
// snapshot to send first (every cluster, the unfinished jobs) and the
// subscriber, whose channel then carries every change. The caller must
// call Unsubscribe.
func (h *Hub) Subscribe(ctx context.Context, cluster string) ([]Frame, *Sub, error) {
	sub := &Sub{cluster: cluster, ch: make(chan []Frame, Buffer)}
	h.mu.Lock()
	if h.cancel == nil {
		pctx, cancel := context.WithCancel(context.Background())
		h.cancel, h.primed = cancel, make(chan struct{})
		h.st = state{clusters: map[string]clusterState{}, jobs: map[string]jobState{}, events: map[string]eventMark{}}
		go h.run(pctx, h.primed)
	}
	primed := h.primed
	h.subs[sub] = struct{}{}
	h.mu.Unlock()
	select {
	case <-primed:
	case <-ctx.Done():
		h.Unsubscribe(sub)
		return nil, nil, ErrStopped
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[sub]; !ok {
		return nil, nil, ErrStopped
	}
	var snap []Frame
	names := make([]string, 0, len(h.st.clusters))
	for n := range h.st.clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if cluster == "" || n == cluster {
			snap = append(snap, Frame{n, h.st.clusters[n].frame})
		}
	}
	ids := make([]string, 0, len(h.st.jobs))
	for id := range h.st.jobs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if j := h.st.jobs[id]; !j.done && (cluster == "" || j.cluster == cluster) {
			snap = append(snap, Frame{j.cluster, j.frame})
		}
	}
	sub.ready = true
	return snap, sub, nil
}

// Unsubscribe removes sub; the poller stops with the last one.
func (h *Hub) Unsubscribe(sub *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[sub]; ok {
		delete(h.subs, sub)
		close(sub.ch)
	}
	if len(h.subs) == 0 && h.cancel != nil {
		h.cancel()
		h.cancel = nil
	}
}

// Subscribers is the number of subscribers now.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Running reports whether the poller runs.
func (h *Hub) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cancel != nil
}

func (h *Hub) run(ctx context.Context, primed chan struct{}) {
	t := time.NewTicker(h.interval / jobReads)
	defer t.Stop()
	first := true
	for n := 0; ; n++ {
		if n%jobReads == 0 {
			h.poll(ctx, first)
		} else {
			h.pollJobs(ctx)
		}
		if first {
			close(primed)
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// broadcastLocked hands the frames of one read to every ready
// subscriber, those of its cluster only when it asked for one; one whose
// buffer is full is dropped.
func (h *Hub) broadcastLocked(frames []Frame) {
	for sub := range h.subs {
		if !sub.ready {
			continue
		}
		batch := frames
		if sub.cluster != "" {
			batch = nil
			for _, f := range frames {
				if f.Cluster == sub.cluster {
					batch = append(batch, f)
				}
			}
		}
		if len(batch) == 0 {
			continue
		}
		select {
		case sub.ch <- batch:
		default:
			delete(h.subs, sub)
			close(sub.ch)
			h.log.Warn("stream: dropped a subscriber that fell behind; it will reconnect", "buffer", Buffer)
		}
	}
}

// poll reads the store once and broadcasts what changed. The first poll of
// a run only records where the events stand.
func (h *Hub) poll(ctx context.Context, first bool) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cls, err := h.src.ListClusters(rctx)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn("stream: list clusters", "err", err)
		}
		return
	}
	now := time.Now()
	jobs, err := h.src.JobsSince(rctx, now.Add(-finishedWindow))
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn("stream: list jobs", "err", err)
		}
		return
	}
	var out []Frame

	// Clusters.
	h.mu.Lock()
	prevClusters := h.st.clusters
	prevJobs := h.st.jobs
	lastEvents := h.st.events
	h.mu.Unlock()
	clusters := make(map[string]clusterState, len(cls))
	for _, cl := range cls {
		data, err := json.Marshal(cl)
		if err != nil {
			continue
		}
		shape, all := hashes(cl)
		p, seen := prevClusters[cl.Name]
		cs := clusterState{frame: frame("cluster", data), shape: shape, all: all, sent: p.sent}
		switch {
		case !seen || p.shape != shape:
			cs.sent = now
			out = append(out, Frame{cl.Name, cs.frame})
		case p.all != all && now.Sub(p.sent) >= figuresEvery:
			cs.sent = now
			out = append(out, Frame{cl.Name, cs.frame})
		case p.all != all:
			cs.all = p.all // still owed: sent once figuresEvery has passed
		}
		clusters[cl.Name] = cs
	}
	for name := range prevClusters {
		if _, ok := clusters[name]; !ok {
			data, _ := json.Marshal(map[string]string{"name": name})
			out = append(out, Frame{name, frame("cluster-deleted", data)})
		}
	}

	// Events: each cluster's newest id; when it moved, the events after
	// the one seen last.
	events := make(map[string]eventMark, len(cls))
	for _, cl := range cls {
		last, known := lastEvents[cl.Name]
		evs, err := h.src.RecentEvents(rctx, cl.Name, 1)
		if err != nil {
			if known {
				events[cl.Name] = last
			}
			continue
		}
		var newest eventMark
		if len(evs) > 0 {
			newest = eventMark{evs[0].At, evs[0].ID}
		}
		events[cl.Name] = newest
		if first || newest == last || newest.id == "" {
			continue
		}
		evs, err = h.src.RecentEvents(rctx, cl.Name, eventsPerPoll)
		if err != nil {
			events[cl.Name] = last
			continue
		}
		for i := len(evs) - 1; i >= 0; i-- {
			e := evs[i]
			// After the last one sent; for a new cluster, its own events
			// only (a deleted cluster of the same name keeps its history).
			if (known && !last.before(e)) || e.At.Before(cl.CreatedAt) {
				continue
			}
			data, err := json.Marshal(e)
			if err == nil {
				out = append(out, Frame{cl.Name, frame("event", data)})
			}
		}
	}

	// Jobs: those that are new or changed. The first read of a run sends
	// nothing (a subscriber's snapshot has the unfinished ones).
	jobStates := make(map[string]jobState, len(jobs))
	for _, j := range jobs {
		js, changed := jobFrame(j, prevJobs[j.ID])
		jobStates[j.ID] = js
		if changed && !first {
			out = append(out, Frame{j.Cluster, js.frame})
		}
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	h.st = state{clusters: clusters, jobs: jobStates, events: events}
	if len(out) > 0 {
		h.broadcastLocked(out)
	}
}

// pollJobs reads the unfinished jobs alone and sends those that changed;
// the next full read sends the final state of those that ended.
func (h *Hub) pollJobs(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	jobs, err := h.src.UnfinishedJobs(rctx)
	if err != nil {
		return // the next full read logs it
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	var out []Frame
	for _, j := range jobs {
		js, changed := jobFrame(j, h.st.jobs[j.ID])
		if changed {
			h.st.jobs[j.ID] = js
			out = append(out, Frame{j.Cluster, js.frame})
		}
	}
	if len(out) > 0 {
		h.broadcastLocked(out)
	}
}

func jobFrame(j api.Job, prev jobState) (jobState, bool) {
	data, err := json.Marshal(j)
	if err != nil {
		return prev, false
	}
	hv := hashOf(j.State, j.Progress, j.Message, j.Steps, j.Error)
	return jobState{cluster: j.Cluster, done: j.Done(), frame: frame("job", data), hash: hv}, prev.frame == nil || prev.hash != hv
}

// hashes returns the hash of a cluster without its figures and without
// observedAt (shape), and without observedAt only (all).
func hashes(cl api.Cluster) (shape, all uint64) {
	cl.Status.ObservedAt = nil
	all = hashOf(cl)
	st := cl.Status
	st.Shards = append([]api.ShardStatus(nil), st.Shards...)
	for i := range st.Shards {
		sh := &st.Shards[i]
		if sh.Master != nil {
			m := noFigures(*sh.Master)
			sh.Master = &m
		}
		rs := make([]api.InstanceStatus, len(sh.Replicas))
		for k, r := range sh.Replicas {
			rs[k] = noFigures(r)
		}
		sh.Replicas = rs
	}
	cl.Status = st
	return hashOf(cl), all
}

func noFigures(is api.InstanceStatus) api.InstanceStatus {
	is.LagBytes, is.Keys, is.UsedMemoryBytes, is.OpsPerSec, is.ConnectedClients = 0, 0, 0, 0, 0
	is.KeyspaceHits, is.KeyspaceMisses, is.UsedCPUSeconds, is.EvictedKeys = 0, 0, 0, 0
	return is
}

func hashOf(v ...any) uint64 {
	h := fnv.New64a()
	_ = json.NewEncoder(h).Encode(v)
	return h.Sum64()
}

// frame encodes one server-sent event. JSON never holds a raw newline, so
// the data is one line.
func frame(event string, data []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "event: %s\ndata: ", event)
	b.Write(data)
	b.WriteString("\n\n")
	return b.Bytes()
}

// Close ends every subscription (their clients reconnect, to another
// manager if this one stops) and the poller.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		delete(h.subs, sub)
		close(sub.ch)
	}
	if h.cancel != nil {
		h.cancel()
		h.cancel = nil
	}
}
