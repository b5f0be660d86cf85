package cli

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// jobTable is the text `job get` must print for a job, built from the
// job the server sent.
func jobTable(j api.Job, now time.Time) string {
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	rows := []string{
		"ID:\t" + j.ID, "Kind:\t" + j.Kind, "Cluster:\t" + j.Cluster, "State:\t" + j.State,
		fmt.Sprintf("Progress:\t%d%%", int(j.Progress*100+0.5)), "Message:\t" + dash(j.Message),
	}
	if j.Error != "" {
		rows = append(rows, "Error:\t"+j.Error)
	}
	rows = append(rows, "Created:\t"+ts(&j.CreatedAt), "Started:\t"+ts(j.StartedAt), "Finished:\t"+ts(j.FinishedAt))
	if j.StartedAt != nil && j.FinishedAt != nil {
		rows = append(rows, "Duration:\t"+duration(j.FinishedAt.Sub(*j.StartedAt)))
	}
	out := table(rows...)
	if len(j.Steps) == 0 {
		return out // a job the runner has not picked up yet has no steps to list
	}
	steps := []string{"STEP\tSTATE\tSTARTED\tDURATION"}
	for _, s := range j.Steps {
		d := "-"
		switch {
		case s.StartedAt != nil && s.FinishedAt != nil:
			d = duration(s.FinishedAt.Sub(*s.StartedAt))
		case s.StartedAt != nil:
			d = duration(now.Sub(*s.StartedAt)) + "+"
		}
		steps = append(steps, fmt.Sprintf("%s\t%s\t%s\t%s", s.Name, s.State, ts(s.StartedAt), d))
	}
	return out + "\n" + table(steps...)
}

func TestJobGetOutput(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{})
	res, err := s.Client.CreateCluster(t.Context(), api.CreateClusterRequest{Name: "orders", Shards: ptr(2), Replicas: ptr(1), Sentinels: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Job.ID
	// While the job runs: a running step, pending ones after it.
	now := time.Now().Add(2 * time.Minute)
	sawRunning := false
	for i := 0; i < 200 && !sawRunning; i++ {
		r := runCLIAt(t, now, false, "", "job", "get", id, "--server", s.URL, "--token", s.Token)
		if r.err != nil {
			t.Fatal(r.err)
		}
		j := decode[api.Job](t, s.lastRequest(t, "GET", "/api/v1/jobs/"+id).Response)
		if want := jobTable(j, now); r.stdout != want {
			t.Fatalf("table:\n%s\nwant:\n%s", r.stdout, want)
		}
		if j.State == api.StateRunning && strings.Contains(r.stdout, "running") && strings.Contains(r.stdout, "pending") && strings.Contains(r.stdout, "+\n") {
			sawRunning = true
		}
		if j.Done() {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !sawRunning {
		t.Errorf("never saw the job running with a pending step")
	}
	j := s.WaitJob(t.Context(), id)
	r := runCLIAt(t, now, false, "", "job", "get", id, "--server", s.URL, "--token", s.Token)
	if want := jobTable(j, now); r.err != nil || r.stdout != want {
		t.Errorf("finished job (err %v):\n%s\nwant:\n%s", r.err, r.stdout, want)
	}
	if !strings.Contains(r.stdout, "State:     succeeded\n") || !strings.Contains(r.stdout, "Progress:  100%\n") {
		t.Errorf("finished job:\n%s", r.stdout)
	}

	r = runCLI(t, false, "", "job", "get", id, "-o", "json", "--server", s.URL, "--token", s.Token)
	if served := s.lastRequest(t, "GET", "/api/v1/jobs/"+id).Response; r.err != nil || !jsonEqual(t, r.stdout, string(served)) {
		t.Errorf("-o json (err %v):\n%s\nwant:\n%s", r.err, r.stdout, served)
	}
}

func TestJobListOutput(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{Args: []string{"--redis-server", "/nonexistent/redis-server"}})
	res, err := s.Client.CreateCluster(t.Context(), api.CreateClusterRequest{Name: "orders", Replicas: ptr(0), Sentinels: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	j, _ := s.Client.WaitJob(ctx, res.Job.ID, nil)
	if j.State != api.StateFailed || j.Error == "" {
		t.Fatalf("job %+v", j)
	}
	if _, err := s.Client.CreateCluster(ctx, api.CreateClusterRequest{Name: "other", Replicas: ptr(0), Sentinels: ptr(1)}); err != nil {
		t.Fatal(err)
	}
	now := j.CreatedAt.Add(10*time.Minute + time.Second)

	r := runCLIAt(t, now, false, "", "job", "list", "--cluster", "orders", "--server", s.URL, "--token", s.Token)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if q := s.lastRequest(t, "GET").Query; q != "cluster=orders" {
		t.Errorf("query = %q, want cluster=orders", q)
	}
	want := table("ID\tKIND\tCLUSTER\tSTATE\tPROGRESS\tAGE\tMESSAGE",
		fmt.Sprintf("%s\tcreate\torders\tfailed\t%d%%\t10m\t%s", j.ID, int(j.Progress*100+0.5), j.Error))
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, false, "", "job", "list", "-o", "json", "--server", s.URL, "--token", s.Token)
	last := s.lastRequest(t, "GET")
	if r.err != nil || !jsonEqual(t, r.stdout, string(last.Response)) {
		t.Errorf("-o json (err %v):\n%s\nwant:\n%s", r.err, r.stdout, last.Response)
	}
	if last.Query != "" {
		t.Errorf("query without --cluster = %q, want none", last.Query)
	}
	if all := decode[struct{ Jobs []api.Job }](t, last.Response).Jobs; len(all) != 2 {
		t.Errorf("%d jobs listed without --cluster, want 2", len(all))
	}
}
