package e2ek8s

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/platform/kubernetes"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func i64p(v int64) *int64     { return &v }
func f64p(v float64) *float64 { return &v }

// TestAutoscaleInCluster: the autoscaling policy on the kubernetes
// platform, with short windows, while a go-redis client writes through the
// -sentinel Service:
//   - memory: the master filled to 75 % of maxmemory 32mb (allkeys-lru)
//     → maxmemory raised to 48mb before any key is evicted (evicted_keys
//     0) and the pods' memory request and limit raised in place (the pod
//     spec read back; no container restarted);
//   - replicas: redis-benchmark GETs against the replica pod → a new
//     replica pod that serves reads (timed from the load step);
//   - the platform's ReplicaRoom on the real node: need is the master's
//     used_memory plus its copy-on-write, have the master pod's limit;
//
// no write errors and every acknowledged write on the final master and
// replicas.
func TestAutoscaleInCluster(t *testing.T) {
	bench, err := exec.LookPath("redis-benchmark")
	if err != nil {
		t.Fatalf("redis-benchmark (redis-tools) not installed: %v", err)
	}
	n := newNode(t, nodeOptions{})
	ctx := context.Background()
	cl, took := n.CreateReady(api.CreateClusterRequest{Name: "as", Shards: intp(1), Replicas: intp(1), Sentinels: intp(3),
		Maxmemory: "32mb", MaxmemoryPolicy: "allkeys-lru"})
	t.Logf("TIMING create 1x1x3 -> Ready: %.1f s", took.Seconds())
	creds, err := n.M.Client.Credentials(ctx, "as")
	if err != nil {
		t.Fatal(err)
	}
	w, err := testenv.StartWriter(testenv.GoRedis, testenv.WriterConfig{Sentinels: []string{n.ServiceAddr("as-sentinel", 26379)},
		MasterName: "as-0", Password: creds.Password, SentinelPassword: creds.SentinelPassword, Prefix: "w", Dialer: n.dialer.DialContext}, testenv.Runtimes{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	if _, err := w.FirstAckAfter(time.Now().Add(-time.Hour), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	policy := api.AutoscalePolicy{
		Replicas:           &api.AutoscaleReplicas{Min: 1, Max: 2, Metric: api.MetricOps, Target: 3000},
		Memory:             &api.AutoscaleMemory{Max: "64mb", HighPercent: f64p(70), ForMs: i64p(2000)},
		ScaleOutAfterMs:    i64p(4000),
		ScaleOutCooldownMs: i64p(5000),
		ScaleInCooldownMs:  i64p(5000),
		StabilizationMs:    i64p(int64(time.Hour / time.Millisecond)), // no scale-in in this test
		FailoverWindowMs:   i64p(0),
	}
	if _, err := n.M.Client.PutAutoscaling(ctx, "as", policy); err != nil {
		t.Fatal(err)
	}
	masterPod, replicaPod := podOf(cl.Status.Shards[0].Master.Address), podOf(cl.Status.Shards[0].Replicas[0].Address)
	master := n.Redis(n.FQDN(masterPod, "as-0", 6379), creds.Password)
	defer master.Close()

	// Memory: fill the master to 75 % of 32mb.
	val := strings.Repeat("x", 100<<10)
	for i := 0; ; i++ {
		if infoInt(t, master, "memory", "used_memory") > 24<<20 {
			break
		}
		if err := master.Set(ctx, fmt.Sprintf("fill:%d", i), val, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	filled := time.Now()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		mm, _ := master.ConfigGet(ctx, "maxmemory").Result()
		if mm["maxmemory"] == strconv.Itoa(48<<20) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("maxmemory not raised to 48mb within 60 s of the fill: %v", mm)
		}
	}
	evicted := infoInt(t, master, "stats", "evicted_keys")
	t.Logf("MEASURE memory filled to 75 %% → maxmemory 32mb→48mb after %.1f s; evicted_keys before the raise: %d", time.Since(filled).Seconds(), evicted)
	if evicted != 0 {
		t.Errorf("evicted_keys %d before the raise, want 0", evicted)
	}
	up := autoscaleDecision(t, n, "as", "memory-up", 10*time.Second)
	if job, _ := up.Details["job"].(string); job != "" {
		if j := n.M.WaitJob(ctx, job); j.State != api.StateSucceeded {
			t.Fatalf("memory-up job %s: %s %s", job, j.State, j.Error)
		}
	}
	// The pods: request maxmemory + 64 MiB, limit twice maxmemory + 64
	// MiB (the platform's memoryOf), resized in place.
	const want = 48 << 20
	wantReq, wantLimit := resource.NewQuantity(want+64<<20, resource.BinarySI), resource.NewQuantity(2*want+64<<20, resource.BinarySI)
	for _, pod := range []string{masterPod, replicaPod} {
		n.waitPodMemory(pod, wantReq, wantLimit, true)
	}

	// ReplicaRoom on the real node, as the engine's replica-memory guard
	// reads it.
	used := infoInt(t, master, "memory", "used_memory")
	cow := max(infoInt(t, master, "persistence", "rdb_last_cow_size"), infoInt(t, master, "persistence", "current_cow_size"))
	p, err := kubernetes.New(ctx, kubernetes.Options{Kubeconfig: n.env.Kubeconfig, Namespace: n.NS, Image: n.env.Image},
		slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	need, have, bound, err := p.ReplicaRoom(ctx, platform.ID{Cluster: "as", Name: masterPod}, used, cow)
	p.Close()
	if err != nil {
		t.Fatal(err)
	}
	node, _ := n.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	var alloc string
	if len(node.Items) > 0 {
		alloc = node.Items[0].Status.Allocatable.Memory().String()
	}
	t.Logf("MEASURE ReplicaRoom(%s): need %d bytes (used_memory %d + copy-on-write %d), have %d bytes (%s); node allocatable %s",
		masterPod, need, used, cow, have, bound, alloc)
	if need != used+cow || have != wantLimit.Value() || !strings.Contains(bound, masterPod) {
		t.Errorf("ReplicaRoom = need %d have %d %q, want need %d (used+cow), have %d (the master pod's limit)", need, have, bound, used+cow, wantLimit.Value())
	}
	if need >= have {
		t.Errorf("ReplicaRoom says a replica's sync (%d bytes) does not fit the master pod (%d): the guard would hold every scale-out", need, have)
	}

	// Replicas: GETs against the replica pod.
	rp, err := n.cs.CoreV1().Pods(n.NS).Get(ctx, replicaPod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadStart := time.Now()
	load := exec.CommandContext(loadCtx, bench, "-h", rp.Status.PodIP, "-p", "6379", "-a", creds.Password, "-t", "get", "-c", "20", "-n", "100000000", "-q")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	newPod := "as-0-2"
	var probe string
	for _, a := range w.Acks() {
		probe = a.Key
	}
	rc := n.Redis(n.FQDN(newPod, "as-0", 6379), creds.Password)
	defer rc.Close()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if err := rc.Get(ctx, probe).Err(); err == nil {
			if info, err := rc.Info(ctx, "replication").Result(); err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new replica pod %s serving reads within 3 minutes of the load step", newPod)
		}
	}
	t.Logf("MEASURE load step → new replica pod serving reads: %.1f s", time.Since(loadStart).Seconds())
	stopLoad()
	_ = load.Wait()
	out := autoscaleDecision(t, n, "as", "scale-out", 10*time.Second)
	if r, ok := out.Details["readings"].(map[string]any); !ok || r["signal"].(float64) <= 3000 {
		t.Errorf("scale-out event without readings above the target: %v", out.Details)
	}
	if job, _ := out.Details["job"].(string); job != "" {
		if j := n.M.WaitJob(ctx, job); j.State != api.StateSucceeded {
			t.Fatalf("scale-out job %s: %s %s", job, j.State, j.Error)
		}
	}
	n.waitPodMemory(newPod, wantReq, wantLimit, false)
	n.M.WaitPhase(ctx, "as", api.PhaseReady, time.Minute)
	if ev := infoInt(t, master, "stats", "evicted_keys"); ev != 0 {
		t.Errorf("evicted_keys %d on the master after the scale-out, want 0", ev)
	}
	n.checkShard(creds, "as", 0, 2)
	acks := w.Stop()
	n.checkAcks(creds, "as", 0, acks)
	t.Logf("MEASURE write errors through Sentinel during the memory raise and the scale-out: %d (%d acknowledged writes, all on the final master and both replicas)", w.Errors(), len(acks))
	if w.Errors() != 0 {
		t.Errorf("%d writes through Sentinel failed during autoscaling", w.Errors())
	}
}

// autoscaleDecision waits for a scaled autoscale event of the action.
func autoscaleDecision(t *testing.T, n *node, cluster, action string, timeout time.Duration) api.Event {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(500 * time.Millisecond) {
		as, err := n.M.Client.GetAutoscaling(context.Background(), cluster)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range as.Decisions {
			if e.Details["action"] == action && e.Details["outcome"] == "scaled" {
				return e
			}
		}
		if time.Now().After(deadline) {
			for _, e := range as.Decisions {
				t.Logf("event %s %s %v", e.At.Format(time.RFC3339), e.Message, e.Details["guardMessage"])
			}
			t.Fatalf("no autoscale %s scaled within %s", action, timeout)
		}
	}
}

// waitPodMemory waits until the pod's redis container has the memory
// request and limit; inPlace: and was not restarted for it.
func (n *node) waitPodMemory(pod string, req, limit *resource.Quantity, inPlace bool) {
	n.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		p, err := n.cs.CoreV1().Pods(n.NS).Get(context.Background(), pod, metav1.GetOptions{})
		if err != nil {
			n.t.Fatal(err)
		}
		r := p.Spec.Containers[0].Resources
		if r.Requests.Memory().Cmp(*req) == 0 && r.Limits.Memory().Cmp(*limit) == 0 {
			rc := p.Status.ContainerStatuses[0].RestartCount
			n.t.Logf("pod %s: memory request %s limit %s, %d container restarts", pod, r.Requests.Memory(), r.Limits.Memory(), rc)
			if inPlace && rc != 0 {
				n.t.Errorf("%s restarted %d times for the resize, want in place", pod, rc)
			}
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s memory request %s limit %s, want %s and %s", pod, r.Requests.Memory(), r.Limits.Memory(), req, limit)
		}
	}
}
