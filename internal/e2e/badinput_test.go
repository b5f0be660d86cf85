package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// call sends a raw request and decodes the error body, if any.
func call(t *testing.T, m *testenv.Manager, method, path, token, body string) (int, api.ErrorBody) {
	t.Helper()
	req, err := http.NewRequest(method, m.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var eb api.ErrorBody
	if res.StatusCode >= 400 {
		if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
			t.Errorf("%s %s: error body is not the JSON error form: %s", method, path, raw)
		}
	}
	return res.StatusCode, eb
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{Ports: 12})
	ctx := context.Background()

	type tc struct {
		name, method, path, body string
		status                   int
		field                    string
	}
	cases := []tc{
		{"no name", "POST", "/api/v1/clusters", `{}`, 400, "name"},
		{"upper-case name", "POST", "/api/v1/clusters", `{"name":"Orders"}`, 400, "name"},
		{"name starting with digit", "POST", "/api/v1/clusters", `{"name":"1orders"}`, 400, "name"},
		{"name with underscore", "POST", "/api/v1/clusters", `{"name":"a_b"}`, 400, "name"},
		{"name too long", "POST", "/api/v1/clusters", `{"name":"` + strings.Repeat("a", 41) + `"}`, 400, "name"},
		{"zero shards", "POST", "/api/v1/clusters", `{"name":"a","shards":0}`, 422, "shards"},
		{"negative replicas", "POST", "/api/v1/clusters", `{"name":"a","replicas":-1}`, 422, "replicas"},
		{"absurd replicas", "POST", "/api/v1/clusters", `{"name":"a","replicas":1000000}`, 422, "replicas"},
		{"two sentinels", "POST", "/api/v1/clusters", `{"name":"a","sentinels":2}`, 422, "sentinels"},
		{"zero sentinels", "POST", "/api/v1/clusters", `{"name":"a","sentinels":0}`, 422, "sentinels"},
		{"more than the port range holds", "POST", "/api/v1/clusters", `{"name":"a","shards":4,"replicas":2}`, 422, "shards"},
		{"down-after too small", "POST", "/api/v1/clusters", `{"name":"a","sentinel":{"downAfterMs":1}}`, 422, "sentinel.downAfterMs"},
		{"bad maxmemory", "POST", "/api/v1/clusters", `{"name":"a","maxmemory":"lots"}`, 400, "maxmemory"},
		{"bad policy", "POST", "/api/v1/clusters", `{"name":"a","maxmemoryPolicy":"random"}`, 400, "maxmemoryPolicy"},
		{"bad persistence", "POST", "/api/v1/clusters", `{"name":"a","persistence":"sometimes"}`, 400, "persistence"},
		{"unknown directive", "POST", "/api/v1/clusters", `{"name":"a","config":{"no-such-thing":"1"}}`, 400, "config.no-such-thing"},
		{"bad directive value", "POST", "/api/v1/clusters", `{"name":"a","config":{"hz":"0"}}`, 400, "config.hz"},
		{"malformed JSON", "POST", "/api/v1/clusters", `{"name":`, 400, ""},
		{"empty body", "POST", "/api/v1/clusters", ``, 400, ""},
		{"two JSON values", "POST", "/api/v1/clusters", `{"name":"a"}{"name":"b"}`, 400, ""},
		{"unknown field", "POST", "/api/v1/clusters", `{"name":"a","masters":2}`, 400, "masters"},
		{"wrong type", "POST", "/api/v1/clusters", `{"name":"a","shards":"two"}`, 400, "shards"},
		{"oversized body", "POST", "/api/v1/clusters", `{"name":"a","config":{"hz":"` + strings.Repeat("1", 2<<20) + `"}}`, 413, ""},
		{"unknown cluster", "GET", "/api/v1/clusters/nope", ``, 404, ""},
		{"delete unknown cluster", "DELETE", "/api/v1/clusters/nope", ``, 404, ""},
		{"unknown job", "GET", "/api/v1/jobs/j_nope", ``, 404, ""},
		{"unknown endpoint", "GET", "/api/v1/nothing", ``, 404, ""},
	}
	for _, d := range spec.ManagedDirectives() {
		cases = append(cases, tc{"forbidden directive " + d, "POST", "/api/v1/clusters",
			fmt.Sprintf(`{"name":"a","config":{%q:"x"}}`, d), 400, "config." + d})
	}
	for _, c := range cases {
		status, eb := call(t, m, c.method, c.path, m.Token, c.body)
		if status != c.status || eb.Error.Field != c.field {
			t.Errorf("%s: got %d field %q (%s), want %d field %q", c.name, status, eb.Error.Field, eb.Error.Message, c.status, c.field)
		}
		if strings.HasPrefix(c.name, "forbidden") && !strings.Contains(eb.Error.Message, "managed by redis-manager") {
			t.Errorf("%s: message %q does not say why", c.name, eb.Error.Message)
		}
	}

	// Auth.
	for _, tok := range []string{"", "wrong"} {
		if status, eb := call(t, m, "GET", "/api/v1/clusters", tok, ""); status != 401 || eb.Error.Code != "unauthorized" {
			t.Errorf("token %q: %d %+v", tok, status, eb)
		}
	}
	if status, _ := call(t, m, "GET", "/api/v1/health", "", ""); status != 200 {
		t.Errorf("health without token: %d", status)
	}

	// Nothing was half-created by any of it.
	if cls, err := m.Client.ListClusters(ctx); err != nil || len(cls) != 0 {
		t.Fatalf("clusters after bad input: %v %v", cls, err)
	}
	if pids := testenv.InstancePids(m.DataDir); len(pids) != 0 {
		t.Fatalf("processes after bad input: %v", pids)
	}

	// A taken name is a conflict, and a second job on a busy cluster too.
	createReady(t, m, api.CreateClusterRequest{Name: "dup", Replicas: intp(1)})
	if status, eb := call(t, m, "POST", "/api/v1/clusters", m.Token, `{"name":"dup","replicas":1}`); status != 409 || !strings.Contains(eb.Error.Message, "already exists") {
		t.Errorf("duplicate: %d %+v", status, eb)
	}
	job, err := m.Client.DeleteCluster(ctx, "dup")
	if err != nil {
		t.Fatal(err)
	}
	if status, eb := call(t, m, "DELETE", "/api/v1/clusters/dup", m.Token, ""); status != 409 && status != 404 {
		t.Errorf("second delete while one runs: %d %+v", status, eb)
	}
	m.WaitJob(ctx, job.ID)
}

