// Command k8s-failover measures write unavailability after a master pod is
// force-deleted (grace 0) on a Kubernetes node, for Redis Manager and for
// plain Sentinel StatefulSets on the same node in the same run, runs
// alternating. Write unavailability is defined as in bench/failover: a
// go-redis Sentinel client (NewFailoverClient, its default settings)
// writes SET + WAIT 1 in a loop; the gap is from the delete call to the
// first write sent after the master's redis-server was gone (its process on
// the node) that a replica acknowledged.
//
// Plain Sentinel is set up the way a user would without an operator: a
// StatefulSet "plain" of 3 redis-server pods (ordinal 0 master, 1 and 2
// with replicaof plain-0's pod DNS name; each pod's redis.conf is a key of
// the ConfigMap plain-config, mounted by pod name) and a StatefulSet
// "plain-sentinel" of 3 Sentinels with the same down-after-milliseconds and
// failover-timeout as the manager's clusters, both from the same image's
// redis-server (no redis-manager in those pods, nothing managing them), a
// headless Service for each and a ClusterIP Service for the Sentinels. A
// Sentinel owns its config file and must be able to rewrite it, which a
// ConfigMap mount is not, and the image has no shell to copy one: so each
// Sentinel's sentinel.conf (the ConfigMap's text with its own announced
// name) is written before the first boot into its data directory, a
// directory of the node (hostPath, by pod name: the node is this machine)
// that outlives the pod as a volume does; the Redis pods keep their data
// there too. A force-deleted master there is healed by Sentinel alone.
//
// It needs root (it finds the redis-server process of a pod on this host
// and writes the plain Sentinels' directories) and the test node
// (hack/k8s-node/up):
//
//	eval "$(hack/k8s-node/up | tail -3 | sed 's/^/export /')"
//	go run ./bench/k8s-failover -bin bin/redis-manager -image "$IMAGE" -dns "$DNS" -runs 10
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/bench/benchenv"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

const (
	downAfterMs       = 5000 // the manager's default
	failoverTimeoutMs = 10000
	plainPassword     = "plain-bench-password"
)

func main() {
	bin := flag.String("bin", "bin/redis-manager", "redis-manager binary")
	runs := flag.Int("runs", 10, "force-deleted master pods per setup")
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	image := flag.String("image", os.Getenv("IMAGE"), "the redis-manager image on the cluster (its redis-server serves the plain setup too)")
	dns := flag.String("dns", os.Getenv("DNS"), "the cluster DNS, HOST:PORT, reachable from here (the test node's DNS=)")
	storageClass := flag.String("storage-class", "", "PVC storage class (default: the cluster's default)")
	ns := flag.String("namespace", "rm-bench-failover", "namespace to create, use and delete")
	portBase := flag.Int("port-base", 26100, "the manager's API port range start")
	skipPlain := flag.Bool("skip-plain", false, "measure only redis-manager")
	flag.Parse()
	redis.SetLogger(quiet{})
	if *image == "" || *dns == "" || *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "bench: -kubeconfig, -image and -dns are needed (the test node's KUBECONFIG=, IMAGE=, DNS=)")
		os.Exit(2)
	}
	if err := run(*bin, *kubeconfig, *image, *dns, *storageClass, *ns, *portBase, *runs, *skipPlain); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// setup is one master/replica group under test.
type setup struct {
	name             string
	masterName       string // Sentinel's name of the group
	sentinelService  string // ClusterIP:26379
	password         string
	sentinelPassword string
	container        string // the Redis container's name
}

// result of one force-deleted master.
type result struct {
	gap    time.Duration
	died   time.Duration // delete → the master's redis-server gone (the kubelet's kill)
	healed time.Duration // delete → the group whole again: master with 2 replicas in sync
	lost   int           // acknowledged writes missing on the master afterwards
	acks   int
	moved  bool // Sentinel named another master
}

type bench struct {
	cs     kubernetes.Interface
	ns     string
	dialer *net.Dialer
}

