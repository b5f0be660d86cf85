package e2e

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// rotWriter writes through fresh connections (a new one every ten writes,
// as short-lived clients do) with a password it reads from pw, and counts
// acknowledged and refused writes.
type rotWriter struct {
	name  string
	addr  string
	pw    atomic.Pointer[string]
	acked atomic.Int64
	mu    sync.Mutex
	errs  []string
}

func (w *rotWriter) run(ctx context.Context) {
	for seq := 0; ctx.Err() == nil; {
		pw := *w.pw.Load()
		c := redis.NewClient(&redis.Options{Addr: w.addr, Password: pw, PoolSize: 1, MaxRetries: -1})
		for i := 0; i < 10 && ctx.Err() == nil; i++ {
			seq++
			err := c.Set(ctx, fmt.Sprintf("%s:%d", w.name, seq), pw[:6], 0).Err()
			switch {
			case err == nil:
				w.acked.Add(1)
			case ctx.Err() == nil:
				w.mu.Lock()
				w.errs = append(w.errs, err.Error())
				w.mu.Unlock()
			}
		}
		c.Close()
	}
}

func (w *rotWriter) errors() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.errs...)
}

// TestRotateCredentialsWithoutDowntime: two clients write all along, one
// with the old password and one that moves to the new one; no write is
// refused before the old password is removed, the old one is refused
// after, replication and the Sentinels work with the new one, and no
// process restarts.
func TestRotateCredentialsWithoutDowntime(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	cl := createReady(t, m, api.CreateClusterRequest{Name: "rot"})
	ctx := context.Background()
	before, err := m.Client.Credentials(ctx, "rot")
	if err != nil {
		t.Fatal(err)
	}
	pids := testenv.InstancePids(m.DataDir)
	slices.Sort(pids)
	master := cl.Status.Shards[0].Master.Address

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	oldW := &rotWriter{name: "old", addr: master}
	newW := &rotWriter{name: "new", addr: master}
	oldW.pw.Store(&before.Password)
	newW.pw.Store(&before.Password)
	var wg sync.WaitGroup
	for _, w := range []*rotWriter{oldW, newW} {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx) }()
	}
	time.Sleep(300 * time.Millisecond)

	// A second rotation, or a finish, while none is in grace: 409.
	if _, err := m.Client.FinishRotation(ctx, "rot"); !isStatus(err, http.StatusConflict) {
		t.Errorf("finish without a rotation: %v, want 409", err)
	}
	grace := int64(120000)
	job, err := m.Client.RotateCredentials(ctx, "rot", &grace)
	if err != nil {
		t.Fatal(err)
	}
	if j := m.WaitJob(ctx, job.ID); j.State != api.StateSucceeded {
		t.Fatalf("rotation: %s %s", j.State, j.Error)
	}
	after, err := m.Client.Credentials(ctx, "rot")
	if err != nil {
		t.Fatal(err)
	}
	if after.Password == before.Password || after.PreviousPassword != before.Password || after.PreviousPasswordValidUntil == nil ||
		after.SentinelPassword == before.SentinelPassword || after.PreviousSentinelPassword != before.SentinelPassword {
		t.Fatalf("credentials after the switch: new=%v previous=%v until %v; sentinel new=%v previous=%v", after.Password != before.Password,
			after.PreviousPassword == before.Password, after.PreviousPasswordValidUntil,
			after.SentinelPassword != before.SentinelPassword, after.PreviousSentinelPassword == before.SentinelPassword)
	}
	// During the grace period the Sentinels accept both of their passwords,
	// and a Sentinel-aware client finds the master with either.
	for _, spw := range []string{before.SentinelPassword, after.SentinelPassword} {
		fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "rot-0", SentinelAddrs: sentinelAddrs(cl),
			SentinelPassword: spw, Password: after.Password})
		if err := fc.Set(ctx, "via-sentinel", "x", 0).Err(); err != nil {
			t.Errorf("write through Sentinels with the %s Sentinel password during the grace period: %v", map[bool]string{true: "old", false: "new"}[spw == before.SentinelPassword], err)
		}
		fc.Close()
	}
	if _, err := m.Client.RotateCredentials(ctx, "rot", nil); !isStatus(err, http.StatusConflict) {
		t.Errorf("a second rotation during the grace period: %v, want 409", err)
	}
	newW.pw.Store(&after.Password)
	time.Sleep(500 * time.Millisecond)

	// Replicas reconnect with the new masterauth, Sentinels with the new
	// auth-pass: their connections are cut and must come back.
	mc := redis.NewClient(&redis.Options{Addr: master, Password: after.Password})
	defer mc.Close()
	if err := mc.Do(ctx, "client", "kill", "type", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	clients, err := mc.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(clients, "\n") {
		if strings.Contains(line, " name=sentinel-") {
			id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
			_ = mc.Do(ctx, "client", "kill", "id", id).Err()
		}
	}
	time.Sleep(200 * time.Millisecond)
	m.WaitPhase(ctx, "rot", api.PhaseReady, 20*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := mc.Info(ctx, "replication").Result()
		if strings.Contains(info, "connected_slaves:2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not come back with the new password:\n%s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Up to here nothing was refused, on either password.
	stopOld := oldW.acked.Load()
	for _, w := range []*rotWriter{oldW, newW} {
		if errs := w.errors(); len(errs) > 0 {
			t.Errorf("writer on the %s password: %d refused writes before the old password was removed, first: %s", w.name, len(errs), errs[0])
		}
	}
	if oldW.acked.Load() < 100 || newW.acked.Load() < 100 {
		t.Fatalf("too few writes to show anything: old %d, new %d", oldW.acked.Load(), newW.acked.Load())
	}

	// Finish: the old password is refused from now on; the new one works.
	fj, err := m.Client.FinishRotation(ctx, "rot")
	if err != nil {
		t.Fatal(err)
	}
	if j := m.WaitJob(ctx, fj.ID); j.State != api.StateSucceeded {
		t.Fatalf("finish: %s %s", j.State, j.Error)
	}
	stop()
	wg.Wait()
	if n := oldW.acked.Load() - stopOld; n == 0 {
		t.Errorf("the old-password writer wrote nothing during the grace period")
	}
	if errs := newW.errors(); len(errs) > 0 {
		t.Errorf("writer on the new password: %d refused writes, first: %s", len(errs), errs[0])
	}
	r, err := m.Client.GetCluster(ctx, "rot")
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{r.Status.Shards[0].Master.Address}
	for _, rep := range r.Status.Shards[0].Replicas {
		addrs = append(addrs, rep.Address)
	}
	for _, a := range addrs {
		old := redis.NewClient(&redis.Options{Addr: a, Password: before.Password, MaxRetries: -1})
		if err := old.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Errorf("%s: PING with the old password after the finish = %v, want WRONGPASS", a, err)
		}
		old.Close()
		cur := redis.NewClient(&redis.Options{Addr: a, Password: after.Password})
		if err := cur.Ping(ctx).Err(); err != nil {
			t.Errorf("%s: PING with the new password: %v", a, err)
		}
		cur.Close()
	}
	for _, sa := range sentinelAddrs(cl) {
		old := redis.NewSentinelClient(&redis.Options{Addr: sa, Password: before.SentinelPassword, MaxRetries: -1})
		if err := old.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Errorf("Sentinel %s: PING with the old Sentinel password after the finish = %v, want WRONGPASS", sa, err)
		}
		old.Close()
		cur := redis.NewSentinelClient(&redis.Options{Addr: sa, Password: after.SentinelPassword})
		if err := cur.Ping(ctx).Err(); err != nil {
			t.Errorf("Sentinel %s: PING with the new Sentinel password: %v", sa, err)
		}
		cur.Close()
	}
	final, _ := m.Client.Credentials(ctx, "rot")
	if final.PreviousPassword != "" || final.PreviousSentinelPassword != "" || final.Password != after.Password {
		t.Errorf("credentials after the finish still show a previous password")
	}
	now := testenv.InstancePids(m.DataDir)
	slices.Sort(now)
	if !reflect.DeepEqual(now, pids) {
		t.Errorf("instance pids changed: before %v, after %v (something restarted)", pids, now)
	}
	// A planned failover needs the Sentinels and replicas on the new
	// password all the way.
	fo, err := m.Client.Failover(ctx, "rot", 0)
	if err != nil {
		t.Fatal(err)
	}
	if j := m.WaitJob(ctx, fo.ID); j.State != api.StateSucceeded {
		t.Fatalf("planned failover after the rotation: %s %s", j.State, j.Error)
	}
	m.WaitPhase(ctx, "rot", api.PhaseReady, 30*time.Second)
	t.Logf("writes acknowledged: old password %d, new password %d; pids unchanged %v", oldW.acked.Load(), newW.acked.Load(), pids)
}

