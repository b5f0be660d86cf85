package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// hooks sets the good and the broken receiver as the manager's webhooks.
func hooks(t *testing.T, m *testenv.Manager) (good, broken *receiver) {
	t.Helper()
	good = newReceiver(t, "good-webhook-secret", 200)
	broken = newReceiver(t, "broken-webhook-secret", 500)
	if _, err := m.Client.PutNotifications(context.Background(), api.Notifications{Webhooks: []api.Webhook{
		{Name: "ops", URL: good.URL, Secret: good.secret, Format: api.WebhookJSON},
		{Name: "broken", URL: broken.URL, Secret: broken.secret, Format: api.WebhookJSON},
	}}); err != nil {
		t.Fatal(err)
	}
	return good, broken
}

// settled waits until the cluster is Ready with every replica in the
// replica role and its link up.
func settled(t *testing.T, m *testenv.Manager, name string, timeout time.Duration) api.Cluster {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var cl api.Cluster
	for time.Now().Before(deadline) {
		var err error
		if cl, err = m.Client.GetCluster(context.Background(), name); err == nil && cl.Status.Phase == api.PhaseReady {
			ok := true
			for _, sh := range cl.Status.Shards {
				for _, r := range sh.Replicas {
					ok = ok && r.Up && r.Role == "replica" && r.MasterLinkStatus == "up"
				}
			}
			if ok {
				return cl
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not settled (Ready, every replica linked) in %v: %+v", name, timeout, cl.Status)
	return cl
}

// waitAlertSince waits for the alert of rule in state whose condition
// began after since.
func waitAlertSince(t *testing.T, m *testenv.Manager, cluster, rule, state string, since time.Time, timeout time.Duration) api.Alert {
	t.Helper()
	return waitAlertMatch(t, m, cluster, fmt.Sprintf("%s never %s after %v", rule, state, since), timeout, func(a api.Alert) bool {
		return a.Rule == rule && a.State == state && a.ActiveAt.After(since)
	})
}

// TestAlertsMasters: against real processes, a SIGSTOPped master leaves
// its shard without a master that answers (no-master fires after its
// forMs 1 s) until the Sentinels promote the replica (resolved); then a
// replica turned master by hand (REPLICAOF NO ONE) gives the shard two
// masters (two-masters fires at once) until the Sentinels or the manager
// make it a replica again (resolved). A receiver gets exactly one firing
// and one resolved delivery of each, signed; a failing one is retried,
// then recorded as failed.
func TestAlertsMasters(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	good, broken := hooks(t, m)
	cl := createReady(t, m, api.CreateClusterRequest{Name: "ms", Replicas: intp(2)})
	// The failover the stopped master causes raises the failover alert,
	// held 5 s so that it resolves before the deliveries are counted.
	second, zero, hold := int64(1000), int64(0), 5.0
	if _, err := m.Client.PutAlertRules(ctx, "ms", api.AlertRules{"no-master": {ForMs: &second}, "failover": {Threshold: &hold}}); err != nil {
		t.Fatal(err)
	}

	old := cl.Status.Shards[0].Master
	stopped := time.Now()
	if err := syscall.Kill(old.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(old.Pid, syscall.SIGCONT) })
	f := waitAlert(t, m, "ms", "no-master", "", api.AlertFiring, 20*time.Second)
	if f.Shard == nil || *f.Shard != 0 || f.Severity != "critical" || f.Since.Sub(f.ActiveAt) < time.Second {
		t.Errorf("no-master alert %+v: want shard 0, critical, firing at least forMs after pending", f)
	}
	r := waitAlert(t, m, "ms", "no-master", "", api.AlertResolved, 30*time.Second)
	t.Logf("no-master: firing %v, resolved %v after SIGSTOP of the master",
		f.Since.Sub(stopped).Round(time.Millisecond), r.Since.Sub(stopped).Round(time.Millisecond))
	_ = syscall.Kill(old.Pid, syscall.SIGCONT)
	// The old master runs as a master again for a moment (two masters,
	// pending only: two-masters has its default 30 s) until it is made a
	// replica of the new one.
	cl = settled(t, m, "ms", 40*time.Second)
	if cl.Status.Shards[0].Master.Name == old.Name {
		t.Fatalf("the stopped master %s is master again: no failover happened", old.Name)
	}

	// Two masters: the new rule settings replace the old (no-master keeps
	// its 1 s; two-masters fires at the first round that sees it).
	if _, err := m.Client.PutAlertRules(ctx, "ms", api.AlertRules{"no-master": {ForMs: &second}, "failover": {Threshold: &hold}, "two-masters": {ForMs: &zero}}); err != nil {
		t.Fatal(err)
	}
	creds, err := m.Client.Credentials(ctx, "ms")
	if err != nil {
		t.Fatal(err)
	}
	rogue := cl.Status.Shards[0].Replicas[0]
	rc := redis.NewClient(&redis.Options{Addr: rogue.Address, Password: creds.Password})
	defer rc.Close()
	if err := rc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	// The manager heals it within a round or two, so the firing state may
	// last less than a poll: a resolved alert that became active after
	// the REPLICAOF fired (a pending one that ends is removed, not
	// resolved), and its deliveries are counted below.
	r = waitAlertSince(t, m, "ms", "two-masters", api.AlertResolved, promoted, 45*time.Second)
	if r.Value != 2 || r.Shard == nil || *r.Shard != 0 {
		t.Errorf("two-masters alert %+v: want value 2, shard 0", r)
	}
	t.Logf("two-masters: active %v, resolved %v after REPLICAOF NO ONE on %s",
		r.ActiveAt.Sub(promoted).Round(time.Millisecond), r.Since.Sub(promoted).Round(time.Millisecond), rogue.Name)
	if role, err := rc.Do(ctx, "ROLE").Slice(); err != nil || len(role) == 0 || role[0] != "slave" {
		t.Errorf("%s after two-masters resolved: ROLE %v %v, want a replica again", rogue.Name, role, err)
	}

	waitAlert(t, m, "ms", "failover", "", api.AlertResolved, 20*time.Second)
	checkDeliveries(t, m, "ms", good, broken)
	for _, rule := range []string{"no-master", "two-masters", "failover"} {
		if good.count(rule, api.AlertFiring) != 1 || good.count(rule, api.AlertResolved) != 1 {
			t.Errorf("%s: want one firing and one resolved delivery", rule)
		}
	}
}

// TestAlertsBackupMissing: a schedule every 4 s whose backups fail (the
// target is a path under a regular file) has no successful backup within
// one period (backup-missing, threshold 1, fires) and its newest backup
// failed (backup-failed); once the target can be written, the next
// scheduled backup succeeds and both resolve. One firing and one resolved
// delivery of each, signed.
func TestAlertsBackupMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	blocker := filepath.Join(dir, "blocker")
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := testenv.StartManager(t, testenv.ManagerOptions{Args: []string{"--backup-target", "file://" + filepath.Join(blocker, "backups")}})
	ctx := context.Background()
	good, broken := hooks(t, m)
	createReady(t, m, api.CreateClusterRequest{Name: "bm", Replicas: intp(1)})
	one := 1.0
	if _, err := m.Client.PutAlertRules(ctx, "bm", api.AlertRules{"backup-missing": {Threshold: &one}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Client.PutBackupSchedule(ctx, "bm", api.BackupScheduleRequest{Cron: "*/4 * * * * *"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = m.Client.DeleteBackupSchedule(context.Background(), "bm") })
	set := time.Now()
	f := waitAlert(t, m, "bm", "backup-missing", "", api.AlertFiring, 30*time.Second)
	if age := f.Since.Sub(set); age < 4*time.Second-500*time.Millisecond {
		t.Errorf("backup-missing fired %v after the schedule was set, before one period (4 s)", age)
	}
	if f.Value < 4 {
		t.Errorf("backup-missing value %v, want the seconds without a backup (at least 4)", f.Value)
	}
	waitAlert(t, m, "bm", "backup-failed", "", api.AlertFiring, 30*time.Second)

	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	waitAlert(t, m, "bm", "backup-missing", "", api.AlertResolved, 30*time.Second)
	waitAlert(t, m, "bm", "backup-failed", "", api.AlertResolved, 30*time.Second)
	if _, err := m.Client.DeleteBackupSchedule(ctx, "bm"); err != nil {
		t.Fatal(err)
	}
	checkDeliveries(t, m, "bm", good, broken)
	for _, rule := range []string{"backup-missing", "backup-failed"} {
		if good.count(rule, api.AlertFiring) != 1 || good.count(rule, api.AlertResolved) != 1 {
			t.Errorf("%s: want one firing and one resolved delivery", rule)
		}
	}
}

// forkUsec runs BGSAVE on the instance, waits until it ends and returns its
// latest_fork_usec.
func forkUsec(t *testing.T, ctx context.Context, c *redis.Client) int64 {
	t.Helper()
	if err := c.BgSave(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		info, err := c.Info(ctx, "persistence", "stats").Result()
		if err != nil {
			t.Fatal(err)
		}
		fields := map[string]string{}
		for _, l := range strings.Split(info, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
				fields[k] = v
			}
		}
		if fields["rdb_bgsave_in_progress"] == "0" {
			n, _ := strconv.ParseInt(fields["latest_fork_usec"], 10, 64)
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("BGSAVE did not end in 60 s")
	return 0
}

// TestAlertsSlowFork: a replica holding 400 MB forks for its BGSAVE far
// slower than it did empty, because fork copies the page tables of all
// its memory: slow-fork fires for it (threshold set between the two
// figures as measured); after FLUSHALL and MEMORY PURGE its next BGSAVE
// forks fast again and the alert resolves. One firing and one resolved
// signed delivery.
func TestAlertsSlowFork(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	good, broken := hooks(t, m)
	// No save points: only the test's BGSAVEs fork, so the master never
	// forks with the 400 MB by itself (its slow fork would be another alert).
	none := "none"
	cl := createReady(t, m, api.CreateClusterRequest{Name: "sf", Replicas: intp(1), Persistence: none})
	creds, err := m.Client.Credentials(ctx, "sf")
	if err != nil {
		t.Fatal(err)
	}
	master, replica := cl.Status.Shards[0].Master, cl.Status.Shards[0].Replicas[0]
	mc := redis.NewClient(&redis.Options{Addr: master.Address, Password: creds.Password})
	defer mc.Close()
	rc := redis.NewClient(&redis.Options{Addr: replica.Address, Password: creds.Password})
	defer rc.Close()
	small := forkUsec(t, ctx, rc)
	masterFork := forkUsec(t, ctx, mc)

	value := strings.Repeat("v", 1<<20)
	pipe := mc.Pipeline()
	for i := 0; i < 400; i++ {
		pipe.Set(ctx, "big:"+strconv.Itoa(i), value, 0)
		if i%20 == 19 {
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, err := mc.Do(ctx, "WAIT", 1, 30000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d %v", n, err)
	}
	big := forkUsec(t, ctx, rc)
	t.Logf("latest_fork_usec: replica empty %d, master empty %d, replica with 400 MB %d", small, masterFork, big)
	// Halfway between the big fork and the larger small one, in ms.
	lo := max(small, masterFork)
	if big < 3*lo {
		t.Fatalf("the 400 MB fork (%d µs) is not clearly slower than the empty ones (%d µs): cannot place a threshold between them", big, lo)
	}
	threshold := float64(big+lo) / 2 / 1000
	if _, err := m.Client.PutAlertRules(ctx, "sf", api.AlertRules{"slow-fork": {Threshold: &threshold}}); err != nil {
		t.Fatal(err)
	}
	f := waitAlert(t, m, "sf", "slow-fork", replica.Name, api.AlertFiring, 20*time.Second)
	if f.Value*1000 < float64(big)-1 {
		t.Errorf("slow-fork value %v ms, want the replica's %d µs", f.Value, big)
	}

	if err := mc.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := mc.Do(ctx, "WAIT", 1, 30000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d %v", n, err)
	}
	if err := rc.Do(ctx, "MEMORY", "PURGE").Err(); err != nil {
		t.Fatal(err)
	}
	again := forkUsec(t, ctx, rc)
	t.Logf("latest_fork_usec of the replica after FLUSHALL: %d (threshold %.3f ms)", again, threshold)
	if float64(again) >= threshold*1000 {
		t.Fatalf("the replica's fork after FLUSHALL took %d µs, not below the threshold %.3f ms", again, threshold)
	}
	waitAlert(t, m, "sf", "slow-fork", replica.Name, api.AlertResolved, 20*time.Second)
	checkDeliveries(t, m, "sf", good, broken)
	// The replica's: the master may fork with the 400 MB too (a save
	// point of its own), which is its own alert.
	if good.countOf("slow-fork", replica.Name, api.AlertFiring) != 1 || good.countOf("slow-fork", replica.Name, api.AlertResolved) != 1 {
		t.Errorf("slow-fork of %s: want one firing and one resolved delivery", replica.Name)
	}
}

// iptables runs iptables with args.
func iptables(args ...string) error {
	out, err := exec.Command("iptables", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// TestAlertsReplicaLag: the master's replication stream to its replica is
// held back (an iptables rule drops the master's packets to that one
// connection; the replica still answers INFO and its link stays up, as it
// does on a congested network) while 4 MB are written: the replica falls
// more than the threshold (1 MiB) behind and replica-lag fires after its
// forMs; once the rule is gone, TCP retransmits, the replica catches up
// and the alert resolves. One firing and one resolved signed delivery.
// Needs root and iptables (CI has both; elsewhere it is skipped).
func TestAlertsReplicaLag(t *testing.T) {
	if _, err := exec.LookPath("iptables"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("TestAlertsReplicaLag needs root and iptables under CI=true (iptables: %v, uid %d)", err, os.Geteuid())
		}
		t.Skipf("needs root and iptables (iptables: %v, uid %d)", err, os.Geteuid())
	}
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	good, broken := hooks(t, m)
	cl := createReady(t, m, api.CreateClusterRequest{Name: "rl", Replicas: intp(1)})
	threshold, second := float64(1<<20), int64(1000)
	if _, err := m.Client.PutAlertRules(ctx, "rl", api.AlertRules{"replica-lag": {Threshold: &threshold, ForMs: &second}}); err != nil {
		t.Fatal(err)
	}
	creds, err := m.Client.Credentials(ctx, "rl")
	if err != nil {
		t.Fatal(err)
	}
	master, replica := cl.Status.Shards[0].Master, cl.Status.Shards[0].Replicas[0]
	mc := redis.NewClient(&redis.Options{Addr: master.Address, Password: creds.Password})
	defer mc.Close()
	// The replica's end of its master link, as the master lists it.
	list, err := mc.Do(ctx, "CLIENT", "LIST", "TYPE", "replica").Text()
	if err != nil {
		t.Fatal(err)
	}
	var linkPort string
	for _, f := range strings.Fields(list) {
		if addr, ok := strings.CutPrefix(f, "addr="); ok {
			_, linkPort, _ = strings.Cut(addr, ":")
		}
	}
	_, masterPort, _ := strings.Cut(master.Address, ":")
	if linkPort == "" || masterPort == "" {
		t.Fatalf("no replica link in CLIENT LIST TYPE replica: %q", list)
	}
	rule := []string{"OUTPUT", "-o", "lo", "-p", "tcp", "-s", "127.0.0.1", "--sport", masterPort, "-d", "127.0.0.1", "--dport", linkPort, "-j", "DROP"}
	if err := iptables(append([]string{"-I"}, rule...)...); err != nil {
		t.Fatal(err)
	}
	dropped := true
	lift := func() {
		if dropped {
			dropped = false
			if err := iptables(append([]string{"-D"}, rule...)...); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(lift)
	value := strings.Repeat("l", 1<<20)
	for i := 0; i < 4; i++ {
		if err := mc.Set(ctx, "lag:"+strconv.Itoa(i), value, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	held := time.Now()
	f := waitAlert(t, m, "rl", "replica-lag", replica.Name, api.AlertFiring, 20*time.Second)
	if f.Value <= threshold || f.Since.Sub(f.ActiveAt) < time.Second {
		t.Errorf("replica-lag alert %+v: want a value above %v bytes, firing at least forMs after pending", f, threshold)
	}
	lift()
	r := waitAlert(t, m, "rl", "replica-lag", replica.Name, api.AlertResolved, 40*time.Second)
	t.Logf("replica-lag: firing %v (%.0f bytes behind), resolved %v after the stream was held back",
		f.Since.Sub(held).Round(time.Millisecond), f.Value, r.Since.Sub(held).Round(time.Millisecond))
	if as, err := m.Client.ListAlerts(ctx, "", "rl"); err == nil {
		for _, a := range as {
			if a.Rule == "replica-link-down" {
				t.Errorf("the link went down while held back: %+v", a)
			}
		}
	}
	checkDeliveries(t, m, "rl", good, broken)
	if good.count("replica-lag", api.AlertFiring) != 1 || good.count("replica-lag", api.AlertResolved) != 1 {
		t.Errorf("replica-lag: want one firing and one resolved delivery")
	}
}
