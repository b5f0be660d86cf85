package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// receiver is a webhook endpoint that records each delivery and checks its
// signature; status is what it answers.
type receiver struct {
	*httptest.Server
	secret string
	status int

	mu    sync.Mutex
	got   []api.Notification
	calls int
	bad   []string // deliveries with a wrong or missing signature
}

func newReceiver(t *testing.T, secret string, status int) *receiver {
	r := &receiver{secret: secret, status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		m := hmac.New(sha256.New, []byte(r.secret))
		m.Write(body)
		want := "sha256=" + hex.EncodeToString(m.Sum(nil))
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls++
		if !hmac.Equal([]byte(req.Header.Get(api.SignatureHeader)), []byte(want)) {
			r.bad = append(r.bad, string(body))
		}
		var n api.Notification
		if err := json.Unmarshal(body, &n); err == nil {
			r.got = append(r.got, n)
		}
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.Close)
	return r
}

// count is how many deliveries of rule and transition arrived.
func (r *receiver) count(rule, transition string) int { return r.countOf(rule, "", transition) }

// countOf is count for one instance ("": any).
func (r *receiver) countOf(rule, instance, transition string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, x := range r.got {
		if x.Rule == rule && (instance == "" || x.Instance == instance) && x.Transition == transition {
			n++
		}
	}
	return n
}

