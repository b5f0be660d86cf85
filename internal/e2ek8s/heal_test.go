package e2ek8s

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// What healing on Kubernetes must end in, whatever failed: the helpers the
// healing tests (failover_test.go, kill_test.go, pairdelete_test.go,
// chaos_test.go) share.

// healCluster is one cluster under test with what its healing must keep:
// the Sentinels' ids, the claims' UIDs.
type healCluster struct {
	n                *node
	name             string
	shards, replicas int
	sentinels        int
	creds            api.Credentials
	sentinelIDs      map[string]string    // Sentinel fqdn:port → SENTINEL MYID
	claims           map[string]types.UID // pod → its claim's UID
	writers          []*testenv.Writer    // one per shard, SET + WAIT 1 through the -sentinel Service
}

// newHealCluster creates a cluster (shards × replicas, 3 Sentinels), reads
// the Sentinels' ids and the claims' UIDs, and starts a WAIT-1 writer per
// shard through the cluster's -sentinel Service.
func newHealCluster(n *node, name string, shards, replicas int) *healCluster {
	t := n.t
	t.Helper()
	ctx := context.Background()
	_, took := n.CreateReady(api.CreateClusterRequest{Name: name, Shards: intp(shards), Replicas: intp(replicas), Sentinels: intp(3)})
	t.Logf("TIMING create %dx%dx3 -> Ready: %.1f s", shards, replicas, took.Seconds())
	creds, err := n.M.Client.Credentials(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return startHealCluster(n, name, shards, replicas, creds)
}

// startHealCluster does newHealCluster's work for a cluster already Ready,
// whoever created it (the host's manager or the chart's in the cluster).
func startHealCluster(n *node, name string, shards, replicas int, creds api.Credentials) *healCluster {
	t := n.t
	t.Helper()
	ctx := context.Background()
	n.sentinelPassword = creds.SentinelPassword
	h := &healCluster{n: n, name: name, shards: shards, replicas: replicas, sentinels: 3, creds: creds,
		sentinelIDs: map[string]string{}, claims: map[string]types.UID{}}
	for _, s := range n.sentinelAddrs(name, 3) {
		rc := n.Redis(s, creds.SentinelPassword)
		id, err := rc.Do(ctx, "SENTINEL", "MYID").Text()
		rc.Close()
		if err != nil {
			t.Fatalf("SENTINEL MYID of %s: %v", s, err)
		}
		h.sentinelIDs[s] = id
	}
	for _, pod := range h.pods() {
		c, err := n.cs.CoreV1().PersistentVolumeClaims(n.NS).Get(ctx, "data-"+pod, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("claim of %s: %v", pod, err)
		}
		h.claims[pod] = c.UID
	}
	h.waitExact("after create", time.Minute)
	for sh := range shards {
		w, err := testenv.StartWriter(testenv.GoRedis, testenv.WriterConfig{Sentinels: []string{n.ServiceAddr(name+"-sentinel", 26379)},
			MasterName: fmt.Sprintf("%s-%d", name, sh), Password: creds.Password, SentinelPassword: creds.SentinelPassword,
			Prefix: fmt.Sprintf("w%d", sh), Dialer: n.dialer.DialContext}, testenv.Runtimes{})
		if err != nil {
			t.Fatal(err)
		}
		h.writers = append(h.writers, w)
		t.Cleanup(func() { w.Stop() })
	}
	for sh, w := range h.writers {
		if _, err := w.FirstAckAfter(time.Now(), 30*time.Second); err != nil {
			t.Fatalf("shard %d: the writer does not write: %v", sh, err)
		}
	}
	return h
}

// pods are the cluster's pods: every shard's instances and the Sentinels.
func (h *healCluster) pods() []string {
	var out []string
	for sh := range h.shards {
		for o := 0; o <= h.replicas; o++ {
			out = append(out, fmt.Sprintf("%s-%d-%d", h.name, sh, o))
		}
	}
	for o := range h.sentinels {
		out = append(out, fmt.Sprintf("%s-sentinel-%d", h.name, o))
	}
	return out
}

// shardAddrs are the fqdn:port of a shard's instances.
func (h *healCluster) shardAddrs(shard int) []string {
	var out []string
	for o := 0; o <= h.replicas; o++ {
		out = append(out, h.n.FQDN(fmt.Sprintf("%s-%d-%d", h.name, shard, o), fmt.Sprintf("%s-%d", h.name, shard), 6379))
	}
	return out
}

// sentinelTable parses a SENTINEL MASTERS/REPLICAS/SENTINELS reply (RESP2:
// a list of flat field/value lists).
func sentinelTable(reply []any) []map[string]string {
	var out []map[string]string
	for _, e := range reply {
		fields, _ := e.([]any)
		m := map[string]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			m[fmt.Sprint(fields[i])] = fmt.Sprint(fields[i+1])
		}
		out = append(out, m)
	}
	return out
}

