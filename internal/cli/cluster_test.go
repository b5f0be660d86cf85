package cli

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func TestCreateSendsOnlyChangedFlags(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{Ports: 60})
	tests := []struct {
		name    string
		cluster string
		flags   []string
		want    string
		check   func(api.ClusterSpec) bool
	}{
		{"no flags: server defaults apply", "plain", nil, `{"name":"plain"}`,
			func(s api.ClusterSpec) bool {
				return s.Shards == 1 && s.Replicas == 2 && s.Sentinels == 3 && s.Sentinel.DownAfterMs == 5000 && s.FastFailover
			}},
		{
			"sizes and sentinel settings", "sizes",
			[]string{"--shards", "2", "--sentinels", "5", "--down-after-ms", "4000"},
			`{"name":"sizes","shards":2,"sentinels":5,"sentinel":{"downAfterMs":4000}}`,
			func(s api.ClusterSpec) bool {
				return s.Shards == 2 && s.Replicas == 2 && s.Sentinels == 5 && s.Sentinel.DownAfterMs == 4000
			},
		},
		{
			"failover and write safety", "safety",
			[]string{"--fast-failover=false", "--min-replicas-to-write", "1"},
			`{"name":"safety","fastFailover":false,"minReplicasToWrite":1}`,
			func(s api.ClusterSpec) bool { return !s.FastFailover && s.MinReplicasToWrite == 1 },
		},
		{
			"an explicit zero is sent, for the server to judge", "zero",
			[]string{"--replicas", "0"},
			`{"name":"zero","replicas":0}`,
			func(s api.ClusterSpec) bool { return s.Replicas == 0 && s.Shards == 1 },
		},
		{
			"memory, persistence and config", "mem",
			[]string{"--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru", "--persistence", "aof",
				"--config", "hz=10", "--config", "notify-keyspace-events=Ex", "--failover-timeout-ms", "12000"},
			`{"name":"mem","maxmemory":"256mb","maxmemoryPolicy":"allkeys-lru","persistence":"aof",
			  "config":{"hz":"10","notify-keyspace-events":"Ex"},"sentinel":{"failoverTimeoutMs":12000}}`,
			func(s api.ClusterSpec) bool {
				return s.Maxmemory == "256mb" && s.MaxmemoryPolicy == "allkeys-lru" && s.Persistence == "aof" &&
					s.Config["hz"] == "10" && s.Config["notify-keyspace-events"] == "Ex" && s.Sentinel.FailoverTimeoutMs == 12000
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"cluster", "create", tt.cluster, "--no-wait", "--server", s.URL, "--token", s.Token}, tt.flags...)
			r := runCLI(t, false, "", args...)
			if r.err != nil {
				t.Fatalf("create: %v\nstderr: %s", r.err, r.stderr)
			}
			post := s.lastRequest(t, "POST", "/api/v1/clusters")
			if got := string(post.Body); !jsonEqual(t, got, tt.want) {
				t.Errorf("request body = %s, want %s", got, tt.want)
			}
			// The server took exactly these settings, and said so.
			accepted := decode[api.ClusterJob](t, post.Response)
			if post.Status != 202 || accepted.Cluster == nil || !tt.check(accepted.Cluster.Spec) {
				t.Errorf("server answered %d with spec %+v", post.Status, accepted.Cluster)
			}
			if r.stdout != accepted.Job.ID+"\n" || !strings.HasPrefix(accepted.Job.ID, "j_") {
				t.Errorf("stdout = %q, want the job id %q", r.stdout, accepted.Job.ID)
			}
		})
	}
}

func TestCreateRejectsMalformedConfig(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{})
	r := runCLI(t, false, "", "cluster", "create", "orders", "--config", "hz", "--server", s.URL, "--token", s.Token)
	if r.err == nil || !strings.Contains(r.err.Error(), "KEY=VALUE") {
		t.Fatalf("err = %v, want a KEY=VALUE complaint", r.err)
	}
	if n := s.count("POST"); n != 0 {
		t.Errorf("%d POSTs sent for an invalid command line", n)
	}
}

