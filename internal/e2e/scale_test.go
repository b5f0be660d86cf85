package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// checkSentinelsExact asserts every Sentinel monitors exactly the shards
// of the status, lists exactly its replicas and knows exactly the other
// Sentinels: no stale entries anywhere.
func checkSentinelsExact(t *testing.T, cl api.Cluster, creds api.Credentials) {
	t.Helper()
	ctx := context.Background()
	var sentinelAddrs []string
	for _, s := range cl.Status.Sentinels {
		sentinelAddrs = append(sentinelAddrs, s.Address)
	}
	for _, s := range cl.Status.Sentinels {
		c := redis.NewClient(&redis.Options{Addr: s.Address, Password: creds.SentinelPassword, Protocol: 2})
		masters, err := c.Do(ctx, "sentinel", "masters").Slice()
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		var names []string
		for _, m := range masters {
			names = append(names, pairs(m)["name"])
		}
		sort.Strings(names)
		if fmt.Sprint(names) != fmt.Sprint(cl.Connection.MasterNames) {
			t.Errorf("%s monitors %v, want %v", s.Name, names, cl.Connection.MasterNames)
		}
		for _, sh := range cl.Status.Shards {
			var want, got []string
			for _, r := range sh.Replicas {
				want = append(want, r.Address)
			}
			reps, _ := c.Do(ctx, "sentinel", "replicas", sh.SentinelName).Slice()
			for _, r := range reps {
				p := pairs(r)
				got = append(got, net.JoinHostPort(p["ip"], p["port"]))
			}
			sort.Strings(want)
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s lists replicas %v of %s, want %v", s.Name, got, sh.SentinelName, want)
			}
			var others []string
			sents, _ := c.Do(ctx, "sentinel", "sentinels", sh.SentinelName).Slice()
			for _, o := range sents {
				p := pairs(o)
				others = append(others, net.JoinHostPort(p["ip"], p["port"]))
			}
			var wantOthers []string
			for _, a := range sentinelAddrs {
				if a != s.Address {
					wantOthers = append(wantOthers, a)
				}
			}
			sort.Strings(others)
			sort.Strings(wantOthers)
			if fmt.Sprint(others) != fmt.Sprint(wantOthers) {
				t.Errorf("%s knows Sentinels %v for %s, want %v", s.Name, others, sh.SentinelName, wantOthers)
			}
			m, _ := c.Do(ctx, "sentinel", "master", sh.SentinelName).Slice()
			if q := pairs(m)["quorum"]; q != fmt.Sprint(len(sentinelAddrs)/2+1) {
				t.Errorf("%s has quorum %s for %s with %d Sentinels", s.Name, q, sh.SentinelName, len(sentinelAddrs))
			}
		}
		c.Close()
	}
}

func pairs(v any) map[string]string {
	out := map[string]string{}
	list, _ := v.([]any)
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		out[k] = val
	}
	return out
}

// scaleTo runs a scale job, optionally killing the manager during it, and
// returns the Ready cluster.
func scaleTo(t *testing.T, m *testenv.Manager, name string, req api.UpdateClusterRequest, killAt string) api.Cluster {
	t.Helper()
	ctx := context.Background()
	res, err := m.Client.UpdateCluster(ctx, name, req)
	if err != nil {
		t.Fatalf("scale %s: %v", name, err)
	}
	if killAt != "" {
		waitStep(t, m, res.Job.ID, killAt)
		m.Kill()
		m.Restart()
	}
	m.WaitJob(ctx, res.Job.ID)
	return m.WaitPhase(ctx, name, api.PhaseReady, 20*time.Second)
}

