package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/platform"
)

func testPlatform(credsSecret string) *Platform {
	return &Platform{opts: Options{Namespace: "ns", Image: "img:1", ClusterDomain: "cluster.local", BackupCredentialsSecret: credsSecret}}
}

func testRoot() *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c-config", UID: "uid-1"}}
}

func TestSnapshotJob(t *testing.T) {
	for _, creds := range []string{"", "s3-creds"} {
		p := testPlatform(creds)
		src := platform.SnapshotSource{Addr: "c-0-1.c-0.ns.svc.cluster.local:6379", Password: "very-secret-pw",
			TargetURL: "s3://b/p?endpoint=http%3A%2F%2F10.0.0.1", Key: "c/0/x.rdb", SizeHint: 1 << 30}
		j := p.snapshotJob(testRoot(), "c", "0", src)
		raw, _ := json.Marshal(j)
		if strings.Contains(string(raw), src.Password) {
			t.Errorf("the password is in the Job: %s", raw)
		}
		s := j.Spec
		if *s.BackoffLimit != 0 || *s.TTLSecondsAfterFinished <= 0 || *s.ActiveDeadlineSeconds < 600 {
			t.Errorf("backoff %d, ttl %d, deadline %d", *s.BackoffLimit, *s.TTLSecondsAfterFinished, *s.ActiveDeadlineSeconds)
		}
		if len(j.OwnerReferences) != 1 || j.OwnerReferences[0].Name != "c-config" || j.OwnerReferences[0].UID != "uid-1" {
			t.Errorf("owners %+v", j.OwnerReferences)
		}
		if j.Labels[LabelManagedBy] != managedBy || j.Labels[LabelCluster] != "c" || j.Labels[LabelShard] != "0" || j.Labels[LabelTask] != platform.TaskSnapshot {
			t.Errorf("Job labels %v", j.Labels)
		}
		// The instance informers select on managed-by: a task pod is none.
		if tl := s.Template.Labels; tl[LabelManagedBy] != "" || tl[LabelCluster] != "c" || tl[LabelTask] == "" {
			t.Errorf("pod labels %v", tl)
		}
		pod := s.Template.Spec
		if pod.RestartPolicy != corev1.RestartPolicyNever || *pod.AutomountServiceAccountToken {
			t.Errorf("restart %s, token %v", pod.RestartPolicy, *pod.AutomountServiceAccountToken)
		}
		c := pod.Containers[0]
		if c.Image != "img:1" || !strings.Contains(strings.Join(c.Command, " "), "task snapshot --source "+src.Addr) ||
			!strings.Contains(strings.Join(c.Command, " "), "--password-file "+taskAuthDir+"/password") {
			t.Errorf("container %s %v", c.Image, c.Command)
		}
		want := 3*backup.PartSize(src.SizeHint) + 128<<20
		if got := c.Resources.Limits.Memory().Value(); got != want {
			t.Errorf("memory limit %d, want %d (three parts and a base)", got, want)
		}
		v := pod.Volumes[0].Secret
		if v == nil || v.SecretName != "c-auth" || len(v.Items) != 1 || v.Items[0].Key != keyPassword {
			t.Errorf("auth volume %+v: want only the password of c-auth", pod.Volumes[0])
		}
		switch {
		case creds == "" && len(c.EnvFrom) != 0:
			t.Errorf("envFrom %+v without a credentials Secret", c.EnvFrom)
		case creds != "" && (len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef.Name != creds):
			t.Errorf("envFrom %+v, want Secret %s", c.EnvFrom, creds)
		}
		if len(c.Env) != 0 {
			t.Errorf("literal env %+v", c.Env)
		}
	}
}

func TestVerifyJob(t *testing.T) {
	p := testPlatform("s3-creds")
	seed := platform.SeedSource{TargetURL: "s3://b/p", Key: "c/0/x.rdb", Size: 100 << 20, CRC64: "0123456789abcdef"}
	j := p.verifyJob(nil, "c", 0, seed)
	pod := j.Spec.Template.Spec
	if len(j.OwnerReferences) != 0 {
		t.Errorf("owners %+v without a root", j.OwnerReferences)
	}
	if len(pod.InitContainers) != 1 || pod.InitContainers[0].Name != "fetch" || len(pod.Containers) != 1 || pod.Containers[0].Name != "count-keys" {
		t.Fatalf("containers %+v %+v", pod.InitContainers, pod.Containers)
	}
	fetch, count := pod.InitContainers[0], pod.Containers[0]
	if cmd := strings.Join(fetch.Command, " "); !strings.Contains(cmd, "--size 104857600 --crc64 0123456789abcdef") || !strings.Contains(cmd, "--dir "+scratchDir) {
		t.Errorf("fetch %s", cmd)
	}
	if len(fetch.EnvFrom) != 1 || len(count.EnvFrom) != 0 {
		t.Errorf("credentials: fetch %+v, count %+v; want the fetch only", fetch.EnvFrom, count.EnvFrom)
	}
	ed := pod.Volumes[0].EmptyDir
	if ed == nil || ed.SizeLimit == nil || ed.SizeLimit.Value() != seed.Size+256<<20 {
		t.Errorf("scratch %+v: want an emptyDir of the object and 256 MiB", pod.Volumes[0])
	}
	if count.Resources.Limits.Memory().IsZero() || fetch.Resources.Limits.Memory().IsZero() {
		t.Error("a container without a memory limit")
	}
}