func TestCreateNoWaitJSONPrintsAcceptedBody(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{})
	r := runCLI(t, false, "", "cluster", "create", "orders", "--replicas", "0", "--sentinels", "1", "--no-wait", "-o", "json", "--server", s.URL, "--token", s.Token)
	if r.err != nil {
		t.Fatal(r.err)
	}
	post := s.lastRequest(t, "POST", "/api/v1/clusters")
	if post.Status != 202 || !jsonEqual(t, r.stdout, string(post.Response)) {
		t.Errorf("stdout = %s\nwant the 202 body the server sent (%d):\n%s", r.stdout, post.Status, post.Response)
	}
	accepted := decode[api.ClusterJob](t, post.Response)
	if accepted.Cluster == nil || accepted.Cluster.Name != "orders" || accepted.Job.Kind != api.JobCreate || accepted.Job.Cluster != "orders" {
		t.Errorf("202 body %s", post.Response)
	}
	if !strings.HasPrefix(r.stdout, "{\n  \"cluster\": {\n") {
		t.Errorf("-o json is not indented:\n%s", r.stdout)
	}
}

func TestBadRequestRendersCodeMessageAndField(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{})
	r := runCLI(t, false, "", "cluster", "create", "orders", "--shards", "0", "--server", s.URL, "--token", s.Token)
	post := s.lastRequest(t, "POST", "/api/v1/clusters")
	body := decode[api.ErrorBody](t, post.Response)
	var apiErr *api.Error
	if !errors.As(r.err, &apiErr) || apiErr.StatusCode != post.Status || apiErr.Field != "shards" || post.Status/100 != 4 {
		t.Fatalf("err = %#v, want the server's %d *api.Error naming field shards", r.err, post.Status)
	}
	if body.Error.Field != "shards" || body.Error.Message == "" || body.Error.Code == "" {
		t.Fatalf("server answered %s", post.Response)
	}
	t.Logf("the server answered %d; the CLI printed %q", post.Status, r.stderr)
	want := fmt.Sprintf("error: %s: %s (field \"shards\")\n", body.Error.Code, body.Error.Message)
	if r.stderr != want {
		t.Errorf("stderr = %q, want %q (and no usage text)", r.stderr, want)
	}
	if !strings.Contains(r.stderr, "shards") || !strings.Contains(r.stderr, "0") {
		t.Errorf("stderr does not say what is wrong: %q", r.stderr)
	}
	if _, err := s.Client.GetCluster(t.Context(), "orders"); !api.IsNotFound(err) {
		t.Errorf("a refused create left a cluster: %v", err)
	}
}

var progressLineRE = regexp.MustCompile(`^\[[#.]{20}\] +[0-9]{1,3}%  .+ \(0s\)$`)

