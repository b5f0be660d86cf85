package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/controller"
	"github.com/redis-manager/redis-manager/internal/leader"
	"github.com/redis-manager/redis-manager/internal/platform/fake"
	"github.com/redis-manager/redis-manager/internal/service"
	"github.com/redis-manager/redis-manager/internal/store"
)

// listServer is one manager's API over st; cached: with a ClusterCache.
func listServer(t *testing.T, st store.Store, dir string, cached bool) *httptest.Server {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	plat := fake.New(fake.Options{})
	el := leader.New(leader.Config{ID: "list"}, st, log)
	ctl := controller.New(controller.Config{BackupTarget: "file://" + filepath.Join(dir, "backups"), ScratchDir: filepath.Join(dir, "tmp"), Leader: el}, st, plat, log)
	svc := service.New(service.Config{BackupTarget: "file://" + filepath.Join(dir, "backups")}, st, plat, ctl, ctl, log)
	cfg := HandlerConfig{Service: svc, Leadership: el, Token: testAdminToken, Version: "test", Log: log}
	if cached {
		cfg.Clusters = NewClusterCache(st, 0)
	}
	ts := httptest.NewServer(Handler(cfg))
	t.Cleanup(ts.Close)
	return ts
}

// getList answers GET /api/v1/clusters, gunzipped when gz (and then
// checked to be gzipped).
func getList(t *testing.T, ts *httptest.Server, gz bool) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/v1/clusters", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/clusters: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var body io.Reader = resp.Body
	if gz {
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("asked for gzip, got Content-Encoding %q", resp.Header.Get("Content-Encoding"))
		}
		// One member, nothing after it: what every gzip reader takes.
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("the gzipped answer: %v", err)
		}
		if rest, _ := io.ReadAll(resp.Body); len(rest) > 0 {
			t.Fatalf("%d bytes after the gzip member", len(rest))
		}
		return string(b)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestListClustersCache: two managers share one store (two handles on one
// SQLite file), each with its cache, beside a manager without one. Every
// answer of the cached managers is byte for byte the uncached one's,
// plain and gzipped, and shows at once what was written through the other
// manager: a cluster created through its API, a spec stored (the end of
// a scale job), a status stored (an observe round), a cluster deleted.
func TestListClustersCache(t *testing.T) {
	dir := t.TempDir()
	stA, stB := openStore(t, dir), openStore(t, dir)
	seedVaried(t, stA)
	plain := listServer(t, stA, t.TempDir(), false)
	a, b := listServer(t, stA, t.TempDir(), true), listServer(t, stB, t.TempDir(), true)
	check := func(step string, want ...string) {
		t.Helper()
		ref := getList(t, plain, false)
		for _, s := range []struct {
			name string
			ts   *httptest.Server
			gz   bool
		}{{"a", a, false}, {"a gzip", a, true}, {"b", b, false}, {"b gzip", b, true}} {
			if got := getList(t, s.ts, s.gz); got != ref {
				t.Fatalf("%s: manager %s answered\n%.400s\nthe uncached answer is\n%.400s", step, s.name, got, ref)
			}
		}
		for _, w := range want {
			if !strings.Contains(ref, w) {
				t.Fatalf("%s: the answer lacks %s:\n%.2000s", step, w, ref)
			}
		}
	}
	check("seeded", `"name": "alpha"`, `"name": "beta"`)
	check("again") // from the cache

	// A cluster created through manager b's API shows on a at once.
	req, _ := http.NewRequest(http.MethodPost, b.URL+"/api/v1/clusters", strings.NewReader(`{"name": "gamma", "shards": 1, "replicas": 1, "sentinels": 3}`))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("create gamma: %s", resp.Status)
	}
	check("created", `"name": "gamma"`)

	ctx := context.Background()
	spec := api.ClusterSpec{Shards: 3, Replicas: 2, Sentinels: 3, Maxmemory: "77mb"}
	if err := stA.UpdateClusterSpec(ctx, "beta", spec); err != nil {
		t.Fatal(err)
	}
	check("spec stored", `"maxmemory": "77mb"`, `"beta-2"`)

	cl, err := stB.GetCluster(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	cl.Status.Phase = api.PhaseReady
	cl.Status.Shards[0].Master.UsedMemoryBytes = 424242
	if err := stB.UpdateClusterStatus(ctx, "alpha", cl.Status); err != nil {
		t.Fatal(err)
	}
	check("status stored", `"usedMemoryBytes": 424242`)

	if err := stA.DeleteCluster(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	check("deleted")
	if strings.Contains(getList(t, b, false), `"name": "alpha"`) {
		t.Fatal("a deleted cluster is still listed")
	}
	for _, name := range []string{"beta", "gamma"} {
		if err := stB.DeleteCluster(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	check("none left", `"clusters": []`)
}

// TestListClustersCacheScale: for the 1,020 instances of seedScale the
// cached answer is the uncached one, and a second request finds nothing
// changed (no cluster read or encoded again).
func TestListClustersCacheScale(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	seedScale(t, st, 20)
	cs := &countingStore{Store: st}
	c := NewClusterCache(cs, 0)
	first, err := c.listJSON(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	ref := getList(t, listServer(t, st, t.TempDir(), false), false)
	if string(first) != ref {
		t.Fatalf("the cached answer (%d bytes) differs from the uncached one (%d bytes)", len(first), len(ref))
	}
	before := cs.calls.Load()
	second, err := c.listJSON(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if calls := cs.calls.Load() - before; calls != 1 {
		t.Errorf("a request with nothing changed read the store %d times, want 1 (the revisions)", calls)
	}
	if !bytes.Equal(first, second) || &first[0] != &second[0] {
		t.Error("a request with nothing changed did not answer the bytes it had")
	}
	zipped, err := c.listJSON(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	if plain, err := io.ReadAll(zr); err != nil || string(plain) != ref {
		t.Errorf("the gzipped answer (%d bytes) unzips to %d bytes, %v; want the answer", len(zipped), len(plain), err)
	}
	if out := os.Getenv("LIST_GZIP_OUT"); out != "" {
		// For a check with other gzip readers (gzip -t, zcat).
		_ = os.WriteFile(out, zipped, 0o644)
	}
	t.Logf("%d bytes, %d gzipped", len(first), len(zipped))
}

// TestListClustersWarm: while clients poll the list, Run encodes what
// the store changed before the next request asks; with nobody polling it
// reads nothing.
func TestListClustersWarm(t *testing.T) {
	st := openStore(t, t.TempDir())
	seedVaried(t, st)
	cs := &countingStore{Store: st}
	c := NewClusterCache(cs, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	time.Sleep(3 * warmEvery)
	if n := cs.calls.Load(); n != 0 {
		t.Fatalf("with nobody polling, Run read the store %d times", n)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/clusters", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	c.serveList(httptest.NewRecorder(), req, func(_ http.ResponseWriter, _ *http.Request, err error) { t.Fatal(err) })
	cl, err := st.GetCluster(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	cl.Status.Shards[0].Master.Keys = 31337
	if err := st.UpdateClusterStatus(ctx, "alpha", cl.Status); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * warmEvery)
	for {
		lb := c.list.Load()
		ready := lb != nil && bytes.Contains(lb.body, []byte(`"keys": 31337`)) && lb.gz != nil
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not encode the changed cluster (plain and gzipped) while a client polls")
		}
		time.Sleep(warmEvery / 5)
	}
}

// TestListClustersStaleBound: with maxStale (the server passes one
// observe period), a status written since the last answer may be missing
// from the next answers for at most maxStale, never longer; a cluster
// created or deleted, or a spec stored, shows in the very next answer.
func TestListClustersStaleBound(t *testing.T) {
	const maxStale = 600 * time.Millisecond
	st := openStore(t, t.TempDir())
	seedVaried(t, st)
	c := NewClusterCache(st, maxStale)
	ctx := context.Background()
	list := func() string {
		t.Helper()
		b, err := c.listJSON(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	list()
	cl, err := st.GetCluster(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	cl.Status.Shards[0].Master.Keys = 4711
	written := time.Now()
	if err := st.UpdateClusterStatus(ctx, "alpha", cl.Status); err != nil {
		t.Fatal(err)
	}
	for {
		got := list()
		if strings.Contains(got, `"keys": 4711`) {
			break
		}
		if time.Since(written) > maxStale {
			t.Fatalf("a status written %s ago is still not listed (at most %s)", time.Since(written).Round(time.Millisecond), maxStale)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(maxStale + 50*time.Millisecond)
	cl.Status.Shards[0].Master.Keys = 4712
	if err := st.UpdateClusterStatus(ctx, "alpha", cl.Status); err != nil {
		t.Fatal(err)
	}
	if got := list(); !strings.Contains(got, `"keys": 4712`) {
		t.Fatalf("the answer built over %s ago was served after a status write", maxStale)
	}

	// With a bound of a minute (so the test does not depend on timing):
	// a status write is not read again, a spec, a creation, a deletion
	// are, at once.
	c = NewClusterCache(st, time.Minute)
	list()
	cl.Status.Shards[0].Master.Keys = 4713
	if err := st.UpdateClusterStatus(ctx, "alpha", cl.Status); err != nil {
		t.Fatal(err)
	}
	if got := list(); !strings.Contains(got, `"keys": 4712`) {
		t.Error("within the bound, a status write made the answer be built again")
	}
	if err := st.UpdateClusterSpec(ctx, "beta", api.ClusterSpec{Shards: 2, Replicas: 1, Sentinels: 3, Maxmemory: "33mb"}); err != nil {
		t.Fatal(err)
	}
	if got := list(); !strings.Contains(got, `"maxmemory": "33mb"`) || !strings.Contains(got, `"keys": 4713`) {
		t.Fatal("a spec stored is not in the next answer (with the statuses as they are)")
	}
	if err := st.DeleteCluster(ctx, "beta"); err != nil {
		t.Fatal(err)
	}
	if got := list(); strings.Contains(got, `"name": "beta"`) {
		t.Fatal("a deleted cluster is in the next answer")
	}
	seedScale(t, st, 1)
	if got := list(); !strings.Contains(got, `"name": "s00"`) {
		t.Fatal("a created cluster is not in the next answer")
	}
}
