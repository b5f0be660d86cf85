package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/spec"
)

// Options are the Kubernetes platform's settings.
type Options struct {
	// Kubeconfig is a kubeconfig file; "": the in-cluster config, then
	// $KUBECONFIG.
	Kubeconfig string
	// Namespace is where clusters live; "": the manager's own namespace
	// (in a pod), else "default".
	Namespace string
	// Image holds redis-server and redis-manager.
	Image string
	// StorageClass names the PVCs' class; "": the cluster's default.
	StorageClass string
	// ClusterDomain is the cluster's DNS domain (default cluster.local).
	ClusterDomain string
	// CheckDNS makes Ensure also check that the pod's name resolves to it
	// (the manager resolves with the cluster DNS).
	CheckDNS bool
	// BackupCredentialsSecret names a Secret of the namespace whose keys
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION …) become the
	// environment of backup, verify and restore containers; "": none, the
	// AWS SDK's default chain applies in the pod.
	BackupCredentialsSecret string
	// ReadyTimeout bounds how long Ensure waits for a pod to be ready
	// (default 5 minutes); a reason Kubernetes gives for not starting it
	// (an image it cannot pull, a volume it cannot provision, a quota)
	// ends the wait at once.
	ReadyTimeout time.Duration
}

// Platform runs instances as pods of StatefulSets.
type Platform struct {
	cs   kubernetes.Interface
	opts Options
	log  *slog.Logger

	stop    context.CancelFunc
	pods    corelisters.PodLister
	sets    appslisters.StatefulSetLister
	slices  discoverylisters.EndpointSliceLister
	changed *broadcast
	events  chan platform.InstanceEvent

	mu       sync.Mutex
	locks    platform.Locks
	removing map[string]map[int]bool // set -> ordinals being removed

	tasks    taskWatch
	departed departedPods // deleted pods' last addresses
}

// New connects to the API server and starts the informers on the
// namespace's pods and StatefulSets that the platform manages.
func New(ctx context.Context, opts Options, log *slog.Logger) (*Platform, error) {
	cfg, ns, err := restConfig(opts.Kubeconfig)
	if err != nil {
		return nil, err
	}
	if opts.Namespace == "" {
		opts.Namespace = ns
	}
	if opts.ClusterDomain == "" {
		opts.ClusterDomain = "cluster.local"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 5 * time.Minute
	}
	if opts.Image == "" {
		return nil, errors.New("--image is required on the kubernetes platform: an image holding redis-server and redis-manager")
	}
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cs.CoreV1().Namespaces().Get(cctx, opts.Namespace, metav1.GetOptions{}); err != nil {
		// Without the right to read namespaces, listing pods in it still
		// tells whether it is reachable.
		if _, err2 := cs.CoreV1().Pods(opts.Namespace).List(cctx, metav1.ListOptions{Limit: 1}); err2 != nil {
			return nil, fmt.Errorf("namespace %q on %s: %w", opts.Namespace, cfg.Host, err2)
		}
	}
	p := &Platform{cs: cs, opts: opts, log: log, changed: newBroadcast(),
		events: make(chan platform.InstanceEvent, 1024), removing: map[string]map[int]bool{}}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelManagedBy + "=" + managedBy }))
	podInf := f.Core().V1().Pods()
	setInf := f.Apps().V1().StatefulSets()
	p.pods, p.sets = podInf.Lister(), setInf.Lister()
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.changed.notify() },
		UpdateFunc: func(any, any) { p.changed.notify() },
		DeleteFunc: func(any) { p.changed.notify() },
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.changed.notify() },
		UpdateFunc: func(o, n any) { p.podUpdated(o, n); p.changed.notify() },
		DeleteFunc: func(o any) { p.podDeleted(o); p.changed.notify() },
	}); err != nil {
		return nil, err
	}
	if _, err := setInf.Informer().AddEventHandler(notify); err != nil {
		return nil, err
	}
	// EndpointSlices carry the labels of the Service controller, not ours:
	// watched by namespace.
	sf := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(opts.Namespace))
	sliceInf := sf.Discovery().V1().EndpointSlices()
	p.slices = sliceInf.Lister()
	if _, err := sliceInf.Informer().AddEventHandler(notify); err != nil {
		return nil, err
	}
	ictx, stop := context.WithCancel(context.Background())
	p.stop = stop
	f.Start(ictx.Done())
	sf.Start(ictx.Done())
	for _, synced := range []map[reflect.Type]bool{f.WaitForCacheSync(cctx.Done()), sf.WaitForCacheSync(cctx.Done())} {
		for typ, ok := range synced {
			if !ok {
				stop()
				return nil, fmt.Errorf("kubernetes: %v informer did not sync within 10 s", typ)
			}
		}
	}
	return p, nil
}

// restConfig finds the API server: the kubeconfig given, else the
// in-cluster config, else $KUBECONFIG; and the namespace to default to.
func restConfig(path string) (*rest.Config, string, error) {
	if path == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			ns := "default"
			if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
				ns = string(bytes.TrimSpace(b))
			}
			return cfg, ns, nil
		}
		path = os.Getenv("KUBECONFIG")
		if path == "" {
			return nil, "", errors.New("kubernetes platform: not in a pod, and neither --kubeconfig nor $KUBECONFIG is set")
		}
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: path}, nil)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	return cfg, ns, nil
}

