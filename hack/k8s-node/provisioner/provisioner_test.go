package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestVolumeFor(t *testing.T) {
	retain := v1.PersistentVolumeReclaimRetain
	block := v1.PersistentVolumeBlock
	claim := func(mod func(*v1.PersistentVolumeClaim)) *v1.PersistentVolumeClaim {
		c := &v1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data-r-0", UID: "u-1"},
			Spec: v1.PersistentVolumeClaimSpec{
				AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce, v1.ReadWriteOncePod},
				Resources:   v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("3Gi")}},
			},
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "hp"}, Provisioner: DefaultName}

	pv, err := volumeFor(claim(nil), class, "n1", "/v", DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	if pv.Name != "pvc-u-1" || pv.Annotations[annProvisionedBy] != DefaultName {
		t.Errorf("name %q, annotations %v", pv.Name, pv.Annotations)
	}
	if got := pv.Spec.HostPath.Path; got != "/v/ns-data-r-0-u-1" {
		t.Errorf("path %q", got)
	}
	if *pv.Spec.HostPath.Type != v1.HostPathDirectory {
		t.Errorf("hostPath type %q, want Directory (a lost directory must not become an empty volume)", *pv.Spec.HostPath.Type)
	}
	if q := pv.Spec.Capacity[v1.ResourceStorage]; q.Cmp(resource.MustParse("3Gi")) != 0 {
		t.Errorf("capacity %s", q.String())
	}
	if !reflect.DeepEqual(pv.Spec.AccessModes, []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce, v1.ReadWriteOncePod}) {
		t.Errorf("access modes %v", pv.Spec.AccessModes)
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != v1.PersistentVolumeReclaimDelete || pv.Spec.StorageClassName != "hp" {
		t.Errorf("reclaim %q class %q", pv.Spec.PersistentVolumeReclaimPolicy, pv.Spec.StorageClassName)
	}
	if r := pv.Spec.ClaimRef; r == nil || r.Namespace != "ns" || r.Name != "data-r-0" || r.UID != "u-1" || r.Kind != "PersistentVolumeClaim" {
		t.Errorf("claimRef %+v", r)
	}
	terms := pv.Spec.NodeAffinity.Required.NodeSelectorTerms
	if len(terms) != 1 || !reflect.DeepEqual(terms[0].MatchExpressions[0].Values, []string{"n1"}) ||
		terms[0].MatchExpressions[0].Key != "kubernetes.io/hostname" {
		t.Errorf("node affinity %+v", terms)
	}

	if dir, err := (&Provisioner{root: "/v"}).ownDir(pv); err != nil || dir != pv.Spec.HostPath.Path {
		t.Errorf("ownDir of the volume volumeFor made: %q, %v", dir, err)
	}

	withRetain := *class
	withRetain.ReclaimPolicy = &retain
	if pv, err := volumeFor(claim(nil), &withRetain, "n1", "/v", DefaultName); err != nil || pv.Spec.PersistentVolumeReclaimPolicy != retain {
		t.Errorf("class Retain: %v %v", pv.Spec.PersistentVolumeReclaimPolicy, err)
	}

	for name, c := range map[string]*v1.PersistentVolumeClaim{
		"block": claim(func(c *v1.PersistentVolumeClaim) { c.Spec.VolumeMode = &block }),
		"data source": claim(func(c *v1.PersistentVolumeClaim) {
			c.Spec.DataSource = &v1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "x"}
		}),
		"selector": claim(func(c *v1.PersistentVolumeClaim) { c.Spec.Selector = &metav1.LabelSelector{} }),
		"no size":  claim(func(c *v1.PersistentVolumeClaim) { c.Spec.Resources.Requests = nil }),
		"no mode":  claim(func(c *v1.PersistentVolumeClaim) { c.Spec.AccessModes = nil }),
	} {
		if _, err := volumeFor(c, class, "n1", "/v", DefaultName); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := volumeFor(claim(nil), class, "", "/v", DefaultName); err == nil {
		t.Error("no node: no error")
	}
}

