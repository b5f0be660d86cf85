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
)

// TestChaosPods: random pod deletions (the master, a replica, a Sentinel;
// graceful or forced with grace 0) under WAIT-1 writes for
// REDIS_MANAGER_K8S_CHAOS_DURATION (default 2m; the test takes about a
// minute more). After each deletion the cluster must heal to exact
// Sentinel views and the writes resume; at the end no acknowledged write
// is lost on any instance. REDIS_MANAGER_K8S_CHAOS_SEED replays the
// choices. (The manager's own pods are another test's: the manager runs on
// the host here.)
func TestChaosPods(t *testing.T) {
	duration := 2 * time.Minute
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
	rng := rand.New(rand.NewPCG(seed, 12))
	n := newNode(t, nodeOptions{})
	ctx := context.Background()
	h := newHealCluster(n, "x", 1, 2)
	masters := h.waitExact("before the chaos", time.Minute)
	var faults []string
	end := time.Now().Add(duration)
	for time.Now().Before(end) {
		var pod, kind string
		switch kind = []string{"master", "replica", "sentinel"}[rng.IntN(3)]; kind {
		case "master":
			pod = podOf(masters[0])
		case "replica":
			reps := without(h.shardAddrs(0), masters[0])
			pod = podOf(reps[rng.IntN(len(reps))])
		case "sentinel":
			pod = fmt.Sprintf("x-sentinel-%d", rng.IntN(3))
		}
		opts := metav1.DeleteOptions{}
		how := "deleted"
		if rng.IntN(2) == 0 {
			opts.GracePeriodSeconds = new(int64)
			how = "force-deleted (grace 0)"
		}
		before, err := n.cs.CoreV1().Pods(n.NS).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("pod %s: %v", pod, err)
		}
		at := time.Now()
		if err := n.cs.CoreV1().Pods(n.NS).Delete(ctx, pod, opts); err != nil {
			t.Fatalf("delete %s: %v", pod, err)
		}
		what := fmt.Sprintf("%s %s %s", kind, pod, how)
		faults = append(faults, what)
		t.Logf("fault %d at %s: %s", len(faults), at.Format("15:04:05.000"), what)
		// Healed means healed after the pod went: its successor first.
		n.waitPodReplaced(pod, before.UID, 2*time.Minute)
		masters = h.waitExact("fault "+strconv.Itoa(len(faults))+": "+what, 2*time.Minute)
		if _, err := h.writers[0].FirstAckAfter(time.Now(), 30*time.Second); err != nil {
			t.Fatalf("fault %d (%s): writes did not resume: %v", len(faults), what, err)
		}
		t.Logf("TIMING fault %d (%s): healed, every Sentinel exact after %.1f s; longest time without an acknowledged write %d ms",
			len(faults), what, time.Since(at).Seconds(), maxAckGap(h.writers[0].Acks(), at).Milliseconds())
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
	}
	if len(faults) < 3 {
		t.Errorf("only %d faults in %s", len(faults), duration)
	}
	masters = h.waitExact("after the chaos", time.Minute)
	h.checkNoLoss(masters)
	t.Logf("%d faults: %v", len(faults), faults)
}