// Close stops the informers.
func (p *Platform) Close() { p.stop(); p.stopTasks() }

// Namespace is where the platform's objects live.
func (p *Platform) Namespace() string { return p.opts.Namespace }

// lock serialises operations on one StatefulSet.
func (p *Platform) lock(set string) func() { return p.locks.Lock(set) }

// Reserve implements platform.Platform: every pod has an address of its
// own, so an endpoint is the pod's stable DNS name and the kind's port.
func (p *Platform) Reserve(_ context.Context, want []platform.Want, taken []platform.Endpoint) (map[platform.ID]platform.Endpoint, error) {
	if c := p.Capacity(taken); len(want) > c.Free {
		return nil, fmt.Errorf("%w: %d wanted, %d of %d %s free in %s", platform.ErrNoCapacity, len(want), c.Free, c.Total, c.Unit, c.Limit)
	}
	out := map[platform.ID]platform.Endpoint{}
	for _, w := range want {
		m, err := parseMember(w.ID)
		if err != nil {
			return nil, err
		}
		if kindOfSet(m.Cluster, m.Set) != w.Kind {
			return nil, fmt.Errorf("instance %q: a %s's name must be %s", w.ID.Name, w.Kind, "<cluster>-<shard>-<ordinal> or <cluster>-sentinel-<ordinal>")
		}
		out[w.ID] = platform.Endpoint{Host: p.fqdn(m.Cluster, m.Set, m.Ordinal), Port: portOf(w.Kind)}
	}
	return out, nil
}

// maxPods bounds the instances of a namespace without a pod quota.
const maxPods = 10000

// Capacity implements platform.Platform: the namespace's pod quota, if it
// has one.
func (p *Platform) Capacity(taken []platform.Endpoint) platform.Capacity {
	c := platform.Capacity{Total: maxPods, Unit: "pods", Limit: "namespace " + p.opts.Namespace}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if qs, err := p.cs.CoreV1().ResourceQuotas(p.opts.Namespace).List(ctx, metav1.ListOptions{}); err == nil {
		for _, q := range qs.Items {
			if h, ok := q.Status.Hard[corev1.ResourcePods]; ok && int(h.Value()) < c.Total {
				used := q.Status.Used[corev1.ResourcePods]
				c.Total = int(h.Value())
				c.Limit = fmt.Sprintf("the pod quota %s of namespace %s (%d used)", q.Name, p.opts.Namespace, used.Value())
			}
		}
	}
	c.Free = max(0, c.Total-len(taken))
	return c
}

// handle is the platform's record of an instance.
type handle struct {
	Pod  string    `json:"pod"`
	UID  types.UID `json:"uid,omitempty"`
	Node string    `json:"node,omitempty"`
}

func (p *Platform) instanceOf(id platform.ID, kind string, pod *corev1.Pod) platform.Instance {
	m, _ := parseMember(id)
	in := platform.Instance{ID: id, Kind: kind, Endpoint: platform.Endpoint{Host: p.fqdn(m.Cluster, m.Set, m.Ordinal), Port: portOf(kind)}}
	if pod == nil {
		return in
	}
	in.Details = platform.Details{Pod: pod.Name, Node: pod.Spec.NodeName}
	in.Handle, _ = json.Marshal(handle{Pod: pod.Name, UID: pod.UID, Node: pod.Spec.NodeName})
	in.Running = running(pod, kind)
	return in
}

// running: the pod is not being deleted and its container runs.
func running(pod *corev1.Pod, kind string) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == containerOf(kind) {
			return cs.State.Running != nil
		}
	}
	return false
}

// serves: the pod is ready, or its container runs and listens. Ready
// for the manager as soon as it listens: the readiness probe's period is
// not waited for (Ensure returns then, and a second Ensure adopts it).
func serves(pod *corev1.Pod, kind string) bool {
	if ready(pod, kind) {
		return true
	}
	if !running(pod, kind) || pod.Status.PodIP == "" {
		return false
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(portOf(kind))), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func ready(pod *corev1.Pod, kind string) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == containerOf(kind) {
			return cs.State.Running != nil && cs.Ready && pod.DeletionTimestamp == nil
		}
	}
	return false
}

// Describe implements platform.Platform.
func (p *Platform) Describe(h []byte) platform.Details {
	var hd handle
	if len(h) == 0 || json.Unmarshal(h, &hd) != nil {
		return platform.Details{}
	}
	return platform.Details{Pod: hd.Pod, Node: hd.Node}
}

