package cli

import (
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

func TestJobGetOutput(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t, "secret")
	created := testNow.Add(-2 * time.Minute)
	s1, f1, s2 := created.Add(time.Second), created.Add(31*time.Second), created.Add(31*time.Second)
	f.jobs["j_1"] = []api.Job{{
		ID: "j_1", Kind: api.JobScale, Cluster: "orders", State: api.StateRunning, Progress: 0.5,
		Message: "waiting for orders-1-1 to sync", CreatedAt: created, StartedAt: &s1,
		Steps: []api.Step{
			{Name: "start-instances", State: api.StateSucceeded, StartedAt: &s1, FinishedAt: &f1},
			{Name: "wait-sync", State: api.StateRunning, StartedAt: &s2},
			{Name: "register-sentinels", State: api.StatePending},
		},
	}}

	r := runCLI(t, false, "", "job", "get", "j_1", "--server", srv.URL, "--token", "secret")
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := `ID:        j_1
Kind:      scale
Cluster:   orders
State:     running
Progress:  50%
Message:   waiting for orders-1-1 to sync
Created:   2026-11-25T02:58:00Z
Started:   2026-11-25T02:58:01Z
Finished:  -

STEP                STATE      STARTED               DURATION
start-instances     succeeded  2026-11-25T02:58:01Z  30s
wait-sync           running    2026-11-25T02:58:31Z  1m29s+
register-sentinels  pending    -                     -
`
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, false, "", "job", "get", "j_1", "-o", "json", "--server", srv.URL, "--token", "secret")
	if served := f.rawGet(t, srv.URL+"/api/v1/jobs/j_1"); r.err != nil || !jsonEqual(t, r.stdout, served) {
		t.Errorf("-o json (err %v):\n%s\nwant:\n%s", r.err, r.stdout, served)
	}
}

func TestJobListOutput(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t, "secret")
	f.jobs["j_1"] = []api.Job{{ID: "j_1", Kind: api.JobCreate, Cluster: "orders", State: api.StateFailed, Progress: 0.3,
		Message: "starting", Error: "port in use", CreatedAt: testNow.Add(-10 * time.Minute)}}

	r := runCLI(t, false, "", "job", "list", "--cluster", "orders", "--server", srv.URL, "--token", "secret")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if q := f.lastRequest(t, "GET").Query; q != "cluster=orders" {
		t.Errorf("query = %q, want cluster=orders", q)
	}
	want := `ID   KIND    CLUSTER  STATE   PROGRESS  AGE  MESSAGE
j_1  create  orders   failed  30%       10m  port in use
`
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, false, "", "job", "list", "-o", "json", "--server", srv.URL, "--token", "secret")
	if served := f.rawGet(t, srv.URL+"/api/v1/jobs"); r.err != nil || !jsonEqual(t, r.stdout, served) {
		t.Errorf("-o json (err %v):\n%s\nwant:\n%s", r.err, r.stdout, served)
	}
	if q := f.lastRequest(t, "GET").Query; q != "" {
		t.Errorf("query without --cluster = %q, want none", q)
	}
}