func run(bin, kubeconfig, image, dns, storageClass, ns string, portBase, runs int, skipPlain bool) error {
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	b := &bench{cs: cs, ns: ns, dialer: &net.Dialer{Timeout: 2 * time.Second}}
	b.dialer.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, dns)
	}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	hostDir, err := os.MkdirTemp("/var/tmp", "rm-bench-plain-")
	if err != nil {
		return err
	}
	defer func() {
		b.deleteNamespace()
		os.RemoveAll(hostDir)
	}()

	args := []string{"--platform", "kubernetes", "--kubeconfig", kubeconfig, "--namespace", ns, "--image", image, "--cluster-dns", dns}
	if storageClass != "" {
		args = append(args, "--storage-class", storageClass)
	}
	m, err := benchenv.Start(bin, portBase, 10, args...)
	if err != nil {
		return err
	}
	defer m.Stop()
	one, two, three := 1, 2, 3
	res, err := m.Client.CreateCluster(ctx, api.CreateClusterRequest{Name: "ours", Shards: &one, Replicas: &two, Sentinels: &three,
		Sentinel: &api.SentinelRequest{DownAfterMs: benchenv.Int(downAfterMs), FailoverTimeoutMs: benchenv.Int(failoverTimeoutMs)}})
	if err != nil {
		return err
	}
	if j, err := m.Client.WaitJob(ctx, res.Job.ID, nil); err != nil || j.State != api.StateSucceeded {
		return fmt.Errorf("create: %v %s", err, j.Error)
	}
	creds, err := m.Client.Credentials(ctx, "ours")
	if err != nil {
		return err
	}
	ours := setup{name: "redis-manager", masterName: "ours-0", password: creds.Password, sentinelPassword: creds.SentinelPassword, container: "redis"}
	if ours.sentinelService, err = b.serviceAddr(ctx, "ours-sentinel", 26379); err != nil {
		return err
	}
	setups := []setup{ours}
	if !skipPlain {
		plain, err := b.startPlain(ctx, image, hostDir)
		if err != nil {
			return err
		}
		setups = append(setups, plain)
	}
	results := map[string][]result{}
	for i := range runs {
		for _, s := range setups {
			r, err := b.forceDeleteMaster(ctx, s)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", s.name, i+1, err)
			}
			results[s.name] = append(results[s.name], r)
			fmt.Printf("run %2d %-14s writes unavailable %6d ms (process gone after %4d ms)   failed over %-5v  healed after %5.1f s   %d acknowledged writes, %d lost\n",
				i+1, s.name, r.gap.Milliseconds(), r.died.Milliseconds(), r.moved, r.healed.Seconds(), r.acks, r.lost)
		}
	}
	fmt.Printf("\nmaster pod force-deleted (grace 0) under go-redis SET + WAIT 1, down-after-milliseconds %d, %d runs, same node, same run\n", downAfterMs, runs)
	fmt.Printf("%-16s %-22s %-10s %-10s %-16s %s\n", "setup", "writes unavailable", "median", "worst", "healed (median)", "acknowledged writes lost")
	for _, s := range setups {
		var gaps, heals []time.Duration
		lost, acks, moved := 0, 0, 0
		for _, r := range results[s.name] {
			gaps = append(gaps, r.gap)
			heals = append(heals, r.healed)
			lost += r.lost
			acks += r.acks
			if r.moved {
				moved++
			}
		}
		fmt.Printf("%-16s %-22s %-10s %-10s %-16s %d of %d (failed over in %d of %d runs)\n", s.name, "(best "+secs(sorted(gaps)[0])+")",
			secs(median(gaps)), secs(sorted(gaps)[len(gaps)-1]), secs(median(heals)), lost, acks, moved, len(gaps))
	}
	return nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func sorted(ds []time.Duration) []time.Duration {
	out := append([]time.Duration(nil), ds...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func median(ds []time.Duration) time.Duration {
	s := sorted(ds)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) deleteNamespace() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_ = b.cs.CoreV1().Namespaces().Delete(ctx, b.ns, metav1.DeleteOptions{})
	for ctx.Err() == nil {
		if _, err := b.cs.CoreV1().Namespaces().Get(ctx, b.ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (b *bench) serviceAddr(ctx context.Context, name string, port int) (string, error) {
	svc, err := b.cs.CoreV1().Services(b.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(port)), nil
}

func (b *bench) fqdn(pod, svc string) string {
	return fmt.Sprintf("%s.%s.%s.svc.cluster.local", pod, svc, b.ns)
}

// startPlain creates the plain Redis and Sentinel StatefulSets and waits
// until the Sentinels see a master with two replicas.
func (b *bench) startPlain(ctx context.Context, image, hostDir string) (setup, error) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plain-config"}, Data: map[string]string{}}
	master := b.fqdn("plain-0", "plain")
	for o := range 3 {
		conf := fmt.Sprintf("port 6379\nbind * -::*\nprotected-mode no\ndir /data\nrequirepass %s\nmasterauth %s\nreplica-announce-ip %s\nsave 3600 1 300 100 60 10000\nappendonly no\n",
			plainPassword, plainPassword, b.fqdn(fmt.Sprintf("plain-%d", o), "plain"))
		if o > 0 {
			conf += fmt.Sprintf("replicaof %s 6379\n", master)
		}
		cm.Data[fmt.Sprintf("plain-%d.conf", o)] = conf
	}
	sentinelConf := fmt.Sprintf("port 26379\nbind * -::*\nprotected-mode no\ndir /data\nsentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n"+
		"sentinel monitor plain %s 6379 2\nsentinel down-after-milliseconds plain %d\nsentinel failover-timeout plain %d\nsentinel parallel-syncs plain 1\nsentinel auth-pass plain %s\n",
		master, downAfterMs, failoverTimeoutMs, plainPassword)
	cm.Data["sentinel.conf"] = sentinelConf
	if _, err := b.cs.CoreV1().ConfigMaps(b.ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return setup{}, err
	}
	for o := range 3 {
		pod := fmt.Sprintf("plain-sentinel-%d", o)
		dir := filepath.Join(hostDir, pod)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return setup{}, err
		}
		conf := sentinelConf + fmt.Sprintf("sentinel announce-ip %s\nsentinel announce-port 26379\n", b.fqdn(pod, "plain-sentinels"))
		if err := os.WriteFile(filepath.Join(dir, "sentinel.conf"), []byte(conf), 0o644); err != nil {
			return setup{}, err
		}
	}
	for _, svc := range []*corev1.Service{
		headless("plain", "plain-redis", 6379), headless("plain-sentinels", "plain-sentinel", 26379),
		{ObjectMeta: metav1.ObjectMeta{Name: "plain-sentinel"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "plain-sentinel"},
			Ports: []corev1.ServicePort{{Name: "sentinel", Port: 26379}}}},
	} {
		if _, err := b.cs.CoreV1().Services(b.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return setup{}, err
		}
	}
	redisSet := b.statefulSet("plain", "plain-redis", image, hostDir, []string{"/usr/bin/redis-server", "/etc/redis/redis.conf"}, true)
	if _, err := b.cs.AppsV1().StatefulSets(b.ns).Create(ctx, redisSet, metav1.CreateOptions{}); err != nil {
		return setup{}, err
	}
	// The Sentinels start once plain-0 serves: Sentinel will not start on a
	// name it cannot resolve.
	if err := b.waitPodsReady(ctx, "app=plain-redis", 3, 2*time.Minute); err != nil {
		return setup{}, err
	}
	sentSet := b.statefulSet("plain-sentinel", "plain-sentinel", image, hostDir, []string{"/usr/bin/redis-server", "/data/sentinel.conf", "--sentinel"}, false)
	if _, err := b.cs.AppsV1().StatefulSets(b.ns).Create(ctx, sentSet, metav1.CreateOptions{}); err != nil {
		return setup{}, err
	}
	if err := b.waitPodsReady(ctx, "app=plain-sentinel", 3, 2*time.Minute); err != nil {
		return setup{}, err
	}
	s := setup{name: "plain Sentinel", masterName: "plain", password: plainPassword, container: "redis"}
	var err error
	if s.sentinelService, err = b.serviceAddr(ctx, "plain-sentinel", 26379); err != nil {
		return s, err
	}
	if _, why := b.whole(ctx, s); why != "" {
		if err := b.waitWhole(ctx, s, 2*time.Minute); err != nil {
			return s, err
		}
	}
	return s, nil
}

func headless(name, app string, port int32) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone,
		PublishNotReadyAddresses: true, Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{{Name: "p", Port: port}}}}
}

