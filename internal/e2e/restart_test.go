package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// waitStep waits until the job is running the named step (or later).
func waitStep(t *testing.T, m *testenv.Manager, id, step string) api.Job {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		j, err := m.Client.GetJob(ctx, id)
		if err == nil {
			for _, s := range j.Steps {
				if s.Name == step && s.State != api.StatePending {
					return j
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("job %s never reached step %s", id, step)
	return api.Job{}
}

func sortedPids(dataDir string) []int {
	p := testenv.InstancePids(dataDir)
	sort.Ints(p)
	return p
}

// TestKillDuringCreate kills the manager with SIGKILL at each step of a
// create; after a restart the job finishes, the cluster is Ready and no
// instance runs twice.
func TestKillDuringCreate(t *testing.T) {
	t.Parallel()
	for _, step := range []string{"start-sentinels", "start-redis", "wait-replication", "wait-sentinels"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			m := testenv.StartManager(t, testenv.ManagerOptions{})
			ctx := context.Background()
			res, err := m.Client.CreateCluster(ctx, api.CreateClusterRequest{Name: "kc"})
			if err != nil {
				t.Fatal(err)
			}
			waitStep(t, m, res.Job.ID, step)
			m.Kill()
			m.Restart()
			j := m.WaitJob(ctx, res.Job.ID)
			if !strings.Contains(m.LogTail(1000), "resuming job after restart") {
				t.Fatal("the restarted manager did not resume the job: it had finished before the kill")
			}
			if j.State != api.StateSucceeded {
				t.Fatalf("job %+v", j)
			}
			cl := m.WaitPhase(ctx, "kc", api.PhaseReady, 10*time.Second)
			testenv.CheckStatus(t, cl, 1, 2, 3)
			pids := sortedPids(m.DataDir)
			if len(pids) != 6 {
				t.Fatalf("%d instance processes after restart, want 6 (no duplicates): %v", len(pids), pids)
			}
			if got := pidsOf(cl); fmt.Sprint(got) != fmt.Sprint(pids) {
				t.Fatalf("status pids %v, running %v", got, pids)
			}
		})
	}
}

// TestKillDuringDelete kills the manager in the middle of a delete; the
// restarted manager finishes it and nothing is left.
func TestKillDuringDelete(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	createReady(t, m, api.CreateClusterRequest{Name: "kd", Shards: intp(2)})
	job, err := m.Client.DeleteCluster(ctx, "kd")
	if err != nil {
		t.Fatal(err)
	}
	waitStep(t, m, job.ID, "unregister-sentinels")
	m.Kill()
	m.Restart()
	if j := m.WaitJob(ctx, job.ID); j.State != api.StateSucceeded {
		t.Fatalf("job %+v", j)
	}
	if _, err := m.Client.GetCluster(ctx, "kd"); !api.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
	if pids := testenv.InstancePids(m.DataDir); len(pids) != 0 {
		t.Fatalf("processes left: %v", pids)
	}
}

// TestRestartKeepsInstances restarts the manager (graceful and SIGKILL)
// while clusters run: every instance keeps its pid and its data, and the
// status comes back Ready.
func TestRestartKeepsInstances(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "keep", Replicas: intp(1)})
	creds, err := m.Client.Credentials(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	master := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Master.Address, Password: creds.Password, Protocol: 2})
	defer master.Close()
	if err := master.Set(ctx, "survives", "restart", 0).Err(); err != nil {
		t.Fatal(err)
	}
	before := sortedPids(m.DataDir)
	if len(before) != 5 {
		t.Fatalf("%d processes, want 5", len(before))
	}
	// Writes go on through both restarts; none acknowledged may be lost.
	w := startWriterWait(t, cl, creds, 0, "w", 1)
	var restarted time.Time
	for _, crash := range []bool{false, true} {
		if crash {
			m.Kill()
		}
		m.Restart()
		restarted = time.Now()
		cl = m.WaitPhase(ctx, "keep", api.PhaseReady, 10*time.Second)
		testenv.CheckStatus(t, cl, 1, 1, 3)
		if after := sortedPids(m.DataDir); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("crash=%v: pids changed across restart: %v -> %v", crash, before, after)
		}
		if got := pidsOf(cl); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Fatalf("status pids %v, want %v", got, before)
		}
		if v, err := master.Get(ctx, "survives").Result(); err != nil || v != "restart" {
			t.Fatalf("data after restart: %q %v", v, err)
		}
		w.waitResumed(t, restarted, 10*time.Second)
	}
	time.Sleep(500 * time.Millisecond)
	acked, errs := w.Stop()
	if len(errs) > 0 {
		t.Errorf("%d write errors across manager restarts (the instances never stopped), first: %s", len(errs), errs[0])
	}
	checkNoLoss(t, m, "keep", creds, lossCheck{Shard: 0, Writes: acked, Min: 50, Fault: restarted, MinAfter: 20, Replicas: 1})
}

// countErrors counts the requests that got no answer.
type countErrors struct {
	next   http.RoundTripper
	failed atomic.Int32
}

func (c *countErrors) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err != nil {
		c.failed.Add(1)
	}
	return resp, err
}

// TestWaitJobThroughRestart waits for a create job, as the CLI does
// (api.Client.WaitJob), while the manager is killed and started again on
// the same address: the wait rides out the refused connections and ends
// with the job the restarted manager finished.
func TestWaitJobThroughRestart(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	addr := strings.TrimPrefix(m.URL, "http://")
	for i, a := range m.Args {
		if a == "127.0.0.1:0" {
			m.Args[i] = addr // the restart listens where the client waits
		}
	}
	ctx := context.Background()
	res, err := m.Client.CreateCluster(ctx, api.CreateClusterRequest{Name: "wr"})
	if err != nil {
		t.Fatal(err)
	}
	waitStep(t, m, res.Job.ID, "start-redis")

	rt := &countErrors{next: http.DefaultTransport}
	c := api.NewClient(m.URL, m.Token)
	c.HTTPClient.Transport, c.PollInterval = rt, 50*time.Millisecond
	type result struct {
		j   api.Job
		err error
	}
	done := make(chan result, 1)
	go func() {
		j, err := c.WaitJob(ctx, res.Job.ID, nil)
		done <- result{j, err}
	}()
	m.Kill()
	time.Sleep(time.Second) // the waiter finds nobody there
	m.Restart()
	if m.URL != "http://"+addr {
		t.Fatalf("the manager came back on %s, not %s", m.URL, addr)
	}
	select {
	case r := <-done:
		if r.err != nil || r.j.State != api.StateSucceeded {
			t.Fatalf("WaitJob across the restart: %+v, %v", r.j, r.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("WaitJob did not return within 60 s of the restart")
	}
	if rt.failed.Load() == 0 {
		t.Fatal("no request failed while the manager was down: the test proved nothing")
	}
	t.Logf("WaitJob rode out %d failed requests", rt.failed.Load())
}
