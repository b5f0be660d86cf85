package e2ek8s

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestLifecycle: create 1×2×3 → Ready; writes through the -sentinel
// Service (a Sentinel-aware client) and the -master Service, reads from
// -replicas; a deleted replica pod comes back with the same name and its
// volume's data, and every Sentinel lists exactly the two replicas; a
// deleted Sentinel pod comes back with the same id, and every Sentinel
// knows exactly the other two; deleting the cluster leaves nothing.
func TestLifecycle(t *testing.T) {
	n := newNode(t, nodeOptions{})
	ctx := context.Background()
	cl, took := n.CreateReady(api.CreateClusterRequest{Name: "c", Shards: intp(1), Replicas: intp(2), Sentinels: intp(3)})
	t.Logf("TIMING create 1x2x3 -> Ready: %.1f s", took.Seconds())
	testenv.CheckStatus(t, cl, 1, 2, 3)
	creds, err := n.M.Client.Credentials(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	// Instances are addressed by their pods' DNS names.
	if want := n.FQDN("c-0-0", "c-0", 6379); cl.Status.Shards[0].Master.Address != want {
		t.Errorf("master address %q, want %q", cl.Status.Shards[0].Master.Address, want)
	}
	for i, a := range cl.Connection.Sentinels {
		if want := n.FQDN(fmt.Sprintf("c-sentinel-%d", i), "c-sentinels", 26379); a != want {
			t.Errorf("Sentinel %d address %q, want %q", i, a, want)
		}
	}

	// Soon after the create job ends the client Services select exactly
	// the pods of their role. (The role labels are set when the job
	// observes the cluster Ready; the EndpointSlice controller follows a
	// moment later: the lag is logged.)
	n.waitServices("c", 0, "c-0-0", []string{"c-0-1", "c-0-2"})

	// Writes through the -sentinel Service with a Sentinel-aware client.
	fc := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: "c-0", SentinelAddrs: []string{n.ServiceAddr("c-sentinel", 26379)}, Dialer: n.dialer.DialContext,
		Password: creds.Password, SentinelPassword: creds.SentinelPassword, Protocol: 2,
	})
	defer fc.Close()
	for i := range 100 {
		if err := fc.Set(ctx, fmt.Sprintf("s:%d", i), fmt.Sprintf("via-sentinel-%d", i), 0).Err(); err != nil {
			t.Fatalf("write through the -sentinel Service: %v", err)
		}
	}
	// And through the -master Service, which must lead to the master.
	mc := n.Redis(n.ServiceAddr("c-0-master", 6379), creds.Password)
	defer mc.Close()
	if role := n.roleThrough(mc, took); role != "master" {
		t.Fatalf("the -master Service leads to a %s", role)
	}
	if err := mc.Set(ctx, "m:1", "via-master", 0).Err(); err != nil {
		t.Fatalf("write through the -master Service: %v", err)
	}
	if got, err := mc.Do(ctx, "WAIT", 2, 10000).Int(); err != nil || got != 2 {
		t.Fatalf("WAIT 2 through the -master Service: %d %v", got, err)
	}
	// Reads from the -replicas Service, which leads to replicas only.
	for range 6 { // several connections: each may land on another replica
		c := n.Redis(n.ServiceAddr("c-0-replicas", 6379), creds.Password)
		if role := n.roleThrough(c, took); role != "slave" {
			t.Fatalf("the -replicas Service leads to a %s", role)
		}
		if v, err := c.Get(ctx, "m:1").Result(); err != nil || v != "via-master" {
			t.Fatalf("read m:1 from the -replicas Service: %q %v", v, err)
		}
		if v, err := c.Get(ctx, "s:99").Result(); err != nil || v != "via-sentinel-99" {
			t.Fatalf("read s:99 from the -replicas Service: %q %v", v, err)
		}
		c.Close()
	}

	n.replicaPodReturns(creds)
	n.sentinelPodReturns(creds)

	// Deleting the cluster leaves nothing in the namespace.
	start := time.Now()
	// (The manager may still be replacing the Sentinel it saw go: a job
	// of its own holds the cluster until it ends.)
	var job api.Job
	testenv.WhenIdle(t, "delete", func() (err error) { job, err = n.M.Client.DeleteCluster(ctx, "c"); return err })
	n.M.WaitJob(ctx, job.ID)
	jobTook := time.Since(start)
	gone := n.waitNothingLeft(time.Minute)
	t.Logf("TIMING delete cluster: job %.1f s, nothing left in the namespace %.1f s later", jobTook.Seconds(), gone.Seconds())
	if _, err := n.M.Client.GetCluster(ctx, "c"); !api.IsNotFound(err) {
		t.Fatalf("cluster still known after delete: %v", err)
	}
}