func TestOwnDir(t *testing.T) {
	p := &Provisioner{root: "/v"}
	ref := &v1.ObjectReference{Namespace: "ns", Name: "a", UID: "u"}
	for path, ok := range map[string]bool{
		"/v/ns-a-u": true, "/v/ns-a-u/": true, "/v/./ns-a-u": true,
		"/v": false, "/v/": false, "/": false, "/v/ns-b-u": false, "/v/ns-a-u/x": false,
		"/v/x/y": false, "/v/../etc": false, "/w/ns-a-u": false, "/v/..": false, "/v/../v/ns-a-u": true,
	} {
		pv := &v1.PersistentVolume{Spec: v1.PersistentVolumeSpec{ClaimRef: ref, PersistentVolumeSource: v1.PersistentVolumeSource{
			HostPath: &v1.HostPathVolumeSource{Path: path}}}}
		if _, err := p.ownDir(pv); (err == nil) != ok {
			t.Errorf("%s: err %v, want ok=%v", path, err, ok)
		}
	}
	if _, err := p.ownDir(&v1.PersistentVolume{Spec: v1.PersistentVolumeSpec{ClaimRef: ref}}); err == nil {
		t.Error("no hostPath: no error")
	}
	if _, err := p.ownDir(&v1.PersistentVolume{Spec: v1.PersistentVolumeSpec{PersistentVolumeSource: v1.PersistentVolumeSource{
		HostPath: &v1.HostPathVolumeSource{Path: "/v/ns-a-u"}}}}); err == nil {
		t.Error("no claimRef: no error")
	}
}

// nodeEnv is the test node's kubeconfig and image (make test-k8s exports
// them from hack/k8s-node/up); the test is skipped without them.
func nodeEnv(t *testing.T) (kubernetes.Interface, string) {
	t.Helper()
	kc, img := os.Getenv("REDIS_MANAGER_K8S_KUBECONFIG"), os.Getenv("REDIS_MANAGER_K8S_IMAGE")
	if kc == "" || img == "" {
		t.Skip("no test node: REDIS_MANAGER_K8S_KUBECONFIG and REDIS_MANAGER_K8S_IMAGE unset (make test-k8s sets them)")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, img
}

func suffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestProvisionerOnNode runs this checkout's provisioner (under a name of
// its own, beside the node's) against the test node, in both binding modes:
// a claim gets a volume, a pod writes into it, a second pod sees the data,
// deleting the claim removes the volume and its directory.
func TestProvisionerOnNode(t *testing.T) {
	c, img := nodeEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	node := nodeName(ctx, t, c)
	name := "redis-manager.io/hostpath-test-" + suffix()
	root := t.TempDir()
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- New(c, name, root, node, slog.New(slog.NewTextHandler(testWriter{t}, nil))).Run(pctx, 2)
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	for _, mode := range []storagev1.VolumeBindingMode{storagev1.VolumeBindingImmediate, storagev1.VolumeBindingWaitForFirstConsumer} {
		t.Run(string(mode), func(t *testing.T) {
			cls := "rm-prov-test-" + strings.ToLower(string(mode)) + "-" + suffix()
			del := v1.PersistentVolumeReclaimDelete
			_, err := c.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
				ObjectMeta: metav1.ObjectMeta{Name: cls}, Provisioner: name, ReclaimPolicy: &del, VolumeBindingMode: &mode,
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.StorageV1().StorageClasses().Delete(context.Background(), cls, metav1.DeleteOptions{}) })
			roundTrip(ctx, t, c, img, cls, name, root)
		})
	}
}