// Ensure implements platform.Platform: it makes the cluster's ConfigMap
// and Secret, the set's Services, disruption budget and StatefulSet exist
// and hold the spec, grows the set to hold the instance's ordinal, and
// waits until the instance's pod is ready. The pod's entrypoint decides its
// boot role (instance run).
func (p *Platform) Ensure(ctx context.Context, s platform.InstanceSpec) (platform.Instance, error) {
	m, err := parseMember(s.ID)
	if err != nil {
		return platform.Instance{}, err
	}
	if kindOfSet(m.Cluster, m.Set) != s.Kind {
		return platform.Instance{}, fmt.Errorf("instance %s: not a %s's name", s.ID.Name, s.Kind)
	}
	if (s.Kind == platform.KindRedis && (s.Redis == nil || s.Boot == nil)) || (s.Kind == platform.KindSentinel && s.Sentinel == nil) {
		return platform.Instance{}, fmt.Errorf("instance %s: no configuration to run it with", s.ID.Name)
	}
	if pod, err := p.pods.Pods(p.opts.Namespace).Get(s.ID.Name); err == nil && serves(pod, s.Kind) {
		if err := p.ensureObjects(ctx, m, s, false); err != nil {
			return platform.Instance{}, err
		}
		if s.Kind == platform.KindRedis {
			p.resize(ctx, pod, s.Redis.Spec.Maxmemory)
		}
		in := p.instanceOf(s.ID, s.Kind, pod)
		in.Adopted = true
		return in, nil
	}
	started := time.Now()
	if s.Kind == platform.KindRedis {
		if err := p.waitPlannedMaster(ctx, m, s, started); err != nil {
			return platform.Instance{}, fmt.Errorf("%s: %w", s.ID.Name, err)
		}
	}
	if err := p.ensureObjects(ctx, m, s, true); err != nil {
		return platform.Instance{}, err
	}
	pod, err := p.waitReady(ctx, m, s.ID.Name, s.Kind, started)
	if err != nil {
		return platform.Instance{}, fmt.Errorf("%s: %w", s.ID.Name, err)
	}
	if err := p.waitName(ctx, m, pod); err != nil {
		return platform.Instance{}, fmt.Errorf("%s: %w", s.ID.Name, err)
	}
	if s.Kind == platform.KindRedis {
		if err := p.seedDone(ctx, m.Cluster, s.ID.Name); err != nil {
			return platform.Instance{}, fmt.Errorf("%s: %w", s.ID.Name, err)
		}
	}
	return p.instanceOf(s.ID, s.Kind, pod), nil
}

// DialContext implements platform.Dialer: a pod's DNS name
// (<pod>.<service>.<namespace>.svc.<domain>) is dialed at the pod's
// address as the informer knows it; any other address as usual. The
// manager so never asks the cluster DNS for a pod before the pod is
// published (the DNS would deny the name to every client for its negative
// TTL), and needs no cluster DNS when it runs outside the cluster.
func (p *Platform) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return d.DialContext(ctx, network, addr)
	}
	suffix := "." + p.opts.Namespace + ".svc." + p.opts.ClusterDomain
	if rest, ok := strings.CutSuffix(host, suffix); ok {
		if name, _, ok := strings.Cut(rest, "."); ok {
			pod, err := p.pods.Pods(p.opts.Namespace).Get(name)
			if err != nil || pod.Status.PodIP == "" || pod.DeletionTimestamp != nil {
				return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no running pod " + name, Name: host, IsNotFound: true}}
			}
			return d.DialContext(ctx, network, net.JoinHostPort(pod.Status.PodIP, port))
		}
	}
	return d.DialContext(ctx, network, addr)
}

// published tells whether the headless Service's EndpointSlices list the
// pod with its address: what the cluster DNS answers its name from.
func (p *Platform) published(svc string, pod *corev1.Pod) bool {
	eps, err := p.slices.EndpointSlices(p.opts.Namespace).List(k8slabels.SelectorFromSet(map[string]string{"kubernetes.io/service-name": svc}))
	if err != nil || pod.Status.PodIP == "" {
		return false
	}
	for _, sl := range eps {
		for _, e := range sl.Endpoints {
			if e.Hostname != nil && *e.Hostname == pod.Name && slices.Contains(e.Addresses, pod.Status.PodIP) {
				return true
			}
		}
	}
	return false
}

// waitPlannedMaster holds back the start of a replica of a new shard until
// the cluster DNS serves its master's name: a replica that asked for it
// earlier would be denied it for the DNS's negative TTL (and so would
// everyone else who asks in that time, Sentinels included). Bounded: a
// master that does not come stops nothing but the wait.
func (p *Platform) waitPlannedMaster(ctx context.Context, m member, s platform.InstanceSpec, since time.Time) error {
	self := p.fqdn(m.Cluster, m.Set, m.Ordinal)
	host, _, err := net.SplitHostPort(s.Boot.PlannedMaster)
	if err != nil || host == self || !strings.HasPrefix(host, m.Set+"-") {
		return nil
	}
	name, _, _ := strings.Cut(host, ".")
	master, err := parseMember(platform.ID{Cluster: m.Cluster, Name: name})
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	lastCheck := time.Time{}
	for {
		wake := p.changed.wait()
		pod, err := p.pods.Pods(p.opts.Namespace).Get(name)
		if err == nil && p.published(headless(m.Cluster, m.Set), pod) {
			return nil
		}
		if err != nil {
			pod = nil
		}
		if time.Since(lastCheck) >= time.Second {
			lastCheck = time.Now()
			if why := p.cannotStart(ctx, master, name, platform.KindRedis, pod, since); why != "" {
				return fmt.Errorf("its master cannot start: %s", why)
			}
		}
		select {
		case <-wake:
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nil
		}
	}
}

