package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestAutoscalingCommands: cluster autoscaling set, get (table and JSON)
// and off, through a real manager.
func TestAutoscalingCommands(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{})
	cli := func(args ...string) cliRun {
		return runCLI(t, false, "", append([]string{"--server", s.URL, "--token", s.Token}, args...)...)
	}
	ctx := t.Context()
	res, err := s.Client.CreateCluster(ctx, api.CreateClusterRequest{Name: "orders", Shards: ptr(1), Replicas: ptr(1), Sentinels: ptr(1), Maxmemory: "64mb"})
	if err != nil {
		t.Fatal(err)
	}
	s.WaitJob(ctx, res.Job.ID)
	r := cli("cluster", "autoscaling", "set", "orders", "--min", "1", "--max", "3", "--metric", "ops", "--target", "500",
		"--memory-max", "256mb", "--memory-high", "75", "--scale-out-cooldown", "30s", "--dry-run")
	if r.err != nil || !strings.Contains(r.stdout, "1-3, ops target 500 per replica") || !strings.Contains(r.stdout, "up to 256mb: +50 % at 75 %") {
		t.Fatalf("autoscaling set: %v\n%s", r.err, r.stdout)
	}
	r = cli("cluster", "autoscaling", "get", "orders", "-o", "json")
	var as api.Autoscaling
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &as) != nil {
		t.Fatalf("autoscaling get: %v\n%s", r.err, r.stdout)
	}
	if p := as.Policy; p.Replicas == nil || p.Replicas.Target != 500 || *p.ScaleOutCooldownMs != 30000 || !p.DryRun || *p.Memory.HighPercent != 75 {
		t.Fatalf("policy read back: %s", r.stdout)
	}
	if r := cli("cluster", "autoscaling", "set", "orders", "--min", "4", "--max", "2", "--metric", "ops", "--target", "5"); r.err == nil || !strings.Contains(r.err.Error(), "replicas.min") {
		t.Fatalf("min above max: %v", r.err)
	}
	if r := cli("cluster", "autoscaling", "off", "orders"); r.err != nil || !strings.Contains(r.stdout, "off") {
		t.Fatalf("autoscaling off: %v %s", r.err, r.stdout)
	}
	if r := cli("cluster", "autoscaling", "get", "orders"); r.err == nil {
		t.Fatalf("get after off succeeded: %s", r.stdout)
	}
}