// statefulSet is a plain StatefulSet of 3 pods from image: /data is the
// node directory hostDir/<pod>; a Redis pod's /etc/redis/redis.conf is
// the ConfigMap's key <pod>.conf.
func (b *bench) statefulSet(name, app, image, hostDir string, command []string, redisConf bool) *appsv1.StatefulSet {
	three := int32(3)
	dirType := corev1.HostPathDirectoryOrCreate
	mounts := []corev1.VolumeMount{{Name: "data", MountPath: "/data", SubPathExpr: "$(POD_NAME)"}}
	volumes := []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir, Type: &dirType}}}}
	port := int32(26379)
	if redisConf {
		port = 6379
		mounts = append(mounts, corev1.VolumeMount{Name: "config", MountPath: "/etc/redis/redis.conf", SubPathExpr: "$(POD_NAME).conf", ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "plain-config"}}}})
	}
	labels := map[string]string{"app": app}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &three, ServiceName: map[bool]string{true: "plain", false: "plain-sentinels"}[redisConf],
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: map[bool]string{true: "redis", false: "sentinel"}[redisConf], Image: image, ImagePullPolicy: corev1.PullNever,
						Command: command,
						Env:     []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
						Ports:   []corev1.ContainerPort{{ContainerPort: port}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstrPort(port)}},
							PeriodSeconds: 1},
						VolumeMounts: mounts,
					}},
					Volumes: volumes,
				},
			},
		},
	}
}

