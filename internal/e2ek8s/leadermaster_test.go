package e2ek8s

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestLeaderThenMasterDeleted: the leading manager's pod force-deleted
// (grace 0), then at once the master's pod deleted: the master dies while
// no manager leads (the chaos kind "manager leader + master", on its own,
// without a seed). Rounds alternate a graceful and a forced deletion of the
// master; rounds 3 and 4 of every 4 also stop every Sentinel for 3 s
// (SIGSTOP from the node) 1.5 s after, as a loaded node stalled them in the
// chaos run that failed, so each is in TILT while the master is gone
// (REDIS_MANAGER_K8S_LEADER_MASTER_ROUNDS, default 4). Each round
// must end in a failover (the old master back as a replica: its boot held
// until the Sentinels name another), a new leader at a higher epoch, every
// Sentinel exact and the writes resumed, within recovery.md's bound for a
// master lost while no manager leads; at the end no acknowledged write is
// lost. It logs per round the write unavailability, the time to exact
// Sentinels and the Sentinels' TILT episodes (the one run that failed in
// the chaos test had every Sentinel in TILT for 30 s).
func TestLeaderThenMasterDeleted(t *testing.T) {
	rounds := 4
	if v := os.Getenv("REDIS_MANAGER_K8S_LEADER_MASTER_ROUNDS"); v != "" {
		r, err := strconv.Atoi(v)
		if err != nil || r < 1 {
			t.Fatalf("REDIS_MANAGER_K8S_LEADER_MASTER_ROUNDS=%q: want a positive integer", v)
		}
		rounds = r
	}
	n := newNode(t, nodeOptions{NoManager: true})
	ic := installChart(n, nil)
	ic.waitOneLeader(time.Minute)
	ctx := context.Background()
	ic.createReady(api.CreateClusterRequest{Name: "x", Shards: intp(1), Replicas: intp(2), Sentinels: intp(3)})
	creds, err := ic.Client.Credentials(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	h := startHealCluster(n, "x", 1, 2, creds)
	masters := h.waitExact("before the deletions", time.Minute)

	var gaps, heals []string
	for round := 1; round <= rounds; round++ {
		_, leader, epoch := ic.waitOneLeader(time.Minute)
		pod := podOf(masters[0])
		mOpts, mHow := metav1.DeleteOptions{}, "deleted"
		if round%2 == 0 {
			mOpts, mHow = metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, "force-deleted (grace 0)"
		}
		stall := round%4 == 3 || round%4 == 0
		_, at := n.deleteForChaos(leader, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		uid, _ := n.deleteForChaos(pod, mOpts)
		what := fmt.Sprintf("round %d: manager leader %s force-deleted (grace 0), then master %s %s", round, leader, pod, mHow)
		if stall {
			what += fmt.Sprintf(", every Sentinel stalled %s", sentinelStall)
		}
		t.Logf("%s at %s", what, at.Format("15:04:05.000"))
		if stall {
			time.Sleep(1500 * time.Millisecond)
			h.stallSentinels(sentinelStall)
		}
		next, when := ic.newLeaderAfter(leader, time.Minute)
		t.Logf("TIMING %s: %s leads after %.2f s", what, next, when.Sub(at).Seconds())
		prev := masters[0]
		masters = h.healedAfter(round, what, at, map[string]types.UID{pod: uid})
		healed := time.Since(at)
		gap := maxAckGap(h.writers[0].Acks(), at)
		gaps = append(gaps, fmt.Sprintf("%.1f", gap.Seconds()))
		heals = append(heals, fmt.Sprintf("%.1f", healed.Seconds()))
		for _, l := range h.sentinelTilts(at) {
			t.Logf("%s: %s", what, l)
		}
		if masters[0] == prev {
			t.Errorf("%s: the master's pod went and the master is still %s", what, prev)
		}
		if healed > leaderMasterHealBound {
			t.Errorf("%s: every Sentinel exact only after %.1f s, want within %s (docs/recovery.md)", what, healed.Seconds(), leaderMasterHealBound)
		}
		ic.waitReplicasReady(2, 2*time.Minute)
		if _, l2, e2 := ic.waitOneLeader(time.Minute); l2 == leader || e2 <= epoch {
			t.Errorf("%s: leader %s at epoch %d, before %s at %d: want a new leader at a higher epoch", what, l2, e2, leader, epoch)
		}
		time.Sleep(time.Second)
	}
	masters = h.waitExact("after the deletions", time.Minute)
	h.checkNoLoss(masters)
	t.Logf("TIMING %d rounds: longest time without an acknowledged write %s s; every Sentinel exact after %s s",
		rounds, strings.Join(gaps, " "), strings.Join(heals, " "))
}

// sentinelStall is how long TestLeaderThenMasterDeleted stops every
// Sentinel in its stalled rounds: past Sentinel's 2 s TILT trigger, as the
// node stalled them in the chaos run that failed.
const sentinelStall = 3 * time.Second

// stallSentinels stops every Sentinel process of the cluster (SIGSTOP from
// the node: the test runs as root on the node's host) for d, then lets
// them run again: a loaded node's stall, after which each is in TILT.
func (h *healCluster) stallSentinels(d time.Duration) {
	t := h.n.t
	t.Helper()
	var pids []int
	for o := range h.sentinels {
		pod := fmt.Sprintf("%s-sentinel-%d", h.name, o)
		p, err := h.n.cs.CoreV1().Pods(h.n.NS).Get(context.Background(), pod, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("pod %s: %v", pod, err)
		}
		var id string
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == "sentinel" {
				_, id, _ = strings.Cut(cs.ContainerID, "://")
			}
		}
		pid := testenv.ContainerPid(id, "redis-server")
		if pid == 0 {
			pid = testenv.ContainerPid(id, "redis-sentinel")
		}
		if pid == 0 {
			t.Fatalf("no Sentinel process of pod %s (container %q) on this host", pod, id)
		}
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatalf("SIGSTOP %d: %v (the test needs root)", pid, err)
		}
	}
	time.Sleep(d)
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Errorf("SIGCONT %d: %v", pid, err)
		}
	}
}

// leaderMasterHealBound is docs/recovery.md's bound on healing a master
// lost while no manager leads.
const leaderMasterHealBound = 60 * time.Second

// sentinelTilts returns the TILT lines (+tilt, -tilt) of the cluster's
// Sentinels' logs since since, each with its Sentinel's pod.
func (h *healCluster) sentinelTilts(since time.Time) []string {
	var out []string
	st := metav1.NewTime(since.Add(-time.Second))
	for o := range h.sentinels {
		pod := fmt.Sprintf("%s-sentinel-%d", h.name, o)
		b, err := h.n.cs.CoreV1().Pods(h.n.NS).GetLogs(pod, &corev1.PodLogOptions{Container: "sentinel", SinceTime: &st}).DoRaw(context.Background())
		if err != nil {
			out = append(out, fmt.Sprintf("%s: log: %v", pod, err))
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "tilt") {
				out = append(out, pod+": "+l)
			}
		}
	}
	return out
}