func TestCreateWaitsForJobToSucceed(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{})
	r := runCLI(t, false, "", "cluster", "create", "orders", "--replicas", "1", "--sentinels", "1", "--server", s.URL, "--token", s.Token)
	if r.err != nil {
		t.Fatalf("create: %v\nstderr: %s", r.err, r.stderr)
	}
	job := s.jobOf(t, "orders", api.JobCreate)
	// Not a terminal: one line per change of step or message, no \r; the
	// percentage never goes back; the last line is the finished job.
	if strings.Contains(r.stderr, "\r") {
		t.Errorf("\\r in progress without a terminal:\n%q", r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	last := -1
	for i, l := range lines {
		if !progressLineRE.MatchString(l) {
			t.Errorf("progress line %d %q does not look like [####....]  NN%%  step: message (0s)", i, l)
			continue
		}
		var pct int
		fmt.Sscanf(strings.TrimSpace(l[22:]), "%d%%", &pct)
		if pct < last {
			t.Errorf("progress went back from %d%% to %d%%:\n%s", last, pct, r.stderr)
		}
		last = pct
		if i > 0 && l == lines[i-1] {
			t.Errorf("line %d repeats the previous one: %q", i, l)
		}
	}
	lastStep := job.Steps[len(job.Steps)-1].Name
	if job.Message != "" {
		lastStep += ": " + job.Message
	}
	if want := "[####################] 100%  " + lastStep + " (0s)"; lines[len(lines)-1] != want {
		t.Errorf("last progress line %q, want %q", lines[len(lines)-1], want)
	}
	if len(lines) < 2 {
		t.Errorf("only %d progress line(s) for a job of %d steps:\n%s", len(lines), len(job.Steps), r.stderr)
	}
	took := duration(job.FinishedAt.Sub(*job.StartedAt))
	if want := fmt.Sprintf("job %s (create orders) succeeded in %s\n", job.ID, took); !strings.HasPrefix(r.stdout, want) {
		t.Errorf("stdout does not start with %q:\n%s", want, r.stdout)
	}
	cl, err := s.Client.GetCluster(t.Context(), "orders")
	if err != nil || !strings.Contains(r.stdout, "Sentinels:     "+strings.Join(cl.Connection.Sentinels, ",")+"\n") {
		t.Errorf("stdout lacks the connection addresses %v (%v):\n%s", cl.Connection.Sentinels, err, r.stdout)
	}
	if !strings.Contains(r.stdout, "Master names:  orders-0\n") || !strings.Contains(r.stdout, "Phase:         Ready\n") {
		t.Errorf("stdout lacks the header of the Ready cluster:\n%s", r.stdout)
	}
}

func TestCreateFailedJobExitsWithJobError(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{Args: []string{"--redis-server", "/nonexistent/redis-server"}})
	for i, output := range []string{"table", "json"} {
		t.Run(output, func(t *testing.T) {
			name := fmt.Sprintf("fail%d", i)
			r := runCLI(t, true, "", "cluster", "create", name, "--replicas", "0", "--sentinels", "1", "-o", output, "--server", s.URL, "--token", s.Token)
			var failed *api.JobFailedError
			if !errors.As(r.err, &failed) || !strings.Contains(failed.Job.Error, "/nonexistent/redis-server") {
				t.Fatalf("err = %v, want a JobFailedError with the job's error", r.err)
			}
			job := s.jobOf(t, name, api.JobCreate)
			if job.State != api.StateFailed || job.Error != failed.Job.Error {
				t.Fatalf("server's job %+v, CLI's error %q", job, failed.Job.Error)
			}
			if want := fmt.Sprintf("error: job %s (create %s) failed: %s\n", job.ID, name, job.Error); !strings.HasSuffix(r.stderr, want) {
				t.Errorf("stderr does not end with the job error %q:\n%q", want, r.stderr)
			}
			// A terminal gets one redrawn line.
			if !strings.HasPrefix(r.stderr, "\r[") || strings.Count(r.stderr, "\n") != 2 {
				t.Errorf("stderr is not one redrawn progress line and the error:\n%q", r.stderr)
			}
			if output == "json" {
				if !strings.Contains(r.stdout, `"state": "failed"`) || !jsonEqual(t, r.stdout, string(s.lastRequest(t, "GET", "/api/v1/jobs/"+job.ID).Response)) {
					t.Errorf("-o json does not print the final job as the server sent it:\n%s", r.stdout)
				}
			}
			if output == "table" && r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

func TestDeleteNeedsYesWithoutTerminal(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{})
	s.create(t, small("orders"))
	r := runCLI(t, false, "orders\n", "cluster", "delete", "orders", "--server", s.URL, "--token", s.Token)
	if r.err == nil || !strings.Contains(r.err.Error(), "pass --yes") {
		t.Fatalf("err = %v, want a request for --yes", r.err)
	}
	if n := s.count("DELETE"); n != 0 {
		t.Errorf("%d DELETE requests sent without confirmation", n)
	}
	if _, err := s.Client.GetCluster(t.Context(), "orders"); err != nil {
		t.Errorf("cluster gone: %v", err)
	}
}

func TestDeleteConfirmation(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{})
	tests := []struct {
		name       string
		cluster    string
		terminal   bool
		stdin      string
		args       []string
		wantDelete bool
	}{
		{"typed name confirms", "typed", true, "typed\n", nil, true},
		{"wrong name refuses", "kept", true, "kep\n", nil, false},
		{"empty input refuses", "kept", true, "", nil, false},
		{"--yes skips the question", "yes", false, "", []string{"--yes"}, true},
	}
	for _, c := range []string{"typed", "kept", "yes"} {
		req := small(c)
		req.Replicas = ptr(0)
		s.create(t, req)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.count("DELETE")
			args := append([]string{"cluster", "delete", tt.cluster, "--no-wait", "--server", s.URL, "--token", s.Token}, tt.args...)
			r := runCLI(t, tt.terminal, tt.stdin, args...)
			if got := s.count("DELETE") == before+1; got != tt.wantDelete {
				t.Fatalf("deleted = %v, want %v (err %v)", got, tt.wantDelete, r.err)
			}
			if tt.wantDelete {
				del := s.lastRequest(t, "DELETE")
				job := decode[struct{ Job api.Job }](t, del.Response).Job
				if del.Status != 202 || job.Kind != api.JobDelete || r.err != nil || r.stdout != job.ID+"\n" {
					t.Errorf("err = %v, stdout = %q, want the job id of %d %s", r.err, r.stdout, del.Status, del.Response)
				}
				s.WaitJob(t.Context(), job.ID)
			}
			if !tt.wantDelete {
				if r.err == nil {
					t.Error("refused delete returned no error")
				}
				if _, err := s.Client.GetCluster(t.Context(), tt.cluster); err != nil {
					t.Errorf("cluster gone after a refused delete: %v", err)
				}
			}
		})
	}
}

