package e2ek8s

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestSentinelAndReplicaDeleted: a Sentinel's pod and a replica's pod
// deleted together, under WAIT-1 writes. Both come back with the same names
// and claims; the Sentinel with its id (its sentinel.conf on its volume);
// every Sentinel's view exact (no stale entry for either: no second id for
// the Sentinel, the replica listed once, nothing down); no acknowledged
// write lost.
func TestSentinelAndReplicaDeleted(t *testing.T) {
	n := newNode(t, nodeOptions{})
	ctx := context.Background()
	h := newHealCluster(n, "p", 1, 2)
	masters := h.waitExact("before the deletion", time.Minute)
	replica := "p-0-1"
	if podOf(masters[0]) == replica {
		replica = "p-0-2"
	}
	time.Sleep(time.Second) // writes acknowledged before the deletion
	deleted := time.Now()
	uids := map[string]types.UID{}
	for _, pod := range []string{"p-sentinel-1", replica} {
		uids[pod] = n.deletePod(pod)
	}
	for _, pod := range []string{"p-sentinel-1", replica} {
		p := n.waitPodReplaced(pod, uids[pod], 2*time.Minute)
		t.Logf("TIMING %s deleted -> its new pod ready: %.1f s", pod, time.Since(deleted).Seconds())
		if p.UID == uids[pod] {
			t.Fatalf("%s not replaced", pod)
		}
	}
	after := h.waitExact("after deleting a Sentinel's and a replica's pods", 2*time.Minute)
	t.Logf("TIMING Sentinel and replica pods deleted -> healed, every Sentinel exact: %.1f s", time.Since(deleted).Seconds())
	if after[0] != masters[0] {
		t.Errorf("the master moved from %s to %s: nothing failed over it", masters[0], after[0])
	}
	// The writes never stopped for long: the master was not touched.
	if gap := maxAckGap(h.writers[0].Acks(), deleted); gap > 2*time.Second {
		t.Errorf("writes stopped for %s while a replica and a Sentinel came back (the master was untouched; another replica could acknowledge)", gap)
	}
	h.checkNoLoss(after)
	// No Sentinel had to be forgotten or re-added: the ids are those of the
	// start (exactProblem checked each one's own id and every peer's).
	for _, s := range n.sentinelAddrs("p", 3) {
		rc := n.Redis(s, h.creds.SentinelPassword)
		ck, err := rc.Do(ctx, "SENTINEL", "CKQUORUM", "p-0").Text()
		rc.Close()
		if err != nil {
			t.Errorf("SENTINEL CKQUORUM on %s: %v", s, err)
		} else {
			t.Logf("%s: %s", s, ck)
		}
	}
	if _, err := n.cs.CoreV1().Pods(n.NS).Get(ctx, replica, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
}
