package e2ek8s

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// The chart's tests: `helm template` of deploy/helm/redis-manager applied
// to the node's API server in the test's namespace, and the manager run
// from it as two replicas in pods, its store a MariaDB on the host that the
// pods reach at the node's bridge address.

const chartRelease = "rm"

// helmBinary is the helm the chart is rendered with: $REDIS_MANAGER_HELM,
// else the one hack/k8s-node/helm builds once and caches.
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("REDIS_MANAGER_HELM"); h != "" {
		return h
	}
	out, err := exec.Command(filepath.Join("..", "..", "hack", "k8s-node", "helm")).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("hack/k8s-node/helm: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("hack/k8s-node/helm: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	h, ok := strings.CutPrefix(lines[len(lines)-1], "HELM=")
	if !ok {
		t.Fatalf("hack/k8s-node/helm printed no HELM= line: %s", out)
	}
	return h
}

// renderChart runs `helm template` on the chart with the values given.
func renderChart(t *testing.T, ns string, values map[string]string) []byte {
	t.Helper()
	args := []string{"template", chartRelease, filepath.Join("..", "..", "deploy", "helm", "redis-manager"), "--namespace", ns}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--set-string", k+"="+values[k])
	}
	cmd := exec.Command(helmBinary(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// decodeAll decodes a YAML stream into typed objects.
func decodeAll(t *testing.T, b []byte) []runtime.Object {
	t.Helper()
	var objs []runtime.Object
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var raw runtime.RawExtension
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(raw.Raw)) == 0 || string(bytes.TrimSpace(raw.Raw)) == "null" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(raw.Raw, nil, nil)
		if err != nil {
			t.Fatalf("decode %s: %v", raw.Raw, err)
		}
		objs = append(objs, obj)
	}
}

// inCluster is the manager installed from the chart in a test namespace.
type inCluster struct {
	n       *node
	name    string // the release's full name: Deployment, Service, Lease
	token   string
	baseURL string
	Client  *api.Client // through the Service's ClusterIP
	objs    []runtime.Object
}

