package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func kill9(t *testing.T, pid int) {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("bad pid %d", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
}

// waitEvent waits for an event of the type newer than since.
func waitEvent(t *testing.T, m *testenv.Manager, cluster, typ string, since time.Time, timeout time.Duration) api.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		evs, _ := m.Client.ClusterEvents(context.Background(), cluster)
		for _, e := range evs {
			if e.Type == typ && !e.At.Before(since.Truncate(time.Second)) {
				return e
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %s event within %s", typ, timeout)
	return api.Event{}
}

// TestKillMasterUnderWrites: kill -9 the master while a Sentinel-aware
// client writes with WAIT 1. A replica is promoted, writes resume, the old
// master comes back as a replica, every acknowledged write survives, the
// failover is recorded, and Sentinel's view is exact.
func TestKillMasterUnderWrites(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "km"})
	creds, _ := m.Client.Credentials(ctx, "km")
	w := startWriterWait(t, cl, creds, 0, "k", 1)
	time.Sleep(500 * time.Millisecond)
	old := *cl.Status.Shards[0].Master
	killedAt := time.Now()
	kill9(t, old.Pid)

	ev := waitEvent(t, m, "km", "failover", killedAt, 15*time.Second)
	if ev.Details["oldMaster"] != old.Address || ev.Details["newMaster"] == nil || ev.Details["writeUnavailableMs"] == nil {
		t.Errorf("failover event details: %v", ev.Details)
	}
	t.Logf("failover event: %s", ev.Message)
	cl = m.WaitPhase(ctx, "km", api.PhaseReady, 30*time.Second)
	restored := time.Since(killedAt)
	testenv.CheckStatus(t, cl, 1, 2, 3)
	if cl.Status.Shards[0].Master.Address == old.Address {
		t.Fatal("the killed master is master again")
	}
	var back bool
	for _, r := range cl.Status.Shards[0].Replicas {
		back = back || r.Address == old.Address
	}
	if !back {
		t.Fatalf("old master %s is not a replica now", old.Address)
	}
	w.waitResumed(t, killedAt, 10*time.Second)
	time.Sleep(300 * time.Millisecond) // writes resumed on the new master
	acked, errs := w.Stop()
	t.Logf("replica count back to spec %.1fs after the kill; %d writes acknowledged with WAIT 1, %d failed during the failover", restored.Seconds(), len(acked), len(errs))
	checkNoLoss(t, m, "km", creds, lossCheck{Shard: 0, Writes: acked, Min: 50, Fault: killedAt, MinAfter: 20, Replicas: 2})
	checkSentinelsExact(t, cl, creds)
	waitEvent(t, m, "km", "instance-replaced", killedAt, 5*time.Second)
}

// TestKillReplicaAndSentinels: a killed replica, a killed Sentinel, and two
// Sentinels killed one after another all come back; quorum is kept.
func TestKillReplicaAndSentinels(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "kr"})
	creds, _ := m.Client.Credentials(ctx, "kr")

	kill9(t, cl.Status.Shards[0].Replicas[1].Pid)
	cl = waitRecovered(t, m, "kr", cl)
	testenv.CheckStatus(t, cl, 1, 2, 3)

	kill9(t, cl.Status.Sentinels[0].Pid)
	cl = waitRecovered(t, m, "kr", cl)
	testenv.CheckStatus(t, cl, 1, 2, 3)

	kill9(t, cl.Status.Sentinels[1].Pid)
	time.Sleep(200 * time.Millisecond)
	kill9(t, cl.Status.Sentinels[2].Pid)
	cl = waitRecovered(t, m, "kr", cl)
	testenv.CheckStatus(t, cl, 1, 2, 3)
	checkSentinelsExact(t, cl, creds)

	// The recovered Sentinels still fail the shard over (once the repair
	// job is done: a second job on a cluster is refused with 409).
	m.WaitJob(ctx, failoverWhenIdle(t, m, "kr", 0).ID)
}

// waitRecovered waits until the cluster is Ready with a pid set different
// from before (something was restarted).
func waitRecovered(t *testing.T, m *testenv.Manager, name string, before api.Cluster) api.Cluster {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		cl, err := m.Client.GetCluster(context.Background(), name)
		if err == nil && cl.Status.Phase == api.PhaseReady && fmt.Sprint(pidsOf(cl)) != fmt.Sprint(pidsOf(before)) {
			return cl
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not recover", name)
	return api.Cluster{}
}

// TestKillManagerDuringFailover: the master dies and the manager dies right
// after; Sentinel fails over without it, and the restarted manager brings
// the old master back as a replica.
func TestKillManagerDuringFailover(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "kmf", Replicas: intp(1), Sentinel: &api.SentinelRequest{DownAfterMs: intp(1000)}})
	creds, _ := m.Client.Credentials(ctx, "kmf")
	old := *cl.Status.Shards[0].Master
	kill9(t, old.Pid)
	m.Kill()
	// Sentinel alone promotes the replica.
	waitSentinelNames(t, cl, creds.SentinelPassword, "kmf-0", old.Address)
	m.Restart()
	cl = m.WaitPhase(ctx, "kmf", api.PhaseReady, 30*time.Second)
	testenv.CheckStatus(t, cl, 1, 1, 3)
	if cl.Status.Shards[0].Replicas[0].Address != old.Address {
		t.Fatalf("old master %s not back as the replica: %+v", old.Address, cl.Status.Shards[0])
	}
}