// exactProblem says how the cluster differs from healed ("" when healed),
// and returns each shard's master. Healed is: every Sentinel answers with
// its own id and monitors exactly the cluster's shards, each flagged only
// master with the same address on every Sentinel, and lists exactly the
// shard's other instances as replicas, none down or disconnected, and
// exactly the other Sentinels by id and name, none down; the master runs as
// master and every other instance is its replica in sync; the -master and
// -replicas Services select exactly them; every pod has its own claim (the
// same UID as at the start).
func (h *healCluster) exactProblem() (map[int]string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := h.n
	masters := map[int]string{}
	sentinels := n.sentinelAddrs(h.name, h.sentinels)
	for _, s := range sentinels {
		rc := n.Redis(s, h.creds.SentinelPassword)
		problem := func() string {
			defer rc.Close()
			id, err := rc.Do(ctx, "SENTINEL", "MYID").Text()
			if err != nil {
				return fmt.Sprintf("SENTINEL MYID of %s: %v", s, err)
			}
			if id != h.sentinelIDs[s] {
				return fmt.Sprintf("Sentinel %s has id %s, had %s", s, id, h.sentinelIDs[s])
			}
			reply, err := rc.Do(ctx, "SENTINEL", "MASTERS").Slice()
			if err != nil {
				return fmt.Sprintf("SENTINEL MASTERS on %s: %v", s, err)
			}
			var names, wantNames []string
			for _, m := range sentinelTable(reply) {
				names = append(names, m["name"])
				if m["flags"] != "master" {
					return fmt.Sprintf("Sentinel %s flags %s %q", s, m["name"], m["flags"])
				}
			}
			for sh := range h.shards {
				wantNames = append(wantNames, fmt.Sprintf("%s-%d", h.name, sh))
			}
			sort.Strings(names)
			if fmt.Sprint(names) != fmt.Sprint(wantNames) {
				return fmt.Sprintf("Sentinel %s monitors %v, want %v", s, names, wantNames)
			}
			for sh := range h.shards {
				name := fmt.Sprintf("%s-%d", h.name, sh)
				r, err := rc.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name).StringSlice()
				if err != nil || len(r) != 2 {
					return fmt.Sprintf("master of %s on %s: %v %v", name, s, r, err)
				}
				m := net.JoinHostPort(r[0], r[1])
				if prev, ok := masters[sh]; ok && prev != m {
					return fmt.Sprintf("Sentinels name different masters of %s: %s and %s", name, prev, m)
				}
				masters[sh] = m
				want := without(h.shardAddrs(sh), m)
				if got := sentinelReplicas(n, s, h.creds.SentinelPassword, name); fmt.Sprint(got) != fmt.Sprint(want) {
					return fmt.Sprintf("Sentinel %s lists replicas of %s %v, want %v", s, name, got, want)
				}
				reply, err := rc.Do(ctx, "SENTINEL", "SENTINELS", name).Slice()
				if err != nil {
					return fmt.Sprintf("SENTINEL SENTINELS %s on %s: %v", name, s, err)
				}
				var got, wantPeers []string
				for _, p := range sentinelTable(reply) {
					e := p["runid"] + "@" + net.JoinHostPort(p["ip"], p["port"])
					if p["flags"] != "sentinel" {
						e += " (" + p["flags"] + ")"
					}
					got = append(got, e)
				}
				for a, pid := range h.sentinelIDs {
					if a != s {
						wantPeers = append(wantPeers, pid+"@"+a)
					}
				}
				sort.Strings(got)
				sort.Strings(wantPeers)
				if fmt.Sprint(got) != fmt.Sprint(wantPeers) {
					return fmt.Sprintf("Sentinel %s knows for %s %v, want exactly %v", s, name, got, wantPeers)
				}
			}
			return ""
		}()
		if problem != "" {
			return masters, problem
		}
	}
	for sh := range h.shards {
		m := masters[sh]
		mc := n.Redis(m, h.creds.Password)
		info, err := mc.Info(ctx, "replication").Result()
		mc.Close()
		if err != nil || infoField(info, "role") != "master" || infoField(info, "connected_slaves") != strconv.Itoa(h.replicas) {
			return masters, fmt.Sprintf("master %s: role %s, %s replicas connected, want %d (%v)", m, infoField(info, "role"),
				infoField(info, "connected_slaves"), h.replicas, err)
		}
		var reps []string
		for _, r := range without(h.shardAddrs(sh), m) {
			if p := replicaProblem(n, r, m, h.creds.Password); p != "" {
				return masters, p
			}
			reps = append(reps, podOf(r))
		}
		if p := n.servicesProblem(h.name, sh, podOf(m), reps); p != "" {
			return masters, p
		}
	}
	for pod, uid := range h.claims {
		p, err := n.cs.CoreV1().Pods(n.NS).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return masters, fmt.Sprintf("pod %s: %v", pod, err)
		}
		var claim string
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim != nil {
				claim = v.PersistentVolumeClaim.ClaimName
			}
		}
		c, err := n.cs.CoreV1().PersistentVolumeClaims(n.NS).Get(ctx, claim, metav1.GetOptions{})
		if err != nil || c.UID != uid {
			return masters, fmt.Sprintf("pod %s mounts claim %q (%v), want data-%s with UID %s", pod, claim, err, pod, uid)
		}
	}
	return masters, ""
}