// roleThrough returns the role of the instance a Service leads to. The
// Service's endpoints are right when the job ends (checkServices); the
// host's kube-proxy programs them a moment later (its sync period, 1 s by
// default): the first connection is retried for up to 5 s, and the wait is
// logged.
func (n *node) roleThrough(c *redis.Client, since time.Duration) string {
	n.t.Helper()
	start := time.Now()
	for {
		info, err := c.Info(context.Background(), "replication").Result()
		if err == nil {
			if d := time.Since(start); d > 100*time.Millisecond {
				n.t.Logf("TIMING Service %s answered %.1f s after the first try (kube-proxy programming its endpoints)", c.Options().Addr, d.Seconds())
			}
			return infoField(info, "role")
		}
		if time.Since(start) > 5*time.Second {
			n.t.Fatalf("INFO replication through %s for 5 s: %v", c.Options().Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serviceEndpoints lists the pods a Service's EndpointSlices name, with
// " (not ready)" for one that is not ready.
func (n *node) serviceEndpoints(svc string) []string {
	n.t.Helper()
	sl, err := n.cs.DiscoveryV1().EndpointSlices(n.NS).List(context.Background(), metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + svc})
	if err != nil {
		n.t.Fatalf("EndpointSlices of %s: %v", svc, err)
	}
	var out []string
	for _, s := range sl.Items {
		for _, e := range s.Endpoints {
			name := "?"
			if e.TargetRef != nil {
				name = e.TargetRef.Name
			}
			if e.Conditions.Ready == nil || !*e.Conditions.Ready {
				name += " (not ready)"
			}
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// servicesProblem says how a shard's -master and -replicas Services do not
// select exactly its master and replicas ("" when they do).
func (n *node) servicesProblem(cluster string, shard int, master string, replicas []string) string {
	set := fmt.Sprintf("%s-%d", cluster, shard)
	if got := n.serviceEndpoints(set + "-master"); fmt.Sprint(got) != fmt.Sprint([]string{master}) {
		return fmt.Sprintf("Service %s-master selects %v, want [%s]", set, got, master)
	}
	want := append([]string(nil), replicas...)
	sort.Strings(want)
	if got := n.serviceEndpoints(set + "-replicas"); fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Sprintf("Service %s-replicas selects %v, want %v", set, got, want)
	}
	return ""
}

func (n *node) waitServices(cluster string, shard int, master string, replicas []string) {
	n.t.Helper()
	start := time.Now()
	for {
		p := n.servicesProblem(cluster, shard, master, replicas)
		if p == "" {
			break
		}
		if time.Since(start) > 5*time.Second {
			n.t.Fatalf("5 s after the job ended: %s", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(start); d > 20*time.Millisecond {
		n.t.Logf("TIMING the Services of %s-%d selected exactly their pods %.2f s after the job ended", cluster, shard, d.Seconds())
	}
}

func infoField(info, key string) string {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+":"); ok {
			return v
		}
	}
	return ""
}

// sentinelAddrs are the fqdn:port of the cluster's Sentinels.
func (n *node) sentinelAddrs(cluster string, count int) []string {
	var out []string
	for i := range count {
		out = append(out, n.FQDN(fmt.Sprintf("%s-sentinel-%d", cluster, i), cluster+"-sentinels", 26379))
	}
	return out
}

// waitPodReplaced waits until the pod exists again with another UID than
// old and is ready, and returns it.
func (n *node) waitPodReplaced(name string, old types.UID, timeout time.Duration) *corev1.Pod {
	n.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		p, err := n.cs.CoreV1().Pods(n.NS).Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.UID != old && p.DeletionTimestamp == nil && podReady(p) {
			return p
		}
		if time.Now().After(deadline) {
			state := fmt.Sprint(err)
			if err == nil {
				state = fmt.Sprintf("uid %s (old %s) phase %s ready %v", p.UID, old, p.Status.Phase, podReady(p))
			}
			n.t.Fatalf("pod %s not back and ready within %s: %s", name, timeout, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (n *node) deletePod(name string) types.UID {
	n.t.Helper()
	ctx := context.Background()
	p, err := n.cs.CoreV1().Pods(n.NS).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		n.t.Fatalf("pod %s: %v", name, err)
	}
	if err := n.cs.CoreV1().Pods(n.NS).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		n.t.Fatalf("delete pod %s: %v", name, err)
	}
	return p.UID
}

// replicaPodReturns deletes a replica's pod and checks it comes back with
// the same name and its own volume (the same claim, and the data on it: it
// resumes replication with a partial resync, which only a replica that
// loaded its dataset from its volume can), in sync, and listed by every
// Sentinel exactly once among exactly two replicas.
func (n *node) replicaPodReturns(creds api.Credentials) {
	t := n.t
	t.Helper()
	ctx := context.Background()
	sentinels := n.sentinelAddrs("c", 3)
	master := sentinelMaster(t, n, sentinels[0], creds.SentinelPassword, "c-0")
	victim := "c-0-1"
	if master == n.FQDN(victim, "c-0", 6379) {
		victim = "c-0-2"
	}
	victimAddr := n.FQDN(victim, "c-0", 6379)
	mc := n.Redis(master, creds.Password)
	defer mc.Close()
	if err := mc.Set(ctx, "before-delete", "kept", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := mc.Do(ctx, "WAIT", 2, 10000).Int(); err != nil || got != 2 {
		t.Fatalf("WAIT 2: %d %v", got, err)
	}
	claim, err := n.cs.CoreV1().PersistentVolumeClaims(n.NS).Get(ctx, "data-"+victim, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the replica's claim: %v", err)
	}
	fullBefore := infoInt(t, mc, "stats", "sync_full")

	deleted := time.Now()
	oldUID := n.deletePod(victim)
	n.waitPodReplaced(victim, oldUID, 2*time.Minute)
	t.Logf("TIMING replica pod deleted -> its new pod ready: %.1f s", time.Since(deleted).Seconds())
	// Back in sync, and listed by every Sentinel: exactly the two replicas,
	// none down.
	want := []string{n.FQDN("c-0-0", "c-0", 6379), n.FQDN("c-0-1", "c-0", 6379), n.FQDN("c-0-2", "c-0", 6379)}
	want = without(want, master)
	var problem string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		problem = replicaProblem(n, victimAddr, master, creds.Password)
		if problem == "" {
			for _, s := range sentinels {
				if got := sentinelReplicas(n, s, creds.SentinelPassword, "c-0"); fmt.Sprint(got) != fmt.Sprint(want) {
					problem = fmt.Sprintf("Sentinel %s lists replicas %v, want %v", s, got, want)
					break
				}
			}
		}
		if problem == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s not back after its pod was deleted: %s", victim, problem)
		}
	}
	t.Logf("TIMING replica pod deleted -> back in sync and listed by every Sentinel: %.1f s", time.Since(deleted).Seconds())

	after, err := n.cs.CoreV1().PersistentVolumeClaims(n.NS).Get(ctx, "data-"+victim, metav1.GetOptions{})
	if err != nil || after.UID != claim.UID || after.Spec.VolumeName != claim.Spec.VolumeName {
		t.Fatalf("the replica's claim changed: before %s (volume %s), after %+v %v", claim.UID, claim.Spec.VolumeName, after.ObjectMeta.UID, err)
	}
	rc := n.Redis(victimAddr, creds.Password)
	defer rc.Close()
	if v, err := rc.Get(ctx, "before-delete").Result(); err != nil || v != "kept" {
		t.Fatalf("the replica lost the key written before its pod was deleted: %q %v", v, err)
	}
	if full := infoInt(t, mc, "stats", "sync_full"); full != fullBefore {
		t.Fatalf("the master ran %d full syncs while the replica came back: it did not resume from the data on its volume", full-fullBefore)
	}
}

// replicaProblem says why the replica is not in sync with the master ("":
// it is).
func replicaProblem(n *node, replica, master, password string) string {
	c := n.Redis(replica, password)
	defer c.Close()
	info, err := c.Info(context.Background(), "replication").Result()
	if err != nil {
		return fmt.Sprintf("INFO of %s: %v", replica, err)
	}
	got := net.JoinHostPort(infoField(info, "master_host"), infoField(info, "master_port"))
	if infoField(info, "role") != "slave" || got != master || infoField(info, "master_link_status") != "up" || infoField(info, "master_sync_in_progress") != "0" {
		return fmt.Sprintf("%s: role %s master %s link %s sync in progress %s", replica, infoField(info, "role"), got,
			infoField(info, "master_link_status"), infoField(info, "master_sync_in_progress"))
	}
	return ""
}

func infoInt(t *testing.T, c *redis.Client, section, field string) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatalf("INFO %s of %s: %v", section, c.Options().Addr, err)
	}
	var v int64
	if _, err := fmt.Sscan(infoField(info, field), &v); err != nil {
		t.Fatalf("INFO %s of %s: no %s", section, c.Options().Addr, field)
	}
	return v
}

func (n *node) sentinel(addr, password string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, Password: password, Protocol: 2, Dialer: n.dialer.DialContext,
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second})
}

func sentinelMaster(t *testing.T, n *node, sentinel, password, name string) string {
	t.Helper()
	sc := n.sentinel(sentinel, password)
	defer sc.Close()
	r, err := sc.GetMasterAddrByName(context.Background(), name).Result()
	if err != nil || len(r) != 2 {
		t.Fatalf("master of %s from %s: %v %v", name, sentinel, r, err)
	}
	return net.JoinHostPort(r[0], r[1])
}

// sentinelReplicas is what a Sentinel lists as the replicas of a master
// (sorted), each with " (flags)" when it is down or disconnected; nil with
// an entry "error: …" when it does not answer.
func sentinelReplicas(n *node, sentinel, password, name string) []string {
	sc := n.sentinel(sentinel, password)
	defer sc.Close()
	reps, err := sc.Replicas(context.Background(), name).Result()
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	var out []string
	for _, r := range reps {
		a := net.JoinHostPort(r["ip"], r["port"])
		if strings.Contains(r["flags"], "down") || strings.Contains(r["flags"], "disconnected") {
			a += " (" + r["flags"] + ")"
		}
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// sentinelPodReturns deletes a Sentinel's pod and checks it comes back with
// the same id, and that every Sentinel then knows exactly the other two,
// by their ids and names.
func (n *node) sentinelPodReturns(creds api.Credentials) {
	t := n.t
	t.Helper()
	ctx := context.Background()
	sentinels := n.sentinelAddrs("c", 3)
	ids := map[string]string{}
	for _, s := range sentinels {
		sc := n.Redis(s, creds.SentinelPassword)
		id, err := sc.Do(ctx, "SENTINEL", "MYID").Text()
		sc.Close()
		if err != nil {
			t.Fatalf("SENTINEL MYID of %s: %v", s, err)
		}
		ids[s] = id
	}
	deleted := time.Now()
	oldUID := n.deletePod("c-sentinel-1")
	n.waitPodReplaced("c-sentinel-1", oldUID, 2*time.Minute)
	t.Logf("TIMING Sentinel pod deleted -> its new pod ready: %.1f s", time.Since(deleted).Seconds())
	var problem string
	lastProblem := ""
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		problem = ""
		for _, s := range sentinels {
			if p := sentinelPeersProblem(n, s, creds.SentinelPassword, ids); p != "" {
				problem = p
				break
			}
		}
		if problem == "" {
			break
		}
		if problem != lastProblem {
			t.Logf("%.1f s: %s", time.Since(deleted).Seconds(), problem)
			lastProblem = problem
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the Sentinel pod c-sentinel-1 came back: %s", problem)
		}
	}
	t.Logf("TIMING Sentinel pod deleted -> back with its id, every Sentinel knowing exactly the other two: %.1f s", time.Since(deleted).Seconds())
}

// sentinelPeersProblem says why a Sentinel is not as it was: its own id,
// and exactly the other Sentinels as peers of c-0, by id and name.
func sentinelPeersProblem(n *node, s, password string, ids map[string]string) string {
	ctx := context.Background()
	rc := n.Redis(s, password)
	defer rc.Close()
	id, err := rc.Do(ctx, "SENTINEL", "MYID").Text()
	if err != nil {
		return fmt.Sprintf("SENTINEL MYID of %s: %v", s, err)
	}
	if id != ids[s] {
		return fmt.Sprintf("Sentinel %s came back as %s, was %s", s, id, ids[s])
	}
	sc := n.sentinel(s, password)
	defer sc.Close()
	peers, err := sc.Sentinels(ctx, "c-0").Result()
	if err != nil {
		return fmt.Sprintf("SENTINEL SENTINELS c-0 on %s: %v", s, err)
	}
	var got, want []string
	for _, p := range peers {
		e := fmt.Sprintf("%s@%s", p["runid"], net.JoinHostPort(p["ip"], p["port"]))
		if strings.Contains(p["flags"], "down") || strings.Contains(p["flags"], "disconnected") {
			e += " (" + p["flags"] + ")"
		}
		got = append(got, e)
	}
	for a, pid := range ids {
		if a != s {
			want = append(want, pid+"@"+a)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Sprintf("Sentinel %s knows %v, want exactly %v", s, got, want)
	}
	return ""
}