// TestRotationGraceEnds: with a short grace period, the manager removes
// the old password by itself.
func TestRotationGraceEnds(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	cl := createReady(t, m, api.CreateClusterRequest{Name: "grace", Replicas: intp(1), Sentinels: intp(1)})
	ctx := context.Background()
	before, _ := m.Client.Credentials(ctx, "grace")
	grace := int64(1500)
	job, err := m.Client.RotateCredentials(ctx, "grace", &grace)
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(ctx, job.ID)
	addr := cl.Status.Shards[0].Master.Address
	old := redis.NewClient(&redis.Options{Addr: addr, Password: before.Password, MaxRetries: -1})
	defer old.Close()
	if err := old.Ping(ctx).Err(); err != nil {
		t.Fatalf("old password refused during the grace period: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := redis.NewClient(&redis.Options{Addr: addr, Password: before.Password, MaxRetries: -1})
		err := c.Ping(ctx).Err()
		c.Close()
		if err != nil && strings.Contains(err.Error(), "WRONGPASS") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old password is still accepted 15 s after a 1.5 s grace period: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The finish job records its event once the passwords are removed.
	var types []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		evs, _ := m.Client.ClusterEvents(ctx, "grace")
		types = types[:0]
		for _, e := range evs {
			types = append(types, e.Type)
		}
		if slices.Contains(types, "credentials-rotated") && slices.Contains(types, "credentials-rotation-finished") {
			return
		}
	}
	t.Errorf("events %v, want credentials-rotated and credentials-rotation-finished", types)
}

func sentinelAddrs(cl api.Cluster) []string {
	var out []string
	for _, s := range cl.Status.Sentinels {
		out = append(out, s.Address)
	}
	return out
}
