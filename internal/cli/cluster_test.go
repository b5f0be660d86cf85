package cli

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

func ptr[T any](v T) *T { return &v }

func TestCreateSendsOnlyChangedFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		flags []string
		want  string
	}{
		{"no flags: server defaults apply", nil, `{"name":"orders"}`},
		{
			"sizes and sentinel settings",
			[]string{"--shards", "2", "--sentinels", "5", "--down-after-ms", "5000"},
			`{"name":"orders","shards":2,"sentinels":5,"sentinel":{"downAfterMs":5000}}`,
		},
		{
			"failover and write safety",
			[]string{"--fast-failover=false", "--min-replicas-to-write", "1"},
			`{"name":"orders","fastFailover":false,"minReplicasToWrite":1}`,
		},
		{
			"an explicit zero is sent, for the server to judge",
			[]string{"--replicas", "0"},
			`{"name":"orders","replicas":0}`,
		},
		{
			"memory, persistence and config",
			[]string{"--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru", "--persistence", "aof",
				"--config", "hz=10", "--config", "notify-keyspace-events=Ex=", "--failover-timeout-ms", "10000"},
			`{"name":"orders","maxmemory":"256mb","maxmemoryPolicy":"allkeys-lru","persistence":"aof",
			  "config":{"hz":"10","notify-keyspace-events":"Ex="},"sentinel":{"failoverTimeoutMs":10000}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, srv := newFakeAPI(t, "secret")
			f.jobs["j_create"] = []api.Job{{ID: "j_create", Kind: api.JobCreate, Cluster: "orders", State: api.StatePending}}
			args := append([]string{"cluster", "create", "orders", "--no-wait", "--server", srv.URL, "--token", "secret"}, tt.flags...)
			r := runCLI(t, false, "", args...)
			if r.err != nil {
				t.Fatalf("create: %v\nstderr: %s", r.err, r.stderr)
			}
			if got := string(f.lastRequest(t, "POST").Body); !jsonEqual(t, got, tt.want) {
				t.Errorf("request body = %s, want %s", got, tt.want)
			}
			if r.stdout != "j_create\n" {
				t.Errorf("stdout = %q, want the job id", r.stdout)
			}
		})
	}
}

func TestCreateRejectsMalformedConfig(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t, "secret")
	r := runCLI(t, false, "", "cluster", "create", "orders", "--config", "hz", "--server", srv.URL, "--token", "secret")
	if r.err == nil || !strings.Contains(r.err.Error(), "KEY=VALUE") {
		t.Fatalf("err = %v, want a KEY=VALUE complaint", r.err)
	}
	if n := f.count("POST"); n != 0 {
		t.Errorf("%d POSTs sent for an invalid command line", n)
	}
}

func TestCreateNoWaitJSONPrintsAcceptedBody(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t, "secret")
	f.jobs["j_create"] = []api.Job{{ID: "j_create", Kind: api.JobCreate, Cluster: "orders", State: api.StatePending, CreatedAt: testNow}}
	r := runCLI(t, false, "", "cluster", "create", "orders", "--no-wait", "-o", "json", "--server", srv.URL, "--token", "secret")
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := `{"cluster":{"name":"orders","spec":{"shards":0,"replicas":0,"sentinels":0,"sentinel":{"downAfterMs":0,"failoverTimeoutMs":0,"parallelSyncs":0},"fastFailover":false,"minReplicasToWrite":0},
	  "status":{"phase":"Creating","shards":null,"sentinels":null},"connection":{"sentinels":null,"masterNames":null,"passwordRef":""},
	  "createdAt":"0001-01-01T00:00:00Z"},
	  "job":{"id":"j_create","kind":"create","cluster":"orders","state":"pending","progress":0,"message":"","steps":null,"createdAt":"2026-11-25T03:00:00Z"}}`
	if !jsonEqual(t, r.stdout, want) {
		t.Errorf("stdout = %s", r.stdout)
	}
}

func TestBadRequestRendersCodeMessageAndField(t *testing.T) {
	t.Parallel()
	_, srv := newFakeAPI(t, "secret")
	r := runCLI(t, false, "", "cluster", "create", "orders", "--shards", "0", "--server", srv.URL, "--token", "secret")
	var apiErr *api.Error
	if !errors.As(r.err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Field != "shards" {
		t.Fatalf("err = %#v, want a 400 *api.Error naming field shards", r.err)
	}
	want := "error: invalid: shards must be at least 1 (field \"shards\")\n"
	if r.stderr != want {
		t.Errorf("stderr = %q, want %q (and no usage text)", r.stderr, want)
	}
}

func TestCreateWaitsForJobToSucceed(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t, "secret")
	started, finished := testNow.Add(-12*time.Second), testNow
	f.jobs["j_create"] = []api.Job{
		{ID: "j_create", Kind: api.JobCreate, Cluster: "orders", State: api.StatePending},
		{ID: "j_create", Kind: api.JobCreate, Cluster: "orders", State: api.StateRunning, Progress: 0.25,
			Message: "starting orders-0-0", Steps: []api.Step{{Name: "start-instances", State: api.StateRunning}}},
		{ID: "j_create", Kind: api.JobCreate, Cluster: "orders", State: api.StateRunning, Progress: 0.6,
			Message: "waiting for orders-0-1 to sync", Steps: []api.Step{
				{Name: "start-instances", State: api.StateSucceeded}, {Name: "wait-sync", State: api.StateRunning}}},
		{ID: "j_create", Kind: api.JobCreate, Cluster: "orders", State: api.StateSucceeded, Progress: 1,
			StartedAt: &started, FinishedAt: &finished, Steps: []api.Step{
				{Name: "start-instances", State: api.StateSucceeded}, {Name: "wait-sync", State: api.StateSucceeded}}},
	}
	f.clusters = []api.Cluster{readyCluster()}

	r := runCLI(t, false, "", "cluster", "create", "orders", "--server", srv.URL, "--token", "secret")
	if r.err != nil {
		t.Fatalf("create: %v\nstderr: %s", r.err, r.stderr)
	}
	// Not a terminal: one line per change of step or message, no \r.
	wantLines := []string{
		"[....................]   0%  pending (0s)",
		"[#####...............]  25%  start-instances: starting orders-0-0 (0s)",
		"[############........]  60%  wait-sync: waiting for orders-0-1 to sync (0s)",
		"[####################] 100%  wait-sync (0s)",
	}
	if got := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("progress on stderr:\n%s\nwant:\n%s", r.stderr, strings.Join(wantLines, "\n"))
	}
	if !strings.HasPrefix(r.stdout, "job j_create (create orders) succeeded in 12s\n") {
		t.Errorf("stdout does not start with the final state:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "127.0.0.1:17010,127.0.0.1:17011,127.0.0.1:17012") {
		t.Errorf("stdout lacks the connection addresses:\n%s", r.stdout)
	}
}

func TestCreateFailedJobExitsWithJobError(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t, "secret")
	f.jobs["j_create"] = []api.Job{
		{ID: "j_create", Kind: api.JobCreate, Cluster: "orders", State: api.StateRunning, Progress: 0.3, Message: "starting orders-0-0"},
		{ID: "j_create", Kind: api.JobCreate, Cluster: "orders", State: api.StateFailed, Progress: 0.3,
			Message: "starting orders-0-0", Error: "start orders-0-0: port 17001 in use"},
	}
	for _, output := range []string{"table", "json"} {
		t.Run(output, func(t *testing.T) {
			r := runCLI(t, true, "", "cluster", "create", "orders", "-o", output, "--server", srv.URL, "--token", "secret")
			var failed *api.JobFailedError
			if !errors.As(r.err, &failed) || failed.Job.Error != "start orders-0-0: port 17001 in use" {
				t.Fatalf("err = %v, want a JobFailedError with the job's error", r.err)
			}
			if !strings.HasSuffix(r.stderr, "error: job j_create (create orders) failed: start orders-0-0: port 17001 in use\n") {
				t.Errorf("stderr does not end with the job error:\n%q", r.stderr)
			}
			// A terminal gets one redrawn line.
			if !strings.Contains(r.stderr, "\r[######......") {
				t.Errorf("stderr has no redrawn progress line:\n%q", r.stderr)
			}
			if output == "json" && !strings.Contains(r.stdout, `"state": "failed"`) {
				t.Errorf("-o json does not print the final job:\n%s", r.stdout)
			}
			if output == "table" && r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

func TestDeleteNeedsYesWithoutTerminal(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t, "secret")
	f.clusters = []api.Cluster{readyCluster()}
	r := runCLI(t, false, "orders\n", "cluster", "delete", "orders", "--server", srv.URL, "--token", "secret")
	if r.err == nil || !strings.Contains(r.err.Error(), "pass --yes") {
		t.Fatalf("err = %v, want a request for --yes", r.err)
	}
	if n := f.count("DELETE"); n != 0 {
		t.Errorf("%d DELETE requests sent without confirmation", n)
	}
}

func TestDeleteConfirmation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		terminal   bool
		stdin      string
		args       []string
		wantDelete bool
	}{
		{"typed name confirms", true, "orders\n", nil, true},
		{"wrong name refuses", true, "order\n", nil, false},
		{"empty input refuses", true, "", nil, false},
		{"--yes skips the question", false, "", []string{"--yes"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, srv := newFakeAPI(t, "secret")
			f.clusters = []api.Cluster{readyCluster()}
			f.jobs["j_delete"] = []api.Job{{ID: "j_delete", Kind: api.JobDelete, Cluster: "orders", State: api.StatePending}}
			args := append([]string{"cluster", "delete", "orders", "--no-wait", "--server", srv.URL, "--token", "secret"}, tt.args...)
			r := runCLI(t, tt.terminal, tt.stdin, args...)
			if got := f.count("DELETE") == 1; got != tt.wantDelete {
				t.Fatalf("deleted = %v, want %v (err %v)", got, tt.wantDelete, r.err)
			}
			if tt.wantDelete && (r.err != nil || r.stdout != "j_delete\n") {
				t.Errorf("err = %v, stdout = %q, want the job id", r.err, r.stdout)
			}
			if !tt.wantDelete && r.err == nil {
				t.Error("refused delete returned no error")
			}
		})
	}
}

func TestDeleteWaits(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t, "secret")
	f.clusters = []api.Cluster{readyCluster()}
	f.jobs["j_delete"] = []api.Job{
		{ID: "j_delete", Kind: api.JobDelete, Cluster: "orders", State: api.StateRunning, Message: "stopping instances"},
		{ID: "j_delete", Kind: api.JobDelete, Cluster: "orders", State: api.StateSucceeded, Progress: 1},
	}
	r := runCLI(t, false, "", "cluster", "delete", "orders", "--yes", "--server", srv.URL, "--token", "secret")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.stdout != "job j_delete (delete orders) succeeded\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
}

func TestClusterListOutput(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t, "secret")
	other := api.Cluster{Name: "cache", Spec: api.ClusterSpec{Shards: 3, Replicas: 1, Sentinels: 3},
		Status: api.ClusterStatus{Phase: api.PhaseCreating}, CreatedAt: testNow.Add(-30 * time.Second)}
	f.clusters = []api.Cluster{readyCluster(), other}

	r := runCLI(t, false, "", "cluster", "list", "--server", srv.URL, "--token", "secret")
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := `NAME    PHASE     SHARDS  REPLICAS  SENTINELS  AGE
orders  Ready     1       2         3          3h
cache   Creating  3       1         3          30s
`
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, false, "", "cluster", "list", "-o", "json", "--server", srv.URL, "--token", "secret")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if served := f.rawGet(t, srv.URL+"/api/v1/clusters"); !jsonEqual(t, r.stdout, served) {
		t.Errorf("-o json:\n%s\nwant the API's JSON:\n%s", r.stdout, served)
	}
	if !strings.HasPrefix(r.stdout, "{\n  \"clusters\": [\n") {
		t.Errorf("-o json is not indented:\n%s", r.stdout)
	}
}

func TestClusterGetOutput(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t, "secret")
	f.clusters = []api.Cluster{readyCluster()}

	r := runCLI(t, false, "", "cluster", "get", "orders", "--server", srv.URL, "--token", "secret")
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := `Name:          orders
Phase:         Ready
Reason:        -
Spec:          shards=1 replicas=2 sentinels=3 maxmemory=256mb persistence=rdb hz=10
Observed:      2026-11-25T02:59:55Z (5s ago)
Sentinels:     127.0.0.1:17010,127.0.0.1:17011,127.0.0.1:17012
Master names:  orders-0
Credentials:   redis-manager cluster credentials orders

SHARD  NAME        ROLE     ADDRESS          UP   LINK  LAG  KEYS
0      orders-0-0  master   127.0.0.1:17001  yes  -     -    42
0      orders-0-1  replica  127.0.0.1:17002  yes  up    0    42
0      orders-0-2  replica  127.0.0.1:17003  no   down  512  40

NAME               ADDRESS          UP   MONITORS
orders-sentinel-0  127.0.0.1:17010  yes  orders-0
orders-sentinel-1  127.0.0.1:17011  yes  orders-0
orders-sentinel-2  127.0.0.1:17012  no   -
`
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, false, "", "cluster", "get", "orders", "-o", "json", "--server", srv.URL, "--token", "secret")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if served := f.rawGet(t, srv.URL+"/api/v1/clusters/orders"); !jsonEqual(t, r.stdout, served) {
		t.Errorf("-o json:\n%s\nwant the API's JSON:\n%s", r.stdout, served)
	}
}

func TestClusterGetNotFound(t *testing.T) {
	t.Parallel()
	_, srv := newFakeAPI(t, "secret")
	r := runCLI(t, false, "", "cluster", "get", "nope", "--server", srv.URL, "--token", "secret")
	if want := "error: not_found: cluster \"nope\" not found\n"; r.stderr != want {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}
	if !api.IsNotFound(r.err) {
		t.Errorf("err = %v, want a 404", r.err)
	}
}

func TestClusterEventsAndCredentials(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t, "secret")
	f.clusters = []api.Cluster{readyCluster()}
	f.events = []api.Event{
		{ID: "e2", Cluster: "orders", Shard: ptr(0), Type: "failover", At: testNow.Add(-time.Minute),
			Message: "orders-0-1 promoted", Details: map[string]any{"writeUnavailableMs": 1234}},
		{ID: "e1", Cluster: "orders", Type: "created", At: testNow.Add(-time.Hour), Message: "cluster ready"},
	}
	f.cred = api.Credentials{Password: "p4ss", SentinelPassword: "s3nt"}

	r := runCLI(t, false, "", "cluster", "events", "orders", "--server", srv.URL, "--token", "secret")
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := `AT                    TYPE      SHARD  MESSAGE
2026-11-25T02:59:00Z  failover  0      orders-0-1 promoted
2026-11-25T02:00:00Z  created   -      cluster ready
`
	if r.stdout != want {
		t.Errorf("events:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = runCLI(t, false, "", "cluster", "events", "orders", "-o", "json", "--server", srv.URL, "--token", "secret")
	if served := f.rawGet(t, srv.URL+"/api/v1/clusters/orders/events"); r.err != nil || !jsonEqual(t, r.stdout, served) {
		t.Errorf("-o json (err %v):\n%s\nwant:\n%s", r.err, r.stdout, served)
	}

	r = runCLI(t, false, "", "cluster", "credentials", "orders", "-o", "json", "--server", srv.URL, "--token", "secret")
	if r.err != nil || !jsonEqual(t, r.stdout, `{"password":"p4ss","sentinelPassword":"s3nt"}`) {
		t.Errorf("credentials (err %v): %s", r.err, r.stdout)
	}
}

func TestUnknownOutputFormat(t *testing.T) {
	t.Parallel()
	r := runCLI(t, false, "", "cluster", "list", "-o", "yaml", "--server", "http://127.0.0.1:1")
	if r.err == nil || !strings.Contains(r.err.Error(), `unknown output format "yaml"`) {
		t.Fatalf("err = %v", r.err)
	}
}

// readyCluster is a cluster as the server reports it once healthy, with one
// replica lagging and one Sentinel down so every column has content.
func readyCluster() api.Cluster {
	observed := testNow.Add(-5 * time.Second)
	return api.Cluster{
		Name: "orders",
		Spec: api.ClusterSpec{Shards: 1, Replicas: 2, Sentinels: 3, Maxmemory: "256mb", Persistence: "rdb",
			Config: map[string]string{"hz": "10"}, Sentinel: api.SentinelSettings{DownAfterMs: 5000, FailoverTimeoutMs: 10000, ParallelSyncs: 1}},
		Status: api.ClusterStatus{
			Phase:      api.PhaseReady,
			ObservedAt: &observed,
			Shards: []api.ShardStatus{{
				Index: 0, SentinelName: "orders-0",
				Master: &api.InstanceStatus{Name: "orders-0-0", Address: "127.0.0.1:17001", Role: "master", Up: true, Keys: 42},
				Replicas: []api.InstanceStatus{
					{Name: "orders-0-1", Address: "127.0.0.1:17002", Role: "replica", Up: true, MasterLinkStatus: "up", Keys: 42},
					{Name: "orders-0-2", Address: "127.0.0.1:17003", Role: "replica", MasterLinkStatus: "down", LagBytes: 512, Keys: 40},
				},
			}},
			Sentinels: []api.SentinelStatus{
				{Name: "orders-sentinel-0", Address: "127.0.0.1:17010", Up: true, Monitors: []string{"orders-0"}},
				{Name: "orders-sentinel-1", Address: "127.0.0.1:17011", Up: true, Monitors: []string{"orders-0"}},
				{Name: "orders-sentinel-2", Address: "127.0.0.1:17012"},
			},
		},
		Connection: api.Connection{
			Sentinels:   []string{"127.0.0.1:17010", "127.0.0.1:17011", "127.0.0.1:17012"},
			MasterNames: []string{"orders-0"},
			PasswordRef: "GET /api/v1/clusters/orders/credentials",
		},
		CreatedAt: testNow.Add(-3 * time.Hour),
	}
}
