package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// Call sends a raw API request with the token ("" for none) and decodes
// the error body, if any; an error answer that is not the JSON error form
// fails the test.
func (m *Manager) Call(t testing.TB, method, path, token, body string) (int, api.ErrorBody) {
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

// BadRequest is a request the API must refuse, and how.
type BadRequest struct {
	Name, Method, Path, Body string
	Status                   int
	Field                    string
}

// BadRequests are the refusals every platform answers alike: a bad name,
// spec or body, an unknown resource, every directive the manager manages.
// (What depends on the platform's capacity is each platform's own case.)
// managed are the directives the manager manages (spec.ManagedDirectives;
// passed in: spec's own tests use testenv).
func BadRequests(managed []string) []BadRequest {
	cases := []BadRequest{
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
	for _, d := range managed {
		cases = append(cases, BadRequest{"forbidden directive " + d, "POST", "/api/v1/clusters",
			fmt.Sprintf(`{"name":"a","config":{%q:"x"}}`, d), 400, "config." + d})
	}
	return cases
}

// CheckBadRequests sends each request and checks the status, the field
// named, and that a forbidden directive's message says why; then that a
// missing or wrong token is refused and health needs none.
func (m *Manager) CheckBadRequests(t testing.TB, cases []BadRequest) {
	t.Helper()
	for _, c := range cases {
		status, eb := m.Call(t, c.Method, c.Path, m.Token, c.Body)
		if status != c.Status || eb.Error.Field != c.Field {
			t.Errorf("%s: got %d field %q (%s), want %d field %q", c.Name, status, eb.Error.Field, eb.Error.Message, c.Status, c.Field)
		}
		if strings.HasPrefix(c.Name, "forbidden") && !strings.Contains(eb.Error.Message, "managed by redis-manager") {
			t.Errorf("%s: message %q does not say why", c.Name, eb.Error.Message)
		}
	}
	for _, tok := range []string{"", "wrong"} {
		if status, eb := m.Call(t, "GET", "/api/v1/clusters", tok, ""); status != 401 || eb.Error.Code != "unauthorized" {
			t.Errorf("token %q: %d %+v", tok, status, eb)
		}
	}
	if status, _ := m.Call(t, "GET", "/api/v1/health", "", ""); status != 200 {
		t.Errorf("health without token: %d", status)
	}
}

// CheckStatus asserts a Ready status matches the spec in every detail.
func CheckStatus(t testing.TB, cl api.Cluster, shards, replicas, sentinels int) {
	t.Helper()
	st := cl.Status
	if st.Phase != api.PhaseReady || st.Reason != "" {
		t.Fatalf("phase %q reason %q", st.Phase, st.Reason)
	}
	if len(st.Shards) != shards || len(st.Sentinels) != sentinels {
		t.Fatalf("%d shards and %d sentinels in status, want %d and %d", len(st.Shards), len(st.Sentinels), shards, sentinels)
	}
	var masterNames []string
	for i, sh := range st.Shards {
		name := fmt.Sprintf("%s-%d", cl.Name, i)
		masterNames = append(masterNames, name)
		if sh.Index != i || sh.SentinelName != name {
			t.Errorf("shard %d: index %d sentinelName %q", i, sh.Index, sh.SentinelName)
		}
		if sh.Master == nil || !sh.Master.Up || sh.Master.Role != "master" || sh.Master.Address == "" {
			t.Errorf("shard %d master: %+v", i, sh.Master)
		}
		if len(sh.Replicas) != replicas {
			t.Errorf("shard %d: %d replicas, want %d", i, len(sh.Replicas), replicas)
		}
		for _, r := range sh.Replicas {
			if !r.Up || r.Role != "replica" || r.MasterLinkStatus != "up" {
				t.Errorf("shard %d replica %+v", i, r)
			}
		}
	}
	for _, s := range st.Sentinels {
		if !s.Up || len(s.Monitors) != shards {
			t.Errorf("sentinel %+v", s)
		}
	}
	if fmt.Sprint(cl.Connection.MasterNames) != fmt.Sprint(masterNames) || len(cl.Connection.Sentinels) != sentinels {
		t.Errorf("connection %+v", cl.Connection)
	}
	if cl.Connection.PasswordRef != "GET /api/v1/clusters/"+cl.Name+"/credentials" {
		t.Errorf("passwordRef %q", cl.Connection.PasswordRef)
	}
	if st.ObservedAt == nil || time.Since(*st.ObservedAt) > time.Minute {
		t.Errorf("observedAt %v", st.ObservedAt)
	}
}

// ExpectCreateFailed waits for a create job that must fail: it ends failed,
// its error says reason, and no record of the cluster is left. It returns
// the job.
func (m *Manager) ExpectCreateFailed(t testing.TB, jobID, cluster, reason string) api.Job {
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
	return j
}

// WhenIdle calls f until the API stops refusing it for a job in progress
// on the cluster (409 conflict: a heal or another job holds the cluster),
// for up to 30 s; any other error, or a conflict after that, fails the
// test.
func WhenIdle(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "conflict") || time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
