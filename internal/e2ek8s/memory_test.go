package e2ek8s

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/redis-manager/redis-manager/api"
)

// TestMemoryOnline: a maxmemory change is applied online: CONFIG SET on
// every instance, the ConfigMap pods boot from, the StatefulSet's template,
// and the running pods' memory resized in place, no container restarted.
func TestMemoryOnline(t *testing.T) {
	n := newNode(t, nodeOptions{})
	ctx := context.Background()
	n.CreateReady(api.CreateClusterRequest{Name: "m", Shards: intp(1), Replicas: intp(1), Sentinels: intp(1), Maxmemory: "100mb"})
	creds, err := n.M.Client.Credentials(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.M.Client.UpdateCluster(ctx, "m", api.UpdateClusterRequest{Maxmemory: strp("200mb")})
	if err != nil {
		t.Fatal(err)
	}
	if j := n.M.WaitJob(ctx, res.Job.ID); j.State != api.StateSucceeded {
		t.Fatalf("scale job %s: %s", j.State, j.Error)
	}
	const want = 200 << 20
	wantReq, wantLimit := resource.NewQuantity(want+64<<20, resource.BinarySI), resource.NewQuantity(2*want+64<<20, resource.BinarySI)
	for _, pod := range []string{"m-0-0", "m-0-1"} {
		c := n.Redis(n.FQDN(pod, "m-0", 6379), creds.Password)
		got, err := c.ConfigGet(ctx, "maxmemory").Result()
		c.Close()
		if err != nil || got["maxmemory"] != "209715200" {
			t.Errorf("%s: CONFIG GET maxmemory = %v %v, want 209715200", pod, got, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			p, err := n.cs.CoreV1().Pods(n.NS).Get(ctx, pod, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r := p.Spec.Containers[0].Resources
			req, limit := r.Requests.Memory(), r.Limits.Memory()
			if req.Cmp(*wantReq) == 0 && limit.Cmp(*wantLimit) == 0 {
				if rc := p.Status.ContainerStatuses[0].RestartCount; rc != 0 {
					t.Errorf("%s restarted %d times for the resize", pod, rc)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s memory request %s limit %s, want %s and %s (resized in place)", pod, req, limit, wantReq, wantLimit)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	cm, err := n.cs.CoreV1().ConfigMaps(n.NS).Get(ctx, "m-config", metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["redis.conf"], "maxmemory 209715200\n") {
		t.Errorf("the ConfigMap pods boot from does not hold the new maxmemory: %v\n%s", err, cm.Data["redis.conf"])
	}
	sts, err := n.cs.AppsV1().StatefulSets(n.NS).Get(ctx, "m-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := sts.Spec.Template.Spec.Containers[0].Resources.Limits.Memory(); l.Cmp(*wantLimit) != 0 {
		t.Errorf("the StatefulSet's template limit %s, want %s", l, wantLimit)
	}
}

func strp(s string) *string { return &s }
