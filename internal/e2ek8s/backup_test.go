package e2ek8s

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// podHost is this machine's address on the node's pod network: an S3
// server listening there is reachable from the pods and from the manager.
const podHost = "10.217.0.1"

// TestBackupRestore runs backups, verifies and restores as Kubernetes Jobs
// and pod entrypoints against a real S3-protocol server reachable from the
// pods, with the manager under exactly deploy/kubernetes/rbac.yaml's Role
// and the S3 credentials in a Secret the manager is told the name of: a
// 1x2 cluster with keys of several types and binary values is backed up
// (the Job seen, with no secret in its spec, and gone afterwards), the
// backup verified, restored into a new cluster with every key and value
// equal; the object then corrupted in the bucket: verify says so, and a
// restore is refused with nothing of the new cluster left.
func TestBackupRestore(t *testing.T) {
	s3 := testenv.StartS3(t, testenv.S3Host(podHost))
	target := s3.URL("k8s")
	var clusterRole string
	const credsSecret = "backup-s3"
	n := newNode(t, nodeOptions{NoManager: true, Prepare: func(n *node) {
		clusterRole = applyRBAC(n)
		_, err := n.cs.CoreV1().Secrets(n.NS).Create(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: credsSecret},
			StringData: map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3.SecretAccessKey, "AWS_REGION": s3.Region},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}})
	t.Cleanup(func() {
		ctx := context.Background()
		_ = n.cs.RbacV1().ClusterRoleBindings().Delete(ctx, clusterRole, metav1.DeleteOptions{})
		_ = n.cs.RbacV1().ClusterRoles().Delete(ctx, clusterRole, metav1.DeleteOptions{})
	})
	args := []string{"--platform", "kubernetes", "--kubeconfig", n.managerKubeconfig, "--namespace", n.NS, "--image", n.env.Image,
		"--cluster-dns", n.env.DNS, "--backup-target", target, "--backup-credentials-secret", credsSecret}
	if n.env.StorageClass != "" {
		args = append(args, "--storage-class", n.env.StorageClass)
	}
	n.M = testenv.StartManager(t, testenv.ManagerOptions{Args: args, Env: s3.Env()})
	ctx := context.Background()

	// Every Job of the namespace, as created.
	jobs := watchJobs(t, n)

	cl, _ := n.CreateReady(api.CreateClusterRequest{Name: "src", Shards: intp(1), Replicas: intp(2), Sentinels: intp(3)})
	creds, err := n.M.Client.Credentials(ctx, "src")
	if err != nil {
		t.Fatal(err)
	}
	master := n.Redis(cl.Status.Shards[0].Master.Address, creds.Password)
	defer master.Close()
	want := writeTypes(t, master, 400)
	// The replicas hold it all before the backup reads one.
	if err := master.Do(ctx, "WAIT", 2, 5000).Err(); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	res, err := n.M.Client.CreateBackup(ctx, "src", nil)
	if err != nil {
		t.Fatal(err)
	}
	if j := waitEnd(t, n, res.Job.ID); j.State != api.StateSucceeded {
		t.Fatalf("backup job %s: %s", j.State, j.Error)
	}
	took := time.Since(started)
	b, err := n.M.Client.GetBackup(ctx, res.Backups[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.State != api.StateSucceeded || b.SizeBytes < 1000 || len(b.CRC64) != 16 || !b.Verified || b.Keys != int64(len(want)) ||
		!strings.HasPrefix(b.SourceInstance, "src-0-") || b.SourceInstance == cl.Status.Shards[0].Master.Name {
		t.Fatalf("backup: %+v; want succeeded, verified, %d keys, from a replica", b, len(want))
	}
	t.Logf("backup of %d keys (%d bytes) through a Job: %s", b.Keys, b.SizeBytes, took.Round(time.Millisecond))
	backupJob := jobs.only(t, "snapshot")
	checkNoSecrets(t, backupJob, []string{creds.Password, creds.SentinelPassword, s3.AccessKeyID, s3.SecretAccessKey})
	checkTaskJob(t, n, backupJob, "src")
	waitJobGone(t, n, backupJob.Name)

	// The object in the bucket is the one recorded.
	tgt, err := backup.OpenTarget(ctx, target, backup.WithCredentials(s3.AccessKeyID, s3.SecretAccessKey))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimPrefix(b.Target, strings.Split(target, "?")[0]+"/")
	obj := readObject(t, tgt, key)
	if int64(len(obj)) != b.SizeBytes {
		t.Fatalf("object %s: %d bytes, the record says %d", key, len(obj), b.SizeBytes)
	}

	// A verify of the good backup: a Job that fetches and loads it.
	if j := verify(t, n, b.ID); j.State != api.StateSucceeded {
		t.Fatalf("verify of a good backup: %s: %s", j.State, j.Error)
	}
	verifyJob := jobs.only(t, "fetch")
	checkNoSecrets(t, verifyJob, []string{creds.Password, creds.SentinelPassword, s3.AccessKeyID, s3.SecretAccessKey})
	checkTaskJob(t, n, verifyJob, "src")
	if v := verifyJob.Spec.Template.Spec.Volumes; len(v) != 1 || v[0].EmptyDir == nil || v[0].EmptyDir.SizeLimit == nil {
		t.Errorf("verify Job's volumes: %+v; want one size-limited emptyDir", v)
	}
	waitJobGone(t, n, verifyJob.Name)

	// Restore: the new cluster's master pod fetches the object in its
	// entrypoint before its first boot.
	rr, err := n.M.Client.RestoreBackup(ctx, b.ID, api.RestoreRequest{Cluster: "copy"})
	if err != nil {
		t.Fatal(err)
	}
	if j := waitEnd(t, n, rr.Job.ID); j.State != api.StateSucceeded {
		t.Fatalf("restore job %s: %s", j.State, j.Error)
	}
	cp := n.M.WaitPhase(ctx, "copy", api.PhaseReady, time.Minute)
	cpCreds, err := n.M.Client.Credentials(ctx, "copy")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range append([]api.InstanceStatus{*cp.Status.Shards[0].Master}, cp.Status.Shards[0].Replicas...) {
		c := n.Redis(in.Address, cpCreds.Password)
		got := readTypes(t, c)
		// A replica may still be taking its first sync.
		for end := time.Now().Add(15 * time.Second); len(got) != len(want) && time.Now().Before(end); got = readTypes(t, c) {
			time.Sleep(200 * time.Millisecond)
		}
		sameData(t, "restored "+in.Name, got, want)
		c.Close()
	}
	// The seed is done: out of the ConfigMap, so a pod that starts on an
	// empty volume later does not boot from the old backup.
	if cm, err := n.cs.CoreV1().ConfigMaps(n.NS).Get(ctx, "copy-config", metav1.GetOptions{}); err != nil {
		t.Error(err)
	} else {
		for k := range cm.Data {
			if strings.HasPrefix(k, "seed-") {
				t.Errorf("ConfigMap copy-config still holds %s after the restore", k)
			}
		}
	}

	// Corrupt the object: one byte flipped in the middle.
	bad := append([]byte(nil), obj...)
	bad[len(bad)/2] ^= 0x55
	if _, err := tgt.Put(ctx, key, bytes.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatal(err)
	}
	j := verify(t, n, b.ID)
	if j.State != api.StateFailed || !strings.Contains(j.Error, "corrupt") {
		t.Errorf("verify of a corrupted object: %s: %q; want failed, saying corrupt", j.State, j.Error)
	}
	if got, _ := n.M.Client.GetBackup(ctx, b.ID); got.Verified {
		t.Errorf("backup still verified after a verify found it corrupt: %+v", got)
	}
	waitJobGone(t, n, jobs.only(t, "fetch").Name)

	before := clusterObjects(t, n, "bad")
	rr, err = n.M.Client.RestoreBackup(ctx, b.ID, api.RestoreRequest{Cluster: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	j = waitEnd(t, n, rr.Job.ID)
	if j.State != api.StateFailed || !strings.Contains(j.Error, "corrupt") {
		t.Errorf("restore from a corrupted object: %s: %q; want failed, saying corrupt", j.State, j.Error)
	}
	t.Logf("restore from a corrupted object refused: %s", j.Error)
	if _, err := n.M.Client.GetCluster(ctx, "bad"); err == nil {
		t.Error("cluster bad exists after its restore failed")
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		left := clusterObjects(t, n, "bad")
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left of cluster bad 2 minutes after its failed restore: %v (before: %v)", left, before)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The good clusters are untouched.
	if _, err := n.M.Client.GetCluster(ctx, "copy"); err != nil {
		t.Error(err)
	}
}

// verify runs a backup verify through the API and waits for its job.
func verify(t *testing.T, n *node, id string) api.Job {
	t.Helper()
	j, err := n.M.Client.VerifyBackup(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return waitEnd(t, n, j.ID)
}

// waitEnd waits for a job to end, whatever its outcome.
func waitEnd(t *testing.T, n *node, id string) api.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	j, err := n.M.Client.WaitJob(ctx, id, nil)
	if !j.Done() {
		t.Fatalf("job %s did not end: %+v %v", id, j, err)
	}
	return j
}

// jobLog records every Job created in the namespace, as created.
type jobLog struct {
	mu   sync.Mutex
	seen []batchv1.Job
	used map[string]bool
}

func watchJobs(t *testing.T, n *node) *jobLog {
	t.Helper()
	l := &jobLog{used: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := n.cs.BatchV1().Jobs(n.NS).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if j, ok := ev.Object.(*batchv1.Job); ok && ev.Type == watch.Added {
				l.mu.Lock()
				l.seen = append(l.seen, *j)
				l.mu.Unlock()
			}
		}
	}()
	return l
}

// only returns the one Job of a task kind created since the last call.
func (l *jobLog) only(t *testing.T, kind string) batchv1.Job {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var found []batchv1.Job
	for _, j := range l.seen {
		if j.Labels["redis-manager.io/task"] == kind && !l.used[j.Name] {
			found = append(found, j)
			l.used[j.Name] = true
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d new %s Jobs seen, want 1: %v", len(found), kind, found)
	}
	return found[0]
}

// checkNoSecrets fails when any secret appears in the Job's spec, clear or
// as a literal environment value.
func checkNoSecrets(t *testing.T, j batchv1.Job, secrets []string) {
	t.Helper()
	raw, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if s != "" && bytes.Contains(raw, []byte(s)) {
			t.Errorf("Job %s holds a secret in clear text (%.4s…)", j.Name, s)
		}
	}
	pod := j.Spec.Template.Spec
	for _, c := range append(pod.InitContainers, pod.Containers...) {
		for _, e := range c.Env {
			if e.Value != "" && (strings.Contains(e.Name, "SECRET") || strings.Contains(e.Name, "PASSWORD") || strings.Contains(e.Name, "KEY")) {
				t.Errorf("Job %s container %s: %s has a literal value", j.Name, c.Name, e.Name)
			}
		}
	}
}

// checkTaskJob checks a task Job's frame: labels, owner, no retry, a TTL,
// a deadline, bounded memory, the S3 credentials from the named Secret.
func checkTaskJob(t *testing.T, n *node, j batchv1.Job, cluster string) {
	t.Helper()
	s := j.Spec
	if s.BackoffLimit == nil || *s.BackoffLimit != 0 || s.TTLSecondsAfterFinished == nil || s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds <= 0 {
		t.Errorf("Job %s: backoffLimit %v, ttl %v, deadline %v; want 0, set, set", j.Name, s.BackoffLimit, s.TTLSecondsAfterFinished, s.ActiveDeadlineSeconds)
	}
	for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"} {
		if j.Labels[l] == "" {
			t.Errorf("Job %s has no label %s: %v", j.Name, l, j.Labels)
		}
	}
	if j.Labels["redis-manager.io/cluster"] != cluster || j.Labels["redis-manager.io/shard"] != "0" {
		t.Errorf("Job %s labels %v; want cluster %s, shard 0", j.Name, j.Labels, cluster)
	}
	if len(j.OwnerReferences) != 1 || j.OwnerReferences[0].Kind != "ConfigMap" || j.OwnerReferences[0].Name != cluster+"-config" {
		t.Errorf("Job %s owners %+v; want the ConfigMap %s-config", j.Name, j.OwnerReferences, cluster)
	}
	pod := s.Template.Spec
	credsFrom := false
	for _, c := range append(pod.InitContainers, pod.Containers...) {
		if c.Image != n.env.Image {
			t.Errorf("Job %s container %s: image %s, want %s", j.Name, c.Name, c.Image, n.env.Image)
		}
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("Job %s container %s has no memory limit", j.Name, c.Name)
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil && e.SecretRef.Name == "backup-s3" {
				credsFrom = true
			}
		}
	}
	if !credsFrom {
		t.Errorf("Job %s: no container takes the S3 credentials from Secret backup-s3", j.Name)
	}
}

// waitJobGone waits until the manager has deleted the Job and its pod.
func waitJobGone(t *testing.T, n *node, name string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := n.cs.BatchV1().Jobs(n.NS).Get(ctx, name, metav1.GetOptions{})
		pods, perr := n.cs.CoreV1().Pods(n.NS).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
		if err != nil && perr == nil && len(pods.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Job %s (or its pod) still there a minute after its task ended", name)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// clusterObjects lists what the namespace holds of a cluster: anything
// labelled with it, anything named after it, and its PVCs.
func clusterObjects(t *testing.T, n *node, cluster string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	mine := func(kind string, o metav1.Object) {
		if o.GetLabels()["redis-manager.io/cluster"] == cluster || strings.HasPrefix(o.GetName(), cluster+"-") ||
			strings.HasPrefix(o.GetName(), "data-"+cluster+"-") {
			out = append(out, kind+"/"+o.GetName())
		}
	}
	if l, err := n.cs.AppsV1().StatefulSets(n.NS).List(ctx, metav1.ListOptions{}); err == nil {
		for i := range l.Items {
			mine("statefulset", &l.Items[i])
		}
	}
	if l, err := n.cs.CoreV1().Pods(n.NS).List(ctx, metav1.ListOptions{}); err == nil {
		for i := range l.Items {
			mine("pod", &l.Items[i])
		}
	}
	if l, err := n.cs.CoreV1().PersistentVolumeClaims(n.NS).List(ctx, metav1.ListOptions{}); err == nil {
		for i := range l.Items {
			mine("pvc", &l.Items[i])
		}
	}
	if l, err := n.cs.CoreV1().ConfigMaps(n.NS).List(ctx, metav1.ListOptions{}); err == nil {
		for i := range l.Items {
			mine("configmap", &l.Items[i])
		}
	}
	if l, err := n.cs.CoreV1().Secrets(n.NS).List(ctx, metav1.ListOptions{}); err == nil {
		for i := range l.Items {
			mine("secret", &l.Items[i])
		}
	}
	if l, err := n.cs.CoreV1().Services(n.NS).List(ctx, metav1.ListOptions{}); err == nil {
		for i := range l.Items {
			mine("service", &l.Items[i])
		}
	}
	if l, err := n.cs.BatchV1().Jobs(n.NS).List(ctx, metav1.ListOptions{}); err == nil {
		for i := range l.Items {
			mine("job", &l.Items[i])
		}
	}
	sort.Strings(out)
	return out
}

func readObject(t *testing.T, tgt backup.Target, key string) []byte {
	t.Helper()
	rc, err := tgt.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeTypes writes n groups of keys of every type, with binary values
// (every byte value, NULs and newlines), and returns what the instance
// then holds (readTypes).
func writeTypes(t *testing.T, c *redis.Client, n int) map[string]string {
	t.Helper()
	ctx := context.Background()
	bin := func(i int) string {
		b := make([]byte, 64)
		for j := range b {
			b[j] = byte(i*7 + j*31)
		}
		return string(b)
	}
	pipe := c.Pipeline()
	for i := range n {
		v := bin(i)
		pipe.Set(ctx, fmt.Sprintf("str:%d", i), v, 0)
		if i%4 == 0 {
			pipe.Set(ctx, fmt.Sprintf("bin\x00key\n%d", i), "\x00\xff"+v, 0)
		}
		pipe.RPush(ctx, fmt.Sprintf("list:%d", i), v, "b", "\x00c")
		pipe.HSet(ctx, fmt.Sprintf("hash:%d", i), "f1", v, "f\x002", "x")
		pipe.SAdd(ctx, fmt.Sprintf("set:%d", i), "a", v, "\xff")
		pipe.ZAdd(ctx, fmt.Sprintf("zset:%d", i), redis.Z{Score: float64(i) + 0.5, Member: v}, redis.Z{Score: -1, Member: "m"})
		if i%10 == 0 {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: fmt.Sprintf("stream:%d", i), ID: "1-1", Values: []string{"f", v}})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	return readTypes(t, c)
}

// readTypes reads every key of an instance, each value rendered by its
// type into one comparable string.
func readTypes(t *testing.T, c *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	got := map[string]string{}
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		switch typ {
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "list":
			v, err = c.LRange(ctx, k, 0, -1).Result()
		case "hash":
			v, err = c.HGetAll(ctx, k).Result()
		case "set":
			var m []string
			m, err = c.SMembers(ctx, k).Result()
			sort.Strings(m)
			v = m
		case "zset":
			v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = c.XRange(ctx, k, "-", "+").Result()
		default:
			t.Fatalf("key %q of type %s", k, typ)
		}
		if err != nil {
			t.Fatalf("read %q: %v", k, err)
		}
		got[k] = fmt.Sprintf("%s:%q", typ, fmt.Sprint(v))
	}
	return got
}

func sameData(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d keys, want %d", what, len(got), len(want))
	}
	bad := 0
	for k, v := range want {
		if got[k] != v {
			if bad++; bad <= 3 {
				t.Errorf("%s: key %q = %.80s, want %.80s", what, k, got[k], v)
			}
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d keys differ", what, bad)
	}
}
