package e2ek8s

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/platform/kubernetes"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// schedulePeriod is the test schedule's slot: the cron parser's seconds
// field, every 30 s. A slot must outlast a takeover by Lease expiry (a
// leader whose SIGTERM window ran out: 15 s) plus a backup.
const (
	scheduleCron   = "*/30 * * * * *"
	schedulePeriod = 30 * time.Second
)

// TestScheduleAcrossLeaderChange: the chart's manager (2 replicas, Lease)
// runs a backup schedule every 30 s with retain 2 against a real S3 server
// reachable from the pods (credentials in the Secret the chart's backup
// value names) for four slots; the leader pod is force-deleted 5 s before
// the second slot's boundary, and the next leader force-deleted while the
// third slot's snapshot Job runs. Each slot gets exactly one succeeded
// backup and exactly one snapshot Job (the third one's Job adopted by the
// new leader: followed to its end, not deleted and started again), no slot
// is missed, the bucket holds exactly the records retention kept, the
// events say what happened, and no task Job or pod is left.
func TestScheduleAcrossLeaderChange(t *testing.T) {
	s3 := testenv.StartS3(t, testenv.S3Host(podHost))
	target := s3.URL("k8s-sched")
	const credsSecret = "backup-s3"
	n := newNode(t, nodeOptions{NoManager: true})
	ctx := context.Background()
	if _, err := n.cs.CoreV1().Secrets(n.NS).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: credsSecret},
		StringData: map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3.SecretAccessKey, "AWS_REGION": s3.Region},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The manager opens the target too (the sidecar, retention): it gets
	// the Secret's keys as environment.
	ic := installChart(n, map[string]string{"backup.target": target, "backup.credentialsSecret": credsSecret, "backup.credentialsEnv": "true"})
	jobs := watchJobs(t, n)
	cl := ic.createReady(api.CreateClusterRequest{Name: "sched", Shards: intp(1), Replicas: intp(1), Sentinels: intp(3)})
	creds, err := ic.Client.Credentials(ctx, "sched")
	if err != nil {
		t.Fatal(err)
	}
	// 60 MB of random values: a snapshot that runs for a few seconds.
	master := n.Redis(cl.Status.Shards[0].Master.Address, creds.Password)
	defer master.Close()
	val := make([]byte, 100<<10)
	for i := 0; i < 600; i++ {
		_, _ = rand.Read(val)
		if err := master.Set(ctx, fmt.Sprintf("k%03d", i), val, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := master.Do(ctx, "WAIT", 1, 5000).Err(); err != nil {
		t.Fatal(err)
	}

	_, leader, epoch := ic.waitOneLeader(time.Minute)
	// Set the schedule well inside a period: a boundary a moment after
	// the PUT is a slot the scheduler rightly fires (it comes after the
	// schedule's UpdatedAt), which the slots below would not count.
	if d := time.Until(time.Now().Truncate(schedulePeriod).Add(schedulePeriod)); d < 8*time.Second {
		time.Sleep(d + time.Second)
	}
	if _, err := ic.Client.PutBackupSchedule(ctx, "sched", api.BackupScheduleRequest{Cron: scheduleCron, Retain: intp(2)}); err != nil {
		t.Fatal(err)
	}
	set := time.Now().UTC()
	slots := make([]time.Time, 4)
	slots[0] = set.Truncate(schedulePeriod).Add(schedulePeriod)
	if slots[0].Sub(set) < 3*time.Second {
		slots[0] = slots[0].Add(schedulePeriod)
	}
	for i := 1; i < len(slots); i++ {
		slots[i] = slots[i-1].Add(schedulePeriod)
	}
	t.Logf("schedule %q set at %s; slots %s", scheduleCron, set.Format("15:04:05.000"), fmtSlots(slots))

	// Slot 1: a plain run.
	waitSlotStored(t, ic, slots[0], slots[1])

	// Slot 2: the leader deleted (forced) 5 s before its boundary. A
	// force-deleted pod's process may run on for a moment (seconds under
	// load, while the kubelet kills it) and, holding the Lease, fire the
	// slot itself; 5 s is past that, and well inside the ~15 s before
	// another manager takes the Lease.
	sleepUntil(slots[1].Add(-5 * time.Second))
	deleted := time.Now()
	ic.deleteManagerPod(leader, 0)
	next, at := ic.newLeaderAfter(leader, 40*time.Second)
	t.Logf("slot 2: leader %s (epoch %d) force-deleted %.2f s before the boundary; %s leads %.2f s later",
		leader, epoch, slots[1].Sub(deleted).Seconds(), next, at.Sub(deleted).Seconds())
	leader = next
	waitSlotStored(t, ic, slots[1], slots[2])
	// The new leader fired slot 2 (the old one was gone before it).
	podLogHas(t, ic, leader, `msg="scheduled backup started"`, "slot="+slots[1].Format(time.RFC3339))
	ic.waitReplicasReady(2, time.Minute)

	// Slot 3: the leader deleted (forced) while the slot's snapshot Job runs.
	job := waitSnapshotJob(t, jobs, slots[2], slots[3])
	time.Sleep(time.Second)
	running, err := n.cs.BatchV1().Jobs(n.NS).Get(ctx, job.Name, metav1.GetOptions{})
	if err != nil || jobDone(running) {
		t.Fatalf("slot 3: the snapshot Job %s ended before the leader could be deleted (%v): the test would prove nothing", job.Name, err)
	}
	deleted = time.Now()
	ic.deleteManagerPod(leader, 0)
	next, at = ic.newLeaderAfter(leader, 40*time.Second)
	t.Logf("slot 3: leader %s force-deleted while Job %s runs; %s leads %.2f s later", leader, job.Name, next, at.Sub(deleted).Seconds())
	leader = next
	waitSlotStored(t, ic, slots[2], slots[3])
	// The new leader resumed the backup and followed the old leader's Job.
	podLogHas(t, ic, leader, `msg="adopting the snapshot Job a previous leader started"`, "job="+job.Name)

	// Slot 4: a plain run; once its job ended (its retention is the
	// schedule's), the schedule goes, before a fifth slot.
	waitSlotStored(t, ic, slots[3], slots[3].Add(schedulePeriod))
	waitUntil(t, "every backup job ended", 20*time.Second, func() bool { return noRunningBackupJob(ctx, ic) })
	if _, err := ic.Client.DeleteBackupSchedule(ctx, "sched"); err != nil {
		t.Fatal(err)
	}
	if time.Now().After(slots[3].Add(schedulePeriod - time.Second)) {
		t.Fatalf("the schedule was deleted at %s, too close to a fifth slot", time.Now().Format("15:04:05.000"))
	}

	evs, err := ic.Client.ClusterEvents(ctx, "sched")
	if err != nil {
		t.Fatal(err)
	}
	// Per slot exactly one succeeded backup, no other slot, no failure.
	bySlot := map[time.Time][]api.Event{}
	var pruned []string
	for _, e := range evs {
		switch e.Type {
		case "backup-succeeded":
			s, _ := e.Details["scheduledFor"].(string)
			at, err := time.Parse(time.RFC3339, s)
			if err != nil {
				t.Errorf("backup-succeeded event without a slot: %+v", e)
				continue
			}
			bySlot[at.UTC()] = append(bySlot[at.UTC()], e)
		case "backup-failed":
			t.Errorf("backup failed: %s", e.Message)
		case "backup-pruned":
			for _, id := range e.Details["backups"].([]any) {
				pruned = append(pruned, id.(string))
			}
		}
	}
	if len(bySlot) != len(slots) {
		t.Errorf("backups for %d slots (%v), want %d (%s)", len(bySlot), mapSlots(bySlot), len(slots), fmtSlots(slots))
	}
	keyOf := map[string]string{} // backup id → object key
	idOfSlot := make([]string, len(slots))
	for i, s := range slots {
		es := bySlot[s]
		if len(es) != 1 {
			t.Errorf("slot %d (%s): %d succeeded backups, want 1: %+v", i+1, s.Format("15:04:05"), len(es), es)
			continue
		}
		e := es[0]
		id := e.Details["backup"].(string)
		idOfSlot[i] = id
		tgt := e.Details["target"].(string)
		keyOf[id] = strings.TrimPrefix(tgt, strings.Split(target, "?")[0]+"/")
		adopted, _ := e.Details["adopted"].(bool)
		if adopted != (i == 2) {
			t.Errorf("slot %d: backup %s adopted %v, want %v (only slot 3's leader died while its Job ran)", i+1, id, adopted, i == 2)
		}
		t.Logf("slot %d %s: %s", i+1, s.Format("15:04:05"), e.Message)
	}

	// Exactly one snapshot Job per slot: the Job of each slot's object.
	snaps := jobs.all("snapshot")
	if len(snaps) != len(slots) {
		t.Errorf("%d snapshot Jobs created, want %d (one per slot): %v", len(snaps), len(slots), jobNames(snaps))
	}
	jobKeys := map[string]string{}
	for _, j := range snaps {
		k := j.Annotations[kubernetes.AnnotationObjectKey]
		if prev, dup := jobKeys[k]; dup {
			t.Errorf("Jobs %s and %s both write %s", prev, j.Name, k)
		}
		jobKeys[k] = j.Name
	}
	for i, id := range idOfSlot {
		if id != "" && jobKeys[keyOf[id]] == "" {
			t.Errorf("slot %d: no snapshot Job wrote backup %s's object %s (Jobs: %v)", i+1, id, keyOf[id], jobKeys)
		}
	}

	// Retention kept the last two; the first two were pruned; the bucket
	// holds exactly the kept objects and their sidecars.
	recs, err := ic.Client.ListBackups(ctx, "sched")
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, b := range recs {
		if b.State != api.StateSucceeded {
			t.Errorf("record %s: %s", b.ID, b.State)
		}
		kept = append(kept, b.ID)
	}
	sort.Strings(kept)
	sort.Strings(pruned)
	if wantKept, wantPruned := sorted(idOfSlot[2:]), sorted(idOfSlot[:2]); fmt.Sprint(kept) != fmt.Sprint(wantKept) || fmt.Sprint(pruned) != fmt.Sprint(wantPruned) {
		t.Errorf("records %v, pruned %v; want the last two slots' %v kept, the first two's %v pruned", kept, pruned, wantKept, wantPruned)
	}
	tgt, err := backup.OpenTarget(ctx, target, backup.WithCredentials(s3.AccessKeyID, s3.SecretAccessKey))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := tgt.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, o := range objs {
		got = append(got, o.Key)
	}
	for _, b := range recs {
		want = append(want, keyOf[b.ID], backup.SidecarKey(keyOf[b.ID]))
	}
	sort.Strings(got)
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("objects in the bucket: %v; want the kept records' objects and sidecars %v", got, want)
	}

	// Nothing left: no task Job, no task pod.
	for _, j := range snaps {
		waitJobGone(t, n, j.Name)
	}
	waitUntil(t, "no task pod left", time.Minute, func() bool {
		pods, err := n.cs.CoreV1().Pods(n.NS).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelTask})
		return err == nil && len(pods.Items) == 0
	})
	ic.noForbidden(ic.managerPods())
}