// waitName waits until the cluster DNS serves the pod's name: the headless
// Service's EndpointSlice lists the pod with its address (the cluster DNS
// answers from these). With cluster DNS reachable from the manager
// (--cluster-dns, or in the cluster), it also checks the answer; the name
// is asked only once the slice lists the pod: asked earlier, the cluster
// DNS would deny it for its negative TTL, to every client.
func (p *Platform) waitName(ctx context.Context, m member, pod *corev1.Pod) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	svc := headless(m.Cluster, m.Set)
	listed := func() bool { return p.published(svc, pod) }
	name := p.fqdn(m.Cluster, m.Set, m.Ordinal)
	var last error
	for {
		wake := p.changed.wait()
		if listed() {
			if !p.opts.CheckDNS {
				return nil
			}
			addrs, err := net.DefaultResolver.LookupHost(ctx, name)
			if err == nil && slices.Contains(addrs, pod.Status.PodIP) {
				return nil
			}
			last = err
			if err == nil {
				last = fmt.Errorf("%s answers %v, not the pod's %s yet", name, addrs, pod.Status.PodIP)
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = fmt.Errorf("the headless Service %s does not list pod %s", svc, pod.Name)
			}
			return fmt.Errorf("the pod's name does not resolve to it within 30 s: %w", last)
		case <-wake:
		case <-time.After(100 * time.Millisecond): // the DNS answers later than the slice
		}
	}
}

// resize gives a running pod the memory its maxmemory asks for, in place
// (the pod's resize subresource: the container is not restarted). Where the
// node cannot, the pod keeps its memory until its next start, which takes
// the StatefulSet's template.
func (p *Platform) resize(ctx context.Context, pod *corev1.Pod, maxmemory string) {
	req, limit := memoryOf(maxmemory)
	for _, c := range pod.Spec.Containers {
		if c.Name != containerOf(platform.KindRedis) {
			continue
		}
		haveReq, haveLimit := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory]
		if haveReq.Cmp(*req) == 0 && ((limit == nil && haveLimit.IsZero()) || (limit != nil && haveLimit.Cmp(*limit) == 0)) {
			return
		}
		res := map[string]any{"requests": map[string]string{"memory": req.String()}}
		if limit != nil {
			res["limits"] = map[string]string{"memory": limit.String()}
		}
		body, _ := json.Marshal(map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": c.Name, "resources": res}}}})
		_, err := p.cs.CoreV1().Pods(p.opts.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "resize")
		if err != nil {
			p.log.Warn("resize pod in place; it takes its new memory at its next start", "pod", pod.Name, "err", err)
			return
		}
		p.log.Info("pod resized in place", "pod", pod.Name, "memoryRequest", req.String(), "memoryLimit", limit)
	}
}

// ensureObjects creates or updates what the instance's pod needs; grow
// also scales the set up to hold the instance.
func (p *Platform) ensureObjects(ctx context.Context, m member, s platform.InstanceSpec, grow bool) error {
	defer p.lock(m.Set)()
	root, err := p.ensureConfig(ctx, m.Cluster, s)
	if err != nil {
		return err
	}
	for _, svc := range p.services(root, m, s.Kind) {
		if _, err := p.cs.CoreV1().Services(p.opts.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create Service %s: %w", svc.Name, err)
		}
	}
	pdb := p.disruptionBudget(root, m, s.Kind)
	if _, err := p.cs.PolicyV1().PodDisruptionBudgets(p.opts.Namespace).Create(ctx, pdb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create PodDisruptionBudget %s: %w", pdb.Name, err)
	}
	sets := p.cs.AppsV1().StatefulSets(p.opts.Namespace)
	for range 5 {
		cur, err := sets.Get(ctx, m.Set, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			if !grow {
				return nil
			}
			want := p.statefulSet(root, m, s.Kind, s, int32(m.Ordinal+1))
			_, err = sets.Create(ctx, want, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("create StatefulSet %s: %w", m.Set, err)
			}
			p.log.Info("created StatefulSet", "set", m.Set, "replicas", m.Ordinal+1)
			return nil
		}
		if err != nil {
			return fmt.Errorf("get StatefulSet %s: %w", m.Set, err)
		}
		if cur.Labels[LabelCluster] != m.Cluster {
			return fmt.Errorf("StatefulSet %s exists and is not cluster %s's", m.Set, m.Cluster)
		}
		n := *cur.Spec.Replicas
		if grow && int(n) <= m.Ordinal {
			n = int32(m.Ordinal + 1)
		}
		want := p.statefulSet(root, m, s.Kind, s, n)
		if n == *cur.Spec.Replicas && cur.Annotations[annTemplateHash] == want.Annotations[annTemplateHash] {
			return nil
		}
		// The template changes (memory, the boot plan) take effect at each
		// pod's next start: the update strategy is OnDelete.
		cur.Spec.Replicas = &n
		cur.Spec.Template = want.Spec.Template
		cur.Annotations[annTemplateHash] = want.Annotations[annTemplateHash]
		_, err = sets.Update(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update StatefulSet %s: %w", m.Set, err)
		}
		p.log.Info("updated StatefulSet", "set", m.Set, "replicas", n)
		return nil
	}
	return fmt.Errorf("update StatefulSet %s: conflicts on every try", m.Set)
}

