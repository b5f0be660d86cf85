package e2ek8s

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func intp(n int) *int { return &n }

// nodeEnv is the node the tests run against.
type nodeEnv struct {
	Kubeconfig, Image, DNS, StorageClass string
}

// howToRun says how to give the tests a node.
const howToRun = `the Kubernetes e2e tests need a node: run them with ` + "`make test-k8s`" + `, or start one with ` +
	"`sudo hack/k8s-node/up`" + ` and set REDIS_MANAGER_K8S_KUBECONFIG, REDIS_MANAGER_K8S_IMAGE and REDIS_MANAGER_K8S_DNS ` +
	`to its KUBECONFIG=, IMAGE= and DNS= lines (REDIS_MANAGER_K8S_STORAGE_CLASS optional: the cluster's default class)`

// env reads the node's settings; without them the test is skipped, or
// fails under CI=true (CI must not pass by skipping).
func env(t *testing.T) nodeEnv {
	t.Helper()
	e := nodeEnv{
		Kubeconfig:   os.Getenv("REDIS_MANAGER_K8S_KUBECONFIG"),
		Image:        os.Getenv("REDIS_MANAGER_K8S_IMAGE"),
		DNS:          os.Getenv("REDIS_MANAGER_K8S_DNS"),
		StorageClass: os.Getenv("REDIS_MANAGER_K8S_STORAGE_CLASS"),
	}
	var missing []string
	for k, v := range map[string]string{"REDIS_MANAGER_K8S_KUBECONFIG": e.Kubeconfig, "REDIS_MANAGER_K8S_IMAGE": e.Image, "REDIS_MANAGER_K8S_DNS": e.DNS} {
		if v == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not set under CI=true: %s", strings.Join(missing, ", "), howToRun)
		}
		t.Skipf("%s not set: %s", strings.Join(missing, ", "), howToRun)
	}
	return e
}

// node is one test's namespace on the node, with a manager of its own.
type node struct {
	t   *testing.T
	env nodeEnv
	cs  kubernetes.Interface
	NS  string
	M   *testenv.Manager
	// resolver asks the cluster DNS: the host's own resolver does not
	// know the cluster's names.
	resolver *net.Resolver
	dialer   *net.Dialer
	// sentinelPassword, once a cluster is created, lets dump ask its
	// Sentinels what they see.
	sentinelPassword string
	// managerKubeconfig, when Prepare sets it, is the manager's
	// kubeconfig instead of the admin's.
	managerKubeconfig string
}

// nodeOptions tune newNode.
type nodeOptions struct {
	// Prepare runs on the fresh namespace before the manager starts (a
	// ResourceQuota).
	Prepare func(n *node)
	// Image and StorageClass override the env's.
	Image, StorageClass string
	// NoManager: the test drives the platform itself.
	NoManager bool
}

// clientset returns a client of the node's API server.
func clientset(t testing.TB, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

var nsUnsafe = regexp.MustCompile(`[^a-z0-9-]+`)

// newNode creates a namespace for the test (deleted when it ends, after a
// failed test has dumped its pods, events and the manager's log) and
// starts a manager on the kubernetes platform in it.
func newNode(t *testing.T, o nodeOptions) *node {
	t.Helper()
	e := env(t)
	n := &node{t: t, env: e, cs: clientset(t, e.Kubeconfig)}
	n.dialer = &net.Dialer{Timeout: 2 * time.Second}
	n.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return n.dialer.DialContext(ctx, network, e.DNS)
	}}
	n.dialer.Resolver = n.resolver

	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	base := strings.Trim(nsUnsafe.ReplaceAllString(strings.ToLower(strings.TrimPrefix(t.Name(), "Test")), "-"), "-")
	n.NS = fmt.Sprintf("e2e-%.40s-%s", base, hex.EncodeToString(suffix))
	ctx := context.Background()
	if _, err := n.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n.NS,
		Labels: map[string]string{"redis-manager.io/e2e": "true"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", n.NS, err)
	}
	t.Cleanup(n.deleteNamespace)
	t.Logf("namespace %s", n.NS)
	if o.Prepare != nil {
		o.Prepare(n)
	}
	image, sc := e.Image, e.StorageClass
	if o.Image != "" {
		image = o.Image
	}
	if o.StorageClass != "" {
		sc = o.StorageClass
	}
	if o.NoManager {
		t.Cleanup(func() {
			if t.Failed() {
				n.dump()
			}
		})
		return n
	}
	kubeconfig := e.Kubeconfig
	if n.managerKubeconfig != "" {
		kubeconfig = n.managerKubeconfig
	}
	args := []string{"--platform", "kubernetes", "--kubeconfig", kubeconfig, "--namespace", n.NS, "--image", image, "--cluster-dns", e.DNS}
	if sc != "" {
		args = append(args, "--storage-class", sc)
	}
	n.M = testenv.StartManager(t, testenv.ManagerOptions{Args: args})
	t.Cleanup(func() {
		if t.Failed() {
			n.dump()
		}
	})
	return n
}