// waitSentinelNames waits until a Sentinel names a master other than old.
func waitSentinelNames(t *testing.T, cl api.Cluster, sentinelPassword, name, old string) string {
	t.Helper()
	creds := cl.Connection
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range creds.Sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: s, Password: sentinelPassword, Protocol: 2})
			res, err := sc.GetMasterAddrByName(ctx, name).Result()
			sc.Close()
			if err == nil && len(res) == 2 && res[0]+":"+res[1] != old {
				return res[0] + ":" + res[1]
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("Sentinels still name %s", old)
	return ""
}

// TestOldMasterWithEmptyDataDir: the master dies while the manager is down,
// Sentinel fails over, and the old master's data dir is wiped. Started again
// (by the manager, and by hand from its old config as a master), it must not
// wipe the new master's data.
func TestOldMasterWithEmptyDataDir(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "em", Replicas: intp(1), Sentinel: &api.SentinelRequest{DownAfterMs: intp(1000)}})
	creds, _ := m.Client.Credentials(ctx, "em")
	old := *cl.Status.Shards[0].Master
	writes := writeAcked(t, old.Address, creds.Password, "k", 0, 1000)

	m.Kill()
	kill9(t, old.Pid)
	newMaster := waitSentinelNames(t, cl, creds.SentinelPassword, "em-0", old.Address)
	dir := filepath.Join(m.DataDir, "instances", "em", old.Name)
	if err := os.Remove(filepath.Join(dir, "dump.rdb")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	// Someone starts it by hand from the config it had as master.
	cmd := exec.Command("redis-server", filepath.Join(dir, "redis.conf"))
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	m.Restart()
	cl = m.WaitPhase(ctx, "em", api.PhaseReady, 30*time.Second)
	if cl.Status.Shards[0].Master.Address != newMaster {
		t.Fatalf("master %s, want %s", cl.Status.Shards[0].Master.Address, newMaster)
	}
	nc := redis.NewClient(&redis.Options{Addr: newMaster, Password: creds.Password, Protocol: 2})
	defer nc.Close()
	if n, _ := nc.DBSize(ctx).Result(); n != 1000 {
		t.Fatalf("new master holds %d keys, want 1000: the empty old master wiped data", n)
	}
	fault := time.Now()
	writes = append(writes, writeAcked(t, newMaster, creds.Password, "k", 1000, 100)...)
	checkNoLoss(t, m, "em", creds, lossCheck{Shard: 0, Writes: writes, Min: 1100, Fault: fault, MinAfter: 100, Replicas: 1})

	// Now the manager itself restarts the old master with an empty dir.
	kill9(t, cl.Status.Shards[0].Replicas[0].Pid)
	time.Sleep(100 * time.Millisecond)
	os.Remove(filepath.Join(dir, "dump.rdb"))
	cl = waitRecovered(t, m, "em", cl)
	if n, _ := nc.DBSize(ctx).Result(); n != 1100 {
		t.Fatalf("new master holds %d keys after the restart, want 1100", n)
	}
	fault = time.Now()
	writes = append(writes, writeAcked(t, newMaster, creds.Password, "k", 1100, 100)...)
	checkNoLoss(t, m, "em", creds, lossCheck{Shard: 0, Writes: writes, Min: 1200, Fault: fault, MinAfter: 100, Replicas: 1})
}

// writeAcked writes keys prefix:from .. prefix:from+n-1 with unique values
// to a master, waits until a replica has them (WAIT 1), and returns them as
// acknowledged writes.
func writeAcked(t *testing.T, addr, password, prefix string, from, n int) []write {
	t.Helper()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, Protocol: 2})
	defer c.Close()
	out := make([]write, 0, n)
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := from; i < from+n; i++ {
			w := write{Key: fmt.Sprintf("%s%d", prefix, i), Val: uniqueValue(prefix, i)}
			p.Set(ctx, w.Key, w.Val, 0)
			out = append(out, w)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("write to %s: %v", addr, err)
	}
	if got, err := c.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || got < 1 {
		t.Fatalf("WAIT 1 on %s: %d %v", addr, got, err)
	}
	now := time.Now()
	for i := range out {
		out[i].At = now
	}
	return out
}

