package e2ek8s

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestScaleUnderWrites: replicas 2→4→1 (the master moved to the highest
// ordinal first, so scaling in must fail it over before its pod goes) and
// shards 1→2→1, while a Sentinel-aware client writes SET + WAIT 1 through
// the -sentinel Service. No acknowledged write is lost: every one is on the
// final master and its replica, with its value; after every step the
// -master and -replicas Services select exactly the shard's master and
// replicas, and the Sentinels list exactly the replicas there are.
func TestScaleUnderWrites(t *testing.T) {
	n := newNode(t, nodeOptions{})
	ctx := context.Background()
	cl, took := n.CreateReady(api.CreateClusterRequest{Name: "s", Shards: intp(1), Replicas: intp(2), Sentinels: intp(3)})
	t.Logf("TIMING create 1x2x3 -> Ready: %.1f s", took.Seconds())
	creds, err := n.M.Client.Credentials(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	w, err := testenv.StartWriter(testenv.GoRedis, testenv.WriterConfig{Sentinels: []string{n.ServiceAddr("s-sentinel", 26379)},
		MasterName: "s-0", Password: creds.Password, SentinelPassword: creds.SentinelPassword, Prefix: "w", Dialer: n.dialer.DialContext}, testenv.Runtimes{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	if _, err := w.FirstAckAfter(time.Now().Add(-time.Hour), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	n.checkShard(creds, "s", 0, cl.Spec.Replicas)

	n.scale("s", api.UpdateClusterRequest{Replicas: intp(4)})
	n.checkShard(creds, "s", 0, 4)

	// The master onto the highest ordinal: the others may not be promoted
	// while a planned failover runs.
	n.moveMaster(creds, "s", 0, 4)
	n.checkShard(creds, "s", 0, 4)
	before := w.Acks()

	n.scale("s", api.UpdateClusterRequest{Replicas: intp(1)})
	master := n.checkShard(creds, "s", 0, 1)
	if master != "s-0-0" && master != "s-0-1" {
		t.Fatalf("after scaling in to 1 replica the master is %s", master)
	}
	if evs, err := n.M.Client.ClusterEvents(ctx, "s"); err == nil {
		found := false
		for _, e := range evs {
			found = found || (e.Type == "failover" && strings.Contains(e.Message, "before scaling in"))
		}
		if !found {
			t.Errorf("no planned failover event before scaling in: %+v", evs)
		}
	}
	n.checkGone("s-0-2", "s-0-3", "s-0-4")

	n.scale("s", api.UpdateClusterRequest{Shards: intp(2)})
	n.checkShard(creds, "s", 0, 1)
	n.checkShard(creds, "s", 1, 1)

	n.scale("s", api.UpdateClusterRequest{Shards: intp(1)})
	n.checkShard(creds, "s", 0, 1)
	n.checkGone("s-1-0", "s-1-1")
	// The shard's set goes by foreground deletion: the garbage collector
	// removes it a moment after its pods.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var left []string
		for _, svc := range []string{"s-1", "s-1-master", "s-1-replicas"} {
			if _, err := n.cs.CoreV1().Services(n.NS).Get(ctx, svc, metav1.GetOptions{}); err == nil {
				left = append(left, "Service "+svc)
			}
		}
		if _, err := n.cs.AppsV1().StatefulSets(n.NS).Get(ctx, "s-1", metav1.GetOptions{}); err == nil {
			left = append(left, "StatefulSet s-1")
		}
		if _, err := n.cs.PolicyV1().PodDisruptionBudgets(n.NS).Get(ctx, "s-1", metav1.GetOptions{}); err == nil {
			left = append(left, "PodDisruptionBudget s-1")
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left 30 s after removing shard 1: %v", left)
		}
	}

	acks := w.Stop()
	if len(acks) <= len(before) {
		t.Fatalf("no write acknowledged after the master moved (%d before, %d in all)", len(before), len(acks))
	}
	n.checkAcks(creds, "s", 0, acks)
	t.Logf("%d acknowledged writes (%d errors) all on the final master and its replica", len(acks), w.Errors())
}

// scale patches the cluster and waits for the job and Ready.
func (n *node) scale(cluster string, req api.UpdateClusterRequest) {
	n.t.Helper()
	ctx := context.Background()
	start := time.Now()
	var res api.ClusterJob
	testenv.WhenIdle(n.t, "scale "+describeUpdate(req), func() (err error) { res, err = n.M.Client.UpdateCluster(ctx, cluster, req); return err })
	n.M.WaitJob(ctx, res.Job.ID)
	n.M.WaitPhase(ctx, cluster, api.PhaseReady, time.Minute)
	n.t.Logf("TIMING scale %s → Ready: %.1f s", describeUpdate(req), time.Since(start).Seconds())
}

func describeUpdate(req api.UpdateClusterRequest) string {
	var s []string
	if req.Replicas != nil {
		s = append(s, fmt.Sprintf("replicas %d", *req.Replicas))
	}
	if req.Shards != nil {
		s = append(s, fmt.Sprintf("shards %d", *req.Shards))
	}
	return strings.Join(s, ", ")
}

// checkShard waits (up to 30 s) until every Sentinel names the same
// master of the shard and lists exactly its replicas, up and in sync, and
// the shard's Services select exactly them; it returns the master's pod.
func (n *node) checkShard(creds api.Credentials, cluster string, shard, replicas int) string {
	n.t.Helper()
	set := fmt.Sprintf("%s-%d", cluster, shard)
	sentinels := n.sentinelAddrs(cluster, 3)
	var problem, master string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		master, problem = n.shardProblem(creds, set, sentinels, replicas)
		if problem == "" {
			return master
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("shard %s not settled: %s", set, problem)
		}
	}
}

func (n *node) shardProblem(creds api.Credentials, set string, sentinels []string, replicas int) (string, string) {
	masterAddr := ""
	var reps []string
	for _, s := range sentinels {
		sc := n.sentinel(s, creds.SentinelPassword)
		r, err := sc.GetMasterAddrByName(context.Background(), set).Result()
		sc.Close()
		if err != nil || len(r) != 2 {
			return "", fmt.Sprintf("Sentinel %s: master of %s: %v %v", s, set, r, err)
		}
		a := r[0] + ":" + r[1]
		if masterAddr != "" && a != masterAddr {
			return "", fmt.Sprintf("Sentinels name %s and %s as master of %s", masterAddr, a, set)
		}
		masterAddr = a
		got := sentinelReplicas(n, s, creds.SentinelPassword, set)
		if reps != nil && fmt.Sprint(got) != fmt.Sprint(reps) {
			return "", fmt.Sprintf("Sentinels list replicas %v and %v of %s", reps, got, set)
		}
		reps = got
	}
	if len(reps) != replicas {
		return "", fmt.Sprintf("Sentinels list replicas %v of %s, want %d", reps, set, replicas)
	}
	master := podOf(masterAddr)
	var repPods []string
	for _, r := range reps {
		if strings.Contains(r, " ") {
			return "", fmt.Sprintf("replica %s of %s", r, set)
		}
		if p := replicaProblem(n, r, masterAddr, creds.Password); p != "" {
			return "", p
		}
		repPods = append(repPods, podOf(r))
	}
	return master, n.servicesProblem(strings.TrimSuffix(set, set[strings.LastIndexByte(set, '-'):]), shardNum(set), master, repPods)
}

// podOf is the pod of an instance's DNS name.
func podOf(addr string) string {
	if i := strings.IndexByte(addr, '.'); i > 0 {
		return addr[:i]
	}
	return addr
}

func shardNum(set string) int {
	var k int
	fmt.Sscan(set[strings.LastIndexByte(set, '-')+1:], &k)
	return k
}

// moveMaster makes ordinal the shard's master with a planned failover
// through the API: the other replicas get replica-priority 0 until it is
// done (and their priority back after, seen by every Sentinel).
func (n *node) moveMaster(creds api.Credentials, cluster string, shard, ordinal int) {
	n.t.Helper()
	ctx := context.Background()
	set := fmt.Sprintf("%s-%d", cluster, shard)
	sentinels := n.sentinelAddrs(cluster, 3)
	old := sentinelMaster(n.t, n, sentinels[0], creds.SentinelPassword, set)
	target := n.FQDN(fmt.Sprintf("%s-%d", set, ordinal), set, 6379)
	var others []string
	for _, r := range sentinelReplicas(n, sentinels[0], creds.SentinelPassword, set) {
		if r != target {
			others = append(others, r)
		}
	}
	setPriority := func(p string) {
		for _, r := range others {
			c := n.Redis(r, creds.Password)
			err := c.ConfigSet(ctx, "replica-priority", p).Err()
			c.Close()
			if err != nil {
				n.t.Fatalf("CONFIG SET replica-priority %s on %s: %v", p, r, err)
			}
		}
		n.waitSentinelsSeePriority(creds, sentinels, set, others, p)
	}
	setPriority("0")
	var job api.Job
	testenv.WhenIdle(n.t, "failover "+set, func() (err error) { job, err = n.M.Client.Failover(ctx, cluster, shard); return err })
	n.M.WaitJob(ctx, job.ID)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if got := sentinelMaster(n.t, n, sentinels[0], creds.SentinelPassword, set); got == target {
			break
		} else if time.Now().After(deadline) {
			n.t.Fatalf("after the failover of %s (master was %s) the master is %s, want %s", set, old, got, target)
		}
	}
	others = append(others, old)
	setPriority("100")
}

// waitSentinelsSeePriority waits until every Sentinel reports the replica
// priority p for each of the replicas.
func (n *node) waitSentinelsSeePriority(creds api.Credentials, sentinels []string, set string, replicas []string, p string) {
	n.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		problem := ""
		for _, s := range sentinels {
			sc := n.sentinel(s, creds.SentinelPassword)
			reps, err := sc.Replicas(context.Background(), set).Result()
			sc.Close()
			if err != nil {
				problem = err.Error()
				break
			}
			for _, r := range reps {
				addr := r["ip"] + ":" + r["port"]
				for _, want := range replicas {
					if addr == want && r["slave-priority"] != p {
						problem = fmt.Sprintf("Sentinel %s sees priority %s on %s", s, r["slave-priority"], addr)
					}
				}
			}
		}
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("replica-priority %s not seen by every Sentinel: %s", p, problem)
		}
	}
}