// deleteNamespace deletes the test's namespace and waits until it is gone,
// so the next test has the node to itself.
func (n *node) deleteNamespace() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := n.cs.CoreV1().Namespaces().Delete(ctx, n.NS, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		n.t.Errorf("delete namespace %s: %v", n.NS, err)
		return
	}
	for {
		if _, err := n.cs.CoreV1().Namespaces().Get(ctx, n.NS, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return
		}
		select {
		case <-ctx.Done():
			n.t.Errorf("namespace %s not gone after 3 minutes", n.NS)
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// dump logs what a failed test needs: the namespace's pods with their
// state, its events, and the end of each pod's log (the manager's log is
// dumped by testenv).
func (n *node) dump() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if pods, err := n.cs.CoreV1().Pods(n.NS).List(ctx, metav1.ListOptions{}); err == nil {
		var b strings.Builder
		for _, p := range pods.Items {
			fmt.Fprintf(&b, "%s %s ip=%s node=%s role=%s uid=%s", p.Name, p.Status.Phase, p.Status.PodIP, p.Spec.NodeName,
				p.Labels["redis-manager.io/role"], p.UID)
			for _, c := range p.Status.ContainerStatuses {
				fmt.Fprintf(&b, " [%s ready=%v restarts=%d %s]", c.Name, c.Ready, c.RestartCount, containerState(c.State))
			}
			b.WriteString("\n")
		}
		n.t.Logf("pods of %s:\n%s", n.NS, b.String())
		for _, p := range pods.Items {
			lim := int64(64 << 10)
			for _, c := range p.Spec.Containers {
				raw, err := n.cs.CoreV1().Pods(n.NS).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, LimitBytes: &lim}).DoRaw(ctx)
				if err == nil {
					n.t.Logf("log of %s/%s:\n%s", p.Name, c.Name, lastLines(string(raw), 40))
				}
			}
			if c := p.Labels["app.kubernetes.io/component"]; c == "sentinel" && n.sentinelPassword != "" && p.Status.PodIP != "" {
				rc := n.Redis(net.JoinHostPort(p.Status.PodIP, "26379"), n.sentinelPassword)
				ms, err := rc.Do(ctx, "SENTINEL", "MASTERS").Slice()
				rc.Close()
				n.t.Logf("SENTINEL MASTERS on %s: %v %v", p.Name, ms, err)
			}
		}
	}
	if evs, err := n.cs.CoreV1().Events(n.NS).List(ctx, metav1.ListOptions{}); err == nil {
		sort.Slice(evs.Items, func(i, j int) bool { return eventTime(evs.Items[i]).Before(eventTime(evs.Items[j])) })
		var b strings.Builder
		for _, e := range evs.Items {
			fmt.Fprintf(&b, "%s %s %s/%s %s: %s\n", eventTime(e).Format("15:04:05"), e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
		n.t.Logf("events of %s:\n%s", n.NS, lastLines(b.String(), 80))
	}
}

func containerState(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Waiting != nil:
		return "waiting " + s.Waiting.Reason + " " + s.Waiting.Message
	case s.Terminated != nil:
		return fmt.Sprintf("terminated %s exit %d", s.Terminated.Reason, s.Terminated.ExitCode)
	}
	return "?"
}