// ensureConfig makes the cluster's ConfigMap (the root every other object
// of the cluster is owned by) and Secret hold the kind's configuration.
func (p *Platform) ensureConfig(ctx context.Context, cluster string, s platform.InstanceSpec) (*corev1.ConfigMap, error) {
	data := map[string]string{}
	secret := map[string][]byte{}
	if s.Kind == platform.KindSentinel {
		c := *s.Sentinel
		c.Port, c.Dir, c.Shared = SentinelPort, dataDir, true
		data[keySentinelConf] = spec.RenderSentinel(c)
		secret[keySentinelAuth] = []byte(spec.RenderSentinelAuth(c.Password, c.ExtraPasswords))
		secret[keySentinelPasswd] = []byte(c.Password)
	} else {
		c := *s.Redis
		c.Port, c.Dir, c.Shared, c.ReplicaOf = RedisPort, dataDir, true, ""
		data[keyRedisConf] = spec.RenderRedis(c)
		secret[keyRedisAuth] = []byte(spec.RenderRedisAuth(c.Password, c.ExtraPasswords))
		secret[keyPassword] = []byte(c.Password)
		secret[keySentinelPasswd] = []byte(s.Boot.SentinelPassword)
	}
	cms := p.cs.CoreV1().ConfigMaps(p.opts.Namespace)
	var root *corev1.ConfigMap
	for range 5 {
		cur, err := cms.Get(ctx, rootName(cluster), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			cur, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: rootName(cluster), Namespace: p.opts.Namespace,
				Labels: clusterLabels(cluster)}, Data: data}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("create ConfigMap %s: %w", rootName(cluster), err)
			}
			root = cur
			break
		}
		if err != nil {
			return nil, fmt.Errorf("get ConfigMap %s: %w", rootName(cluster), err)
		}
		if cur.Labels[LabelCluster] != cluster {
			return nil, fmt.Errorf("ConfigMap %s exists and is not cluster %s's", cur.Name, cluster)
		}
		if cur.DeletionTimestamp != nil {
			return nil, fmt.Errorf("cluster %s's objects are being deleted", cluster)
		}
		if sameStrings(cur.Data, data) {
			root = cur
			break
		}
		if cur.Data == nil {
			cur.Data = map[string]string{}
		}
		for k, v := range data {
			cur.Data[k] = v
		}
		cur, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("update ConfigMap %s: %w", rootName(cluster), err)
		}
		root = cur
		break
	}
	if root == nil {
		return nil, fmt.Errorf("update ConfigMap %s: conflicts on every try", rootName(cluster))
	}
	secrets := p.cs.CoreV1().Secrets(p.opts.Namespace)
	for range 5 {
		cur, err := secrets.Get(ctx, secretName(cluster), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName(cluster), Namespace: p.opts.Namespace,
				Labels: clusterLabels(cluster), OwnerReferences: owner(root)}, Data: secret}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("create Secret %s: %w", secretName(cluster), err)
			}
			return root, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get Secret %s: %w", secretName(cluster), err)
		}
		changed := false
		for k, v := range secret {
			if !bytes.Equal(cur.Data[k], v) {
				if cur.Data == nil {
					cur.Data = map[string][]byte{}
				}
				cur.Data[k], changed = v, true
			}
		}
		if !changed {
			return root, nil
		}
		_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("update Secret %s: %w", secretName(cluster), err)
		}
		return root, nil
	}
	return nil, fmt.Errorf("update Secret %s: conflicts on every try", secretName(cluster))
}

func sameStrings(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// waitReady waits, on the informers' news, until the pod is ready; it ends
// at once with Kubernetes' own reason when Kubernetes says the pod cannot
// start (an image it cannot pull, a volume it cannot provision, a pod the
// StatefulSet controller may not create).
func (p *Platform) waitReady(ctx context.Context, m member, name, kind string, since time.Time) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.ReadyTimeout)
	defer cancel()
	lastCheck := time.Time{}
	for {
		wake := p.changed.wait()
		pod, err := p.pods.Pods(p.opts.Namespace).Get(name)
		if err == nil && serves(pod, kind) {
			return pod, nil
		}
		if err == nil {
			if serr := seedFailure(pod); serr != nil {
				return nil, serr
			}
		}
		tick := time.Second
		if err == nil && running(pod, kind) {
			tick = 100 * time.Millisecond
		}
		// The reasons live in objects the informers do not watch (events,
		// PVCs, storage classes): looked up at most once a second while
		// the pod is not ready.
		if time.Since(lastCheck) >= time.Second {
			lastCheck = time.Now()
			if why := p.cannotStart(ctx, m, name, kind, pod, since); why != "" {
				return nil, errors.New(why)
			}
		}
		select {
		case <-wake:
		case <-time.After(tick):
		case <-ctx.Done():
			state := "no pod"
			if pod != nil {
				state = describePod(pod, kind)
			}
			return nil, fmt.Errorf("not ready within %s: %s", p.opts.ReadyTimeout, state)
		}
	}
}

