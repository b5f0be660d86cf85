package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// fakeAPI stands in for the server in plumbing tests of a pure HTTP client:
// it answers the endpoints the CLI calls from canned data and records every
// request. Server behaviour itself is tested against the real server.
type fakeAPI struct {
	token string

	mu       sync.Mutex
	requests []recordedRequest
	clusters []api.Cluster
	events   []api.Event
	cred     api.Credentials
	// jobs maps a job id to the states GET /jobs/{id} returns in turn; the
	// last one repeats.
	jobs  map[string][]api.Job
	polls map[string]int
}

type recordedRequest struct {
	Method, Path, Query, Auth string
	Body                      []byte
}

func newFakeAPI(t *testing.T, token string) (*fakeAPI, *httptest.Server) {
	t.Helper()
	f := &fakeAPI{token: token, jobs: map[string][]api.Job{}, polls: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/health", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, api.Health{Status: "ok", Leader: true, Version: "test"})
	})
	mux.HandleFunc("POST /api/v1/clusters", f.auth(f.createCluster))
	mux.HandleFunc("GET /api/v1/clusters", f.auth(func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]any{"clusters": f.clusters})
	}))
	mux.HandleFunc("GET /api/v1/clusters/{name}", f.auth(func(w http.ResponseWriter, r *http.Request) {
		if cl, ok := f.cluster(r.PathValue("name")); ok {
			reply(w, http.StatusOK, cl)
			return
		}
		notFound(w, "cluster", r.PathValue("name"))
	}))
	mux.HandleFunc("DELETE /api/v1/clusters/{name}", f.auth(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := f.cluster(r.PathValue("name")); !ok {
			notFound(w, "cluster", r.PathValue("name"))
			return
		}
		reply(w, http.StatusAccepted, map[string]any{"job": f.jobs["j_delete"][0]})
	}))
	mux.HandleFunc("GET /api/v1/clusters/{name}/events", f.auth(func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]any{"events": f.events})
	}))
	mux.HandleFunc("GET /api/v1/clusters/{name}/credentials", f.auth(func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, f.cred)
	}))
	mux.HandleFunc("GET /api/v1/jobs", f.auth(func(w http.ResponseWriter, r *http.Request) {
		var out []api.Job
		for _, states := range f.jobs {
			if j := states[len(states)-1]; r.URL.Query().Get("cluster") == "" || j.Cluster == r.URL.Query().Get("cluster") {
				out = append(out, j)
			}
		}
		reply(w, http.StatusOK, map[string]any{"jobs": out})
	}))
	mux.HandleFunc("GET /api/v1/jobs/{id}", f.auth(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		id := r.PathValue("id")
		states, ok := f.jobs[id]
		n := f.polls[id]
		f.polls[id]++
		f.mu.Unlock()
		if !ok {
			notFound(w, "job", id)
			return
		}
		reply(w, http.StatusOK, states[min(n, len(states)-1)])
	}))

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.requests = append(f.requests, recordedRequest{
			Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), Body: body,
		})
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

// auth answers 401 like the server does when the bearer token is wrong.
func (f *fakeAPI) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			reply(w, http.StatusUnauthorized, api.ErrorBody{Error: api.ErrorDetail{Code: "unauthorized", Message: "missing or invalid API token"}})
			return
		}
		h(w, r)
	}
}

func (f *fakeAPI) createCluster(w http.ResponseWriter, r *http.Request) {
	var req api.CreateClusterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(w, http.StatusBadRequest, api.ErrorBody{Error: api.ErrorDetail{Code: "invalid", Message: err.Error()}})
		return
	}
	if req.Shards != nil && *req.Shards < 1 {
		reply(w, http.StatusBadRequest, api.ErrorBody{Error: api.ErrorDetail{Code: "invalid", Message: "shards must be at least 1", Field: "shards"}})
		return
	}
	cl := api.Cluster{Name: req.Name, Status: api.ClusterStatus{Phase: api.PhaseCreating}}
	reply(w, http.StatusAccepted, api.ClusterJob{Cluster: &cl, Job: f.jobs["j_create"][0]})
}

func (f *fakeAPI) cluster(name string) (api.Cluster, bool) {
	for _, cl := range f.clusters {
		if cl.Name == name {
			return cl, true
		}
	}
	return api.Cluster{}, false
}

// lastRequest returns the last request with the method.
func (f *fakeAPI) lastRequest(t *testing.T, method string) recordedRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.requests) - 1; i >= 0; i-- {
		if f.requests[i].Method == method {
			return f.requests[i]
		}
	}
	t.Fatalf("no %s request; got %+v", method, f.requests)
	return recordedRequest{}
}

func (f *fakeAPI) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r.Method == method {
			n++
		}
	}
	return n
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter, kind, name string) {
	reply(w, http.StatusNotFound, api.ErrorBody{Error: api.ErrorDetail{Code: "not_found", Message: kind + ` "` + name + `" not found`}})
}

// testNow is the clock of every CLI test, so ages in tables are fixed.
var testNow = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

// cliRun is one CLI invocation and what it printed.
type cliRun struct {
	stdout, stderr string
	err            error
}

// runCLI runs the command tree with args; terminal says whether stdin and
// stderr count as terminals.
func runCLI(t *testing.T, terminal bool, stdin string, args ...string) cliRun {
	t.Helper()
	a := &app{isTerminal: func(any) bool { return terminal }, now: func() time.Time { return testNow }}
	root := newRootCommand("test", a)
	var stdout, stderr bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(t.Context())
	return cliRun{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// jsonEqual reports whether two JSON documents hold the same values.
func jsonEqual(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON: %v\n%s", err, want)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return bytes.Equal(gb, wb)
}

// rawGet returns the body the fake serves at url, to compare -o json with.
func (f *fakeAPI) rawGet(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
