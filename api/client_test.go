package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// The httptest servers below stand in for the API server only to check the
// client's HTTP plumbing; the real server's behaviour is tested with it.

func TestErrorDecoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        api.Error
		wantText    string
	}{
		{
			"error body", 404, "application/json", `{"error":{"code":"not_found","message":"cluster \"x\" not found"}}`,
			api.Error{StatusCode: 404, Code: "not_found", Message: `cluster "x" not found`},
			`not_found: cluster "x" not found`,
		},
		{
			"invalid field", 400, "application/json", `{"error":{"code":"invalid","message":"must be odd","field":"sentinels"}}`,
			api.Error{StatusCode: 400, Code: "invalid", Message: "must be odd", Field: "sentinels"},
			`invalid: must be odd (field "sentinels")`,
		},
		{
			"plain text", 502, "text/plain", "\n  upstream connect error\nmore detail\n",
			api.Error{StatusCode: 502, Message: "upstream connect error"},
			"HTTP 502 Bad Gateway: upstream connect error",
		},
		{
			"html page", 503, "text/html; charset=utf-8", "<html><body><h1>503</h1></body></html>",
			api.Error{StatusCode: 503},
			"HTTP 503 Service Unavailable",
		},
		{
			"json that is not an error body", 500, "application/json", `{"oops":true}`,
			api.Error{StatusCode: 500, Message: `{"oops":true}`},
			`HTTP 500 Internal Server Error: {"oops":true}`,
		},
		{"empty", 418, "", "", api.Error{StatusCode: 418}, "HTTP 418 I'm a teapot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			_, err := api.NewClient(srv.URL, "t").GetCluster(t.Context(), "x")
			var got *api.Error
			if !errors.As(err, &got) {
				t.Fatalf("err = %#v, want *api.Error", err)
			}
			if *got != tt.want {
				t.Errorf("error = %+v, want %+v", *got, tt.want)
			}
			if got.Error() != tt.wantText {
				t.Errorf("Error() = %q, want %q", got.Error(), tt.wantText)
			}
		})
	}
}

func TestRequestsCarryTokenAndEscapePaths(t *testing.T) {
	t.Parallel()
	var gotAuth, gotPath, gotQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath, gotQuery = r.Header.Get("Authorization"), r.URL.EscapedPath(), r.URL.RawQuery
		_, _ = w.Write([]byte(`{"jobs":[{"id":"j_1"}],"events":[]}`))
	}))
	defer srv.Close()
	c := api.NewClient(srv.URL+"/", "s3cret")

	jobs, err := c.ListJobs(t.Context(), "a&b")
	if err != nil || len(jobs) != 1 || jobs[0].ID != "j_1" {
		t.Fatalf("ListJobs = %v, %v", jobs, err)
	}
	if gotAuth != "Bearer s3cret" || gotPath != "/api/v1/jobs" || gotQuery != "cluster=a%26b" {
		t.Errorf("auth %q path %q query %q", gotAuth, gotPath, gotQuery)
	}
	if _, err := c.ClusterEvents(t.Context(), "a/b"); err != nil {
		t.Fatal(err)
	}
	if gotPath != "/api/v1/clusters/a%2Fb/events" {
		t.Errorf("path = %q, want the name escaped", gotPath)
	}
}

func TestWaitJob(t *testing.T) {
	t.Parallel()
	for _, final := range []string{api.StateSucceeded, api.StateFailed} {
		t.Run(final, func(t *testing.T) {
			t.Parallel()
			var polls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/jobs/j_1" {
					http.NotFound(w, r)
					return
				}
				j := api.Job{ID: "j_1", Kind: api.JobCreate, Cluster: "orders", State: api.StateRunning, Progress: 0.5}
				if polls.Add(1) >= 3 {
					j.State, j.Progress = final, 1
					if final == api.StateFailed {
						j.Error = "boom"
					}
				}
				_ = json.NewEncoder(w).Encode(j)
			}))
			defer srv.Close()
			c := api.NewClient(srv.URL, "t")
			c.PollInterval = 10 * time.Millisecond

			var seen []string
			job, err := c.WaitJob(t.Context(), "j_1", func(j api.Job) { seen = append(seen, j.State) })
			if job.State != final || len(seen) != 3 || seen[2] != final {
				t.Errorf("job %+v, progress calls %v", job, seen)
			}
			var failed *api.JobFailedError
			switch final {
			case api.StateSucceeded:
				if err != nil {
					t.Errorf("err = %v", err)
				}
			case api.StateFailed:
				if !errors.As(err, &failed) || err.Error() != "job j_1 (create orders) failed: boom" {
					t.Errorf("err = %v, want a JobFailedError", err)
				}
			}
		})
	}
}