// cannotStart returns Kubernetes' reason why a pod cannot start, "" while
// it may still.
func (p *Platform) cannotStart(ctx context.Context, m member, name, kind string, pod *corev1.Pod, since time.Time) string {
	if pod != nil {
		if err := seedFailure(pod); err != nil {
			return err.Error()
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if w := cs.State.Waiting; cs.Name == containerOf(kind) && w != nil {
				switch w.Reason {
				case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError":
					return fmt.Sprintf("pod %s: %s: %s", name, w.Reason, w.Message)
				}
			}
		}
	}
	// The volume: a storage class that does not exist never binds.
	claim, err := p.cs.CoreV1().PersistentVolumeClaims(p.opts.Namespace).Get(ctx, pvcName(name), metav1.GetOptions{})
	if err == nil && claim.Status.Phase == corev1.ClaimPending {
		if sc := claim.Spec.StorageClassName; sc != nil && *sc != "" {
			if _, err := p.cs.StorageV1().StorageClasses().Get(ctx, *sc, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				return fmt.Sprintf("PersistentVolumeClaim %s: storageclass.storage.k8s.io %q not found", claim.Name, *sc)
			}
		}
		// A conflict saving the claim is retried by the volume controller:
		// not a reason to give up.
		if why := p.warning(ctx, "PersistentVolumeClaim", claim.Name, since, "ProvisioningFailed"); why != "" && !strings.Contains(why, "the object has been modified") {
			return fmt.Sprintf("PersistentVolumeClaim %s: %s", claim.Name, why)
		}
	}
	if pod == nil {
		// The StatefulSet controller could not create the pod (a quota, an
		// admission webhook, a policy).
		if why := p.warning(ctx, "StatefulSet", m.Set, since, "FailedCreate"); why != "" {
			return fmt.Sprintf("StatefulSet %s: %s", m.Set, why)
		}
	}
	return ""
}

