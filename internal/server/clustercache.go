package server

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/service"
	"github.com/redis-manager/redis-manager/internal/store"
)

// clusterReader is what the cluster cache reads.
type clusterReader interface {
	ClusterRevs(ctx context.Context) ([]store.ClusterRev, error)
	GetClusters(ctx context.Context, names []string) ([]store.Cluster, error)
}

// ClusterCache keeps, for each cluster at its stored revision
// (store.Cluster.Rev), what GET /api/v1/clusters and /metrics derive from
// it: the decoded cluster, its API view encoded as JSON, and its /metrics
// text. Every request first reads the revisions (one small read, no
// status); then only the clusters whose revision changed are read, in one
// read, decoded and encoded again. A request that finds nothing changed
// writes bytes the cache already has.
//
// How fresh: /metrics and, with maxStale 0, the list are never older than
// the store when the request came, on the leader as on a standby. With
// maxStale > 0 (the server passes one observe period), a list request
// that finds only statuses changed since the last answer was built
// (every spec revision and name the same: no cluster created, deleted,
// scaled or rotated) gets that answer if it was read from the store at
// most maxStale ago, and Run encodes the new statuses beside it: the
// observe loop writes every cluster's status each round, and without
// this every request during a round would wait for some of them to be
// decoded and encoded. A status is then at most one round older than the
// store's, as it is at most one round older than the instances anyway; a
// change made through the API shows in the next answer.
type ClusterCache struct {
	st       clusterReader
	maxStale time.Duration

	// build serializes reading and encoding, and guards entries:
	// requests that find the same clusters changed wait for one read and
	// one encoding, not one each.
	build   sync.Mutex
	entries map[string]*clusterEntry
	// list is the last assembled answer, replaced whole.
	list atomic.Pointer[listBody]
	// kick wakes Run when a request was answered from an older list.
	kick chan struct{}

	// listedAt and gzippedAt are when a client last asked for the list,
	// and for it gzipped (Unix nanoseconds), for Run.
	listedAt, gzippedAt atomic.Int64
}

// Keeping the list warm (Run): how often, and for how long after the
// last request.
const (
	warmEvery = 250 * time.Millisecond
	warmFor   = 10 * time.Second
)

// Run keeps the list's answer up to date while clients poll it (a
// request in the last warmFor): every warmEvery, and at once when a
// request was answered from an older list, it reads the revisions and
// encodes what changed, so requests find the answer ready rather than
// encoding the clusters the observe loop just wrote. Nobody polling, it
// reads nothing. It returns when ctx ends.
func (c *ClusterCache) Run(ctx context.Context) {
	t := time.NewTicker(warmEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
		now := time.Now().UnixNano()
		if now-c.listedAt.Load() > int64(warmFor) {
			continue
		}
		// An error shows to the next request, which reads again.
		_, _ = c.rebuild(ctx, now-c.gzippedAt.Load() <= int64(warmFor))
	}
}

// clusterEntry is one cluster at one revision. Its fields are filled
// under ClusterCache.build and not changed after, but metrics.
type clusterEntry struct {
	rev int64
	cl  store.Cluster // passwords cleared
	// json is the API view (service.View), indented as an element of the
	// list's "clusters" array; nil until a list asks. deflated is json
	// compressed on its own (deflateChunk); nil until a client accepts
	// gzip.
	json, deflated []byte
	// metrics is the cluster's /metrics text per family, rendered with
	// the per-command figures cmds (compared by identity: the leader
	// replaces the map every round); nil until a scrape asks.
	metrics *metricsText
	cmds    uintptr
}

// listBody is an assembled GET /api/v1/clusters answer: the revisions
// read at readAt it holds (its clusters are at least as new), plain and
// gzipped (nil until a client accepts gzip). Not changed after it is
// stored in ClusterCache.list.
type listBody struct {
	revs    []store.ClusterRev
	readAt  time.Time
	entries []*clusterEntry
	body    []byte
	gz      []byte
}