func TestTaskName(t *testing.T) {
	long := strings.Repeat("a", 60)
	for _, c := range []struct{ cluster, shard, kind, prefix string }{
		{"c", "0", "backup", "c-0-backup-"},
		{"", "", "verify", "verify-"},
		{long, "3", "backup", long[:50] + "-"},
	} {
		n := taskName(c.cluster, c.shard, c.kind)
		if !strings.HasPrefix(n, c.prefix) || len(n) > 63 || len(n) != len(c.prefix)+6 {
			t.Errorf("taskName(%q, %q, %q) = %q, want %q and 6 hex digits, at most 63", c.cluster, c.shard, c.kind, n, c.prefix)
		}
	}
	if a, b := taskName("c", "0", "backup"), taskName("c", "0", "backup"); a == b {
		t.Error("two task names alike")
	}
}

func TestDeadlineFor(t *testing.T) {
	for _, c := range []struct {
		size int64
		want int64
	}{{0, 600}, {80 << 20, 610}, {1 << 50, 86400}} {
		if got := *deadlineFor(c.size); got != c.want {
			t.Errorf("deadlineFor(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}

func TestScanTaskLines(t *testing.T) {
	in := `{"progress":{"bytes":10}}
Error: something on stderr
{"progress":{"bytes":20}}
{"error":{"kind":"corrupt","message":"corrupt rdb: crc64 a, trailer says b"}}
`
	var seen []int64
	last, other := scanTaskLines(strings.NewReader(in), func(tp platform.TaskProgress) { seen = append(seen, tp.Bytes) })
	if len(seen) != 2 || seen[1] != 20 {
		t.Errorf("progress %v", seen)
	}
	if len(other) != 1 || other[0] != "Error: something on stderr" {
		t.Errorf("other lines %q", other)
	}
	_, err := outcome(last)
	if !errors.Is(err, backup.ErrCorrupt) || !strings.Contains(err.Error(), "trailer says b") {
		t.Errorf("outcome %v, want ErrCorrupt with the message", err)
	}
	last, _ = scanTaskLines(strings.NewReader(`{"result":{"bytes":5,"crc64":"ab","keys":3}}`+"\n"), nil)
	if res, err := outcome(last); err != nil || res.Keys != 3 || res.Bytes != 5 {
		t.Errorf("outcome %+v %v", res, err)
	}
	if _, err := outcome(nil); err == nil {
		t.Error("no line, no error")
	}
}

func TestSeedTemplate(t *testing.T) {
	p := testPlatform("s3-creds")
	tpl := func() *corev1.PodTemplateSpec {
		return &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "redis", Command: []string{"run"}}}}}
	}
	root := &corev1.ConfigMap{Data: map[string]string{"redis.conf": "x", seedKey("c-1-0"): "{}"}}
	for _, c := range []struct {
		set  string
		seed bool
	}{{"c-1", true}, {"c-0", false}, {"c-10", false}} {
		got := tpl()
		p.seedTemplate(root, member{Cluster: "c", Set: c.set}, got)
		cmd := strings.Join(got.Spec.Containers[0].Command, " ")
		hasSeed := strings.Contains(cmd, "--seed-file "+configDir+"/seed-$(POD_NAME).json --seed-error-file "+terminationLog)
		if hasSeed != c.seed || (len(got.Spec.Containers[0].EnvFrom) == 1) != c.seed {
			t.Errorf("set %s: command %q, envFrom %+v; want a seed: %v", c.set, cmd, got.Spec.Containers[0].EnvFrom, c.seed)
		}
	}
}

func TestSeedFailure(t *testing.T) {
	msg, _ := json.Marshal(platform.TaskLine{Error: &platform.TaskError{Kind: platform.TaskErrNotFound, Message: "seed from k: backup object not found"}})
	for _, c := range []struct {
		name string
		st   corev1.ContainerStatus
		want error
	}{
		{"running", corev1.ContainerStatus{Name: "redis", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}, nil},
		{"crashed without a word", corev1.ContainerStatus{Name: "redis", LastTerminationState: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}}}, nil},
		{"seed failed", corev1.ContainerStatus{Name: "redis", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: string(msg)}}}, backup.ErrNotFound},
		{"seed failed before a restart", corev1.ContainerStatus{Name: "redis", LastTerminationState: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: string(msg)}}}, backup.ErrNotFound},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "c-0-0"}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{c.st}}}
		err := seedFailure(pod)
		if (err == nil) != (c.want == nil) || (c.want != nil && (!errors.Is(err, c.want) || !strings.Contains(err.Error(), "c-0-0"))) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestPodReachable(t *testing.T) {
	if err := podReachable("file:///var/backups"); err == nil {
		t.Error("a file:// target passes")
	}
	if err := podReachable("s3://b/p?endpoint=http%3A%2F%2Fx"); err != nil {
		t.Error(err)
	}
}

// A new manager's first task deletes the task Jobs a previous leader left
// running, and leaves finished ones to their TTL (the fake clientset is an
// in-memory API server: objects, lists and watches).
func TestOrphanTasksDeleted(t *testing.T) {
	job := func(name string, done bool) *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{LabelTask: "snapshot"}}}
		if done {
			j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
		}
		return j
	}
	other := job("not-a-task", false)
	other.Labels = nil
	cs := fake.NewClientset(job("running", false), job("done", true), other)
	p := testPlatform("")
	p.cs, p.log = cs, slog.New(slog.DiscardHandler)
	if _, err := p.startTasks(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.stopTasks()
	for name, gone := range map[string]bool{"running": true, "done": false, "not-a-task": false} {
		_, err := cs.BatchV1().Jobs("ns").Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) != gone {
			t.Errorf("Job %s: %v; want gone: %v", name, err, gone)
		}
	}
}
