package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/platform/fake"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/testenv"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// One SIGSTOPped redis-server and one listener that accepts and never
// answers (as a redis-server and as a Sentinel) delay their own cluster's
// observation by no more than the per-instance timeout, not the 2 s of
// the clients' ReadTimeout, and are reported down; another cluster
// observed at the same time, through the same bounded slots, is not
// delayed at all and is seen up.
func TestObserveSlowInstanceDelaysOnlyItself(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	dir := t.TempDir()
	st, err := store.Open(t.Context(), "sqlite://"+filepath.Join(dir, "manager.db"), filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// Four slots: the two hung reads hold two, the other cluster's three
	// reads share the other two.
	c := New(Config{InstanceTimeout: timeout, ObserveConcurrency: 4}, st, fake.New(fake.Options{}), slog.New(slog.DiscardHandler))
	t.Cleanup(c.pool.Close)

	lo, _ := testenv.PortRange(t, 5)
	boot := func(i int) store.Instance {
		d := filepath.Join(dir, fmt.Sprintf("r%d", i), "instances", "r")
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		port := lo + i
		if err := testenv.BootRedis(t, d, "redis.conf", fmt.Sprintf("port %d\nbind 127.0.0.1\nsave \"\"\n", port), port); err != nil {
			t.Fatal(err)
		}
		return store.Instance{Kind: store.KindRedis, Host: "127.0.0.1", Port: port, Ordinal: i}
	}
	var up []store.Instance
	for i := 0; i < 5; i++ {
		up = append(up, boot(i))
	}
	stopped := up[0]
	pids := testenv.InstancePids(filepath.Join(dir, "r0"))
	if len(pids) != 1 {
		t.Fatalf("pids of the first redis-server: %v", pids)
	}
	pid := pids[0]
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, conn) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		mu.Lock()
		for _, conn := range held {
			conn.Close()
		}
		mu.Unlock()
	})
	sp := silent.Addr().(*net.TCPAddr).Port
	silentRedis := store.Instance{Kind: store.KindRedis, Host: "127.0.0.1", Port: sp, Ordinal: 9}
	silentSentinel := store.Instance{Kind: store.KindSentinel, Host: "127.0.0.1", Port: sp, Shard: -1}

	slow := store.Cluster{Name: "slow", Spec: api.ClusterSpec{Shards: 1, Replicas: 2, Sentinels: 1}}
	quick := store.Cluster{Name: "quick", Spec: api.ClusterSpec{Shards: 1, Replicas: 2}}
	named := func(cl string, ins ...store.Instance) []store.Instance {
		out := make([]store.Instance, len(ins))
		for i, in := range ins {
			in.Cluster, in.Name = cl, cl+"-"+strconv.Itoa(in.Port)
			out[i] = in
		}
		return out
	}
	slowRedis := named("slow", stopped, up[1], silentRedis)
	slowSentinels := named("slow", silentSentinel)
	quickRedis := named("quick", up[2], up[3], up[4])

	for round := 0; round < 3; round++ {
		var slowObs, quickObs topology.Observation
		var slowTook, quickTook time.Duration
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			slowObs = c.observe(context.Background(), slow, slowRedis, slowSentinels)
			slowTook = time.Since(t0)
		}()
		go func() {
			defer wg.Done()
			t0 := time.Now()
			quickObs = c.observe(context.Background(), quick, quickRedis, nil)
			quickTook = time.Since(t0)
		}()
		wg.Wait()
		t.Logf("round %d: slow cluster observed in %s, quick one in %s (per-instance timeout %s)", round, slowTook, quickTook, timeout)
		// The stopped and the silent instance cost their cluster the
		// per-instance timeout, not the clients' 2 s ReadTimeout.
		if slowTook < timeout || slowTook > timeout+700*time.Millisecond {
			t.Errorf("round %d: the cluster with the stopped instance took %s, want the per-instance timeout %s (+ at most 700 ms)", round, slowTook, timeout)
		}
		// The other cluster waits for neither.
		if quickTook >= timeout {
			t.Errorf("round %d: the other cluster took %s, not less than the per-instance timeout %s", round, quickTook, timeout)
		}
		for _, o := range quickObs.Redis {
			if !o.Up || o.Info["role"] != "master" {
				t.Errorf("round %d: %s up=%v role %q, want up master", round, o.In.Name, o.Up, o.Info["role"])
			}
		}
		for _, o := range slowObs.Redis {
			want := o.In.Port == up[1].Port
			if o.Up != want {
				t.Errorf("round %d: %s up=%v, want %v", round, o.In.Name, o.Up, want)
			}
		}
		if so := slowObs.Sentinels[0]; so.Up || so.View != nil {
			t.Errorf("round %d: the silent Sentinel is up=%v with view %v", round, so.Up, so.View)
		}
		// As the API shows them.
		status := topology.Evaluate(slow.Spec, slow.Name, slowObs, "")
		for _, sh := range status.Shards {
			for _, in := range append([]api.InstanceStatus{deref(sh.Master)}, sh.Replicas...) {
				if in.Name == slowRedis[0].Name || in.Name == slowRedis[2].Name {
					if in.Up {
						t.Errorf("round %d: status shows %s up", round, in.Name)
					}
				}
			}
		}
		if len(status.Sentinels) != 1 || status.Sentinels[0].Up {
			t.Errorf("round %d: Sentinel statuses %+v, want the silent one down", round, status.Sentinels)
		}
	}
}

func deref(p *api.InstanceStatus) api.InstanceStatus {
	if p == nil {
		return api.InstanceStatus{}
	}
	return *p
}