// failoverWhenIdle asks for a planned failover, retrying while another job
// (a repair) holds the cluster.
func failoverWhenIdle(t *testing.T, m *testenv.Manager, name string, shard int) api.Job {
	t.Helper()
	var job api.Job
	testenv.WhenIdle(t, "failover", func() (err error) {
		job, err = m.Client.Failover(context.Background(), name, shard)
		return err
	})
	return job
}

// TestMinReplicasToWrite: with minReplicasToWrite 1, a master that lost its
// only replica refuses writes (instead of taking writes a failover would
// lose), and accepts them again once the manager brought the replica back.
func TestMinReplicasToWrite(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "mr", Replicas: intp(1), MinReplicasToWrite: intp(1),
		Sentinel: &api.SentinelRequest{DownAfterMs: intp(4000)}})
	if cl.Spec.MinReplicasToWrite != 1 {
		t.Fatalf("spec %+v", cl.Spec)
	}
	creds, _ := m.Client.Credentials(ctx, "mr")
	mc := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Master.Address, Password: creds.Password, Protocol: 2})
	defer mc.Close()
	got, _ := mc.ConfigGet(ctx, "min-replicas-*").Result()
	if got["min-replicas-to-write"] != "1" || got["min-replicas-max-lag"] != "2" {
		t.Fatalf("config %v", got)
	}
	if err := mc.Set(ctx, "a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	m.Kill() // no repair while we look
	kill9(t, cl.Status.Shards[0].Replicas[0].Pid)
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = mc.Set(ctx, "b", "1", 0).Err(); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil || !strings.Contains(err.Error(), "NOREPLICAS") {
		t.Fatalf("write without a replica: %v, want NOREPLICAS", err)
	}
	m.Restart()
	m.WaitPhase(ctx, "mr", api.PhaseReady, 30*time.Second)
	if err := mc.Set(ctx, "c", "1", 0).Err(); err != nil {
		t.Fatalf("write after the replica is back: %v", err)
	}
}

// TestKillMasterUnderPipelinedWriters kills the master of a shard several
// times while four writers each send pipelines of 50 SETs followed by
// WAIT 1. Replicas then often differ in offset at the moment of death, so
// the fast path sometimes forces the failover at once and sometimes leaves
// it to Sentinel; either way no acknowledged write may be lost. The test
// logs how often each path was taken.
func TestKillMasterUnderPipelinedWriters(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "pw", Sentinel: &api.SentinelRequest{DownAfterMs: intp(2000)}})
	creds, _ := m.Client.Credentials(ctx, "pw")

	var mu sync.Mutex
	var acked []write
	lastAck := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) == 0 {
			return time.Time{}
		}
		return acked[len(acked)-1].At
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redis.NewFailoverClient(&redis.FailoverOptions{
				MasterName: "pw-0", SentinelAddrs: cl.Connection.Sentinels, Password: creds.Password,
				SentinelPassword: creds.SentinelPassword, Protocol: 2, DialTimeout: 300 * time.Millisecond,
				ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1,
			})
			defer c.Close()
			for batch := 0; ; batch++ {
				select {
				case <-stop:
					return
				default:
				}
				ws := make([]write, 50)
				cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
					for i := range ws {
						ws[i] = write{Key: fmt.Sprintf("w%d:%d:%d", w, batch, i), Val: uniqueValue(fmt.Sprintf("w%d:%d", w, batch), i)}
						p.Set(ctx, ws[i].Key, ws[i].Val, 0)
					}
					p.Do(ctx, "WAIT", 1, 1000)
					return nil
				})
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if n, _ := cmds[len(cmds)-1].(*redis.Cmd).Int(); n >= 1 {
					now := time.Now()
					mu.Lock()
					for i := range ws {
						ws[i].At = now
					}
					acked = append(acked, ws...)
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond) // bounded key count: the check reads them all back
			}
		}()
	}
	var killedAt time.Time
	for kill := 0; kill < 3; kill++ {
		time.Sleep(700 * time.Millisecond)
		killedAt = time.Now()
		kill9(t, cl.Status.Shards[0].Master.Pid)
		cl = waitSettled(t, m, "pw", killedAt, 60*time.Second)
		// Writes resumed before the next kill.
		for deadline := time.Now().Add(10 * time.Second); !lastAck().After(killedAt); {
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: no write acknowledged within 10s after the cluster settled", kill+1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	checkNoLoss(t, m, "pw", creds, lossCheck{Shard: 0, Writes: acked, Min: 1000, Fault: killedAt, MinAfter: 100, Replicas: 2})
	checkSentinelsExact(t, cl, creds)
	log := m.LogTail(100000)
	t.Logf("3 kills under 4 pipelined writers: %d acknowledged writes checked on every instance, 0 lost; fast failover forced %d times, declined (left to Sentinel) %d times",
		len(acked), strings.Count(log, "fast failover requested"), strings.Count(log, "fast failover declined"))
}