// waitSlotStored waits until the slot's backup succeeded, before the next
// slot (a backup stored after it would show a slot run late).
func waitSlotStored(t *testing.T, ic *inCluster, slot, next time.Time) {
	t.Helper()
	for {
		evs, err := ic.Client.ClusterEvents(context.Background(), "sched")
		if err == nil {
			for _, e := range evs {
				if e.Type == "backup-succeeded" && e.Details["scheduledFor"] == slot.Format(time.RFC3339) {
					return
				}
				if e.Type == "backup-failed" {
					t.Fatalf("slot %s: %s", slot.Format("15:04:05"), e.Message)
				}
			}
		}
		if time.Now().After(next) {
			t.Fatalf("slot %s: no backup stored before the next slot %s", slot.Format("15:04:05"), next.Format("15:04:05"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// podLogHas fails unless a line of the manager pod's log holds every
// part.
func podLogHas(t *testing.T, ic *inCluster, pod string, parts ...string) {
	t.Helper()
	raw, err := ic.n.cs.CoreV1().Pods(ic.n.NS).GetLogs(pod, &corev1.PodLogOptions{}).DoRaw(context.Background())
	if err != nil {
		t.Fatalf("log of %s: %v", pod, err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			t.Logf("%s: %s", pod, line)
			return
		}
	}
	t.Errorf("no line of %s's log holds %q", pod, parts)
}

// waitSnapshotJob waits for the first snapshot Job created at or after
// the slot.
func waitSnapshotJob(t *testing.T, jobs *jobLog, slot, next time.Time) batchv1.Job {
	t.Helper()
	for {
		for _, j := range jobs.all("snapshot") {
			if !j.CreationTimestamp.Time.Before(slot.Truncate(time.Second)) {
				return j
			}
		}
		if time.Now().After(next) {
			t.Fatalf("no snapshot Job for slot %s", slot.Format("15:04:05"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// all returns every Job of a task kind seen so far, oldest first.
func (l *jobLog) all(kind string) []batchv1.Job {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []batchv1.Job
	for _, j := range l.seen {
		if j.Labels[kubernetes.LabelTask] == kind {
			out = append(out, j)
		}
	}
	return out
}

func jobDone(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func noRunningBackupJob(ctx context.Context, ic *inCluster) bool {
	js, err := ic.Client.ListJobs(ctx, "sched")
	if err != nil {
		return false
	}
	for _, j := range js {
		if j.Kind == api.JobBackup && !j.Done() {
			return false
		}
	}
	return true
}

func sleepUntil(at time.Time) {
	if d := time.Until(at); d > 0 {
		time.Sleep(d)
	}
}

func fmtSlots(ss []time.Time) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Format("15:04:05")
	}
	return strings.Join(out, " ")
}

func mapSlots(m map[time.Time][]api.Event) string {
	var ss []time.Time
	for s := range m {
		ss = append(ss, s)
	}
	sort.Slice(ss, func(i, j int) bool { return ss[i].Before(ss[j]) })
	return fmtSlots(ss)
}

func jobNames(js []batchv1.Job) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.Name
	}
	return out
}

func sorted(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}
