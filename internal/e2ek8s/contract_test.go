package e2ek8s

import (
	"context"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/platform/kubernetes"
	"github.com/redis-manager/redis-manager/internal/platform/platformtest"
)

// TestContract runs the platform contract against the Kubernetes platform
// on the node, in a namespace of its own. The platform starts a dead
// instance again by itself and decides boot roles in the pod, so the
// harness says so and counts boots as container starts of each pod
// incarnation. Its seed and task cases use file:// targets the pods cannot
// reach: TestBackupRestore covers them through an S3 server.
func TestContract(t *testing.T) {
	n := newNode(t, nodeOptions{NoManager: true})
	// The platform checks that a pod's name resolves before it calls the
	// instance started, as a manager outside the cluster does with
	// --cluster-dns.
	was := net.DefaultResolver
	net.DefaultResolver = n.resolver
	t.Cleanup(func() { net.DefaultResolver = was })
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := kubernetes.Options{Kubeconfig: n.env.Kubeconfig, Namespace: n.NS, Image: n.env.Image, StorageClass: n.env.StorageClass}
	open := func(t *testing.T) platform.Platform {
		p, err := kubernetes.New(context.Background(), opts, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	var mu sync.Mutex
	starts := map[string]map[types.UID]int{} // pod -> incarnation -> container starts seen
	platformtest.Run(t, platformtest.Harness{
		NoSentinels: true,
		New:         func(t *testing.T, _ *platformtest.Asker) platform.Platform { return open(t) },
		Restart:     func(t *testing.T, _ platform.Platform) platform.Platform { return open(t) },
		Kill: func(t *testing.T, _ platform.Platform, in platform.Instance) {
			zero := int64(0)
			if err := n.cs.CoreV1().Pods(n.NS).Delete(context.Background(), in.Details.Pod, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
				t.Fatalf("delete pod %s: %v", in.Details.Pod, err)
			}
		},
		Ready: func(t *testing.T, in platform.Instance, password string) {
			c := n.Redis(in.Endpoint.String(), password)
			defer c.Close()
			var err error
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if err = c.Ping(context.Background()).Err(); err == nil {
					return
				}
			}
			t.Fatalf("PING %s at %s: %v", in.ID, in.Endpoint, err)
		},
		RestartsInstances: true,
		Boots: func(t *testing.T, _ platform.Platform, id platform.ID) int {
			pod, err := n.cs.CoreV1().Pods(n.NS).Get(context.Background(), id.Name, metav1.GetOptions{})
			mu.Lock()
			defer mu.Unlock()
			if starts[id.Name] == nil {
				starts[id.Name] = map[types.UID]int{}
			}
			if err == nil {
				for _, c := range pod.Status.ContainerStatuses {
					if k := int(c.RestartCount) + 1; c.State.Running != nil || c.State.Terminated != nil || c.RestartCount > 0 {
						starts[id.Name][pod.UID] = max(starts[id.Name][pod.UID], k)
					}
				}
			}
			total := 0
			for _, k := range starts[id.Name] {
				total += k
			}
			return total
		},
		Timeout: 3 * time.Minute,
		Unsupported: map[string]string{
			"seed fetches and checks its source, refused while running": "the contract's objects are file:// targets on the test host, out of the pods' reach, and on Kubernetes the fetch runs in the pod's entrypoint at its first boot, not in Seed; TestBackupRestore covers restores through an S3 server",
			"tasks fetch and count keys, saying what was wrong":         "the contract's objects are file:// targets on the test host, out of the pods' reach, and it reads the fetched dump.rdb on the caller's disk, where a Job's scratch volume is not; TestBackupRestore covers backup and verify Jobs through an S3 server",
		},
	})
}