func TestScaleUnderWriteLoad(t *testing.T) {
	t.Parallel()
	for _, kill := range []bool{false, true} {
		t.Run(fmt.Sprintf("kill=%v", kill), func(t *testing.T) {
			t.Parallel()
			m := testenv.StartManager(t, testenv.ManagerOptions{Ports: 60})
			ctx := context.Background()
			cl := createReady(t, m, api.CreateClusterRequest{Name: "sc"})
			creds, _ := m.Client.Credentials(ctx, "sc")
			w0 := startWriter(t, cl, creds, 0, "s0")
			killAt := func(steps ...string) string {
				if !kill {
					return ""
				}
				return steps[rand.IntN(len(steps))]
			}
			steps := []struct {
				req    api.UpdateClusterRequest
				killAt string
				check  func(api.Cluster)
			}{
				{api.UpdateClusterRequest{Replicas: intp(4)}, killAt("allocate-ports", "add-replicas"), func(cl api.Cluster) { testenv.CheckStatus(t, cl, 1, 4, 3) }},
				{api.UpdateClusterRequest{Replicas: intp(1)}, killAt("remove-replicas"), func(cl api.Cluster) { testenv.CheckStatus(t, cl, 1, 1, 3) }},
				{api.UpdateClusterRequest{Shards: intp(3)}, killAt("add-shards"), func(cl api.Cluster) { testenv.CheckStatus(t, cl, 3, 1, 3) }},
			}
			for _, s := range steps {
				cl = scaleTo(t, m, "sc", s.req, s.killAt)
				s.check(cl)
				checkSentinelsExact(t, cl, creds)
				w0.waitResumed(t, time.Now(), 10*time.Second)
			}
			w1 := startWriter(t, cl, creds, 1, "s1")
			time.Sleep(300 * time.Millisecond)
			w1.Stop()
			// Removing shards 1 and 2 drops their data: force is required.
			if _, err := m.Client.UpdateCluster(ctx, "sc", api.UpdateClusterRequest{Shards: intp(1)}); err == nil || !strings.Contains(err.Error(), "keys") {
				t.Fatalf("removing a shard with keys without force: %v", err)
			}
			cl = scaleTo(t, m, "sc", api.UpdateClusterRequest{Shards: intp(1), Force: true}, killAt("remove-shards"))
			testenv.CheckStatus(t, cl, 1, 1, 3)
			checkSentinelsExact(t, cl, creds)
			lastScale := time.Now()
			w0.waitResumed(t, lastScale, 10*time.Second)
			time.Sleep(200 * time.Millisecond)

			acked, errs := w0.Stop()
			if len(errs) > 0 {
				t.Errorf("%d write errors on shard 0 while scaling, first: %s", len(errs), errs[0])
			}
			checkNoLoss(t, m, "sc", creds, lossCheck{Shard: 0, Writes: acked, Min: 100, Fault: lastScale, MinAfter: 10, Replicas: 1})
			evs, _ := m.Client.ClusterEvents(ctx, "sc")
			scaled := 0
			for _, e := range evs {
				if e.Type == "scaled" && e.Details["before"] != nil && e.Details["after"] != nil {
					scaled++
				}
			}
			if scaled != 4 {
				t.Errorf("%d scaled events, want 4", scaled)
			}
		})
	}
}

func TestScaleSentinelsWithFailover(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	cl := createReady(t, m, api.CreateClusterRequest{Name: "sf", Replicas: intp(1)})
	creds, _ := m.Client.Credentials(ctx, "sf")
	w := startWriter(t, cl, creds, 0, "k")
	cl = scaleTo(t, m, "sf", api.UpdateClusterRequest{Sentinels: intp(5)}, "")
	testenv.CheckStatus(t, cl, 1, 1, 5)
	checkSentinelsExact(t, cl, creds)
	oldMaster := cl.Status.Shards[0].Master.Address

	job, err := m.Client.Failover(ctx, "sf", 0)
	if err != nil {
		t.Fatal(err)
	}
	// A scale while the failover job runs is refused.
	if _, err := m.Client.UpdateCluster(ctx, "sf", api.UpdateClusterRequest{Sentinels: intp(3)}); err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Errorf("scale during failover: %v", err)
	}
	m.WaitJob(ctx, job.ID)
	cl = m.WaitPhase(ctx, "sf", api.PhaseReady, 20*time.Second)
	if cl.Status.Shards[0].Master.Address == oldMaster {
		t.Fatalf("master still %s after failover", oldMaster)
	}
	if cl.Status.Shards[0].Replicas[0].Address != oldMaster {
		t.Fatalf("old master %s is not the replica now: %+v", oldMaster, cl.Status.Shards[0].Replicas)
	}

	cl = scaleTo(t, m, "sf", api.UpdateClusterRequest{Sentinels: intp(3)}, "")
	testenv.CheckStatus(t, cl, 1, 1, 3)
	checkSentinelsExact(t, cl, creds)

	// Failover still works with the reduced set, and the promoted master is
	// never removed by a later scale-in.
	job, err = m.Client.Failover(ctx, "sf", 0)
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(ctx, job.ID)
	cl = m.WaitPhase(ctx, "sf", api.PhaseReady, 20*time.Second)
	if cl.Status.Shards[0].Master.Address != oldMaster {
		t.Fatalf("second failover: master %s, want %s back", cl.Status.Shards[0].Master.Address, oldMaster)
	}
	fault := time.Now()
	w.waitResumed(t, fault, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	acked, errs := w.Stop()
	t.Logf("%d writes acknowledged, %d errors around the two failovers", len(acked), len(errs))
	checkNoLoss(t, m, "sf", creds, lossCheck{Shard: 0, Writes: acked, Min: 100, Fault: fault, MinAfter: 10, Replicas: 1})
	evs, _ := m.Client.ClusterEvents(ctx, "sf")
	failovers := 0
	for _, e := range evs {
		if e.Type == "failover" && e.Details["oldMaster"] != nil && e.Details["newMaster"] != nil {
			failovers++
		}
	}
	if failovers != 2 {
		t.Errorf("%d failover events, want 2", failovers)
	}
}

