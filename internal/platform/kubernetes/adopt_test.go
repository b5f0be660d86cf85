package kubernetes

import (
	"context"
	"log/slog"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/redis-manager/redis-manager/internal/platform"
)

func adoptJob(name, kind, key string) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{LabelTask: kind}}}
	if key != "" {
		j.Annotations = map[string]string{AnnotationObjectKey: key}
	}
	return j
}

// A snapshot Job carries the object key its backup record names.
func TestSnapshotJobNamesItsObject(t *testing.T) {
	p := testPlatform("")
	j := p.snapshotJob(testRoot(), "c", "0", platform.SnapshotSource{Addr: "c-0-1.c:6379", TargetURL: "s3://b/p", Key: "c/shard-0/20260101T000000Z.rdb"})
	if got := j.Annotations[AnnotationObjectKey]; got != "c/shard-0/20260101T000000Z.rdb" {
		t.Fatalf("annotation %s = %q", AnnotationObjectKey, got)
	}
	if !adoptable(j) {
		t.Fatal("a snapshot Job naming its object is not adoptable")
	}
	if adoptable(p.verifyJob(testRoot(), "c", 0, platform.SeedSource{TargetURL: "s3://b/p", Key: "k"})) {
		t.Fatal("a verify Job is adoptable")
	}
}

// A new manager's first task leaves a running snapshot Job that names its
// object for the resumed backup to adopt (and deletes the other task Jobs
// at once); AdoptSnapshot follows the Job of that key and creates none;
// after the grace, a running snapshot Job nobody adopted is deleted.
func TestAdoptSnapshot(t *testing.T) {
	defer func(g time.Duration) { orphanAdoptGrace = g }(orphanAdoptGrace)
	orphanAdoptGrace = 500 * time.Millisecond
	cs := fake.NewClientset(
		adoptJob("adopted", platform.TaskSnapshot, "c/shard-0/a.rdb"),
		adoptJob("unclaimed", platform.TaskSnapshot, "c/shard-1/b.rdb"),
		adoptJob("old-snapshot", platform.TaskSnapshot, ""), // from a manager before adoption
		adoptJob("verify", platform.TaskFetch, ""),
	)
	p := testPlatform("")
	p.cs, p.log = cs, slog.New(slog.DiscardHandler)
	ctx := context.Background()
	w, err := p.startTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stopTasks()
	exists := func(name string) bool {
		_, err := cs.BatchV1().Jobs("ns").Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	for name, want := range map[string]bool{"adopted": true, "unclaimed": true, "old-snapshot": false, "verify": false} {
		if exists(name) != want {
			t.Errorf("after the first task: Job %s exists %v, want %v", name, !want, want)
		}
	}

	// No Job for the key: nothing found, nothing created.
	if _, found, err := p.AdoptSnapshot(ctx, "c/shard-0/none.rdb", nil); found || err != nil {
		t.Fatalf("AdoptSnapshot of an unknown key: found %v, err %v", found, err)
	}

	// The Job of the key: its pod ended; the fake API server's log is no
	// protocol line, so the outcome is an error, but the Job is the one
	// followed (found) and deleted after, and no Job is created.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "adopted-x", Namespace: "ns",
		Labels: map[string]string{LabelTask: platform.TaskSnapshot, batchv1.JobNameLabel: "adopted"}},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{Name: "snapshot",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}}}}
	if _, err := cs.CoreV1().Pods("ns").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, _ := p.taskPod(w, "adopted"); got != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the informer never saw the pod")
		}
		time.Sleep(10 * time.Millisecond)
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, found, err := p.AdoptSnapshot(actx, "c/shard-0/a.rdb", nil)
	if !found || err == nil {
		t.Fatalf("AdoptSnapshot: found %v, err %v; want found and the fake log's 'no outcome'", found, err)
	}
	if exists("adopted") {
		t.Error("the adopted Job was not deleted after its outcome was read")
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "jobs" {
			t.Errorf("a Job was created: %v", a)
		}
	}

	// The unclaimed one goes after the grace.
	deadline = time.Now().Add(orphanAdoptGrace + 5*time.Second)
	for exists("unclaimed") {
		if time.Now().After(deadline) {
			t.Fatal("the snapshot Job nobody adopted was not deleted after the grace")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A manager that stops leading leaves its snapshot Job running for the
// next leader (its ctx, the term's, ended), and deletes any other task Job.
func TestFollowLeavesSnapshotOnTermEnd(t *testing.T) {
	cs := fake.NewClientset()
	p := testPlatform("")
	p.cs, p.log = cs, slog.New(slog.DiscardHandler)
	w, err := p.startTasks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer p.stopTasks()
	for _, j := range []*batchv1.Job{adoptJob("snap", platform.TaskSnapshot, "k"), adoptJob("verify", platform.TaskFetch, "")} {
		if _, err := cs.BatchV1().Jobs("ns").Create(context.Background(), j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := p.followJob(ctx, w, j, []string{"snapshot"}, nil); err == nil {
			t.Fatalf("%s: followed to an end with its ctx ended", j.Name)
		}
		_, gerr := cs.BatchV1().Jobs("ns").Get(context.Background(), j.Name, metav1.GetOptions{})
		if kept := gerr == nil; kept != adoptable(j) {
			t.Errorf("Job %s kept %v after the term ended; want %v", j.Name, kept, adoptable(j))
		}
	}
}
