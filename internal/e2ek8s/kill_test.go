package e2ek8s

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestMasterKilledInContainer: redis-server killed with SIGKILL inside the
// master's container (the pod stays; the kubelet restarts the container)
// under WAIT-1 writes. A terminated container is a certain death: the
// manager forces the failover before down-after-milliseconds; the -master
// Service follows the new master; the restarted container boots as a
// replica of the new master (never as master again with what its volume
// held, which would throw away every write its replicas acknowledged since
// its last save), on the same claim; every Sentinel's view is exact; no
// acknowledged write is lost.
func TestMasterKilledInContainer(t *testing.T) {
	n := newNode(t, nodeOptions{})
	ctx := context.Background()
	h := newHealCluster(n, "k", 1, 2)
	masters := h.waitExact("before the kill", time.Minute)
	old := masters[0]
	oldPod := podOf(old)
	before, err := n.cs.CoreV1().Pods(n.NS).Get(ctx, oldPod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // writes acknowledged before the kill
	pid, killed := n.killContainerProcess(oldPod, "redis")
	dead := testenv.WaitDead(pid, 5*time.Second)
	t.Logf("killed redis-server (pid %d) of %s", pid, oldPod)
	failover := n.waitFailoverEvent("k", killed, 30*time.Second)
	t.Logf("TIMING redis-server killed in the master's container -> failover: %s", failover.Message)
	if fast, _ := failover.Details["fast"].(bool); !fast {
		t.Errorf("failover not forced on the container's death: %+v", failover.Details)
	}
	if newMaster, _ := failover.Details["newMaster"].(string); newMaster == old || newMaster == "" {
		t.Errorf("failover to %q from %s", newMaster, old)
	}
	gap, err := h.writers[0].FirstAckAfter(dead, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	gap += dead.Sub(killed)
	t.Logf("TIMING redis-server killed -> first write acknowledged after it was gone (SET + WAIT 1): %d ms", gap.Milliseconds())
	if gap >= 5*time.Second {
		t.Errorf("writes unavailable %s, want less than down-after (5 s)", gap)
	}
	masters = h.waitExact("after the kill", 2*time.Minute)
	t.Logf("TIMING redis-server killed -> healed, every Sentinel exact: %.1f s", time.Since(killed).Seconds())
	if masters[0] == old {
		t.Errorf("the killed master %s is master again", old)
	}
	// The same pod, its container restarted by the kubelet.
	after, err := n.cs.CoreV1().Pods(n.NS).Get(ctx, oldPod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.UID != before.UID || containerRestarts(after, "redis") <= containerRestarts(before, "redis") {
		t.Errorf("pod %s: uid %s → %s, restarts %d → %d: want the same pod with its container restarted", oldPod,
			before.UID, after.UID, containerRestarts(before, "redis"), containerRestarts(after, "redis"))
	}
	// Its restarted container decided to boot as a replica of the new master.
	raw, err := n.cs.CoreV1().Pods(n.NS).GetLogs(oldPod, &corev1.PodLogOptions{Container: "redis"}).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "boot role decided") || !strings.Contains(string(raw), "replicaOf="+masters[0]+" ") {
		t.Errorf("the restarted container did not boot as a replica of %s:\n%s", masters[0], lastLines(string(raw), 20))
	}
	h.checkNoLoss(masters)
}
