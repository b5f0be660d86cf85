package e2e

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestHostRange: with REDIS_MANAGER_HOST_RANGE (--host-range) every
// instance gets its own loopback address: it binds it, announces it, and
// connects to others from it (so a packet filter on that address cuts it
// off both ways). The cluster is Ready, every address in the status is an
// instance's own, and a killed master fails over to a replica on another
// address and comes back as a replica on its own.
func TestHostRange(t *testing.T) {
	t.Parallel()
	const first, last = "127.0.3.1", "127.0.3.40"
	m := testenv.StartManager(t, testenv.ManagerOptions{Env: []string{"REDIS_MANAGER_HOST_RANGE=" + first + "-" + last}})
	ctx := context.Background()
	lo, hi := portRangeOf(t, m)
	cl := createReady(t, m, api.CreateClusterRequest{Name: "hr"})
	testenv.CheckStatus(t, cl, 1, 2, 3)
	creds, err := m.Client.Credentials(ctx, "hr")
	if err != nil {
		t.Fatal(err)
	}

	inRange := func(a string) string {
		t.Helper()
		h, p, err := net.SplitHostPort(a)
		port, _ := strconv.Atoi(p)
		ip, perr := netip.ParseAddr(h)
		if err != nil || perr != nil || ip.Less(netip.MustParseAddr(first)) || netip.MustParseAddr(last).Less(ip) || port < lo || port > hi {
			t.Errorf("address %q is not in --host-range %s-%s with a port in %d-%d", a, first, last, lo, hi)
		}
		return h
	}
	hosts := map[string]string{}
	own := func(name, a string) {
		if other, ok := hosts[inRange(a)]; ok && other != name {
			t.Errorf("%s and %s share the address %s", name, other, a)
		}
		hosts[inRange(a)] = name
	}
	sh := cl.Status.Shards[0]
	own(sh.Master.Name, sh.Master.Address)
	for _, r := range sh.Replicas {
		own(r.Name, r.Address)
	}
	for _, s := range cl.Status.Sentinels {
		own(s.Name, s.Address)
	}
	if len(hosts) != 6 {
		t.Fatalf("6 instances on %d addresses: %v", len(hosts), hosts)
	}
	for _, s := range cl.Connection.Sentinels {
		inRange(s)
	}

	// Each redis-server binds and announces its own address, and its
	// replication connection leaves from it.
	master := redis.NewClient(&redis.Options{Addr: sh.Master.Address, Password: creds.Password, Protocol: 2, DisableIdentity: true})
	defer master.Close()
	for _, in := range append([]api.InstanceStatus{*sh.Master}, sh.Replicas...) {
		c := redis.NewClient(&redis.Options{Addr: in.Address, Password: creds.Password, Protocol: 2, DisableIdentity: true})
		host, _, _ := net.SplitHostPort(in.Address)
		for _, key := range []string{"bind", "bind-source-addr", "replica-announce-ip"} {
			if v, err := c.ConfigGet(ctx, key).Result(); err != nil || v[key] != host {
				t.Errorf("%s: CONFIG GET %s = %v, %v; want %s", in.Name, key, v, err, host)
			}
		}
		c.Close()
	}
	list, err := master.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sh.Replicas {
		host, _, _ := net.SplitHostPort(r.Address)
		if !strings.Contains(list, "addr="+host+":") {
			t.Errorf("no connection to the master from %s's address %s:\n%s", r.Name, host, list)
		}
	}
	// The master's view of its replicas names their own addresses.
	info, err := master.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sh.Replicas {
		host, port, _ := net.SplitHostPort(r.Address)
		if !strings.Contains(info, "ip="+host+",port="+port+",") {
			t.Errorf("master's INFO replication does not list %s as %s:\n%s", r.Name, r.Address, info)
		}
	}

	// A killed master fails over; it comes back as a replica on its own
	// address.
	old := *sh.Master
	killedAt := time.Now()
	kill9(t, old.Pid)
	ev := waitEvent(t, m, "hr", "failover", killedAt, 15*time.Second)
	t.Logf("failover event %.1fs after the kill: %s (fast: %v)", time.Since(killedAt).Seconds(), ev.Message, ev.Details["fast"])
	if ev.Details["oldMaster"] != old.Address {
		t.Errorf("failover event: %v, want oldMaster %s", ev.Details, old.Address)
	}
	cl = m.WaitPhase(ctx, "hr", api.PhaseReady, 30*time.Second)
	t.Logf("Ready %.1fs after the kill", time.Since(killedAt).Seconds())
	testenv.CheckStatus(t, cl, 1, 2, 3)
	sh = cl.Status.Shards[0]
	if sh.Master.Address == old.Address || hosts[inRange(sh.Master.Address)] != sh.Master.Name {
		t.Errorf("master after the failover: %s at %s (before: %v)", sh.Master.Name, sh.Master.Address, hosts)
	}
	back := false
	for _, r := range sh.Replicas {
		back = back || (r.Name == old.Name && r.Address == old.Address)
	}
	if !back {
		t.Errorf("old master %s is not a replica at %s: %+v", old.Name, old.Address, sh.Replicas)
	}
	checkSentinelsExact(t, cl, creds)
}
