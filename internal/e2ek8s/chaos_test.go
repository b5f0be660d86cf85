package e2ek8s

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestChaosPods: random pod deletions (the master, a replica, a Sentinel;
// graceful or forced with grace 0) under WAIT-1 writes for
// REDIS_MANAGER_K8S_CHAOS_DURATION (default 2m; the test takes about a
// minute more). After each deletion the cluster must heal to exact
// Sentinel views and the writes resume; at the end no acknowledged write
// is lost on any instance. REDIS_MANAGER_K8S_CHAOS_SEED replays the
// choices. (The manager's own pods are TestChaosInCluster's: the manager
// runs on the host here.)
func TestChaosPods(t *testing.T) {
	duration, rng := chaosSettings(t, 2*time.Minute)
	n := newNode(t, nodeOptions{})
	h := newHealCluster(n, "x", 1, 2)
	masters := h.waitExact("before the chaos", time.Minute)
	var faults []string
	end := time.Now().Add(duration)
	for time.Now().Before(end) {
		kind := []string{"master", "replica", "sentinel"}[rng.IntN(3)]
		pod := h.chaosPod(rng, kind, masters)
		opts, how := chaosGrace(rng)
		uid, at := n.deleteForChaos(pod, opts)
		what := fmt.Sprintf("%s %s %s", kind, pod, how)
		faults = append(faults, what)
		t.Logf("fault %d at %s: %s", len(faults), at.Format("15:04:05.000"), what)
		masters = h.healedAfter(len(faults), what, at, map[string]types.UID{pod: uid})
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
	}
	if len(faults) < 3 {
		t.Errorf("only %d faults in %s", len(faults), duration)
	}
	masters = h.waitExact("after the chaos", time.Minute)
	h.checkNoLoss(masters)
	t.Logf("%d faults: %v", len(faults), faults)
}

// The chaos tests' shared steps (TestChaosPods, TestChaosInCluster).

// chaosSettings reads how long the chaos lasts
// (REDIS_MANAGER_K8S_CHAOS_DURATION, else def) and its seed
// (REDIS_MANAGER_K8S_CHAOS_SEED, else the clock), logs how to replay the
// run and returns the random source of its choices.
func chaosSettings(t *testing.T, def time.Duration) (time.Duration, *rand.Rand) {
	t.Helper()
	duration := def
	if v := os.Getenv("REDIS_MANAGER_K8S_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("REDIS_MANAGER_K8S_CHAOS_DURATION=%q: %v", v, err)
		}
		duration = d
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("REDIS_MANAGER_K8S_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("REDIS_MANAGER_K8S_CHAOS_SEED=%q: not an unsigned integer", v)
		}
		seed = s
	}
	t.Logf("chaos seed %d, duration %s (replay: REDIS_MANAGER_K8S_CHAOS_SEED=%d REDIS_MANAGER_K8S_CHAOS_DURATION=%s)", seed, duration, seed, duration)
	return duration, rand.New(rand.NewPCG(seed, 12))
}

// chaosPod picks the pod of a Redis victim of shard 0: its master
// ("master"), one of its replicas ("replica") or a Sentinel ("sentinel").
func (h *healCluster) chaosPod(rng *rand.Rand, kind string, masters map[int]string) string {
	switch kind {
	case "master":
		return podOf(masters[0])
	case "replica":
		reps := without(h.shardAddrs(0), masters[0])
		return podOf(reps[rng.IntN(len(reps))])
	case "sentinel":
		return fmt.Sprintf("%s-sentinel-%d", h.name, rng.IntN(h.sentinels))
	}
	h.n.t.Fatalf("no Redis victim of kind %q", kind)
	return ""
}

// chaosGrace draws how a pod goes: deleted with its grace period, or
// forced with grace 0.
func chaosGrace(rng *rand.Rand) (metav1.DeleteOptions, string) {
	if rng.IntN(2) == 0 {
		return metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, "force-deleted (grace 0)"
	}
	return metav1.DeleteOptions{}, "deleted"
}

// deleteForChaos deletes a pod and returns its UID (to know its successor)
// and when the deletion was asked.
func (n *node) deleteForChaos(pod string, opts metav1.DeleteOptions) (types.UID, time.Time) {
	n.t.Helper()
	ctx := context.Background()
	before, err := n.cs.CoreV1().Pods(n.NS).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		n.t.Fatalf("pod %s: %v", pod, err)
	}
	at := time.Now()
	if err := n.cs.CoreV1().Pods(n.NS).Delete(ctx, pod, opts); err != nil {
		n.t.Fatalf("delete %s: %v", pod, err)
	}
	return before.UID, at
}

// healedAfter waits until the deleted Redis pods are replaced (their
// successors first: healed means healed after the pods went), the cluster
// is healed exactly and the writes resume; it logs how long that took and
// returns each shard's master.
func (h *healCluster) healedAfter(fault int, what string, at time.Time, deleted map[string]types.UID) map[int]string {
	t := h.n.t
	t.Helper()
	for pod, uid := range deleted {
		h.n.waitPodReplaced(pod, uid, 2*time.Minute)
	}
	masters := h.waitExact("fault "+strconv.Itoa(fault)+": "+what, 2*time.Minute)
	if _, err := h.writers[0].FirstAckAfter(time.Now(), 30*time.Second); err != nil {
		t.Fatalf("fault %d (%s): writes did not resume: %v", fault, what, err)
	}
	t.Logf("TIMING fault %d (%s): healed, every Sentinel exact after %.1f s; longest time without an acknowledged write %d ms",
		fault, what, time.Since(at).Seconds(), maxAckGap(h.writers[0].Acks(), at).Milliseconds())
	return masters
}
