package e2ek8s

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/redis-manager/redis-manager/api"
)

// TestMasterPodDeleted: a deleted master pod is a certain death; the
// manager forces the failover at once (the same rule as on the local
// platform), so the pod the StatefulSet makes again finds every Sentinel
// naming the new master and boots as its replica: never as a second
// master (the fence), and well before down-after-milliseconds. Under
// WAIT-1 writes: the -master Service follows the new master, the old
// master's pod is back on its claim, every Sentinel's view is exact and no
// acknowledged write is lost.
func TestMasterPodDeleted(t *testing.T) {
	n := newNode(t, nodeOptions{})
	ctx := context.Background()
	h := newHealCluster(n, "f", 1, 2)
	creds := h.creds
	old := n.FQDN("f-0-0", "f-0", 6379)
	if m := sentinelMaster(t, n, n.sentinelAddrs("f", 3)[0], creds.SentinelPassword, "f-0"); m != old {
		t.Fatalf("master %s, want %s", m, old)
	}
	time.Sleep(time.Second) // writes acknowledged before the deletion
	deleted := time.Now()
	oldUID := n.deletePod("f-0-0")
	var failover api.Event
	deadline := time.Now().Add(30 * time.Second)
	for failover.Type == "" {
		evs, err := n.M.Client.ClusterEvents(ctx, "f")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Type == "failover" {
				failover = e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover event within 30 s: %+v", evs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("TIMING master pod deleted -> failover: %s", failover.Message)
	if _, err := h.writers[0].FirstAckAfter(time.Now(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// (The pod is deleted gracefully: its redis-server serves until its
	// shutdown, so the longest pause of the acknowledgements is the measure.)
	t.Logf("TIMING master pod deleted -> longest time without an acknowledged write (SET + WAIT 1): %d ms", maxAckGap(h.writers[0].Acks(), deleted).Milliseconds())
	if fast, _ := failover.Details["fast"].(bool); !fast {
		t.Errorf("failover not forced on the pod's deletion: %+v", failover.Details)
	}
	if ms, _ := failover.Details["writeUnavailableMs"].(float64); ms <= 0 || ms >= 5000 {
		t.Errorf("writes unavailable %v ms, want more than 0 and less than down-after (5000)", failover.Details["writeUnavailableMs"])
	}
	n.waitPodReplaced("f-0-0", oldUID, 2*time.Minute)
	c := n.Redis(old, creds.Password)
	defer c.Close()
	deadline = time.Now().Add(30 * time.Second)
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old master's new pod is not a replica in sync within 30 s: %v\n%s", err, info)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The new pod's entrypoint decided its role from the Sentinels, which
	// already named the new master: it booted as its replica. (The old pod
	// may still have been a master while it terminated, and the manager
	// may have demoted it then: that was the old process, not a boot.)
	newMaster, _ := failover.Details["newMaster"].(string)
	raw, err := n.cs.CoreV1().Pods(n.NS).GetLogs("f-0-0", &corev1.PodLogOptions{Container: "redis"}).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "boot role decided") || !strings.Contains(string(raw), "replicaOf="+newMaster+" ") {
		t.Errorf("the old master's new pod did not boot as a replica of %s:\n%s", newMaster, raw)
	}
	masters := h.waitExact("after the master pod's deletion", 2*time.Minute)
	if masters[0] != newMaster {
		t.Errorf("healed with master %s, the failover promoted %s", masters[0], newMaster)
	}
	h.checkNoLoss(masters)
}