func (b *bench) waitPodsReady(ctx context.Context, selector string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pods, err := b.cs.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		ready := 0
		if err == nil {
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil && podReady(&p) {
					ready++
				}
			}
		}
		if ready == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d pods ready after %s (%v)", selector, ready, want, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
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

// masterOf asks the setup's Sentinel Service which address is master.
func (b *bench) masterOf(ctx context.Context, s setup) (string, error) {
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinelService, Password: s.sentinelPassword, Dialer: b.dialer.DialContext,
		DialTimeout: time.Second, ReadTimeout: time.Second})
	defer sc.Close()
	r, err := sc.GetMasterAddrByName(ctx, s.masterName).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(r[0], r[1]), nil
}

// whole tells whether the group is whole: the master Sentinel names runs
// as master with 2 replicas connected, each in sync (link up, no sync in
// progress). It returns the master, or why not.
func (b *bench) whole(ctx context.Context, s setup) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	m, err := b.masterOf(ctx, s)
	if err != nil {
		return "", "Sentinel: " + err.Error()
	}
	rc := redis.NewClient(&redis.Options{Addr: m, Password: s.password, Dialer: b.dialer.DialContext, DialTimeout: time.Second, MaxRetries: -1})
	defer rc.Close()
	info, err := rc.Info(ctx, "replication").Result()
	if err != nil {
		return m, "master: " + err.Error()
	}
	if !strings.Contains(info, "role:master") || !strings.Contains(info, "connected_slaves:2") {
		return m, "master " + m + " not a master with 2 replicas"
	}
	for _, l := range strings.Split(info, "\n") {
		if strings.HasPrefix(l, "slave") && strings.Contains(l, "state=") && !strings.Contains(l, "state=online") {
			return m, "replica not online: " + l
		}
	}
	return m, ""
}

