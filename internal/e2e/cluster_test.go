package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/platform/local"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func intp(n int) *int { return &n }

// createReady creates a cluster and waits for its job and the Ready phase.
func createReady(t *testing.T, m *testenv.Manager, req api.CreateClusterRequest) api.Cluster {
	t.Helper()
	ctx := context.Background()
	res, err := m.Client.CreateCluster(ctx, req)
	if err != nil {
		t.Fatalf("create %s: %v", req.Name, err)
	}
	if res.Job.Kind != api.JobCreate || res.Job.Cluster != req.Name {
		t.Fatalf("create returned job %+v", res.Job)
	}
	m.WaitJob(ctx, res.Job.ID)
	return m.WaitPhase(ctx, req.Name, api.PhaseReady, 10*time.Second)
}

func TestCreateWriteReadDelete(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "orders", Shards: intp(2), Replicas: intp(2), Sentinels: intp(3)})
	testenv.CheckStatus(t, cl, 2, 2, 3)
	if cl.Spec.Sentinel.DownAfterMs != 5000 || cl.Spec.Sentinel.FailoverTimeoutMs != 10000 {
		t.Errorf("sentinel defaults %+v", cl.Spec.Sentinel)
	}
	pids := testenv.InstancePids(m.DataDir)
	if n := len(pids); n != 2*3+3 {
		t.Fatalf("%d instance processes, want 9", n)
	}
	// The manager's autogroup runs at nice -20 (--local-control-nice), the
	// instances' own autogroups (one session each) at 0.
	if on, _ := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled"); strings.TrimSpace(string(on)) != "1" {
		t.Logf("autogroups are off on this kernel (%q): --local-control-nice has nothing to set", on)
	} else if mine := autogroup(t, m.Pid()); mine == "" {
		// In a CPU cgroup other than the root one (a CI container), the
		// cgroup shares the CPU and the autogroup file reads empty; the
		// manager logs that it left its priority unchanged.
		if log, _ := os.ReadFile(m.LogPath()); !strings.Contains(string(log), local.ErrNoAutogroup.Error()) {
			t.Errorf("the manager's autogroup reads empty (a CPU cgroup of its own) and its log does not say so")
		}
	} else {
		if !strings.HasSuffix(mine, " nice -20") {
			t.Errorf("manager autogroup %q, want nice -20", mine)
		}
		for _, pid := range pids {
			if ag := autogroup(t, pid); !strings.HasSuffix(ag, " nice 0") || ag == mine {
				t.Errorf("instance %d autogroup %q, want its own at nice 0", pid, ag)
			}
		}
	}

	creds, err := m.Client.Credentials(ctx, "orders")
	if err != nil || len(creds.Password) < 32 || creds.SentinelPassword == "" || creds.Password == creds.SentinelPassword {
		t.Fatalf("credentials %v %+v", err, creds)
	}
	// The password is never stored in plain text in the database files
	// (TestSecretsAtRest looks everywhere else too).
	for _, f := range []string{"manager.db", "manager.db-wal"} {
		db, err := os.ReadFile(filepath.Join(m.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(db, []byte(creds.Password)) {
			t.Fatalf("cluster password found in plain text in %s", f)
		}
	}

	for shard, masterName := range cl.Connection.MasterNames {
		fc := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: masterName, SentinelAddrs: cl.Connection.Sentinels,
			Password: creds.Password, SentinelPassword: creds.SentinelPassword, Protocol: 2,
		})
		defer fc.Close()
		for i := 0; i < 100; i++ {
			if err := fc.Set(ctx, fmt.Sprintf("k%d", i), fmt.Sprintf("shard%d-v%d", shard, i), 0).Err(); err != nil {
				t.Fatalf("write through Sentinel to %s: %v", masterName, err)
			}
		}
		if n, err := fc.Do(ctx, "WAIT", 2, 5000).Int(); err != nil || n != 2 {
			t.Fatalf("WAIT 2: %d %v", n, err)
		}
		sh := cl.Status.Shards[shard]
		if got := fc.Options().Addr; got != "" && got != sh.Master.Address {
			t.Logf("failover client dialled %s", got)
		}
		rc := redis.NewClient(&redis.Options{Addr: sh.Replicas[0].Address, Password: creds.Password, Protocol: 2})
		defer rc.Close()
		for i := 0; i < 100; i++ {
			v, err := rc.Get(ctx, fmt.Sprintf("k%d", i)).Result()
			if err != nil || v != fmt.Sprintf("shard%d-v%d", shard, i) {
				t.Fatalf("read k%d from replica %s: %q %v", i, sh.Replicas[0].Address, v, err)
			}
		}
		// Writes to a replica are refused: it really is a replica.
		if err := rc.Set(ctx, "x", "y", 0).Err(); err == nil {
			t.Fatal("replica accepted a write")
		}
	}

	// The status JSON reports the keys written.
	cl = m.WaitPhase(ctx, "orders", api.PhaseReady, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for cl.Status.Shards[0].Master.Keys != 100 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		cl, _ = m.Client.GetCluster(ctx, "orders")
	}
	if cl.Status.Shards[0].Master.Keys != 100 {
		t.Errorf("status reports %d keys on shard 0, want 100", cl.Status.Shards[0].Master.Keys)
	}

	job, err := m.Client.DeleteCluster(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(ctx, job.ID)
	if _, err := m.Client.GetCluster(ctx, "orders"); !api.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
	if pids := testenv.InstancePids(m.DataDir); len(pids) != 0 {
		t.Fatalf("processes left after delete: %v", pids)
	}
	if entries, _ := os.ReadDir(filepath.Join(m.DataDir, "instances")); len(entries) != 0 {
		t.Fatalf("instance data left after delete: %v", entries)
	}
	evs, err := m.Client.ClusterEvents(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if fmt.Sprint(types) != "[deleted created]" {
		t.Errorf("events newest first: %v", types)
	}
}

// pidsOf returns the instance pids a status reports, sorted.
func pidsOf(cl api.Cluster) []int {
	var pids []int
	for _, sh := range cl.Status.Shards {
		if sh.Master != nil {
			pids = append(pids, sh.Master.Pid)
		}
		for _, r := range sh.Replicas {
			pids = append(pids, r.Pid)
		}
	}
	for _, s := range cl.Status.Sentinels {
		pids = append(pids, s.Pid)
	}
	sort.Ints(pids)
	return pids
}

// autogroup reads /proc/PID/autogroup ("/autogroup-N nice K").
func autogroup(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/autogroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