// checkDeliveries checks, once every resolved alert's deliveries had time
// to arrive, that good got exactly one firing and one resolved delivery
// per alert that fired unsilenced, none of a silenced one, every one
// signed; and that broken's were each tried attempts times, then recorded
// as failed.
func checkDeliveries(t *testing.T, m *testenv.Manager, cluster string, good, broken *receiver) {
	t.Helper()
	ctx := context.Background()
	as, err := m.Client.ListAlerts(ctx, api.AlertResolved, cluster)
	if err != nil {
		t.Fatal(err)
	}
	var notified int
	for _, a := range as {
		if a.Silenced {
			continue
		}
		notified++
	}
	deadline := time.Now().Add(40 * time.Second)
	var failed []api.Delivery
	for time.Now().Before(deadline) {
		ds, _ := m.Client.ListDeliveries(ctx)
		failed = failed[:0]
		for _, d := range ds {
			if d.Webhook == "broken" && !d.OK && d.Cluster == cluster {
				failed = append(failed, d)
			}
		}
		if len(failed) >= 2*notified {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // anything extra would arrive by now
	for _, a := range as {
		for _, tr := range []string{api.AlertFiring, api.AlertResolved} {
			want := 1
			if a.Silenced {
				want = 0
			}
			if c := good.countOf(a.Rule, a.Instance, tr); c != want {
				t.Errorf("%s %s %s: %d deliveries, want exactly %d", a.Rule, a.Instance, tr, c, want)
			}
		}
	}
	good.mu.Lock()
	if len(good.bad) > 0 {
		t.Errorf("deliveries with a bad signature: %q", good.bad)
	}
	for _, n := range good.got {
		if n.Rule != "test" && (n.Cluster != cluster || !strings.HasSuffix(n.URL, "/clusters/"+cluster)) {
			t.Errorf("delivery %+v: cluster and console URL", n)
		}
	}
	good.mu.Unlock()
	if len(failed) != 2*notified {
		t.Fatalf("broken receiver: %d failed deliveries recorded, want %d (%d alerts × firing, resolved): %+v", len(failed), 2*notified, notified, failed)
	}
	for _, d := range failed {
		if d.Attempts != 5 || d.StatusCode != 500 || !strings.Contains(d.Error, "500") {
			t.Errorf("failed delivery %+v: want 5 attempts ending in 500", d)
		}
	}
	broken.mu.Lock()
	if broken.calls != 5*len(failed) {
		t.Errorf("the broken receiver was called %d times, want %d deliveries × 5 attempts", broken.calls, len(failed))
	}
	broken.mu.Unlock()
}

// waitAlert waits until the alert of rule (and instance, if not "") of the
// cluster is in state.
func waitAlert(t *testing.T, m *testenv.Manager, cluster, rule, instance, state string, timeout time.Duration) api.Alert {
	t.Helper()
	return waitAlertMatch(t, m, cluster, fmt.Sprintf("%s %s never %s", rule, instance, state), timeout, func(a api.Alert) bool {
		return a.Rule == rule && (instance == "" || a.Instance == instance) && a.State == state
	})
}

// waitAlertMatch waits until an alert of the cluster matches; what is
// the failure's description of the awaited alert.
func waitAlertMatch(t *testing.T, m *testenv.Manager, cluster, what string, timeout time.Duration, match func(api.Alert) bool) api.Alert {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []api.Alert
	for time.Now().Before(deadline) {
		if as, err := m.Client.ListAlerts(context.Background(), "", cluster); err == nil {
			last = as
			for _, a := range as {
				if match(a) {
					return a
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("alert of %s: %s in %v; alerts: %+v", cluster, what, timeout, last)
	return api.Alert{}
}

// TestAlertsFireResolveNotify: against real processes, a stopped replica
// raises instance-down (pending, then firing after forMs) and resolves when
// it runs again; two stopped Sentinels raise sentinel-quorum; a master
// filled past a small maxmemory raises memory-high, which a silence keeps
// quiet. A webhook receiver gets exactly one firing and one resolved
// delivery per alert, each with a valid signature; one that answers 500 is
// retried, then recorded as failed.
func TestAlertsFireResolveNotify(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	good := newReceiver(t, "good-webhook-secret", 200)
	broken := newReceiver(t, "broken-webhook-secret", 500)
	if _, err := m.Client.PutNotifications(ctx, api.Notifications{Webhooks: []api.Webhook{
		{Name: "ops", URL: good.URL, Secret: good.secret, Format: api.WebhookJSON},
		{Name: "broken", URL: broken.URL, Secret: broken.secret, Format: api.WebhookJSON},
	}}); err != nil {
		t.Fatal(err)
	}
	n, err := m.Client.GetNotifications(ctx)
	if err != nil || len(n.Webhooks) != 2 || n.Webhooks[0].Secret != "set" || n.Webhooks[1].Secret != "set" {
		t.Fatalf("GET notifications: %v %+v (secrets must read \"set\")", err, n)
	}
	if d, err := m.Client.TestNotification(ctx, "ops"); err != nil || !d.OK || d.Attempts != 1 || d.StatusCode != 200 {
		t.Fatalf("test delivery: %v %+v", err, d)
	}
	if good.count("test", "test") != 1 {
		t.Fatalf("the receiver did not get the test delivery")
	}

	cl := createReady(t, m, api.CreateClusterRequest{Name: "al", Replicas: intp(1), Maxmemory: "8mb", MaxmemoryPolicy: "noeviction"})
	one := int64(1000)
	half := 50.0
	if _, err := m.Client.PutAlertRules(ctx, "al", api.AlertRules{
		"instance-down":   {ForMs: &one},
		"sentinel-quorum": {ForMs: &one},
		"memory-high":     {Threshold: &half, ForMs: &one},
	}); err != nil {
		t.Fatal(err)
	}
	rules, err := m.Client.GetAlertRules(ctx, "al")
	if err != nil || *rules["instance-down"].ForMs != 1000 || *rules["replica-lag"].ForMs != 120000 || *rules["memory-high"].Threshold != 50 {
		t.Fatalf("alert rules read back: %v %+v", err, rules)
	}
	if as, _ := m.Client.ListAlerts(ctx, "", "al"); len(as) != 0 {
		t.Fatalf("a Ready cluster has alerts: %+v", as)
	}

	// A stopped replica: pending, firing, resolved.
	replica := cl.Status.Shards[0].Replicas[0]
	stopped := time.Now()
	if err := syscall.Kill(replica.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cont := func() { _ = syscall.Kill(replica.Pid, syscall.SIGCONT) }
	t.Cleanup(cont)
	p := waitAlert(t, m, "al", "instance-down", replica.Name, api.AlertPending, 15*time.Second)
	f := waitAlert(t, m, "al", "instance-down", replica.Name, api.AlertFiring, 15*time.Second)
	t.Logf("instance-down: pending %v, firing %v after SIGSTOP", p.Since.Sub(stopped).Round(time.Millisecond), f.Since.Sub(stopped).Round(time.Millisecond))
	if f.Since.Sub(f.ActiveAt) < time.Second {
		t.Errorf("fired %v after pending, before forMs 1000", f.Since.Sub(f.ActiveAt))
	}
	if as, _ := m.Client.ListAlerts(ctx, api.AlertFiring, ""); len(as) == 0 {
		t.Errorf("?state=firing lists nothing")
	}
	cont()
	waitAlert(t, m, "al", "instance-down", replica.Name, api.AlertResolved, 15*time.Second)

	// Two of three Sentinels stopped: fewer than the quorum answer.
	for _, s := range cl.Status.Sentinels[:2] {
		if err := syscall.Kill(s.Pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		pid := s.Pid
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	}
	sentinelsStopped := time.Now()
	waitAlert(t, m, "al", "sentinel-quorum", "", api.AlertFiring, 20*time.Second)
	// Paused over 2 s, a Sentinel enters TILT once it runs again.
	time.Sleep(time.Until(sentinelsStopped.Add(3 * time.Second)))
	for _, s := range cl.Status.Sentinels[:2] {
		_ = syscall.Kill(s.Pid, syscall.SIGCONT)
	}
	waitAlert(t, m, "al", "sentinel-quorum", "", api.AlertResolved, 20*time.Second)
	for _, s := range cl.Status.Sentinels[:2] {
		waitAlert(t, m, "al", "sentinel-tilt", s.Name, api.AlertFiring, 20*time.Second)
	}

	// memory-high, silenced: it changes state but sends nothing.
	if _, err := m.Client.CreateSilence(ctx, api.CreateSilenceRequest{Cluster: "al", Rule: "memory-high", DurationMs: 600000, Comment: "filling on purpose"}); err != nil {
		t.Fatal(err)
	}
	creds, err := m.Client.Credentials(ctx, "al")
	if err != nil {
		t.Fatal(err)
	}
	master := cl.Status.Shards[0].Master
	rc := redis.NewClient(&redis.Options{Addr: master.Address, Password: creds.Password})
	defer rc.Close()
	value := strings.Repeat("x", 64<<10)
	for i := 0; i < 100; i++ {
		if err := rc.Set(ctx, fmt.Sprintf("fill:%d", i), value, 0).Err(); err != nil {
			break // noeviction: full
		}
	}
	a := waitAlert(t, m, "al", "memory-high", master.Name, api.AlertFiring, 20*time.Second)
	if !a.Silenced || a.Value <= 50 {
		t.Errorf("memory-high alert %+v: want silenced, value above 50", a)
	}
	if err := rc.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitAlert(t, m, "al", "memory-high", master.Name, api.AlertResolved, 20*time.Second)
	for _, s := range cl.Status.Sentinels[:2] {
		waitAlert(t, m, "al", "sentinel-tilt", s.Name, api.AlertResolved, 45*time.Second)
	}

	// Deliveries: exactly one firing and one resolved per alert, signed;
	// none of the silenced one. The broken receiver's are retried, then
	// recorded as failed.
	checkDeliveries(t, m, "al", good, broken)
	for _, rule := range []string{"instance-down", "sentinel-quorum", "sentinel-tilt"} {
		if good.count(rule, api.AlertFiring) == 0 {
			t.Errorf("no %s delivery", rule)
		}
	}
	if c := good.count("memory-high", api.AlertFiring) + good.count("memory-high", api.AlertResolved); c != 0 {
		t.Errorf("the silenced memory-high alert sent %d deliveries", c)
	}

	// The transitions are events.
	evs, err := m.Client.ClusterEvents(ctx, "al")
	if err != nil {
		t.Fatal(err)
	}
	var alertEvents int
	for _, e := range evs {
		if e.Type == api.EventAlert {
			alertEvents++
		}
	}
	// instance-down, sentinel-quorum, two sentinel-tilt, memory-high: each
	// firing and resolved.
	if alertEvents < 10 {
		t.Errorf("%d alert events, want at least 10", alertEvents)
	}
}

// TestAlertsBackupAndFailover: a backup to a target that cannot be written
// (a path under a regular file) raises backup-failed at once; once the
// target can be written, the next backup succeeds and it resolves. A
// planned failover raises the failover alert (information), which resolves
// after its hold (threshold, seconds). Each sends exactly one firing and
// one resolved delivery.
func TestAlertsBackupAndFailover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	blocker := filepath.Join(dir, "blocker")
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := testenv.StartManager(t, testenv.ManagerOptions{Args: []string{"--backup-target", "file://" + filepath.Join(blocker, "backups")}})
	ctx := context.Background()
	good := newReceiver(t, "good-webhook-secret", 200)
	broken := newReceiver(t, "broken-webhook-secret", 500)
	if _, err := m.Client.PutNotifications(ctx, api.Notifications{Webhooks: []api.Webhook{
		{Name: "ops", URL: good.URL, Secret: good.secret, Format: api.WebhookJSON},
		{Name: "broken", URL: broken.URL, Secret: broken.secret, Format: api.WebhookJSON},
	}}); err != nil {
		t.Fatal(err)
	}
	createReady(t, m, api.CreateClusterRequest{Name: "bf", Replicas: intp(1)})
	hold := 5.0
	if _, err := m.Client.PutAlertRules(ctx, "bf", api.AlertRules{"failover": {Threshold: &hold}}); err != nil {
		t.Fatal(err)
	}

	bj, err := m.Client.CreateBackup(ctx, "bf", nil)
	if err != nil {
		t.Fatal(err)
	}
	var j api.Job
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if j, err = m.Client.GetJob(ctx, bj.Job.ID); err == nil && (j.State == api.StateFailed || j.State == api.StateSucceeded) {
			break
		}
	}
	if j.State != api.StateFailed {
		t.Fatalf("backup to a path under a file: job %s %s", j.State, j.Error)
	}
	a := waitAlert(t, m, "bf", "backup-failed", "", api.AlertFiring, 15*time.Second)
	if a.Shard == nil || *a.Shard != 0 || a.Severity != "warning" {
		t.Errorf("backup-failed alert %+v", a)
	}
	// The target becomes writable; the next backup succeeds.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	testenv.WhenIdle(t, "backup", func() error {
		bj, err = m.Client.CreateBackup(ctx, "bf", nil)
		return err
	})
	if j := m.WaitJob(ctx, bj.Job.ID); j.State != api.StateSucceeded {
		t.Fatalf("backup to a writable target: job %s %s", j.State, j.Error)
	}
	waitAlert(t, m, "bf", "backup-failed", "", api.AlertResolved, 15*time.Second)

	m.WaitJob(ctx, failoverWhenIdle(t, m, "bf", 0).ID)
	f := waitAlert(t, m, "bf", "failover", "", api.AlertFiring, 15*time.Second)
	if f.Severity != "info" || !strings.Contains(f.Message, "failover") {
		t.Errorf("failover alert %+v", f)
	}
	r := waitAlert(t, m, "bf", "failover", "", api.AlertResolved, 20*time.Second)
	if held := r.Since.Sub(f.Since); held < 4*time.Second {
		t.Errorf("the failover alert resolved %v after firing, before its 5 s hold", held)
	}
	checkDeliveries(t, m, "bf", good, broken)
	for _, rule := range []string{"backup-failed", "failover"} {
		if good.count(rule, api.AlertFiring) != 1 {
			t.Errorf("%s: no firing delivery", rule)
		}
	}
}

// TestAlertsLinkAndConnections: a replica that answers but cannot
// authenticate to its master (wrong masterauth, link killed) raises
// replica-link-down until the password is right again (the test sets it,
// or the manager's healing does first); a master whose
// maxclients is lowered below its open connections raises
// connections-high until they close.
func TestAlertsLinkAndConnections(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	ctx := context.Background()
	good := newReceiver(t, "good-webhook-secret", 200)
	broken := newReceiver(t, "broken-webhook-secret", 500)
	if _, err := m.Client.PutNotifications(ctx, api.Notifications{Webhooks: []api.Webhook{
		{Name: "ops", URL: good.URL, Secret: good.secret, Format: api.WebhookJSON},
		{Name: "broken", URL: broken.URL, Secret: broken.secret, Format: api.WebhookJSON},
	}}); err != nil {
		t.Fatal(err)
	}
	cl := createReady(t, m, api.CreateClusterRequest{Name: "lc", Replicas: intp(1)})
	one, pct := int64(1000), 50.0
	if _, err := m.Client.PutAlertRules(ctx, "lc", api.AlertRules{
		"replica-link-down": {ForMs: &one},
		"connections-high":  {Threshold: &pct, ForMs: &one},
	}); err != nil {
		t.Fatal(err)
	}
	creds, err := m.Client.Credentials(ctx, "lc")
	if err != nil {
		t.Fatal(err)
	}
	replica := cl.Status.Shards[0].Replicas[0]
	rc := redis.NewClient(&redis.Options{Addr: replica.Address, Password: creds.Password})
	defer rc.Close()
	if err := rc.ConfigSet(ctx, "masterauth", "not-the-password").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Do(ctx, "client", "kill", "type", "master").Err(); err != nil {
		t.Fatal(err)
	}
	waitAlert(t, m, "lc", "replica-link-down", replica.Name, api.AlertFiring, 20*time.Second)
	// The manager's healing may have set masterauth right already (and
	// closed this client's connection); set it either way.
	fix := redis.NewClient(&redis.Options{Addr: replica.Address, Password: creds.Password})
	_ = fix.ConfigSet(ctx, "masterauth", creds.Password).Err()
	fix.Close()
	waitAlert(t, m, "lc", "replica-link-down", replica.Name, api.AlertResolved, 20*time.Second)

	master := cl.Status.Shards[0].Master
	mc := redis.NewClient(&redis.Options{Addr: master.Address, Password: creds.Password, PoolSize: 1})
	defer mc.Close()
	info, err := mc.Info(ctx, "clients").Result()
	if err != nil {
		t.Fatal(err)
	}
	var connected int
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_clients:"); ok {
			connected, _ = strconv.Atoi(v)
		}
	}
	// Below half of maxclients now; above once connected+6 more are open.
	maxclients := 2*connected + 10
	if err := mc.ConfigSet(ctx, "maxclients", strconv.Itoa(maxclients)).Err(); err != nil {
		t.Fatal(err)
	}
	var extra []*redis.Client
	for i := 0; i < connected+6; i++ {
		c := redis.NewClient(&redis.Options{Addr: master.Address, Password: creds.Password, PoolSize: 1})
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		extra = append(extra, c)
	}
	a := waitAlert(t, m, "lc", "connections-high", master.Name, api.AlertFiring, 20*time.Second)
	if a.Value <= 50 {
		t.Errorf("connections-high value %v, want above 50 (%%)", a.Value)
	}
	for _, c := range extra {
		c.Close()
	}
	waitAlert(t, m, "lc", "connections-high", master.Name, api.AlertResolved, 20*time.Second)
	if err := mc.ConfigSet(ctx, "maxclients", "10000").Err(); err != nil {
		t.Fatal(err)
	}
	checkDeliveries(t, m, "lc", good, broken)
	for _, rule := range []string{"replica-link-down", "connections-high"} {
		if good.count(rule, api.AlertFiring) != 1 || good.count(rule, api.AlertResolved) != 1 {
			t.Errorf("%s: want one firing and one resolved delivery", rule)
		}
	}
}