func TestDeleteWaits(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{})
	s.create(t, small("orders"))
	r := runCLI(t, false, "", "cluster", "delete", "orders", "--yes", "--server", s.URL, "--token", s.Token)
	if r.err != nil {
		t.Fatal(r.err)
	}
	job := s.jobOf(t, "orders", api.JobDelete)
	want := fmt.Sprintf("job %s (delete orders) succeeded in %s\n", job.ID, duration(job.FinishedAt.Sub(*job.StartedAt)))
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if _, err := s.Client.GetCluster(t.Context(), "orders"); !api.IsNotFound(err) {
		t.Errorf("cluster after the delete: %v", err)
	}
	if pids := testenv.InstancePids(s.DataDir); len(pids) != 0 {
		t.Errorf("processes left: %v", pids)
	}
}

// TestClusterListGetEventsCredentials runs the read commands on a real
// cluster, with the CLI's clock three and a half hours after its creation.
func TestClusterListGetEventsCredentials(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{})
	req := small("orders")
	req.Maxmemory, req.Persistence, req.Config = "256mb", "rdb", map[string]string{"hz": "10"}
	orders := s.create(t, req)
	other := s.create(t, api.CreateClusterRequest{Name: "cache", Shards: ptr(2), Replicas: ptr(0), Sentinels: ptr(1)})
	now := orders.CreatedAt.Add(3*time.Hour + 30*time.Minute)
	sflags := []string{"--server", s.URL, "--token", s.Token}

	t.Run("list", func(t *testing.T) {
		r := runCLIAt(t, now, false, "", append([]string{"cluster", "list"}, sflags...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		got := decode[struct{ Clusters []api.Cluster }](t, s.lastRequest(t, "GET", "/api/v1/clusters").Response).Clusters
		if len(got) != 2 {
			t.Fatalf("server listed %d clusters", len(got))
		}
		rows := []string{"NAME\tPHASE\tSHARDS\tREPLICAS\tSENTINELS\tAGE"}
		for _, cl := range got {
			if cl.Status.Phase != api.PhaseReady || (cl.Name != "orders" && cl.Name != "cache") {
				t.Fatalf("cluster %s %s", cl.Name, cl.Status.Phase)
			}
			rows = append(rows, fmt.Sprintf("%s\tReady\t%d\t%d\t%d\t3h", cl.Name, cl.Spec.Shards, cl.Spec.Replicas, cl.Spec.Sentinels))
		}
		if want := table(rows...); r.stdout != want {
			t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
		}
		if !strings.Contains(r.stdout, "orders  Ready  1       1         1          3h\n") || !strings.Contains(r.stdout, "cache   Ready  2       0         1          3h\n") {
			t.Errorf("table rows:\n%s", r.stdout)
		}

		r = runCLIAt(t, now, false, "", append([]string{"cluster", "list", "-o", "json"}, sflags...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if served := s.lastRequest(t, "GET", "/api/v1/clusters").Response; !jsonEqual(t, r.stdout, string(served)) {
			t.Errorf("-o json:\n%s\nwant the API's JSON:\n%s", r.stdout, served)
		}
		if !strings.HasPrefix(r.stdout, "{\n  \"clusters\": [\n") {
			t.Errorf("-o json is not indented:\n%s", r.stdout)
		}
	})

	t.Run("get", func(t *testing.T) {
		r := runCLIAt(t, now, false, "", append([]string{"cluster", "get", "orders"}, sflags...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		cl := decode[api.Cluster](t, s.lastRequest(t, "GET", "/api/v1/clusters/orders").Response)
		sh := cl.Status.Shards[0]
		m, rep, sen := sh.Master, sh.Replicas[0], cl.Status.Sentinels[0]
		want := table(
			"Name:\torders",
			"Phase:\tReady",
			"Reason:\t-",
			"Spec:\tshards=1 replicas=1 sentinels=1 maxmemory=256mb maxmemory-policy=noeviction persistence=rdb hz=10",
			fmt.Sprintf("Observed:\t%s (%s ago)", cl.Status.ObservedAt.UTC().Format(time.RFC3339), age(*cl.Status.ObservedAt, now)),
			"Sentinels:\t"+sen.Address,
			"Master names:\torders-0",
			"Credentials:\tredis-manager cluster credentials orders",
		) + "\n" + table(
			"SHARD\tNAME\tROLE\tADDRESS\tUP\tLINK\tLAG\tKEYS",
			fmt.Sprintf("0\torders-0-0\tmaster\t%s\tyes\t-\t-\t%d", m.Address, m.Keys),
			fmt.Sprintf("0\torders-0-1\treplica\t%s\tyes\tup\t%d\t%d", rep.Address, rep.LagBytes, rep.Keys),
		) + "\n" + table(
			"NAME\tADDRESS\tUP\tMONITORS",
			"orders-sentinel-0\t"+sen.Address+"\tyes\torders-0",
		)
		if r.stdout != want {
			t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
		}
		if m.Name != "orders-0-0" || rep.Name != "orders-0-1" || sen.Name != "orders-sentinel-0" || !m.Up || !rep.Up || !sen.Up {
			t.Errorf("status %+v", cl.Status)
		}

		r = runCLIAt(t, now, false, "", append([]string{"cluster", "get", "orders", "-o", "json"}, sflags...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if served := s.lastRequest(t, "GET", "/api/v1/clusters/orders").Response; !jsonEqual(t, r.stdout, string(served)) {
			t.Errorf("-o json:\n%s\nwant the API's JSON:\n%s", r.stdout, served)
		}
	})

	t.Run("get unknown", func(t *testing.T) {
		r := runCLI(t, false, "", append([]string{"cluster", "get", "nope"}, sflags...)...)
		body := decode[api.ErrorBody](t, s.lastRequest(t, "GET", "/api/v1/clusters/nope").Response)
		if want := fmt.Sprintf("error: %s: %s\n", body.Error.Code, body.Error.Message); r.stderr != want || body.Error.Code != "not_found" || !strings.Contains(body.Error.Message, `"nope"`) {
			t.Errorf("stderr = %q, want %q", r.stderr, want)
		}
		if !api.IsNotFound(r.err) {
			t.Errorf("err = %v, want a 404", r.err)
		}
	})

	t.Run("events", func(t *testing.T) {
		// A planned failover adds an event with a shard.
		job, err := s.Client.Failover(t.Context(), "orders", 0)
		if err != nil {
			t.Fatal(err)
		}
		s.WaitJob(t.Context(), job.ID)
		r := runCLIAt(t, now, false, "", append([]string{"cluster", "events", "orders"}, sflags...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		evs := decode[struct{ Events []api.Event }](t, s.lastRequest(t, "GET", "/api/v1/clusters/orders/events").Response).Events
		if len(evs) < 2 || evs[0].Type != "failover" || evs[0].Shard == nil || *evs[0].Shard != 0 || evs[len(evs)-1].Type != "created" {
			t.Fatalf("events the server sent: %+v", evs)
		}
		rows := []string{"AT\tTYPE\tSHARD\tMESSAGE"}
		for _, e := range evs {
			shard := "-"
			if e.Shard != nil {
				shard = fmt.Sprint(*e.Shard)
			}
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s", e.At.UTC().Format(time.RFC3339), e.Type, shard, e.Message))
		}
		if want := table(rows...); r.stdout != want {
			t.Errorf("events:\n%s\nwant:\n%s", r.stdout, want)
		}
		r = runCLIAt(t, now, false, "", append([]string{"cluster", "events", "orders", "-o", "json"}, sflags...)...)
		if served := s.lastRequest(t, "GET", "/api/v1/clusters/orders/events").Response; r.err != nil || !jsonEqual(t, r.stdout, string(served)) {
			t.Errorf("-o json (err %v):\n%s\nwant:\n%s", r.err, r.stdout, served)
		}
	})

	t.Run("credentials", func(t *testing.T) {
		creds, err := s.Client.Credentials(t.Context(), "orders")
		if err != nil || creds.Password == "" || creds.SentinelPassword == "" {
			t.Fatalf("%+v %v", creds, err)
		}
		r := runCLI(t, false, "", append([]string{"cluster", "credentials", "orders", "-o", "json"}, sflags...)...)
		want := fmt.Sprintf(`{"password":%q,"sentinelPassword":%q}`, creds.Password, creds.SentinelPassword)
		if r.err != nil || !jsonEqual(t, r.stdout, want) {
			t.Errorf("credentials (err %v): %s", r.err, r.stdout)
		}
		r = runCLI(t, false, "", append([]string{"cluster", "credentials", "orders"}, sflags...)...)
		if r.err != nil || !strings.Contains(r.stdout, creds.Password) || !strings.Contains(r.stdout, "Sentinel password:  "+creds.SentinelPassword) {
			t.Errorf("credentials table (err %v):\n%s", r.err, r.stdout)
		}
	})

	t.Run("get with a replica and a Sentinel stopped", func(t *testing.T) {
		// Last: a stopped Sentinel enters TILT mode when resumed and
		// refuses failovers for 30 s.
		// SIGSTOP: the processes live on, so the manager does not restart
		// them, but they stop answering; the status shows them down.
		cur := s.WaitPhase(t.Context(), "orders", api.PhaseReady, 20*time.Second)
		rep, sen := cur.Status.Shards[0].Replicas[0], cur.Status.Sentinels[0]
		for _, pid := range []int{rep.Pid, sen.Pid} {
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			defer syscall.Kill(pid, syscall.SIGCONT)
		}
		var cl api.Cluster
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			r := runCLIAt(t, now, false, "", append([]string{"cluster", "get", "orders"}, sflags...)...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			cl = decode[api.Cluster](t, s.lastRequest(t, "GET", "/api/v1/clusters/orders").Response)
			if want := clusterTable(cl, now); r.stdout != want {
				t.Fatalf("table:\n%s\nwant:\n%s", r.stdout, want)
			}
			if !cl.Status.Shards[0].Replicas[0].Up && !cl.Status.Sentinels[0].Up {
				for _, addr := range []string{rep.Address, sen.Address} {
					for _, l := range strings.Split(r.stdout, "\n") {
						if strings.Contains(l, addr+" ") && !strings.Contains(l, addr+"  no  ") {
							t.Errorf("%s not shown as down:\n%s", addr, r.stdout)
						}
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the stopped replica and Sentinel are still up in the status: %+v", cl.Status)
			}
		}
	})
	_ = other
}

func TestUnknownOutputFormat(t *testing.T) {
	t.Parallel()
	r := runCLI(t, false, "", "cluster", "list", "-o", "yaml", "--server", "http://127.0.0.1:1")
	if r.err == nil || !strings.Contains(r.err.Error(), `unknown output format "yaml"`) {
		t.Fatalf("err = %v", r.err)
	}
}

// clusterTable is the text `cluster get` must print for the cluster the
// server sent, whatever its state.
func clusterTable(cl api.Cluster, now time.Time) string {
	head := []string{"Name:\t" + cl.Name, "Phase:\t" + dash(cl.Status.Phase), "Reason:\t" + dash(cl.Status.Reason), "Spec:\t" + specSummary(cl.Spec)}
	if o := cl.Status.ObservedAt; o != nil {
		head = append(head, fmt.Sprintf("Observed:\t%s (%s ago)", o.UTC().Format(time.RFC3339), age(*o, now)))
	}
	head = append(head, "Sentinels:\t"+dash(strings.Join(cl.Connection.Sentinels, ",")),
		"Master names:\t"+dash(strings.Join(cl.Connection.MasterNames, ",")), "Credentials:\tredis-manager cluster credentials "+cl.Name)
	out := table(head...)
	if len(cl.Status.Shards) > 0 {
		rows := []string{"SHARD\tNAME\tROLE\tADDRESS\tUP\tLINK\tLAG\tKEYS"}
		for _, sh := range cl.Status.Shards {
			if m := sh.Master; m != nil {
				rows = append(rows, fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t-\t-\t%d", sh.Index, m.Name, dash(m.Role), dash(m.Address), yesNo(m.Up), m.Keys))
			} else {
				rows = append(rows, fmt.Sprintf("%d\t(none)\tmaster\t-\tno\t-\t-\t-", sh.Index))
			}
			for _, r := range sh.Replicas {
				rows = append(rows, fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d", sh.Index, r.Name, dash(r.Role), dash(r.Address), yesNo(r.Up), dash(r.MasterLinkStatus), r.LagBytes, r.Keys))
			}
		}
		out += "\n" + table(rows...)
	}
	if len(cl.Status.Sentinels) > 0 {
		rows := []string{"NAME\tADDRESS\tUP\tMONITORS"}
		for _, s := range cl.Status.Sentinels {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s", s.Name, dash(s.Address), yesNo(s.Up), dash(strings.Join(s.Monitors, ","))))
		}
		out += "\n" + table(rows...)
	}
	return out
}