// TestNodeStorageClass checks what hack/k8s-node/up set up: the default
// StorageClass redis-manager-hostpath served by the node's provisioner
// process, its volumes under the node's state dir.
func TestNodeStorageClass(t *testing.T) {
	c, img := nodeEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sc, err := c.StorageV1().StorageClasses().Get(ctx, "redis-manager-hostpath", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Provisioner != DefaultName || sc.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" ||
		sc.ReclaimPolicy == nil || *sc.ReclaimPolicy != v1.PersistentVolumeReclaimDelete {
		t.Fatalf("storage class: provisioner %q, annotations %v, reclaim %v", sc.Provisioner, sc.Annotations, sc.ReclaimPolicy)
	}
	root := os.Getenv("REDIS_MANAGER_K8S_VOLUMES")
	if root == "" {
		root = "/var/lib/redis-manager-k8s-node/volumes"
	}
	// "": no storageClassName, the default class applies
	roundTrip(ctx, t, c, img, "", DefaultName, root)
}

// roundTrip: in a namespace of its own, a claim of class cls (the default
// class if empty) gets a volume of provisioner under root; a redis-server pod
// saves a key onto it; after that pod is gone, a new pod loads the key from
// the volume; deleting the claim removes the volume and its directory.
func roundTrip(ctx context.Context, t *testing.T, c kubernetes.Interface, img, cls, provisioner, root string) {
	ns := "rm-prov-test-" + suffix()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	claim := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:   v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("64Mi")}},
		},
	}
	if cls != "" {
		claim.Spec.StorageClassName = &cls
	}
	if _, err := c.CoreV1().PersistentVolumeClaims(ns).Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			dumpEvents(t, c, ns)
		}
	}()

	start := time.Now()
	p1 := redisPod(ctx, t, c, ns, "w", img)
	t.Logf("claim and pod Ready in %v", time.Since(start).Round(time.Millisecond))

	claim, err := c.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if claim.Status.Phase != v1.ClaimBound {
		t.Fatalf("claim %s with a Ready pod", claim.Status.Phase)
	}
	pv, err := c.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, ns+"-data-"+string(claim.UID))
	if pv.Annotations[annProvisionedBy] != provisioner || pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != dir ||
		pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != claim.UID ||
		pv.Spec.PersistentVolumeReclaimPolicy != v1.PersistentVolumeReclaimDelete {
		t.Fatalf("volume %s: annotations %v, spec %+v", pv.Name, pv.Annotations, pv.Spec)
	}
	if q := pv.Spec.Capacity[v1.ResourceStorage]; q.Cmp(resource.MustParse("64Mi")) != 0 {
		t.Errorf("capacity %s, want the claim's 64Mi", q.String())
	}

	rc := redis.NewClient(&redis.Options{Addr: p1.Status.PodIP + ":6379"})
	if err := rc.Set(ctx, "k", ns, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	_ = rc.Close()
	if _, err := os.Stat(filepath.Join(dir, "dump.rdb")); err != nil {
		t.Fatalf("the pod's file on the host: %v", err)
	}

	deletePod(ctx, t, c, ns, "w")
	p2 := redisPod(ctx, t, c, ns, "r", img)
	rc = redis.NewClient(&redis.Options{Addr: p2.Status.PodIP + ":6379"})
	got, err := rc.Get(ctx, "k").Result()
	_ = rc.Close()
	if err != nil || got != ns {
		t.Fatalf("second pod: GET k = %q, %v; want %q from the volume", got, err, ns)
	}
	deletePod(ctx, t, c, ns, "r")

	if err := c.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitFor(ctx, t, "volume "+pv.Name+" deleted", func() (bool, error) {
		_, err := c.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	t.Logf("claim deleted → volume gone in %v", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s after the volume was deleted: %v", dir, err)
	}
}

func nodeName(ctx context.Context, t *testing.T, c kubernetes.Interface) string {
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 {
		t.Fatalf("%d nodes, want the one test node", len(nodes.Items))
	}
	return nodes.Items[0].Name
}

// redisPod starts a redis-server pod with the claim "data" on /data and
// waits until it is Ready.
func redisPod(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name, img string) *v1.Pod {
	t.Helper()
	grace := int64(1)
	_, err := c.CoreV1().Pods(ns).Create(ctx, &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []v1.Container{{
				Name: "redis", Image: img, ImagePullPolicy: v1.PullNever,
				Command:        []string{"redis-server", "--dir", "/data", "--save", "", "--protected-mode", "no"},
				VolumeMounts:   []v1.VolumeMount{{Name: "data", MountPath: "/data"}},
				ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(6379)}}, PeriodSeconds: 1},
			}},
			Volumes: []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{
				PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pod *v1.Pod
	waitFor(ctx, t, "pod "+ns+"/"+name+" Ready", func() (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == v1.PodReady && cond.Status == v1.ConditionTrue {
				pod = p
				return true, nil
			}
		}
		return false, nil
	})
	return pod
}

func deletePod(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	if err := c.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "pod "+ns+"/"+name+" gone", func() (bool, error) {
		_, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s (last error: %v)", what, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func dumpEvents(t *testing.T, c kubernetes.Interface, ns string) {
	ev, err := c.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Logf("events of %s: %v", ns, err)
		return
	}
	for _, e := range ev.Items {
		t.Logf("event %s %s/%s %s: %s", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
