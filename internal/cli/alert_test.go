package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestAlertCommands: alert rules, silence (create, list, delete), alert
// list and notification test, through a real manager.
func TestAlertCommands(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{})
	cli := func(args ...string) cliRun {
		return runCLI(t, false, "", append([]string{"--server", s.URL, "--token", s.Token}, args...)...)
	}
	ctx := t.Context()
	res, err := s.Client.CreateCluster(ctx, api.CreateClusterRequest{Name: "orders", Shards: ptr(1), Replicas: ptr(1), Sentinels: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	s.WaitJob(ctx, res.Job.ID)
	ms := int64(5000)
	if _, err := s.Client.PutAlertRules(ctx, "orders", api.AlertRules{"instance-down": {ForMs: &ms}}); err != nil {
		t.Fatal(err)
	}
	r := cli("alert", "rules", "orders")
	if r.err != nil || !strings.Contains(r.stdout, "RULE") || !strings.Contains(r.stdout, "instance-down") {
		t.Fatalf("alert rules: %v\n%s", r.err, r.stdout)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "instance-down" && (f[1] != "true" || f[2] != "-" || f[3] != "5s") {
			t.Errorf("instance-down row %q, want true - 5s", line)
		}
		if len(f) == 4 && f[0] == "memory-high" && (f[2] != "90" || f[3] != "2m0s") {
			t.Errorf("memory-high row %q, want the default 90 and 2m0s", line)
		}
	}
	if r := cli("alert", "rules", "nosuch"); r.err == nil {
		t.Errorf("alert rules of a missing cluster succeeded")
	}

	r = cli("alert", "silence", "--duration", "1h", "--cluster", "orders", "--rule", "memory-high", "--comment", "load test")
	if r.err != nil || !strings.HasPrefix(r.stdout, "silence ") {
		t.Fatalf("alert silence: %v %s", r.err, r.stdout)
	}
	id := strings.Fields(r.stdout)[1]
	if r := cli("alert", "silence", "--comment", "x"); r.err == nil || !strings.Contains(r.err.Error(), "--duration") {
		t.Errorf("silence without --duration: %v", r.err)
	}
	r = cli("alert", "silence", "list", "-o", "json")
	var sl api.SilenceList
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &sl) != nil || len(sl.Silences) != 1 || sl.Silences[0].ID != id || sl.Silences[0].Rule != "memory-high" {
		t.Fatalf("silence list: %v %s", r.err, r.stdout)
	}
	if r := cli("alert", "silence", "delete", id); r.err != nil {
		t.Fatal(r.err)
	}
	if ss, _ := s.Client.ListSilences(ctx); len(ss) != 0 {
		t.Fatalf("silence still listed after delete: %+v", ss)
	}

	r = cli("alert", "list", "--cluster", "orders", "-o", "json")
	var al api.AlertList
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &al) != nil || al.Alerts == nil {
		t.Fatalf("alert list: %v %s", r.err, r.stdout)
	}

	var calls atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { calls.Add(1) }))
	defer hook.Close()
	if _, err := s.Client.PutNotifications(ctx, api.Notifications{Webhooks: []api.Webhook{{Name: "ops", URL: hook.URL, Secret: "x", Format: "slack"}}}); err != nil {
		t.Fatal(err)
	}
	if r := cli("notification", "test", "ops"); r.err != nil || !strings.Contains(r.stdout, "answered 200") || calls.Load() != 1 {
		t.Fatalf("notification test: %v %q, %d calls", r.err, r.stdout, calls.Load())
	}
	if r := cli("notification", "test", "nosuch"); r.err == nil || !strings.Contains(r.err.Error(), "no webhook") {
		t.Fatalf("test of a missing webhook: %v", r.err)
	}
}
