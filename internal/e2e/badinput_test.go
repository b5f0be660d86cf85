package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func TestBadInput(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{Ports: 12})
	ctx := context.Background()

	// The local platform's own refusal: more instances than its port range.
	m.CheckBadRequests(t, append(testenv.BadRequests(spec.ManagedDirectives()), testenv.BadRequest{Name: "more than the port range holds",
		Method: "POST", Path: "/api/v1/clusters", Body: `{"name":"a","shards":4,"replicas":2}`, Status: 422, Field: "shards"}))

	// Nothing was half-created by any of it.
	if cls, err := m.Client.ListClusters(ctx); err != nil || len(cls) != 0 {
		t.Fatalf("clusters after bad input: %v %v", cls, err)
	}
	if pids := testenv.InstancePids(m.DataDir); len(pids) != 0 {
		t.Fatalf("processes after bad input: %v", pids)
	}

	// A taken name is a conflict, and a second job on a busy cluster too.
	createReady(t, m, api.CreateClusterRequest{Name: "dup", Replicas: intp(1)})
	if status, eb := m.Call(t, "POST", "/api/v1/clusters", m.Token, `{"name":"dup","replicas":1}`); status != 409 || !strings.Contains(eb.Error.Message, "already exists") {
		t.Errorf("duplicate: %d %+v", status, eb)
	}
	job, err := m.Client.DeleteCluster(ctx, "dup")
	if err != nil {
		t.Fatal(err)
	}
	if status, eb := m.Call(t, "DELETE", "/api/v1/clusters/dup", m.Token, ""); status != 409 && status != 404 {
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
	m.ExpectCreateFailed(t, jobID, cluster, reason)
	if pids := testenv.InstancePids(m.DataDir); len(pids) != 0 {
		t.Fatalf("processes left after a failed create: %v", pids)
	}
	if entries, _ := os.ReadDir(filepath.Join(m.DataDir, "instances")); len(entries) != 0 {
		t.Fatalf("instance data left after a failed create: %v", entries)
	}
}