// NewClusterCache returns an empty cache over st; maxStale: see
// ClusterCache.
func NewClusterCache(st clusterReader, maxStale time.Duration) *ClusterCache {
	return &ClusterCache{st: st, maxStale: maxStale, entries: map[string]*clusterEntry{}, kick: make(chan struct{}, 1)}
}

// current reads the revisions and brings every changed cluster up to
// date. It returns the revisions read and the entries in name order. The
// caller must hold c.build.
func (c *ClusterCache) current(ctx context.Context) ([]store.ClusterRev, []*clusterEntry, error) {
	revs, err := c.st.ClusterRevs(ctx)
	if err != nil {
		return nil, nil, err
	}
	var changed []string
	for _, r := range revs {
		if e := c.entries[r.Name]; e == nil || e.rev != r.Rev || r.Rev == 0 {
			changed = append(changed, r.Name)
		}
	}
	if len(changed) > 0 {
		cls, err := c.st.GetClusters(ctx, changed)
		if err != nil {
			return nil, nil, err
		}
		for _, cl := range cls {
			cl.Password, cl.SentinelPassword, cl.Rotation = "", "", store.Rotation{}
			// The row may be newer than the revision read first
			// (written in between): it is kept under its own.
			c.entries[cl.Name] = &clusterEntry{rev: cl.Rev, cl: cl}
		}
	}
	out := make([]*clusterEntry, 0, len(revs))
	live := make(map[string]bool, len(revs))
	for _, r := range revs {
		live[r.Name] = true
		if e := c.entries[r.Name]; e != nil {
			out = append(out, e)
		} // else deleted between the two reads
	}
	for name := range c.entries {
		if !live[name] {
			delete(c.entries, name)
		}
	}
	return revs, out, nil
}

// sameSpecs tells whether a and b list the same clusters with the same
// spec revisions: between them only statuses were written.
func sameSpecs(a, b []store.ClusterRev) bool {
	return slices.EqualFunc(a, b, func(x, y store.ClusterRev) bool { return x.Name == y.Name && x.SpecRev == y.SpecRev && x.SpecRev != 0 })
}

// listJSON returns the GET /api/v1/clusters answer as writeJSON would
// encode {"clusters": [...]}, gzipped when gz is set.
func (c *ClusterCache) listJSON(ctx context.Context, gz bool) ([]byte, error) {
	revs, err := c.st.ClusterRevs(ctx)
	if err != nil {
		return nil, err
	}
	if cur := c.list.Load(); cur != nil && (!gz || cur.gz != nil) {
		fresh := slices.Equal(cur.revs, revs)
		if !fresh && c.maxStale > 0 && sameSpecs(cur.revs, revs) && time.Since(cur.readAt) <= c.maxStale {
			select {
			case c.kick <- struct{}{}:
			default:
			}
			fresh = true
		}
		if fresh {
			if gz {
				return cur.gz, nil
			}
			return cur.body, nil
		}
	}
	lb, err := c.rebuild(ctx, gz)
	if err != nil {
		return nil, err
	}
	if gz {
		return lb.gz, nil
	}
	return lb.body, nil
}

// rebuild reads the store and stores the answer as it is now (gzipped
// too when gz is set).
func (c *ClusterCache) rebuild(ctx context.Context, gz bool) (*listBody, error) {
	c.build.Lock()
	defer c.build.Unlock()
	readAt := time.Now()
	revs, entries, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	lb := &listBody{revs: revs, readAt: readAt, entries: entries}
	if cur := c.list.Load(); cur != nil && slices.Equal(cur.revs, revs) {
		// The same revisions: the same clusters (revisions never
		// repeat), already encoded.
		lb.entries, lb.body, lb.gz = cur.entries, cur.body, cur.gz
	} else {
		var b bytes.Buffer
		if len(entries) == 0 {
			b.WriteString("{\n  \"clusters\": []\n}\n")
		} else {
			b.WriteString("{\n  \"clusters\": [\n    ")
			for i, e := range entries {
				if e.json == nil {
					// The prefix and indent of an element of the array
					// writeJSON indents.
					if e.json, err = json.MarshalIndent(service.View(e.cl), "    ", "  "); err != nil {
						return nil, fmt.Errorf("encode cluster %q: %w", e.cl.Name, err)
					}
				}
				if i > 0 {
					b.WriteString(",\n    ")
				}
				b.Write(e.json)
			}
			b.WriteString("\n  ]\n}\n")
		}
		lb.body = b.Bytes()
	}
	if gz && lb.gz == nil {
		lb.gz = gzipList(lb)
	}
	c.list.Store(lb)
	return lb, nil
}