func TestWaitJobStopsOnCancel(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(api.Job{ID: "j_1", State: api.StateRunning})
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	job, err := api.NewClient(srv.URL, "t").WaitJob(ctx, "j_1", nil)
	if !errors.Is(err, context.DeadlineExceeded) || job.ID != "j_1" {
		t.Errorf("job %+v, err %v; want the last job and the context's error", job, err)
	}
}

func TestHealthSendsNoTokenWhenEmpty(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Authorization"]; ok {
			t.Error("Authorization header sent with an empty token")
		}
		_, _ = w.Write([]byte(`{"status":"ok","leader":true,"version":"v1"}`))
	}))
	defer srv.Close()
	h, err := api.NewClient(srv.URL, "").Health(t.Context())
	if err != nil || h != (api.Health{Status: "ok", Leader: true, Version: "v1"}) {
		t.Errorf("Health = %+v, %v", h, err)
	}
}

// WaitJob rides out what passes (no connection, a cut body, 502/503/504)
// and returns at once on a real answer (404), or when the failures last
// longer than WaitGrace.
func TestWaitJobRidesOutTransientFailures(t *testing.T) {
	t.Parallel()
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch polls.Add(1) {
		case 1:
			_ = json.NewEncoder(w).Encode(api.Job{ID: "j_1", State: api.StateRunning})
		case 2:
			http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
		case 3:
			w.WriteHeader(http.StatusBadGateway)
		case 4: // the connection closes without an answer
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		case 5: // the body is cut
			w.Header().Set("Content-Length", "100")
			_, _ = w.Write([]byte(`{"id":"j_1",`))
		default:
			_ = json.NewEncoder(w).Encode(api.Job{ID: "j_1", State: api.StateSucceeded, Progress: 1})
		}
	}))
	defer srv.Close()
	c := api.NewClient(srv.URL, "t")
	c.PollInterval = 5 * time.Millisecond
	job, err := c.WaitJob(t.Context(), "j_1", nil)
	if err != nil || job.State != api.StateSucceeded || polls.Load() != 6 {
		t.Errorf("job %+v, err %v after %d polls; want succeeded after 6", job, err, polls.Load())
	}

	// Not found is an answer: no second request.
	polls.Store(0)
	nf := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		polls.Add(1)
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: api.ErrorDetail{Code: "not_found", Message: "job j_1 not found"}})
	}))
	defer nf.Close()
	c = api.NewClient(nf.URL, "t")
	c.PollInterval = 5 * time.Millisecond
	var ae *api.Error
	if _, err := c.WaitJob(t.Context(), "j_1", nil); !errors.As(err, &ae) || ae.Code != "not_found" || polls.Load() != 1 {
		t.Errorf("err %v after %d requests; want not_found after 1", err, polls.Load())
	}

	// A manager that stays gone: the grace ends the wait with the error.
	gone := httptest.NewServer(http.NotFoundHandler())
	url := gone.URL
	gone.Close()
	c = api.NewClient(url, "t")
	c.PollInterval, c.WaitGrace = 5*time.Millisecond, 100*time.Millisecond
	start := time.Now()
	_, err = c.WaitJob(t.Context(), "j_1", nil)
	if took := time.Since(start); err == nil || !api.Transient(err) || took < 100*time.Millisecond || took > 5*time.Second {
		t.Errorf("err %v after %v; want the connection error after the 100 ms grace", err, took)
	}
	// A negative grace: the first failure ends it.
	c.WaitGrace = -1
	start = time.Now()
	if _, err = c.WaitJob(t.Context(), "j_1", nil); err == nil || time.Since(start) > 50*time.Millisecond {
		t.Errorf("WaitGrace -1: err %v after %v; want the first failure at once", err, time.Since(start))
	}
}