// warning returns the message of the newest warning event of a reason on
// an object since a time.
func (p *Platform) warning(ctx context.Context, kind, name string, since time.Time, reason string) string {
	evs, err := p.cs.CoreV1().Events(p.opts.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=" + kind + ",involvedObject.name=" + name + ",type=Warning,reason=" + reason})
	if err != nil {
		return ""
	}
	msg, newest := "", time.Time{}
	for _, e := range evs.Items {
		at := e.LastTimestamp.Time
		if at.IsZero() {
			at = e.EventTime.Time
		}
		if at.IsZero() {
			at = e.CreationTimestamp.Time
		}
		if !at.Before(since.Truncate(time.Second)) && at.After(newest) {
			msg, newest = e.Message, at
		}
	}
	return msg
}

func describePod(pod *corev1.Pod, kind string) string {
	s := "pod " + pod.Name + " " + string(pod.Status.Phase)
	for _, c := range pod.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			s += fmt.Sprintf("; %s: %s", c.Type, c.Message)
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != containerOf(kind) {
			continue
		}
		switch {
		case cs.State.Waiting != nil:
			s += fmt.Sprintf("; %s waiting: %s %s", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Terminated != nil:
			s += fmt.Sprintf("; %s terminated: %s (exit %d)", cs.Name, cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
		case !cs.Ready:
			s += "; " + cs.Name + " running, not ready"
		}
	}
	return s
}

// Recover implements platform.Platform: the pod by its name (a pod the
// StatefulSet recreated has a new UID and is the same instance).
func (p *Platform) Recover(_ context.Context, id platform.ID, _ []byte) (platform.Instance, error) {
	m, err := parseMember(id)
	if err != nil {
		return platform.Instance{}, err
	}
	kind := kindOfSet(m.Cluster, m.Set)
	pod, err := p.pods.Pods(p.opts.Namespace).Get(id.Name)
	if apierrors.IsNotFound(err) {
		return p.instanceOf(id, kind, nil), nil
	}
	if err != nil {
		return platform.Instance{}, err
	}
	in := p.instanceOf(id, kind, pod)
	in.Adopted = in.Running
	return in, nil
}

// List implements platform.Platform: the cluster's pods.
func (p *Platform) List(_ context.Context, cluster string) ([]platform.Instance, error) {
	pods, err := p.pods.Pods(p.opts.Namespace).List(k8slabels.SelectorFromSet(map[string]string{LabelCluster: cluster}))
	if err != nil {
		return nil, err
	}
	var out []platform.Instance
	for _, pod := range pods {
		id := platform.ID{Cluster: cluster, Name: pod.Name}
		m, err := parseMember(id)
		if err != nil {
			continue
		}
		out = append(out, p.instanceOf(id, kindOfSet(cluster, m.Set), pod))
	}
	// An instance whose pod is gone while its StatefulSet still holds its
	// ordinal (deleted, about to be created again) exists, not running.
	sets, err := p.sets.StatefulSets(p.opts.Namespace).List(k8slabels.SelectorFromSet(map[string]string{LabelCluster: cluster}))
	if err != nil {
		return nil, err
	}
	for _, set := range sets {
		if set.DeletionTimestamp != nil || set.Spec.Replicas == nil {
			continue
		}
		for o := range int(*set.Spec.Replicas) {
			id := platform.ID{Cluster: cluster, Name: fmt.Sprintf("%s-%d", set.Name, o)}
			if !slices.ContainsFunc(out, func(in platform.Instance) bool { return in.ID == id }) {
				out = append(out, p.instanceOf(id, kindOfSet(cluster, set.Name), nil))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.Name < out[j].ID.Name })
	return out, nil
}

// Watch implements platform.Platform: a deleted pod and a container that
// terminated are certain deaths.
func (p *Platform) Watch(context.Context) (<-chan platform.InstanceEvent, error) {
	return p.events, nil
}

func (p *Platform) emit(pod *corev1.Pod, why string) {
	cluster := pod.Labels[LabelCluster]
	if cluster == "" {
		return
	}
	ev := platform.InstanceEvent{Type: platform.EventExited, ID: platform.ID{Cluster: cluster, Name: pod.Name}, Certain: true,
		Details: platform.Details{Pod: pod.Name, Node: pod.Spec.NodeName}, At: time.Now().UTC()}
	p.log.Debug("instance exited", "pod", pod.Name, "why", why)
	select {
	case p.events <- ev:
	default:
		p.log.Warn("platform event dropped: nobody reads them", "pod", pod.Name)
	}
}

func (p *Platform) podUpdated(o, n any) {
	old, ok1 := o.(*corev1.Pod)
	pod, ok2 := n.(*corev1.Pod)
	if !ok1 || !ok2 {
		return
	}
	kind := platform.KindRedis
	if pod.Labels[LabelComponent] == "sentinel" {
		kind = platform.KindSentinel
	}
	if running(old, kind) && !running(pod, kind) {
		p.emit(pod, "container stopped")
		return
	}
	if restarts(pod, kind) > restarts(old, kind) && running(old, kind) == running(pod, kind) {
		p.emit(pod, "container restarted")
	}
}

func restarts(pod *corev1.Pod, kind string) int32 {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == containerOf(kind) {
			return cs.RestartCount
		}
	}
	return 0
}

func (p *Platform) podDeleted(o any) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	if pod, ok := o.(*corev1.Pod); ok {
		p.departed.note(pod)
		p.emit(pod, "pod deleted")
	}
}

// Remove implements platform.Platform. A StatefulSet removes its highest
// ordinals first: removing an instance scales its set down to its ordinal,
// once every higher ordinal is being removed too (the caller removes the
// highest ordinals, see OrderedRemoval); the set's retention policy deletes
// the pods' volumes. The last instance of a set takes the set, its Services
// and budget with it; the last of a cluster, the cluster's ConfigMap and
// Secret.
func (p *Platform) Remove(ctx context.Context, id platform.ID) error {
	m, err := parseMember(id)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if p.removing[m.Set] == nil {
		p.removing[m.Set] = map[int]bool{}
	}
	p.removing[m.Set][m.Ordinal] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.removing[m.Set], m.Ordinal)
		p.mu.Unlock()
	}()
	sets := p.cs.AppsV1().StatefulSets(p.opts.Namespace)
	deadline := time.Now().Add(10 * time.Second)
	for {
		done, err := p.scaleDown(ctx, m)
		if err != nil {
			return err
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("remove %s: StatefulSet %s removes its highest ordinals first, and a higher one is not being removed", id.Name, m.Set)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := p.waitGone(ctx, id.Name); err != nil {
		return err
	}
	// The retention policy deletes the volume; a claim left by an older
	// set (or a set deleted before its pods) goes here.
	err = p.cs.CoreV1().PersistentVolumeClaims(p.opts.Namespace).Delete(ctx, pvcName(id.Name), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete PersistentVolumeClaim %s: %w", pvcName(id.Name), err)
	}
	if cur, err := sets.Get(ctx, m.Set, metav1.GetOptions{}); err == nil && *cur.Spec.Replicas == 0 {
		if err := p.removeSet(ctx, m); err != nil {
			return err
		}
	}
	return p.removeClusterIfEmpty(ctx, m.Cluster)
}

// scaleDown lowers the set's replicas to m's ordinal when every ordinal
// above it is being removed; done is true when m's ordinal is beyond the
// set (or there is no set).
func (p *Platform) scaleDown(ctx context.Context, m member) (done bool, err error) {
	defer p.lock(m.Set)()
	sets := p.cs.AppsV1().StatefulSets(p.opts.Namespace)
	cur, err := sets.Get(ctx, m.Set, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("get StatefulSet %s: %w", m.Set, err)
	}
	n := int(*cur.Spec.Replicas)
	if m.Ordinal >= n {
		return true, nil
	}
	p.mu.Lock()
	k := n
	for k > 0 && p.removing[m.Set][k-1] {
		k--
	}
	p.mu.Unlock()
	if k > m.Ordinal {
		return false, nil
	}
	r := int32(k)
	cur.Spec.Replicas = &r
	if _, err := sets.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return false, fmt.Errorf("scale StatefulSet %s to %d: %w", m.Set, k, err)
	}
	p.log.Info("scaled StatefulSet down", "set", m.Set, "replicas", k)
	return true, nil
}