func TestScaleBadInput(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{Ports: 12})
	ctx := context.Background()
	createReady(t, m, api.CreateClusterRequest{Name: "sb", Replicas: intp(1)})
	creds, _ := m.Client.Credentials(ctx, "sb")
	cl, _ := m.Client.GetCluster(ctx, "sb")
	mc := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Master.Address, Password: creds.Password, Protocol: 2})
	defer mc.Close()
	// About 2 MB of data, so a 1mb maxmemory is below used_memory.
	big := strings.Repeat("x", 1000)
	for i := 0; i < 2000; i++ {
		mc.Set(ctx, fmt.Sprintf("big%d", i), big, 0)
	}
	cases := []struct {
		name, body string
		status     int
		field, has string
	}{
		{"negative replicas", `{"replicas":-1}`, 422, "replicas", ""},
		{"absurd shards", `{"shards":1000}`, 422, "shards", ""},
		{"even sentinels", `{"sentinels":4}`, 422, "sentinels", ""},
		{"more replicas than the port range holds", `{"replicas":9}`, 422, "shards", "ports"},
		{"maxmemory below used_memory", `{"maxmemory":"1mb"}`, 422, "maxmemory", "bytes shard 0 already uses"},
		{"unknown field", `{"masters":3}`, 400, "masters", ""},
		{"forbidden directive", `{"config":{"dir":"/tmp"}}`, 400, "config.dir", "managed by redis-manager"},
	}
	for _, c := range cases {
		status, eb := m.Call(t, "PATCH", "/api/v1/clusters/sb", m.Token, c.body)
		if status != c.status || eb.Error.Field != c.field || !strings.Contains(eb.Error.Message, c.has) {
			t.Errorf("%s: %d field %q %q", c.name, status, eb.Error.Field, eb.Error.Message)
		}
	}
	if status, _ := m.Call(t, "PATCH", "/api/v1/clusters/nope", m.Token, `{"replicas":1}`); status != 404 {
		t.Errorf("scale unknown cluster: %d", status)
	}
	// Nothing changed.
	after, _ := m.Client.GetCluster(ctx, "sb")
	testenv.CheckStatus(t, after, 1, 1, 3)
	if after.Spec.Maxmemory != "0" {
		t.Errorf("maxmemory changed to %q", after.Spec.Maxmemory)
	}
	if jobs, _ := m.Client.ListJobs(ctx, "sb"); len(jobs) != 1 {
		t.Errorf("%d jobs, want only the create", len(jobs))
	}
	// With force the memory change goes through, online.
	cl = scaleTo(t, m, "sb", api.UpdateClusterRequest{Maxmemory: strp("1mb"), MaxmemoryPolicy: strp("allkeys-lru"), Force: true}, "")
	for _, in := range append([]api.InstanceStatus{*cl.Status.Shards[0].Master}, cl.Status.Shards[0].Replicas...) {
		c := redis.NewClient(&redis.Options{Addr: in.Address, Password: creds.Password, Protocol: 2})
		got, _ := c.ConfigGet(ctx, "maxmemory*").Result()
		c.Close()
		if got["maxmemory"] != "1048576" || got["maxmemory-policy"] != "allkeys-lru" {
			t.Errorf("%s: %v", in.Name, got)
		}
		if in.Pid != cl.Status.Shards[0].Master.Pid && in.Role == "master" {
			t.Errorf("master restarted")
		}
	}
}

func strp(s string) *string { return &s }
