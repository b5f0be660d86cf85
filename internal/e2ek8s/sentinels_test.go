package e2ek8s

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestSentinelsScale: Sentinels 3→5→3. After each step every Sentinel
// watches the shard with the quorum of the new count and knows exactly the
// others, by id and name; scaling in removes the highest ordinals with
// their volumes.
func TestSentinelsScale(t *testing.T) {
	n := newNode(t, nodeOptions{})
	ctx := context.Background()
	n.CreateReady(api.CreateClusterRequest{Name: "c", Shards: intp(1), Replicas: intp(1), Sentinels: intp(3)})
	creds, err := n.M.Client.Credentials(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	for _, count := range []int{5, 3} {
		var res api.ClusterJob
		testenv.WhenIdle(t, "scale Sentinels", func() (err error) {
			res, err = n.M.Client.UpdateCluster(ctx, "c", api.UpdateClusterRequest{Sentinels: intp(count)})
			return err
		})
		if j := n.M.WaitJob(ctx, res.Job.ID); j.State != api.StateSucceeded {
			t.Fatalf("Sentinels → %d: job %s: %s", count, j.State, j.Error)
		}
		sentinels := n.sentinelAddrs("c", count)
		ids := map[string]string{}
		for _, s := range sentinels {
			rc := n.Redis(s, creds.SentinelPassword)
			id, err := rc.Do(ctx, "SENTINEL", "MYID").Text()
			rc.Close()
			if err != nil {
				t.Fatalf("SENTINEL MYID of %s: %v", s, err)
			}
			ids[s] = id
		}
		for _, s := range sentinels {
			if p := sentinelPeersProblem(n, s, creds.SentinelPassword, ids); p != "" {
				t.Errorf("Sentinels → %d, job done: %s", count, p)
			}
			sc := n.sentinel(s, creds.SentinelPassword)
			m, err := sc.Master(ctx, "c-0").Result()
			sc.Close()
			if want := strconv.Itoa(count/2 + 1); err != nil || m["quorum"] != want {
				t.Errorf("Sentinels → %d: %s has quorum %q (%v), want %s", count, s, m["quorum"], err, want)
			}
		}
	}
	for o := 3; o < 5; o++ {
		pod := fmt.Sprintf("c-sentinel-%d", o)
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, perr := n.cs.CoreV1().Pods(n.NS).Get(ctx, pod, metav1.GetOptions{})
			_, cerr := n.cs.CoreV1().PersistentVolumeClaims(n.NS).Get(ctx, "data-"+pod, metav1.GetOptions{})
			if apierrors.IsNotFound(perr) && apierrors.IsNotFound(cerr) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s or its claim still there 30 s after scaling in: %v / %v", pod, perr, cerr)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