// TestCreateFailsCleanly: a create that cannot finish ends failed with a
// readable reason and leaves no process, data or record behind.
func TestCreateFailsCleanly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("redis-server missing", func(t *testing.T) {
		t.Parallel()
		m := testenv.StartManager(t, testenv.ManagerOptions{Args: []string{"--redis-server", "/nonexistent/redis-server"}})
		res, err := m.Client.CreateCluster(ctx, api.CreateClusterRequest{Name: "nobin"})
		if err != nil {
			t.Fatal(err)
		}
		expectFailedCleanly(t, m, res.Job.ID, "nobin", "/nonexistent/redis-server")
	})

	t.Run("no free port", func(t *testing.T) {
		t.Parallel()
		m := testenv.StartManager(t, testenv.ManagerOptions{Ports: 8})
		// Another program takes most of the range after the manager started.
		lo, hi := portRangeOf(t, m)
		for p := lo + 4; p <= hi; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
		}
		res, err := m.Client.CreateCluster(ctx, api.CreateClusterRequest{Name: "noport", Replicas: intp(1)})
		if err != nil {
			t.Fatal(err)
		}
		expectFailedCleanly(t, m, res.Job.ID, "noport", "no free port")
	})
}

func portRangeOf(t *testing.T, m *testenv.Manager) (lo, hi int) {
	for i, a := range m.Args {
		if a == "--port-range" {
			if _, err := fmt.Sscanf(m.Args[i+1], "%d-%d", &lo, &hi); err == nil {
				return lo, hi
			}
		}
	}
	t.Fatal("no --port-range")
	return
}

func expectFailedCleanly(t *testing.T, m *testenv.Manager, jobID, cluster, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j, err := m.Client.WaitJob(ctx, jobID, nil)
	if err == nil || j.State != api.StateFailed {
		t.Fatalf("job should fail: %+v %v", j, err)
	}
	if !strings.Contains(j.Error, reason) {
		t.Fatalf("job error %q does not say %q", j.Error, reason)
	}
	if testing.Verbose() {
		t.Logf("job error: %s", j.Error)
	}
	if _, err := m.Client.GetCluster(ctx, cluster); !api.IsNotFound(err) {
		t.Fatalf("cluster record left after a failed create: %v", err)
	}
	if pids := testenv.InstancePids(m.DataDir); len(pids) != 0 {
		t.Fatalf("processes left after a failed create: %v", pids)
	}
	if entries, _ := os.ReadDir(filepath.Join(m.DataDir, "instances")); len(entries) != 0 {
		t.Fatalf("instance data left after a failed create: %v", entries)
	}
}