func (b *bench) waitWhole(ctx context.Context, s setup, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, why := b.whole(ctx, s)
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not whole after %s: %s", s.name, timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// forceDeleteMaster writes with a Sentinel client, force-deletes the
// master's pod, and measures the gap (see the package comment), then waits
// until the group is whole and counts the acknowledged writes missing on
// its master.
func (b *bench) forceDeleteMaster(ctx context.Context, s setup) (result, error) {
	var r result
	if err := b.waitWhole(ctx, s, 3*time.Minute); err != nil {
		return r, err
	}
	master, err := b.masterOf(ctx, s)
	if err != nil {
		return r, err
	}
	host, _, _ := net.SplitHostPort(master)
	pod, _, _ := strings.Cut(host, ".")
	p, err := b.cs.CoreV1().Pods(b.ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return r, err
	}
	pid := 0
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == s.container {
			_, id, _ := strings.Cut(c.ContainerID, "://")
			pid = testenv.ContainerPid(id, "redis-server")
		}
	}
	if pid == 0 {
		return r, fmt.Errorf("no redis-server process of pod %s on this host (the node must run here; root needed)", pod)
	}
	w, err := testenv.StartWriter(testenv.GoRedis, testenv.WriterConfig{Sentinels: []string{s.sentinelService}, MasterName: s.masterName,
		Password: s.password, SentinelPassword: s.sentinelPassword, Prefix: fmt.Sprintf("b%d", time.Now().UnixNano()), Dialer: b.dialer.DialContext},
		testenv.Runtimes{})
	if err != nil {
		return r, err
	}
	defer w.Stop()
	if _, err := w.FirstAckAfter(time.Now(), 30*time.Second); err != nil {
		return r, err
	}
	time.Sleep(time.Second)
	zero := int64(0)
	killed := time.Now()
	if err := b.cs.CoreV1().Pods(b.ns).Delete(ctx, pod, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		return r, err
	}
	dead := testenv.WaitDead(pid, 30*time.Second)
	d, err := w.FirstAckAfter(dead, 2*time.Minute)
	if err != nil {
		return r, err
	}
	r.gap = d + dead.Sub(killed)
	r.died = dead.Sub(killed)
	if err := b.waitWhole(ctx, s, 3*time.Minute); err != nil {
		return r, err
	}
	r.healed = time.Since(killed)
	acks := w.Stop()
	r.acks = len(acks)
	now, err := b.masterOf(ctx, s)
	if err != nil {
		return r, err
	}
	r.moved = now != master
	if !r.moved || r.gap > downAfterMs*time.Millisecond {
		b.saveLogs(ctx, s, killed)
	}
	rc := redis.NewClient(&redis.Options{Addr: now, Password: s.password, Dialer: b.dialer.DialContext})
	defer rc.Close()
	missing, wrong, err := testenv.MissingAcks(ctx, rc, acks)
	if err != nil {
		return r, err
	}
	if wrong != "" {
		return r, errors.New("a wrong value: " + wrong)
	}
	r.lost = missing
	return r, nil
}

// quiet drops go-redis' own log lines (failover client chatter).
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func intstrPort(p int32) intstr.IntOrString { return intstr.FromInt32(p) }

// saveLogs writes the logs of the setup's pods since the deletion to a
// file, for a run that did not fail over or took longer than down-after.
func (b *bench) saveLogs(ctx context.Context, s setup, since time.Time) {
	f, err := os.CreateTemp("", "rm-bench-k8s-failover-*.log")
	if err != nil {
		return
	}
	defer f.Close()
	pods, err := b.cs.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	prefix := map[bool]string{true: "ours-", false: "plain"}[s.name == "redis-manager"]
	t := metav1.NewTime(since.Add(-5 * time.Second))
	for _, p := range pods.Items {
		if !strings.HasPrefix(p.Name, prefix) {
			continue
		}
		for _, c := range p.Spec.Containers {
			raw, err := b.cs.CoreV1().Pods(b.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, SinceTime: &t}).DoRaw(ctx)
			fmt.Fprintf(f, "== %s/%s (%v)\n%s\n", p.Name, c.Name, err, raw)
		}
	}
	fmt.Printf("       %s: logs since the deletion in %s\n", s.name, f.Name())
}