// installChart renders the chart for the test's namespace and image,
// creates its Secrets (the store's DSN, the encryption key, the admin
// token) and every object it renders, and waits until the Deployment's
// replicas are ready. values override the test's defaults.
func installChart(n *node, values map[string]string) *inCluster {
	t := n.t
	t.Helper()
	ctx := context.Background()
	hostIP, _, err := net.SplitHostPort(n.env.DNS)
	if err != nil {
		t.Fatalf("REDIS_MANAGER_K8S_DNS %q: %v", n.env.DNS, err)
	}
	// The cluster DNS listens on the host's bridge address, the address
	// pods reach the host at: MariaDB listens there too.
	dsn := testenv.StartMariaDBAlsoOn(t, hostIP)
	key := make([]byte, 32)
	tok := make([]byte, 24)
	_, _ = rand.Read(key)
	_, _ = rand.Read(tok)
	ic := &inCluster{n: n, name: chartRelease + "-redis-manager", token: hex.EncodeToString(tok)}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "redis-manager-store"}, Data: map[string][]byte{"dsn": []byte(dsn)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "redis-manager"}, Data: map[string][]byte{"encryption.key": key, "admin.token": []byte(ic.token)}},
	} {
		if _, err := n.cs.CoreV1().Secrets(n.NS).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	repo, tag, ok := cutLast(n.env.Image, ":")
	if !ok {
		t.Fatalf("image %q has no tag", n.env.Image)
	}
	vals := map[string]string{"image.repository": repo, "image.tag": tag, "image.pullPolicy": "Never", "ingress.enabled": "true"}
	if n.env.StorageClass != "" {
		vals["storageClass"] = n.env.StorageClass
	}
	for k, v := range values {
		vals[k] = v
	}
	ic.objs = decodeAll(t, renderChart(t, n.NS, vals))
	ic.apply()
	ic.waitReplicasReady(2, 2*time.Minute)
	svc, err := n.cs.CoreV1().Services(n.NS).Get(ctx, ic.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The host reaches a ClusterIP: kube-proxy translates it on the host
	// too, and the Service range is routed to the node's bridge.
	ic.baseURL = "http://" + net.JoinHostPort(svc.Spec.ClusterIP, fmt.Sprint(svc.Spec.Ports[0].Port))
	ic.Client = api.NewClient(ic.baseURL, ic.token)
	ic.Client.PollInterval = 200 * time.Millisecond
	// kube-proxy rejects a Service's connections until its endpoints,
	// published once the pods are ready, reach it.
	var herr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, herr = ic.Client.Health(ctx); herr == nil {
			break
		}
	}
	if herr != nil {
		t.Fatalf("the API through the Service %s: %v", ic.baseURL, herr)
	}
	return ic
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// apply creates the rendered objects for real (not a dry run); the
// cluster-scoped ones, named after the namespace, are deleted when the
// test ends (the namespace takes the others).
func (ic *inCluster) apply() {
	n, t, ctx := ic.n, ic.n.t, context.Background()
	kinds := map[string]int{}
	for _, obj := range ic.objs {
		var err error
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			_, err = n.cs.CoreV1().ServiceAccounts(n.NS).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = n.cs.RbacV1().Roles(n.NS).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = n.cs.RbacV1().RoleBindings(n.NS).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			name := o.Name
			t.Cleanup(func() { _ = n.cs.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{}) })
			_, err = n.cs.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			name := o.Name
			t.Cleanup(func() {
				_ = n.cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
			})
			_, err = n.cs.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.Deployment:
			_, err = n.cs.AppsV1().Deployments(n.NS).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Service:
			_, err = n.cs.CoreV1().Services(n.NS).Create(ctx, o, metav1.CreateOptions{})
		case *networkingv1.Ingress:
			_, err = n.cs.NetworkingV1().Ingresses(n.NS).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("the chart rendered a %T the test does not know", obj)
		}
		if err != nil {
			t.Fatalf("create %T: %v", obj, err)
		}
		kinds[fmt.Sprintf("%T", obj)]++
	}
	for _, k := range []string{"*v1.ServiceAccount", "*v1.Role", "*v1.RoleBinding", "*v1.ClusterRole", "*v1.ClusterRoleBinding", "*v1.Deployment", "*v1.Service", "*v1.Ingress"} {
		if kinds[k] != 1 {
			t.Errorf("the chart rendered %d of %s, want 1 (%v)", kinds[k], k, kinds)
		}
	}
}

// managerPods lists the Deployment's pods that are not being deleted.
func (ic *inCluster) managerPods() []corev1.Pod {
	ic.n.t.Helper()
	pods, err := ic.n.cs.CoreV1().Pods(ic.n.NS).List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/name=redis-manager,app.kubernetes.io/component=manager"})
	if err != nil {
		ic.n.t.Fatal(err)
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Name < live[j].Name })
	return live
}

