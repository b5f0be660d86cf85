package e2ek8s

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestBadInput: the API refuses bad input on the Kubernetes platform
// exactly as on the local one (the same cases, statuses and fields), and
// nothing reaches the namespace.
func TestBadInput(t *testing.T) {
	n := newNode(t, nodeOptions{})
	n.M.CheckBadRequests(t, testenv.BadRequests(spec.ManagedDirectives()))
	if cls, err := n.M.Client.ListClusters(context.Background()); err != nil || len(cls) != 0 {
		t.Fatalf("clusters after bad input: %v %v", cls, err)
	}
	if left, err := n.leftovers(context.Background()); err != nil || len(left) != 0 {
		t.Fatalf("objects in the namespace after bad input: %v %v", left, err)
	}
}

// TestCreateFailsCleanly: a create Kubernetes cannot run ends failed with
// Kubernetes' own reason in the job's error, and leaves nothing behind in
// the namespace: an image that is not there (a name under localhost/: no
// pull may leave the machine), a storage class that does not exist, a
// namespace whose quota does not admit the pods (its memory requests). A
// namespace whose pod quota cannot hold the cluster is refused up front,
// as the local platform refuses a cluster its port range cannot hold.
func TestCreateFailsCleanly(t *testing.T) {
	const missingImage = "localhost/redis-manager/missing:1"
	cases := []struct {
		name string
		o    nodeOptions
		// reasons: the job's error must hold each.
		reasons []string
	}{
		{"missing image", nodeOptions{Image: missingImage}, []string{missingImage}},
		{"missing storage class", nodeOptions{StorageClass: "no-such-class"}, []string{`storageclass.storage.k8s.io "no-such-class" not found`}},
		{"memory quota", nodeOptions{Prepare: quota("small", corev1.ResourceRequestsMemory, "1Mi")},
			[]string{"exceeded quota: small", "is forbidden", "requests.memory"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := newNode(t, c.o)
			res, err := n.M.Client.CreateCluster(context.Background(), api.CreateClusterRequest{Name: "bad", Replicas: intp(1)})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			j := n.M.ExpectCreateFailed(t, res.Job.ID, "bad", c.reasons[0])
			for _, r := range c.reasons[1:] {
				if !strings.Contains(j.Error, r) {
					t.Errorf("job error %q does not say %q", j.Error, r)
				}
			}
			gone := n.waitNothingLeft(time.Minute)
			t.Logf("nothing left in the namespace %.1f s after the job failed", gone.Seconds())
		})
	}
	t.Run("no pod quota", func(t *testing.T) {
		n := newNode(t, nodeOptions{Prepare: quota("no-pods", corev1.ResourcePods, "0")})
		status, eb := n.M.Call(t, "POST", "/api/v1/clusters", n.M.Token, `{"name":"bad","replicas":1}`)
		want := "only 0 of the 0 in the pod quota no-pods of namespace " + n.NS
		if status != 422 || eb.Error.Field != "shards" || !strings.Contains(eb.Error.Message, want) {
			t.Fatalf("create in a namespace without room for a pod: %d field %q %q, want 422 field shards saying %q", status, eb.Error.Field, eb.Error.Message, want)
		}
		if left, err := n.leftovers(context.Background()); err != nil || len(left) != 0 {
			t.Fatalf("objects in the namespace after the refusal: %v %v", left, err)
		}
	})
}

// quota gives the namespace a ResourceQuota with one hard limit, and waits
// until the quota controller has published it.
func quota(name string, r corev1.ResourceName, limit string) func(n *node) {
	return func(n *node) {
		n.t.Helper()
		ctx := context.Background()
		q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{r: resource.MustParse(limit)}}}
		if _, err := n.cs.CoreV1().ResourceQuotas(n.NS).Create(ctx, q, metav1.CreateOptions{}); err != nil {
			n.t.Fatalf("create ResourceQuota: %v", err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			got, err := n.cs.CoreV1().ResourceQuotas(n.NS).Get(ctx, q.Name, metav1.GetOptions{})
			if err == nil {
				if _, ok := got.Status.Hard[r]; ok {
					return
				}
			}
			if time.Now().After(deadline) {
				n.t.Fatalf("ResourceQuota %s has no status after 30 s: %v", q.Name, err)
			}
		}
	}
}
