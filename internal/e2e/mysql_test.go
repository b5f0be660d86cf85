package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestManagerOnMariaDB runs the manager with --store mysql:// against a real
// MariaDB: create, restart (state comes back from MySQL), delete.
func TestManagerOnMariaDB(t *testing.T) {
	t.Parallel()
	dsn := testenv.StartMariaDB(t)
	m := testenv.StartManager(t, testenv.ManagerOptions{Args: []string{"--store", dsn}})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "onmysql", Replicas: intp(1)})
	checkStatus(t, cl, 1, 1, 3)
	m.Kill()
	m.Restart()
	cl = m.WaitPhase(ctx, "onmysql", api.PhaseReady, 10*time.Second)
	checkStatus(t, cl, 1, 1, 3)
	jobs, err := m.Client.ListJobs(ctx, "onmysql")
	if err != nil || len(jobs) != 1 || jobs[0].State != api.StateSucceeded {
		t.Fatalf("jobs from MySQL after restart: %+v %v", jobs, err)
	}
	job, err := m.Client.DeleteCluster(ctx, "onmysql")
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(ctx, job.ID)
	if pids := testenv.InstancePids(m.DataDir); len(pids) != 0 {
		t.Fatalf("processes left: %v", pids)
	}
}