// waitReplicasReady waits until want manager pods, none being deleted, are
// ready.
func (ic *inCluster) waitReplicasReady(want int, timeout time.Duration) []corev1.Pod {
	t := ic.n.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pods := ic.managerPods()
		ready := 0
		for i := range pods {
			if podReady(&pods[i]) && pods[i].Status.PodIP != "" {
				ready++
			}
		}
		if ready == want && len(pods) == want {
			return pods
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d manager pods ready after %s (%d pods)", ready, want, timeout, len(pods))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

var quick = &http.Client{Timeout: time.Second}

// health asks one pod's manager directly (its pod IP: the host reaches
// pods over the node's bridge).
func health(ctx context.Context, p corev1.Pod) (api.Health, error) {
	c := api.NewClient("http://"+net.JoinHostPort(p.Status.PodIP, "7800"), "")
	c.HTTPClient = quick
	return c.Health(ctx)
}

// healths asks every manager pod.
func (ic *inCluster) healths(pods []corev1.Pod) map[string]api.Health {
	out := map[string]api.Health{}
	for _, p := range pods {
		if h, err := health(context.Background(), p); err == nil {
			out[p.Name] = h
		}
	}
	return out
}

// leaderProblem says what is wrong with the pods' health answers, "" when
// exactly one pod leads and every pod names it at one epoch.
func leaderProblem(pods []corev1.Pod, hs map[string]api.Health) (leader string, epoch int64, problem string) {
	if len(hs) != len(pods) {
		return "", 0, fmt.Sprintf("%d of %d pods answered: %+v", len(hs), len(pods), hs)
	}
	var leaders []string
	for name, h := range hs {
		if h.Leader {
			leaders = append(leaders, name)
		}
	}
	if len(leaders) != 1 {
		return "", 0, fmt.Sprintf("%d leaders %v: %+v", len(leaders), leaders, hs)
	}
	leader, epoch = leaders[0], hs[leaders[0]].Epoch
	for name, h := range hs {
		if h.LeaderID != leader || h.Epoch != epoch || h.Status != "ok" {
			return "", 0, fmt.Sprintf("%s says leader %q epoch %d, the leader is %s at epoch %d", name, h.LeaderID, h.Epoch, leader, epoch)
		}
	}
	return leader, epoch, ""
}

// waitOneLeader waits until exactly one of the running manager pods leads
// and every one names it at the same epoch.
func (ic *inCluster) waitOneLeader(timeout time.Duration) (pods []corev1.Pod, leader string, epoch int64) {
	t := ic.n.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pods = ic.managerPods()
		leader, epoch, problem := leaderProblem(pods, ic.healths(pods))
		if problem == "" {
			return pods, leader, epoch
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single leader after %s: %s", timeout, problem)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lease reads the Kubernetes Lease's holder.
func (ic *inCluster) leaseHolder() string {
	l, err := ic.n.cs.CoordinationV1().Leases(ic.n.NS).Get(context.Background(), ic.name, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// createReady creates a cluster through the Service and waits until it is
// Ready.
func (ic *inCluster) createReady(req api.CreateClusterRequest) api.Cluster {
	t := ic.n.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := ic.Client.CreateCluster(ctx, req)
	if err != nil {
		t.Fatalf("create %s through the Service: %v", req.Name, err)
	}
	j, err := ic.Client.WaitJob(ctx, res.Job.ID, nil)
	if err != nil || j.State != api.StateSucceeded {
		t.Fatalf("create %s: job %s %s: %v", req.Name, j.State, j.Error, err)
	}
	return ic.waitPhase(req.Name, "Ready", 2*time.Minute)
}

func (ic *inCluster) waitPhase(name, phase string, timeout time.Duration) api.Cluster {
	t := ic.n.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last api.Cluster
	for time.Now().Before(deadline) {
		if cl, err := ic.Client.GetCluster(context.Background(), name); err == nil {
			last = cl
			if cl.Status.Phase == phase {
				return cl
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("cluster %s not %s after %s: phase %q, reason %q", name, phase, timeout, last.Status.Phase, last.Status.Reason)
	return last
}

// deleteManagerPod deletes a manager pod with the grace given (0: forced,
// at once) and returns when the API server accepted it.
func (ic *inCluster) deleteManagerPod(name string, grace int64) {
	ic.n.t.Helper()
	if err := ic.n.cs.CoreV1().Pods(ic.n.NS).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil && !apierrors.IsNotFound(err) {
		ic.n.t.Fatalf("delete manager pod %s: %v", name, err)
	}
}

// newLeaderAfter polls the pods other than old until one says it leads;
// it returns that pod and when it first said so.
func (ic *inCluster) newLeaderAfter(old string, timeout time.Duration) (string, time.Time) {
	t := ic.n.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, p := range ic.managerPods() {
			if p.Name == old || p.Status.PodIP == "" {
				continue
			}
			if h, err := health(context.Background(), p); err == nil && h.Leader {
				return p.Name, time.Now()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no manager other than %s leads %s after its pod was deleted", old, timeout)
	return "", time.Time{}
}

// managerPID finds, on this host, the process of the manager running in
// the pod: the node's containers are host processes, and the manager's
// environment names its pod (POD_NAME, the downward API). Root only.
func managerPID(pod string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	want := []byte("POD_NAME=" + pod + "\x00")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "redis-manager" {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, want) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no redis-manager process of pod %s on this host", pod)
}
