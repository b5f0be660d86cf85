package e2ek8s

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/redis-manager/redis-manager/api"
)

// TestChartRBAC: the chart's Role holds exactly the rules of
// deploy/kubernetes/rbac.yaml (which TestLeastPrivilege runs the manager
// under) plus the leader Lease's: create, and get and update of its own
// name only; its ClusterRole is rbac.yaml's. Needs helm, not a node.
func TestChartRBAC(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var wantRole, wantCluster []rbacv1.PolicyRule
	for _, obj := range decodeAll(t, raw) {
		switch o := obj.(type) {
		case *rbacv1.Role:
			wantRole = o.Rules
		case *rbacv1.ClusterRole:
			wantCluster = o.Rules
		}
	}
	var role *rbacv1.Role
	var clusterRole *rbacv1.ClusterRole
	for _, obj := range decodeAll(t, renderChart(t, "ns1", map[string]string{"leaderElection.leaseName": "the-lease"})) {
		switch o := obj.(type) {
		case *rbacv1.Role:
			role = o
		case *rbacv1.ClusterRole:
			clusterRole = o
		}
	}
	if role == nil || clusterRole == nil || wantRole == nil || wantCluster == nil {
		t.Fatalf("a Role or ClusterRole missing: chart %v %v, rbac.yaml %v %v", role != nil, clusterRole != nil, wantRole != nil, wantCluster != nil)
	}
	var platformRules, leaseRules []rbacv1.PolicyRule
	for _, r := range role.Rules {
		if reflect.DeepEqual(r.APIGroups, []string{"coordination.k8s.io"}) {
			leaseRules = append(leaseRules, r)
		} else {
			platformRules = append(platformRules, r)
		}
	}
	if !reflect.DeepEqual(platformRules, wantRole) {
		t.Errorf("the chart's Role differs from deploy/kubernetes/rbac.yaml's (besides the Lease):\nchart:    %v\nrbac.yaml: %v", platformRules, wantRole)
	}
	wantLease := []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{"the-lease"}, Verbs: []string{"get", "update"}},
	}
	if !reflect.DeepEqual(leaseRules, wantLease) {
		t.Errorf("the chart's Lease rules: %v, want %v", leaseRules, wantLease)
	}
	if !reflect.DeepEqual(clusterRole.Rules, wantCluster) {
		t.Errorf("the chart's ClusterRole: %v, want rbac.yaml's %v", clusterRole.Rules, wantCluster)
	}
}