func eventTime(e corev1.Event) time.Time {
	for _, t := range []time.Time{e.LastTimestamp.Time, e.EventTime.Time, e.CreationTimestamp.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Redis returns a client of one instance; addr may be a cluster DNS name.
func (n *node) Redis(addr, password string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: password, Protocol: 2, Dialer: n.dialer.DialContext,
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
}

// ServiceAddr is a Service's ClusterIP and port: how a client outside the
// cluster's DNS reaches it (kube-proxy translates it on this host).
func (n *node) ServiceAddr(name string, port int) string {
	n.t.Helper()
	svc, err := n.cs.CoreV1().Services(n.NS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		n.t.Fatalf("Service %s: %v", name, err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		n.t.Fatalf("Service %s has no ClusterIP (%q)", name, svc.Spec.ClusterIP)
	}
	return net.JoinHostPort(svc.Spec.ClusterIP, fmt.Sprint(port))
}

// FQDN is a pod's stable DNS name and port.
func (n *node) FQDN(pod, headless string, port int) string {
	return net.JoinHostPort(fmt.Sprintf("%s.%s.%s.svc.cluster.local", pod, headless, n.NS), fmt.Sprint(port))
}

// CreateReady creates a cluster through the API and waits for its job and
// the Ready phase; it returns the cluster and how long that took.
func (n *node) CreateReady(req api.CreateClusterRequest) (api.Cluster, time.Duration) {
	n.t.Helper()
	ctx := context.Background()
	start := time.Now()
	res, err := n.M.Client.CreateCluster(ctx, req)
	if err != nil {
		n.t.Fatalf("create %s: %v", req.Name, err)
	}
	n.M.WaitJob(ctx, res.Job.ID)
	cl := n.M.WaitPhase(ctx, req.Name, api.PhaseReady, time.Minute)
	took := time.Since(start)
	if creds, err := n.M.Client.Credentials(ctx, req.Name); err == nil {
		n.sentinelPassword = creds.SentinelPassword
	}
	return cl, took
}

// leftovers lists every object of the namespace a cluster could leave
// behind: StatefulSets, Services, ConfigMaps (but the namespace's own CA
// bundle), Secrets, PodDisruptionBudgets, PVCs, pods, and the
// PersistentVolumes bound to a claim of the namespace.
func (n *node) leftovers(ctx context.Context) ([]string, error) {
	var out []string
	add := func(kind string, names []string, err error) error {
		for _, name := range names {
			out = append(out, kind+"/"+name)
		}
		return err
	}
	ns := n.NS
	var errs []error
	sts, err := n.cs.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
	errs = append(errs, add("statefulset", names(err, func() []metav1.Object { return objects(sts.Items) }), err))
	svcs, err := n.cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	errs = append(errs, add("service", names(err, func() []metav1.Object { return objects(svcs.Items) }), err))
	cms, err := n.cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	errs = append(errs, add("configmap", without(names(err, func() []metav1.Object { return objects(cms.Items) }), "kube-root-ca.crt"), err))
	secs, err := n.cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	errs = append(errs, add("secret", names(err, func() []metav1.Object { return objects(secs.Items) }), err))
	pdbs, err := n.cs.PolicyV1().PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{})
	errs = append(errs, add("poddisruptionbudget", names(err, func() []metav1.Object { return objects(pdbs.Items) }), err))
	pvcs, err := n.cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	errs = append(errs, add("persistentvolumeclaim", names(err, func() []metav1.Object { return objects(pvcs.Items) }), err))
	pods, err := n.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	errs = append(errs, add("pod", names(err, func() []metav1.Object { return objects(pods.Items) }), err))
	pvs, err := n.cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, pv := range pvs.Items {
			if ref := pv.Spec.ClaimRef; ref != nil && ref.Namespace == ns {
				out = append(out, fmt.Sprintf("persistentvolume/%s (claim %s, %s)", pv.Name, ref.Name, pv.Status.Phase))
			}
		}
	}
	errs = append(errs, err)
	for _, e := range errs {
		if e != nil {
			return out, e
		}
	}
	return out, nil
}

// objects turns a list's items into their metadata.
func objects[T any, PT interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = PT(&items[i])
	}
	return out
}

func names(err error, list func() []metav1.Object) []string {
	if err != nil {
		return nil
	}
	var out []string
	for _, o := range list() {
		out = append(out, o.GetName())
	}
	return out
}

func without(names []string, drop string) []string {
	var out []string
	for _, n := range names {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}

// waitNothingLeft waits until the namespace holds nothing of a cluster
// (the garbage collector and the volume provisioner work after the API
// call returns) and returns how long that took; after timeout it fails the
// test naming what is left.
func (n *node) waitNothingLeft(timeout time.Duration) time.Duration {
	n.t.Helper()
	ctx := context.Background()
	start := time.Now()
	for {
		left, err := n.leftovers(ctx)
		if err == nil && len(left) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			n.t.Fatalf("left in namespace %s %s after the cluster's end: %v (err %v)", n.NS, timeout, left, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