// waitGone waits until the pod no longer exists.
func (p *Platform) waitGone(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		wake := p.changed.wait()
		if _, err := p.pods.Pods(p.opts.Namespace).Get(name); apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-wake:
		case <-time.After(time.Second):
		case <-ctx.Done():
			return fmt.Errorf("pod %s still exists: %w", name, ctx.Err())
		}
	}
}

// removeSet deletes an empty set with its Services and budget.
func (p *Platform) removeSet(ctx context.Context, m member) error {
	defer p.lock(m.Set)()
	fg := metav1.DeletePropagationForeground
	del := metav1.DeleteOptions{PropagationPolicy: &fg}
	if err := p.cs.AppsV1().StatefulSets(p.opts.Namespace).Delete(ctx, m.Set, del); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete StatefulSet %s: %w", m.Set, err)
	}
	if err := p.cs.PolicyV1().PodDisruptionBudgets(p.opts.Namespace).Delete(ctx, m.Set, del); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete PodDisruptionBudget %s: %w", m.Set, err)
	}
	for _, svc := range p.services(&corev1.ConfigMap{}, m, kindOfSet(m.Cluster, m.Set)) {
		if err := p.cs.CoreV1().Services(p.opts.Namespace).Delete(ctx, svc.Name, del); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete Service %s: %w", svc.Name, err)
		}
	}
	return nil
}

// removeClusterIfEmpty deletes the cluster's ConfigMap (and with it, by
// owner reference, its Secret) once it has no StatefulSet left.
func (p *Platform) removeClusterIfEmpty(ctx context.Context, cluster string) error {
	sets, err := p.cs.AppsV1().StatefulSets(p.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelCluster + "=" + cluster})
	if err != nil {
		return fmt.Errorf("list StatefulSets of %s: %w", cluster, err)
	}
	for _, s := range sets.Items {
		if s.DeletionTimestamp == nil {
			return nil
		}
	}
	bg := metav1.DeletePropagationBackground
	if err := p.cs.CoreV1().Secrets(p.opts.Namespace).Delete(ctx, secretName(cluster), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Secret %s: %w", secretName(cluster), err)
	}
	err = p.cs.CoreV1().ConfigMaps(p.opts.Namespace).Delete(ctx, rootName(cluster), metav1.DeleteOptions{PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ConfigMap %s: %w", rootName(cluster), err)
	}
	return nil
}

// StartsSlowly implements platform.SlowStart.
func (p *Platform) StartsSlowly() bool { return true }

// RestartsOnItsOwn implements platform.SelfRestart: the kubelet restarts a
// container that exited, without the manager.
func (p *Platform) RestartsOnItsOwn() bool { return true }

// RemovesHighestOrdinalFirst implements platform.OrderedRemoval.
func (p *Platform) RemovesHighestOrdinalFirst() bool { return true }

// PointMaster implements platform.MasterPointer: the role label behind
// the shard's -master Service leaves every other pod before it is put on
// the master, so the Service never selects two.
func (p *Platform) PointMaster(ctx context.Context, cluster string, shard int, master platform.ID) error {
	pods, err := p.pods.Pods(p.opts.Namespace).List(k8slabels.SelectorFromSet(map[string]string{LabelCluster: cluster, LabelShard: strconv.Itoa(shard)}))
	if err != nil {
		return err
	}
	patch := func(pod *corev1.Pod, role string) error {
		if pod.Labels[LabelRole] == role {
			return nil
		}
		body := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, LabelRole, role)
		_, err := p.cs.CoreV1().Pods(p.opts.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, []byte(body), metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("label pod %s %s: %w", pod.Name, role, err)
		}
		if err == nil {
			p.log.Info("role label moved", "pod", pod.Name, "role", role)
		}
		return nil
	}
	var newMaster *corev1.Pod
	for _, pod := range pods {
		if pod.Name == master.Name {
			newMaster = pod
			continue
		}
		if err := patch(pod, RoleReplica); err != nil {
			return err
		}
	}
	if newMaster == nil {
		return fmt.Errorf("master %s has no pod", master.Name)
	}
	return patch(newMaster, RoleMaster)
}

// LogTail implements platform.LogReader: the end of the container's log,
// of its previous run when it restarted (where a crash report is).
func (p *Platform) LogTail(ctx context.Context, id platform.ID, limit int) ([]byte, error) {
	m, err := parseMember(id)
	if err != nil {
		return nil, err
	}
	lim := int64(limit)
	get := func(previous bool) ([]byte, error) {
		rc, err := p.cs.CoreV1().Pods(p.opts.Namespace).GetLogs(id.Name, &corev1.PodLogOptions{
			Container: containerOf(kindOfSet(m.Cluster, m.Set)), Previous: previous, LimitBytes: &lim}).Stream(ctx)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	if b, err := get(true); err == nil && len(b) > 0 {
		return b, nil
	}
	return get(false)
}

// broadcast wakes every waiter when the informers see a change.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

// wait returns a channel closed at the next change.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}

var (
	_ platform.Platform  = (*Platform)(nil)
	_ platform.LogReader = (*Platform)(nil)
	_ *appsv1.StatefulSet
)