// TestChartLint: helm lint --strict passes on the chart, with and without
// the optional parts.
func TestChartLint(t *testing.T) {
	chart := filepath.Join("..", "..", "deploy", "helm", "redis-manager")
	for _, set := range []string{"", "ingress.enabled=true,backup.target=s3://b/p,backup.credentialsSecret=s3,storageClass=fast"} {
		args := []string{"lint", "--strict", chart}
		if set != "" {
			args = append(args, "--set", set)
		}
		if out, err := exec.Command(helmBinary(t), args...).CombinedOutput(); err != nil {
			t.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestChartValues: the Deployment the chart renders passes the values
// through: replicas, image, the backup target and credentials Secret (only
// when set), the Lease, the Secrets, identity from the downward API, and
// prefers the replicas on different nodes.
func TestChartValues(t *testing.T) {
	deployment := func(vals map[string]string) *appsv1.Deployment {
		for _, obj := range decodeAll(t, renderChart(t, "ns1", vals)) {
			if d, ok := obj.(*appsv1.Deployment); ok {
				return d
			}
		}
		t.Fatal("no Deployment rendered")
		return nil
	}
	d := deployment(map[string]string{"image.repository": "reg/rm", "image.tag": "v9", "replicas": "3",
		"backup.target": "s3://b/p?region=r", "backup.credentialsSecret": "s3creds", "store.secretName": "db"})
	c := d.Spec.Template.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"serve", "--platform=kubernetes", "--leader-election=kubernetes", "--lease-name=rm-redis-manager",
		"--image=reg/rm:v9", "--backup-target=s3://b/p?region=r", "--backup-credentials-secret=s3creds",
		"--admin-token-file=/etc/redis-manager/secrets/admin.token", "--encryption-key-file=/etc/redis-manager/secrets/encryption.key"} {
		if !strings.Contains(" "+args+" ", " "+want+" ") {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if *d.Spec.Replicas != 3 || c.Image != "reg/rm:v9" {
		t.Errorf("replicas %d image %s", *d.Spec.Replicas, c.Image)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["POD_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("POD_NAME: %+v", e)
	}
	if e := env["REDIS_MANAGER_STORE"]; e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "db" {
		t.Errorf("REDIS_MANAGER_STORE: %+v", e)
	}
	if a := d.Spec.Template.Spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
		t.Errorf("affinity %+v, want one preferred anti-affinity term", a)
	}
	if len(c.EnvFrom) != 0 {
		t.Errorf("envFrom %+v without backup.credentialsEnv", c.EnvFrom)
	}
	d = deployment(map[string]string{"backup.credentialsSecret": "s3creds", "backup.credentialsEnv": "true"})
	if ef := d.Spec.Template.Spec.Containers[0].EnvFrom; len(ef) != 1 || ef[0].SecretRef == nil || ef[0].SecretRef.Name != "s3creds" {
		t.Errorf("envFrom %+v, want the credentials Secret", ef)
	}
	d = deployment(nil)
	if args := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " "); strings.Contains(args, "--backup") || *d.Spec.Replicas != 2 {
		t.Errorf("defaults: replicas %d, args %q (no backup flags expected)", *d.Spec.Replicas, args)
	}
}

// TestManagerInCluster: the chart's manager, two replicas in pods under the
// chart's Role: exactly one leads, both name it and its epoch, and it holds
// the Lease; the API answers through the Service and a cluster created
// through it becomes Ready; no request was forbidden.
func TestManagerInCluster(t *testing.T) {
	n := newNode(t, nodeOptions{NoManager: true})
	ic := installChart(n, nil)
	pods, leader, epoch := ic.waitOneLeader(time.Minute)
	t.Logf("pods %s, %s; leader %s at epoch %d", pods[0].Name, pods[1].Name, leader, epoch)
	if h := ic.leaseHolder(); h != leader {
		t.Errorf("the Lease is held by %q, the leader is %s", h, leader)
	}
	if pods[0].Spec.NodeName == "" || pods[0].Spec.ServiceAccountName != ic.name {
		t.Errorf("pod %s runs as %q, want the chart's ServiceAccount %s", pods[0].Name, pods[0].Spec.ServiceAccountName, ic.name)
	}
	ctx := context.Background()
	if _, err := n.cs.NetworkingV1().Ingresses(n.NS).Get(ctx, ic.name, metav1.GetOptions{}); err != nil {
		t.Errorf("the chart's Ingress: %v", err)
	}
	h, err := ic.Client.Health(ctx)
	if err != nil || h.LeaderID != leader {
		t.Fatalf("health through the Service: %+v %v", h, err)
	}
	// Auth works through the Service with the token of the Secret.
	if _, err := api.NewClient(ic.baseURL, "wrong").ListClusters(ctx); err == nil {
		t.Error("a wrong token was accepted")
	}
	cl := ic.createReady(api.CreateClusterRequest{Name: "ic", Shards: intp(1), Replicas: intp(1), Sentinels: intp(3)})
	if len(cl.Status.Shards) != 1 || len(cl.Status.Shards[0].Replicas) != 1 {
		t.Errorf("cluster status %+v", cl.Status)
	}
	// Still one leader, the same.
	if _, l2, e2 := ic.waitOneLeader(10 * time.Second); l2 != leader || e2 != epoch {
		t.Errorf("leader moved without cause: %s@%d -> %s@%d", leader, epoch, l2, e2)
	}
	ic.noForbidden(pods)
}

// noForbidden fails the test on a "forbidden" in a manager pod's log: a
// verb the chart's Role lacks.
func (ic *inCluster) noForbidden(pods []corev1.Pod) {
	t := ic.n.t
	t.Helper()
	for _, p := range pods {
		raw, err := ic.n.cs.CoreV1().Pods(ic.n.NS).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(context.Background())
		if err != nil {
			t.Errorf("log of %s: %v", p.Name, err)
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.Contains(line, "forbidden") {
				t.Errorf("%s: refused under the chart's Role: %s", p.Name, line)
			}
		}
	}
}

// TestManagerLeaderDeletedDuringScale: the leader's pod is force-deleted
// while a scale job runs; the other replica takes the Lease over (a new
// epoch) and finishes the job; the cluster ends Ready with the new
// replica count.
func TestManagerLeaderDeletedDuringScale(t *testing.T) {
	n := newNode(t, nodeOptions{NoManager: true})
	ic := installChart(n, nil)
	_, leader, epoch := ic.waitOneLeader(time.Minute)
	ic.createReady(api.CreateClusterRequest{Name: "sc", Shards: intp(1), Replicas: intp(1), Sentinels: intp(3)})
	ctx := context.Background()
	res, err := ic.Client.UpdateCluster(ctx, "sc", api.UpdateClusterRequest{Replicas: intp(3)})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := ic.Client.GetJob(ctx, res.Job.ID)
		if err == nil && j.State == api.StateRunning {
			break
		}
		if err == nil && j.Done() {
			t.Fatalf("the scale job ended (%s) before the leader could be deleted", j.State)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scale job did not start: %+v %v", j, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	deleted := time.Now()
	ic.deleteManagerPod(leader, 0)
	t.Logf("leader %s (epoch %d) force-deleted while the scale job runs", leader, epoch)
	newLeader, at := ic.newLeaderAfter(leader, 40*time.Second)
	t.Logf("%s leads %.2f s after the deletion", newLeader, at.Sub(deleted).Seconds())

	jctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	// Through the Service: until its endpoints drop the deleted pod, a
	// request routed to it fails to connect (no route to host, i/o
	// timeout); WaitJob asks again (api.Client.WaitGrace), as the CLI does.
	j, err := ic.Client.WaitJob(jctx, res.Job.ID, nil)
	if err != nil || j.State != api.StateSucceeded {
		t.Fatalf("scale job after the leader change: %s %s %v", j.State, j.Error, err)
	}
	if j.FinishedAt == nil || !j.FinishedAt.After(deleted) {
		t.Fatalf("the job finished at %v, before the leader was deleted (%v): the test proved nothing", j.FinishedAt, deleted)
	}
	// The other replica resumed the job the deleted leader was running and
	// finished it.
	raw, err := n.cs.CoreV1().Pods(n.NS).GetLogs(newLeader, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var resumed, finished bool
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.Contains(line, "job="+res.Job.ID) {
			resumed = resumed || strings.Contains(line, "resuming job after restart")
			finished = finished || strings.Contains(line, `msg="job finished" `)
		}
	}
	if !resumed || !finished {
		t.Errorf("the new leader %s: resumed job %s %v, finished it %v", newLeader, res.Job.ID, resumed, finished)
	}
	cl := ic.waitPhase("sc", "Ready", 2*time.Minute)
	if got := len(cl.Status.Shards[0].Replicas); got != 3 {
		t.Errorf("%d replicas after the scale, want 3", got)
	}
	pods, l2, e2 := ic.waitOneLeader(time.Minute)
	if l2 == leader || e2 <= epoch {
		t.Errorf("after the deletion: leader %s at epoch %d, before %s at %d", l2, e2, leader, epoch)
	}
	ic.noForbidden(pods)
}

// TestManagerTakeover measures leader gone → another manager leads (its
// /api/v1/health says leader), five times each way, and prints the
// medians:
//   - graceful: the pod deleted with the default grace; the manager stops
//     its work and releases the Lease (ReleaseOnCancel), so the other
//     replica takes it at its next try, not a lease duration later;
//   - forced: the pod deleted with grace 0; the API object goes at once,
//     and the kubelet still stops the container with SIGTERM, with 2 s
//     before SIGKILL: the Lease is released when the manager's work winds
//     down within them, else it expires;
//   - frozen: the leader's process stopped (SIGSTOP, from this host: a
//     hung or cut-off leader, which releases nothing); the other replica
//     takes over once the Lease was not renewed for a lease duration (15 s
//     by default). Woken (SIGCONT), the old leader says it does not lead.
//
// Run it with:
//
//	REDIS_MANAGER_K8S_KUBECONFIG=... REDIS_MANAGER_K8S_IMAGE=... REDIS_MANAGER_K8S_DNS=... \
//	  go test -count=1 -v -run TestManagerTakeover ./internal/e2ek8s/
func TestManagerTakeover(t *testing.T) {
	n := newNode(t, nodeOptions{NoManager: true})
	ic := installChart(n, nil)
	runs := 5
	modes := []string{"graceful", "forced", "frozen"}
	if os.Geteuid() != 0 {
		t.Log("not root: the frozen leader (SIGSTOP of the pod's process on this host) is not measured")
		modes = modes[:2]
	}
	times := map[string][]time.Duration{}
	for i := 0; i < runs; i++ {
		for _, mode := range modes {
			ic.waitReplicasReady(2, 2*time.Minute)
			pods, leader, epoch := ic.waitOneLeader(time.Minute)
			var start time.Time
			var pid int
			switch mode {
			case "graceful", "forced":
				grace := int64(30)
				if mode == "forced" {
					grace = 0
				}
				start = time.Now()
				ic.deleteManagerPod(leader, grace)
				if mode == "graceful" {
					// The Lease is released: its holder becomes empty
					// or the next leader, long before a lease duration.
					waitUntil(t, "the Lease released", 10*time.Second, func() bool { return ic.leaseHolder() != leader })
				}
			case "frozen":
				var err error
				if pid, err = managerPID(leader); err != nil {
					t.Fatal(err)
				}
				start = time.Now()
				if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
			}
			next, at := ic.newLeaderAfter(leader, 40*time.Second)
			took := at.Sub(start)
			times[mode] = append(times[mode], took)
			t.Logf("run %d, %s leader %s (epoch %d): %s leads after %.2f s", i+1, mode, leader, epoch, next, took.Seconds())
			if mode == "frozen" {
				if took < 10*time.Second {
					t.Errorf("a frozen leader was replaced after %s, before its renew deadline (10 s) passed: two leaders could act", took)
				}
				if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
				var old corev1.Pod
				for _, p := range pods {
					if p.Name == leader {
						old = p
					}
				}
				// Woken, it knows at once that its term is over.
				var h api.Health
				var err error
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if h, err = health(context.Background(), old); err == nil {
						break
					}
				}
				if err != nil || h.Leader {
					t.Errorf("the woken old leader %s: %+v %v, want a standby", leader, h, err)
				}
			}
			_, l2, e2 := ic.waitOneLeader(time.Minute)
			if l2 != next || e2 <= epoch {
				t.Errorf("after the takeover: %s at epoch %d, want %s past epoch %d", l2, e2, next, epoch)
			}
		}
	}
	med := map[string]time.Duration{}
	for _, mode := range modes {
		ds := times[mode]
		sorted := append([]time.Duration(nil), ds...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		med[mode] = sorted[len(sorted)/2]
		t.Logf("leader %s -> new leader: median %.2f s, min %.2f s, max %.2f s over %d (%s)",
			mode, med[mode].Seconds(), sorted[0].Seconds(), sorted[len(sorted)-1].Seconds(), len(sorted), fmtDurations(ds))
	}
	if med["graceful"] > 6*time.Second {
		t.Errorf("takeover after a graceful pod deletion: median %s: the Lease was not released at once", med["graceful"])
	}
	if med["forced"] > 20*time.Second {
		t.Errorf("takeover after a forced pod deletion: median %s, want < 20 s", med["forced"])
	}
	if d, ok := med["frozen"]; ok && d > 20*time.Second {
		t.Errorf("takeover from a frozen leader: median %s, want < 20 s", d)
	}
	ic.noForbidden(ic.managerPods())
}

func fmtDurations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(s, " ")
}

func waitUntil(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