// waitExact waits until the cluster is healed (exactProblem) and returns
// each shard's master; it logs each new problem once with the time since
// the wait began, and fails the test after timeout.
func (h *healCluster) waitExact(after string, timeout time.Duration) map[int]string {
	t := h.n.t
	t.Helper()
	start := time.Now()
	last := ""
	for {
		masters, p := h.exactProblem()
		if p == "" {
			return masters
		}
		if p != last {
			t.Logf("%s, %.1f s: %s", after, time.Since(start).Seconds(), p)
			last = p
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not healed within %s: %s", after, timeout, p)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkNoLoss stops the writers and checks every acknowledged write is on
// every instance of its shard with its value (after the master's WAIT for
// every replica).
func (h *healCluster) checkNoLoss(masters map[int]string) {
	t := h.n.t
	t.Helper()
	ctx := context.Background()
	for sh, w := range h.writers {
		acks := w.Stop()
		if len(acks) < 100 {
			t.Errorf("shard %d: only %d writes acknowledged: the writer hardly wrote", sh, len(acks))
		}
		mc := h.n.Redis(masters[sh], h.creds.Password)
		if got, err := mc.Do(ctx, "WAIT", h.replicas, 10000).Int(); err != nil || got != h.replicas {
			t.Errorf("shard %d: WAIT %d on %s: %d %v", sh, h.replicas, masters[sh], got, err)
		}
		mc.Close()
		for _, a := range h.shardAddrs(sh) {
			rc := h.n.Redis(a, h.creds.Password)
			missing, wrong, err := testenv.MissingAcks(ctx, rc, acks)
			rc.Close()
			if err != nil {
				t.Errorf("shard %d: reading the acknowledged writes on %s: %v", sh, a, err)
				continue
			}
			if missing > 0 || wrong != "" {
				t.Errorf("shard %d: %s lost %d of %d acknowledged writes; wrong value: %q", sh, a, missing, len(acks), wrong)
			}
		}
		t.Logf("shard %d: %d writes acknowledged with WAIT 1, %d attempts failed; all on every instance with their values", sh, len(acks), w.Errors())
	}
}

// killContainerProcess kills the container's main process (redis-server,
// which the entrypoint execs) with SIGKILL from the node, the way a crash
// or the kernel's OOM killer ends it: the pod stays, and the kubelet
// restarts the container. Inside the container the process is PID 1, which
// ignores a SIGKILL sent from its own PID namespace, so the kill comes
// from the host (the test node runs on this machine; the tests run as
// root). It returns the pid killed and when.
func (n *node) killContainerProcess(pod, container string) (int, time.Time) {
	n.t.Helper()
	p, err := n.cs.CoreV1().Pods(n.NS).Get(context.Background(), pod, metav1.GetOptions{})
	if err != nil {
		n.t.Fatalf("pod %s: %v", pod, err)
	}
	var id string
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == container {
			_, id, _ = strings.Cut(cs.ContainerID, "://")
		}
	}
	if id == "" {
		n.t.Fatalf("pod %s has no container %s running", pod, container)
	}
	pid := testenv.ContainerPid(id, "redis-server")
	if pid == 0 {
		n.t.Fatalf("no redis-server process of container %s (pod %s) on this host: the test kills it from the node, which must run here", id, pod)
	}
	at := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		n.t.Fatalf("kill -9 %d (redis-server of %s): %v (the test needs root)", pid, pod, err)
	}
	return pid, at
}

// waitFailoverEvent waits for the cluster's first failover event after
// since and returns it.
func (n *node) waitFailoverEvent(cluster string, since time.Time, timeout time.Duration) api.Event {
	n.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		evs, err := n.M.Client.ClusterEvents(ctx, cluster)
		if err != nil {
			n.t.Fatal(err)
		}
		for _, e := range evs {
			if e.Type == "failover" && !e.At.Before(since.Add(-time.Second)) {
				return e
			}
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("no failover event within %s: %+v", timeout, evs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// containerRestarts is the restart count of a pod's container.
func containerRestarts(p *corev1.Pod, container string) int32 {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == container {
			return cs.RestartCount
		}
	}
	return -1
}

// maxAckGap is the longest time without an acknowledged write after since.
func maxAckGap(acks []testenv.Ack, since time.Time) time.Duration {
	var gap time.Duration
	prev := since
	for _, a := range acks {
		if a.At.Before(since) {
			continue
		}
		gap = max(gap, a.At.Sub(prev))
		prev = a.At
	}
	return gap
}