// The constant pieces of the list, compressed once.
var (
	listHead  = deflateChunk([]byte("{\n  \"clusters\": [\n    "), false)
	listSep   = deflateChunk([]byte(",\n    "), false)
	listTail  = deflateChunk([]byte("\n  ]\n}\n"), true)
	listEmpty = deflateChunk([]byte("{\n  \"clusters\": []\n}\n"), true)
)

// gzipList gzips lb.body from one compressed piece per cluster, each
// compressed once per revision: one gzip member whose deflate stream is
// the pieces one after the other (each ends on a byte boundary, after a
// sync flush, and refers to nothing before it, as pigz does), so a
// request after one status write compresses that cluster's ~70 kB, not
// the whole answer. The caller must hold c.build.
func gzipList(lb *listBody) []byte {
	body := lb.body
	out := make([]byte, 0, len(body)/8)
	// The header: magic, deflate, no flags, no time, no extra flags,
	// OS unknown (RFC 1952).
	out = append(out, 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255)
	if len(lb.entries) == 0 {
		out = append(out, listEmpty...)
	} else {
		out = append(out, listHead...)
		for i, e := range lb.entries {
			if e.deflated == nil {
				e.deflated = deflateChunk(e.json, false)
			}
			if i > 0 {
				out = append(out, listSep...)
			}
			out = append(out, e.deflated...)
		}
		out = append(out, listTail...)
	}
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(body))
	return binary.LittleEndian.AppendUint32(out, uint32(len(body)))
}

var flateWriters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

// deflateChunk compresses b on its own: ending with a sync flush (on a
// byte boundary, the stream goes on) or, when final, with the last block.
func deflateChunk(b []byte, final bool) []byte {
	var buf bytes.Buffer
	w := flateWriters.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write(b)
	if final {
		_ = w.Close()
	} else {
		_ = w.Flush()
	}
	w.Reset(nil)
	flateWriters.Put(w)
	return buf.Bytes()
}

// serveList answers GET /api/v1/clusters from the cache; fail answers an
// error the way every other route does.
func (c *ClusterCache) serveList(w http.ResponseWriter, r *http.Request, fail func(http.ResponseWriter, *http.Request, error)) {
	gz := r.Method != http.MethodHead && acceptsGzip(r.Header.Get("Accept-Encoding"))
	now := time.Now().UnixNano()
	c.listedAt.Store(now)
	if gz {
		c.gzippedAt.Store(now)
	}
	body, err := c.listJSON(r.Context(), gz)
	if err != nil {
		fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if gz {
		// Already compressed: compress (gzip.go) passes it through.
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// clusterMetrics is a cluster and its per-cluster /metrics text, as one
// scrape uses them; neither is changed after.
type clusterMetrics struct {
	cl   store.Cluster
	text *metricsText
}

// metricsEntries returns every cluster (in name order) with its /metrics
// text, rendered when its revision or its per-command figures changed;
// cmds gives the leader's per-command figures (nil: none).
func (c *ClusterCache) metricsEntries(ctx context.Context, cmds func(string) map[string]map[string]api.CommandStat) ([]clusterMetrics, error) {
	c.build.Lock()
	defer c.build.Unlock()
	_, entries, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]clusterMetrics, 0, len(entries))
	for _, e := range entries {
		var m map[string]map[string]api.CommandStat
		if cmds != nil {
			m = cmds(e.cl.Name)
		}
		id := reflect.ValueOf(m).Pointer()
		if e.metrics == nil || e.cmds != id {
			e.metrics, e.cmds = renderCluster(e.cl, m), id
		}
		out = append(out, clusterMetrics{cl: e.cl, text: e.metrics})
	}
	return out, nil
}
