package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// The CLI tests run the commands against a real manager (`redis-manager
// serve`, started by internal/testenv, with real redis-server and Sentinel
// processes). Between the CLI and the manager sits a recording proxy: it
// forwards every request unchanged and keeps the request and the answer,
// so a test can assert what the CLI sent (only the flags given, the token)
// and compare what it printed with exactly what the server answered.

func TestMain(m *testing.M) { testenv.Main(m) }

// server is a real manager behind a recording proxy; URL is the proxy's.
type server struct {
	*testenv.Manager
	URL   string
	Token string

	mu       sync.Mutex
	requests []recordedRequest
	proxy    *httptest.Server
}

type recordedRequest struct {
	Method, Path, Query, Auth string
	Body                      []byte
	Status                    int
	Response                  []byte
}

// startServer starts a manager for the test and the proxy in front of it.
func startServer(t *testing.T, o testenv.ManagerOptions) *server {
	t.Helper()
	if o.Ports == 0 {
		o.Ports = 20
	}
	m := testenv.StartManager(t, o)
	s := &server{Manager: m, Token: m.Token}
	s.proxy = httptest.NewServer(http.HandlerFunc(s.forward))
	t.Cleanup(s.proxy.Close)
	s.URL = s.proxy.URL
	return s
}

func (s *server) forward(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, err := http.NewRequestWithContext(r.Context(), r.Method, s.Manager.URL+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	// The CLI's client asks for gzip and the manager compresses large
	// answers: record them as the CLI reads them, forward them as sent.
	plain := out
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if zr, err := gzip.NewReader(bytes.NewReader(out)); err == nil {
			plain, _ = io.ReadAll(zr)
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, recordedRequest{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"),
		Body: body, Status: resp.StatusCode, Response: plain,
	})
	s.mu.Unlock()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

// lastRequest returns the last request with the method (and path, if
// given).
func (s *server) lastRequest(t *testing.T, method string, path ...string) recordedRequest {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.requests) - 1; i >= 0; i-- {
		if r := s.requests[i]; r.Method == method && (len(path) == 0 || r.Path == path[0]) {
			return r
		}
	}
	t.Fatalf("no %s %v request; got %d requests", method, path, len(s.requests))
	return recordedRequest{}
}

func (s *server) count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Method == method {
			n++
		}
	}
	return n
}

// create makes a cluster through the API and waits until it is Ready.
func (s *server) create(t *testing.T, req api.CreateClusterRequest) api.Cluster {
	t.Helper()
	ctx := context.Background()
	res, err := s.Client.CreateCluster(ctx, req)
	if err != nil {
		t.Fatalf("create %s: %v", req.Name, err)
	}
	s.WaitJob(ctx, res.Job.ID)
	return s.WaitPhase(ctx, req.Name, api.PhaseReady, 30*time.Second)
}

// jobOf returns the only job of a cluster.
func (s *server) jobOf(t *testing.T, cluster, kind string) api.Job {
	t.Helper()
	jobs, err := s.Client.ListJobs(context.Background(), cluster)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.Kind == kind {
			return j
		}
	}
	t.Fatalf("no %s job of %s in %+v", kind, cluster, jobs)
	return api.Job{}
}

// small is the smallest cluster the server accepts with a replica.
func small(name string) api.CreateClusterRequest {
	one := 1
	return api.CreateClusterRequest{Name: name, Replicas: &one, Sentinels: &one}
}

// testNow is the clock of CLI runs whose output shows times; tests that
// need ages relative to real server times pass their own clock.
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
	return runCLIAt(t, testNow, terminal, stdin, args...)
}

// runCLIAt is runCLI with the CLI's clock fixed at now.
func runCLIAt(t *testing.T, now time.Time, terminal bool, stdin string, args ...string) cliRun {
	t.Helper()
	a := &app{isTerminal: func(any) bool { return terminal }, now: func() time.Time { return now }}
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

// decode unmarshals a recorded answer.
func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, b)
	}
	return v
}

// table renders rows (cells joined by tabs) the way a table of the CLI
// is laid out: columns two spaces apart.
func table(rows ...string) string {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		_, _ = io.WriteString(w, r+"\n")
	}
	_ = w.Flush()
	return b.String()
}

func ptr[T any](v T) *T { return &v }
