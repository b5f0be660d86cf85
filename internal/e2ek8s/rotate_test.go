package e2ek8s

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/redis-manager/redis-manager/api"
)

// TestRotateThenRestart: the kubelet restarts containers without asking
// the manager, and a pod composes its config from the cluster's Secret at
// every start; so after a password rotation (and its finish) a replica pod
// that is replaced must boot with the new password only, authenticate to
// its master with it, and refuse the old one.
func TestRotateThenRestart(t *testing.T) {
	n := newNode(t, nodeOptions{})
	ctx := context.Background()
	n.CreateReady(api.CreateClusterRequest{Name: "r", Shards: intp(1), Replicas: intp(1), Sentinels: intp(1)})
	before, err := n.M.Client.Credentials(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	grace := int64(600000)
	job, err := n.M.Client.RotateCredentials(ctx, "r", &grace)
	if err != nil {
		t.Fatal(err)
	}
	if j := n.M.WaitJob(ctx, job.ID); j.State != api.StateSucceeded {
		t.Fatalf("rotation job %s: %s", j.State, j.Error)
	}
	job, err = n.M.Client.FinishRotation(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if j := n.M.WaitJob(ctx, job.ID); j.State != api.StateSucceeded {
		t.Fatalf("finish job %s: %s", j.State, j.Error)
	}
	after, err := n.M.Client.Credentials(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if after.Password == before.Password {
		t.Fatal("the password did not change")
	}

	// What a restarted pod boots with: the Secret holds the new password
	// only (a manager that repairs the password of an instance it finds
	// booted with the old one would hide a stale Secret below).
	sec, err := n.cs.CoreV1().Secrets(n.NS).Get(ctx, "r-auth", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if auth := string(sec.Data["redis-auth.conf"]); !strings.Contains(auth, after.Password) || strings.Contains(auth, before.Password) ||
		string(sec.Data["password"]) != after.Password {
		t.Fatalf("the Secret pods boot from was not rotated: %q", auth)
	}

	victim := "r-0-1"
	oldUID := n.deletePod(victim)
	n.waitPodReplaced(victim, oldUID, 2*time.Minute)
	addr := n.FQDN(victim, "r-0", 6379)
	c := n.Redis(addr, after.Password)
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replaced replica does not replicate with the new password within 30 s: %v\n%s", err, info)
		}
		time.Sleep(100 * time.Millisecond)
	}
	old := n.Redis(addr, before.Password)
	defer old.Close()
	if err := old.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("the replaced replica with the old password: %v, want WRONGPASS", err)
	}
}