// checkGone fails the test if a pod or claim of the instances is left.
func (n *node) checkGone(pods ...string) {
	n.t.Helper()
	ctx := context.Background()
	for _, p := range pods {
		if _, err := n.cs.CoreV1().Pods(n.NS).Get(ctx, p, metav1.GetOptions{}); err == nil {
			n.t.Errorf("pod %s left after scaling in", p)
		}
		// The claim goes with the pod (the StatefulSet's retention policy);
		// its deletion may take a moment after the job.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			_, err := n.cs.CoreV1().PersistentVolumeClaims(n.NS).Get(ctx, "data-"+p, metav1.GetOptions{})
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				n.t.Errorf("claim data-%s left 30 s after scaling in", p)
				break
			}
		}
	}
}

// checkAcks checks every acknowledged write on the shard's master and each
// replica, as the Sentinels name them (replicas get 20 s to catch up).
func (n *node) checkAcks(creds api.Credentials, cluster string, shard int, acks []testenv.Ack) {
	n.t.Helper()
	ctx := context.Background()
	set := fmt.Sprintf("%s-%d", cluster, shard)
	sentinels := n.sentinelAddrs(cluster, 3)
	addrs := append([]string{sentinelMaster(n.t, n, sentinels[0], creds.SentinelPassword, set)},
		sentinelReplicas(n, sentinels[0], creds.SentinelPassword, set)...)
	for _, a := range addrs {
		rc := n.Redis(a, creds.Password)
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			missing, wrong, err := testenv.MissingAcks(ctx, rc, acks)
			if wrong != "" {
				n.t.Fatalf("%s: %s", a, wrong)
			}
			if err == nil && missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				n.t.Fatalf("%s lacks %d of %d acknowledged writes (%v)", a, missing, len(acks), err)
			}
		}
		rc.Close()
	}
}
