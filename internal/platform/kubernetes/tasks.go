package kubernetes

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/instance"
	"github.com/redis-manager/redis-manager/internal/platform"
)

// LabelTask marks a task's Job and its pod with the task's kind.
const LabelTask = "redis-manager.io/task"

// Where a task pod's files are.
const (
	scratchDir  = "/scratch"
	taskAuthDir = "/etc/redis-manager/auth"
	// jobKeepAfter is how long a finished Job stays when the manager that
	// ran it did not delete it (it died first): the Job controller's TTL.
	jobKeepAfter = int32(600)
	// taskMinDeadline and taskRate bound a task Job's run time: 10 minutes
	// plus a second per 8 MiB of its object (an S3 endpoint far slower
	// than that is a stalled one).
	taskMinDeadline = 10 * time.Minute
	taskRate        = 8 << 20
	// taskMaxDeadline caps it at a day.
	taskMaxDeadline = 24 * time.Hour
)

// taskCPULimit bounds a task container's CPU at two cores: the Go runtime
// sizes GOMAXPROCS to the limit, and the engine's reader, checker and
// uploader want two (under a limit of one core a 260 MB backup ran at
// about half the rate, bench/k8s-backup).
var taskCPULimit = resource.MustParse("2")

// taskWatch follows the platform's task Jobs and their pods with
// informers, started at the first task (a manager that never backs up
// needs no right on Jobs).
type taskWatch struct {
	mu      sync.Mutex
	stop    context.CancelFunc
	jobs    batchlisters.JobLister
	pods    corelisters.PodLister
	changed *broadcast
	// adopted names the Jobs a previous leader left that this manager
	// follows (AdoptSnapshot), which sweepUnadopted leaves alone.
	adopted map[string]bool
}

// startTasks starts the informers of task Jobs and pods, once.
func (p *Platform) startTasks(ctx context.Context) (*taskWatch, error) {
	w := &p.tasks
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stop != nil {
		return w, nil
	}
	f := informers.NewSharedInformerFactoryWithOptions(p.cs, 0, informers.WithNamespace(p.opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelTask }))
	changed := newBroadcast()
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed.notify() },
		UpdateFunc: func(any, any) { changed.notify() },
		DeleteFunc: func(any) { changed.notify() },
	}
	jobInf, podInf := f.Batch().V1().Jobs(), f.Core().V1().Pods()
	for _, inf := range []cache.SharedIndexInformer{jobInf.Informer(), podInf.Informer()} {
		if _, err := inf.AddEventHandler(notify); err != nil {
			return nil, err
		}
	}
	ictx, stop := context.WithCancel(context.Background())
	f.Start(ictx.Done())
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for typ, ok := range f.WaitForCacheSync(sctx.Done()) {
		if !ok {
			stop()
			f.Shutdown()
			return nil, fmt.Errorf("kubernetes: %v informer of task Jobs did not sync within 10 s", typ)
		}
	}
	w.stop, w.jobs, w.pods, w.changed = stop, jobInf.Lister(), podInf.Lister(), changed
	if pending := p.deleteOrphanTasks(ctx, w); len(pending) > 0 {
		go p.sweepUnadopted(ictx, w, pending)
	}
	return w, nil
}

// deleteOrphanTasks deletes the task Jobs still running when this manager
// runs its first task: only the leader runs tasks, so they are a previous
// leader's, which died before it could delete them (its task is being run
// again, and a Job left running would read the replica and upload an object
// nobody records). A snapshot Job is the exception: the backup it writes
// is resumed by this manager, which adopts it (AdoptSnapshot); it is
// returned, for sweepUnadopted. Finished ones are left to their TTL.
func (p *Platform) deleteOrphanTasks(ctx context.Context, w *taskWatch) (pending []string) {
	jobs, err := w.jobs.Jobs(p.opts.Namespace).List(k8slabels.Everything())
	if err != nil {
		return nil
	}
	for _, j := range jobs {
		if jobFinished(j) || j.DeletionTimestamp != nil {
			continue
		}
		if adoptable(j) {
			p.log.Info("a snapshot Job a previous leader left running waits for its backup to adopt it", "job", j.Name,
				"key", j.Annotations[AnnotationObjectKey], "within", orphanAdoptGrace)
			pending = append(pending, j.Name)
			continue
		}
		p.deleteOrphan(ctx, j, "deleted a task Job a previous manager left running")
	}
	return pending
}

func (p *Platform) deleteOrphan(ctx context.Context, j *batchv1.Job, msg string) {
	bg := metav1.DeletePropagationBackground
	err := p.cs.BatchV1().Jobs(p.opts.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) {
		p.log.Warn("delete a task Job a previous manager left running", "job", j.Name, "err", err)
		return
	}
	p.log.Warn(msg, "job", j.Name, "task", j.Labels[LabelTask])
}

func jobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// stopTasks stops the task informers, if started.
func (p *Platform) stopTasks() {
	p.tasks.mu.Lock()
	defer p.tasks.mu.Unlock()
	if p.tasks.stop != nil {
		p.tasks.stop()
	}
}

// RunTask implements platform.TaskRunner: the task runs as a Kubernetes
// Job in the clusters' namespace (the cluster's image, `redis-manager
// task …`), owned by the cluster's ConfigMap, with no retry (backoffLimit
// 0: the manager decides what to try again), a deadline from the object's
// size and bounded resources. Its JSON lines are read from the pod's log
// (pods/log, followed while it runs, so progress arrives as it happens);
// the Job is deleted once its outcome is read, and by its TTL if the
// manager died first. A snapshot Job is left running when the manager
// stops leading: the next leader, resuming the backup, adopts it
// (AdoptSnapshot).
//
// A snapshot Job reads the password of the source from the cluster's
// Secret (<cluster>-auth, mounted as a file) and the S3 credentials from
// the Secret named by Options.BackupCredentialsSecret (envFrom): nothing
// secret is in the Job's spec.
//
// The scratch of fetch and count-keys is the Job pod's emptyDir, not
// Task.Dir on the manager's disk: a fetch Job fetches and checks the
// object (an init container) and then loads it into a throwaway
// redis-server to count its keys, in the same pod; the manager keeps the
// count's outcome in Task.Dir, where the count-keys task that follows
// finds it (the object is downloaded once). A count-keys task on a Dir
// with no count is refused.
func (p *Platform) RunTask(ctx context.Context, t platform.Task, progress func(platform.TaskProgress)) (platform.TaskResult, error) {
	switch t.Kind {
	case platform.TaskSnapshot:
		return p.runSnapshot(ctx, t.Snapshot, progress)
	case platform.TaskFetch:
		return p.runFetch(ctx, t.Dir, t.Seed, progress)
	case platform.TaskCountKeys:
		return p.countKeys(ctx, t.Dir, progress)
	}
	return platform.TaskResult{}, fmt.Errorf("task %q: unknown kind", t.Kind)
}

// Files a fetch task leaves in Task.Dir for the count-keys task.
const (
	fileCount = "count-keys.json" // the count's last line (platform.TaskLine)
	fileSeed  = "seed.json"       // what was fetched (instance.SeedFile)
)

func (p *Platform) runSnapshot(ctx context.Context, src platform.SnapshotSource, progress func(platform.TaskProgress)) (platform.TaskResult, error) {
	if err := podReachable(src.TargetURL); err != nil {
		return platform.TaskResult{}, err
	}
	host, _, err := net.SplitHostPort(src.Addr)
	if err != nil {
		return platform.TaskResult{}, fmt.Errorf("snapshot source %q: %w", src.Addr, err)
	}
	// The source is a pod of a cluster: its labels say which.
	name, _, _ := strings.Cut(host, ".")
	pod, err := p.pods.Pods(p.opts.Namespace).Get(name)
	if err != nil {
		return platform.TaskResult{}, fmt.Errorf("snapshot source %s: no pod %s: %w", src.Addr, name, err)
	}
	cluster, shard := pod.Labels[LabelCluster], pod.Labels[LabelShard]
	if cluster == "" {
		return platform.TaskResult{}, fmt.Errorf("snapshot source %s: pod %s is no cluster's", src.Addr, name)
	}
	root, err := p.cs.CoreV1().ConfigMaps(p.opts.Namespace).Get(ctx, rootName(cluster), metav1.GetOptions{})
	if err != nil {
		return platform.TaskResult{}, fmt.Errorf("snapshot of %s: the cluster's ConfigMap: %w", name, err)
	}
	job := p.snapshotJob(root, cluster, shard, src)
	lines, err := p.runJob(ctx, job, []string{"snapshot"}, func(_ string, tp platform.TaskProgress) {
		if progress != nil {
			progress(tp)
		}
	})
	if err != nil {
		return platform.TaskResult{}, err
	}
	return outcome(lines["snapshot"])
}

func (p *Platform) runFetch(ctx context.Context, dir string, seed platform.SeedSource, progress func(platform.TaskProgress)) (platform.TaskResult, error) {
	if err := podReachable(seed.TargetURL); err != nil {
		return platform.TaskResult{}, err
	}
	_ = os.Remove(filepath.Join(dir, fileCount))
	cluster, shard, _, _ := backup.ParseObjectKey(seed.Key)
	var root *corev1.ConfigMap
	if cluster != "" {
		if cm, err := p.cs.CoreV1().ConfigMaps(p.opts.Namespace).Get(ctx, rootName(cluster), metav1.GetOptions{}); err == nil {
			root = cm
		}
	}
	job := p.verifyJob(root, cluster, shard, seed)
	lines, err := p.runJob(ctx, job, []string{"fetch", "count-keys"}, func(c string, tp platform.TaskProgress) {
		if c == "fetch" && progress != nil {
			progress(tp)
		}
	})
	fetched := lines["fetch"] != nil && lines["fetch"].Result != nil
	if err != nil && !fetched {
		return platform.TaskResult{}, err
	}
	res, ferr := outcome(lines["fetch"])
	if ferr != nil {
		return res, ferr
	}
	// The count's outcome, for the count-keys task that follows: a count
	// that failed without a word (its container killed) fails it too.
	count := lines["count-keys"]
	if err != nil {
		count = &platform.TaskLine{Error: &platform.TaskError{Message: err.Error()}}
	}
	if count == nil {
		return res, nil
	}
	b, _ := json.Marshal(count)
	sb, _ := json.Marshal(instance.SeedFileOf(seed))
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return res, err
		}
		if err := os.WriteFile(filepath.Join(dir, fileSeed), sb, 0o600); err != nil {
			return res, err
		}
		if err := os.WriteFile(filepath.Join(dir, fileCount), b, 0o600); err != nil {
			return res, err
		}
	}
	return res, nil
}

// countKeys answers with the count the fetch Job made of the object it
// fetched into dir's task; when the count is gone (a manager restart with
// a new scratch dir keeps only what the fetch recorded), the fetch Job runs
// again.
func (p *Platform) countKeys(ctx context.Context, dir string, progress func(platform.TaskProgress)) (platform.TaskResult, error) {
	b, err := os.ReadFile(filepath.Join(dir, fileCount))
	if errors.Is(err, os.ErrNotExist) {
		sf, ok, serr := instance.ReadSeedFile(filepath.Join(dir, fileSeed))
		if serr != nil || !ok {
			return platform.TaskResult{}, fmt.Errorf("count-keys task: %s holds no object a fetch task fetched (on Kubernetes the object is in the fetch Job's pod)", dir)
		}
		if _, err := p.runFetch(ctx, dir, sf.Source(), nil); err != nil {
			return platform.TaskResult{}, err
		}
		b, err = os.ReadFile(filepath.Join(dir, fileCount))
	}
	if err != nil {
		return platform.TaskResult{}, fmt.Errorf("count-keys task: %w", err)
	}
	var line platform.TaskLine
	if err := json.Unmarshal(b, &line); err != nil {
		return platform.TaskResult{}, fmt.Errorf("count-keys task: %s: %w", fileCount, err)
	}
	if progress != nil && line.Result != nil {
		progress(platform.TaskProgress{Percent: "100"})
	}
	return outcome(&line)
}

// outcome turns a task's last line into its result or its error (with the
// error's kind, as a local task's).
func outcome(line *platform.TaskLine) (platform.TaskResult, error) {
	switch {
	case line == nil:
		return platform.TaskResult{}, errors.New("the task said nothing")
	case line.Error != nil:
		return platform.TaskResult{}, instance.TaskErr(*line.Error)
	case line.Result != nil:
		return *line.Result, nil
	}
	return platform.TaskResult{}, errors.New("the task's last line holds no outcome")
}

// podReachable refuses a target a pod cannot reach: a file:// target is a
// directory of the manager's host.
func podReachable(target string) error {
	u, err := url.Parse(target)
	if err == nil && u.Scheme == "file" {
		return errors.New("a file:// backup target is on the manager's host, out of the pods' reach: on Kubernetes use an s3:// target (--backup-target)")
	}
	return nil
}

// taskName is a Job's name: what it works on, its kind and a random
// suffix, within the 63 characters of a label value (the Job controller
// labels its pods with it).
func taskName(cluster, shard, kind string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	prefix := kind
	if cluster != "" {
		prefix = cluster + "-" + shard + "-" + kind
	}
	if len(prefix) > 50 {
		prefix = strings.TrimRight(prefix[:50], "-.")
	}
	return prefix + "-" + hex.EncodeToString(b)
}

// taskLabels are a task Job's labels. Its pod carries them without
// app.kubernetes.io/managed-by: the platform's instance informers select
// on that, and a task pod is no instance (the Job controller manages it).
func taskLabels(cluster, shard, kind string) (job, pod map[string]string) {
	pod = map[string]string{
		LabelName:      "redis-manager-task",
		LabelComponent: map[string]string{"snapshot": "backup"}[kind],
		LabelPartOf:    "redis-manager",
		LabelTask:      kind,
	}
	if pod[LabelComponent] == "" {
		pod[LabelComponent] = "verify"
	}
	if cluster != "" {
		pod[LabelInstance], pod[LabelCluster], pod[LabelShard] = cluster, cluster, shard
	}
	job = map[string]string{LabelManagedBy: managedBy}
	for k, v := range pod {
		job[k] = v
	}
	return job, pod
}

// deadlineFor bounds a task of an object of size bytes (0: unknown).
func deadlineFor(size int64) *int64 {
	d := taskMinDeadline + time.Duration(max(size, 0)/taskRate)*time.Second
	s := int64(min(d, taskMaxDeadline) / time.Second)
	return &s
}

// taskJob is the frame every task Job shares.
func (p *Platform) taskJob(root *corev1.ConfigMap, name string, jobLabels, podLabels map[string]string, size int64, spec corev1.PodSpec) *batchv1.Job {
	never := false
	zero := int32(0)
	ttl := jobKeepAfter
	grace := int64(30)
	spec.RestartPolicy = corev1.RestartPolicyNever
	spec.AutomountServiceAccountToken = &never
	spec.EnableServiceLinks = &never
	spec.TerminationGracePeriodSeconds = &grace
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.opts.Namespace, Labels: jobLabels},
		Spec: batchv1.JobSpec{
			BackoffLimit:            &zero,
			TTLSecondsAfterFinished: &ttl,
			ActiveDeadlineSeconds:   deadlineFor(size),
			Template:                corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: podLabels}, Spec: spec},
		},
	}
	if root != nil {
		job.OwnerReferences = owner(root)
	}
	return job
}

// credentials is how a task container gets the S3 credentials: every key
// of the Secret the user named, as environment variables (the AWS SDK's
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION …). Without one the
// SDK's default chain applies in the pod.
func (p *Platform) credentials() []corev1.EnvFromSource {
	if p.opts.BackupCredentialsSecret == "" {
		return nil
	}
	return []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: p.opts.BackupCredentialsSecret}}}}
}

// snapshotJob streams the RDB of a replica (by its pod DNS name) to the
// target. Memory: the upload holds at most three parts (backup.PartSize).
func (p *Platform) snapshotJob(root *corev1.ConfigMap, cluster, shard string, src platform.SnapshotSource) *batchv1.Job {
	jobLabels, podLabels := taskLabels(cluster, shard, platform.TaskSnapshot)
	mem := resource.NewQuantity(3*backup.PartSize(src.SizeHint)+128<<20, resource.BinarySI)
	mode := int32(0o400)
	spec := corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:            "snapshot",
			Image:           p.opts.Image,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command: []string{binary, "task", platform.TaskSnapshot, "--source", src.Addr, "--target", src.TargetURL,
				"--key", src.Key, "--size-hint", strconv.FormatInt(src.SizeHint, 10), "--password-file", taskAuthDir + "/" + keyPassword},
			EnvFrom: p.credentials(),
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: *mem},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: taskCPULimit, corev1.ResourceMemory: *mem},
			},
			VolumeMounts: []corev1.VolumeMount{{Name: "auth", MountPath: taskAuthDir, ReadOnly: true}},
		}},
		// Only the password: the Secret holds the Sentinels' too.
		Volumes: []corev1.Volume{{Name: "auth", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: secretName(cluster), DefaultMode: &mode, Items: []corev1.KeyToPath{{Key: keyPassword, Path: keyPassword}}}}}},
	}
	job := p.taskJob(root, taskName(cluster, shard, "backup"), jobLabels, podLabels, src.SizeHint, spec)
	job.Annotations = map[string]string{AnnotationObjectKey: src.Key}
	return job
}

// verifyJob fetches and checks an object into the pod's scratch volume
// (an init container), then loads it into a throwaway redis-server and
// counts its keys. The scratch holds the object and redis-server's log;
// the count's redis-server holds the dataset in memory, a few times the
// object's size.
func (p *Platform) verifyJob(root *corev1.ConfigMap, cluster string, shard int, seed platform.SeedSource) *batchv1.Job {
	sh := ""
	if cluster != "" {
		sh = strconv.Itoa(shard)
	}
	jobLabels, podLabels := taskLabels(cluster, sh, platform.TaskFetch)
	size := max(seed.Size, 0)
	scratch := resource.NewQuantity(size+256<<20, resource.BinarySI)
	if size == 0 {
		scratch = resource.NewQuantity(16<<30, resource.BinarySI)
	}
	loadMem := resource.NewQuantity(8*size+256<<20, resource.BinarySI)
	fetchMem := resource.MustParse("128Mi")
	mounts := []corev1.VolumeMount{{Name: "scratch", MountPath: scratchDir}}
	spec := corev1.PodSpec{
		InitContainers: []corev1.Container{{
			Name:            "fetch",
			Image:           p.opts.Image,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command: []string{binary, "task", platform.TaskFetch, "--dir", scratchDir, "--target", seed.TargetURL, "--key", seed.Key,
				"--size", strconv.FormatInt(seed.Size, 10), "--crc64", seed.CRC64},
			EnvFrom: p.credentials(),
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: fetchMem},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: taskCPULimit, corev1.ResourceMemory: fetchMem},
			},
			VolumeMounts: mounts,
		}},
		Containers: []corev1.Container{{
			Name:            "count-keys",
			Image:           p.opts.Image,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command:         []string{binary, "task", platform.TaskCountKeys, "--dir", scratchDir, "--redis-server", redisServer},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: *loadMem},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: taskCPULimit, corev1.ResourceMemory: *loadMem},
			},
			VolumeMounts: mounts,
		}},
		Volumes: []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: scratch}}}},
	}
	return p.taskJob(root, taskName(cluster, sh, "verify"), jobLabels, podLabels, size, spec)
}

// errNotRun: a container of a task pod never ran (one before it failed).
var errNotRun = errors.New("did not run")

// runJob creates the Job, follows its containers in order (init
// containers first) and returns each one's last protocol line (progress
// lines go to onProgress as they come). It stops at a container whose last
// line is an error. The Job is deleted before it returns, its pod with it.
func (p *Platform) runJob(ctx context.Context, job *batchv1.Job, containers []string, onProgress func(container string, tp platform.TaskProgress)) (map[string]*platform.TaskLine, error) {
	w, err := p.startTasks(ctx)
	if err != nil {
		return nil, err
	}
	jobs := p.cs.BatchV1().Jobs(p.opts.Namespace)
	if _, err := jobs.Create(ctx, job, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create Job %s: %w", job.Name, err)
	}
	p.log.Info("task Job created", "job", job.Name, "task", job.Labels[LabelTask])
	return p.followJob(ctx, w, job, containers, onProgress)
}

// followJob follows a Job's containers (see runJob) and deletes it.
func (p *Platform) followJob(ctx context.Context, w *taskWatch, job *batchv1.Job, containers []string, onProgress func(container string, tp platform.TaskProgress)) (map[string]*platform.TaskLine, error) {
	jobs := p.cs.BatchV1().Jobs(p.opts.Namespace)
	log := p.log.With("job", job.Name)
	started := time.Now()
	defer func() {
		if ctx.Err() != nil && adoptable(job) {
			// This manager stops leading (ctx is its term's): the
			// snapshot runs on, and the next leader, resuming the
			// backup, adopts it.
			log.Info("snapshot Job left running for the next leader to adopt", "key", job.Annotations[AnnotationObjectKey])
			return
		}
		// Also when ctx ended: the pod gets SIGTERM, and a task aborts.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		bg := metav1.DeletePropagationBackground
		if err := jobs.Delete(dctx, job.Name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
			log.Warn("delete task Job; its TTL removes it", "err", err)
		}
	}()
	out := map[string]*platform.TaskLine{}
	for _, c := range containers {
		if _, _, err := p.waitContainer(ctx, w, job.Name, c, false); err != nil {
			if errors.Is(err, errNotRun) {
				break
			}
			return out, fmt.Errorf("task Job %s: %w", job.Name, err)
		}
		var last *platform.TaskLine
		var other []string
		// Followed while it runs: the stream ends when the container does.
		pod, _ := p.taskPod(w, job.Name)
		if pod != nil {
			last, other = p.readLog(ctx, pod.Name, c, true, func(tp platform.TaskProgress) { onProgress(c, tp) })
		}
		pod, st, err := p.waitContainer(ctx, w, job.Name, c, true)
		if err != nil {
			return out, fmt.Errorf("task Job %s: %w", job.Name, err)
		}
		if last == nil {
			// The stream broke before the end: the whole log again.
			last, other = p.readLog(ctx, pod.Name, c, false, nil)
		}
		if last == nil || (last.Result == nil && last.Error == nil) {
			t := st.State.Terminated
			return out, fmt.Errorf("task Job %s: container %s ended (%s, exit %d) without an outcome: %s", job.Name, c, t.Reason, t.ExitCode, lastWords(other, t.Message))
		}
		out[c] = last
		if last.Error != nil {
			break
		}
	}
	log.Info("task Job finished", "took", time.Since(started).Round(time.Millisecond))
	return out, nil
}

// lastWords is the end of what a container said besides its protocol
// lines, for an error message.
func lastWords(lines []string, msg string) string {
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	if msg != "" {
		lines = append(lines, strings.TrimSpace(msg))
	}
	if len(lines) == 0 {
		return "no output"
	}
	return strings.Join(lines, " | ")
}

// readLog reads a container's log (following it while it runs when
// follow is set): progress lines go to progress, the last result or error
// line is returned, with the lines that are no protocol line.
func (p *Platform) readLog(ctx context.Context, pod, container string, follow bool, progress func(platform.TaskProgress)) (*platform.TaskLine, []string) {
	rc, err := p.cs.CoreV1().Pods(p.opts.Namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: follow}).Stream(ctx)
	if err != nil {
		return nil, []string{err.Error()}
	}
	defer rc.Close()
	return scanTaskLines(rc, progress)
}

// scanTaskLines reads the task protocol from r.
func scanTaskLines(r io.Reader, progress func(platform.TaskProgress)) (*platform.TaskLine, []string) {
	var last *platform.TaskLine
	var other []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line platform.TaskLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || (line.Progress == nil && line.Result == nil && line.Error == nil) {
			if s := strings.TrimSpace(sc.Text()); s != "" {
				other = append(other, s)
				if len(other) > 20 {
					other = other[1:]
				}
			}
			continue
		}
		switch {
		case line.Progress != nil:
			if progress != nil {
				progress(*line.Progress)
			}
		default:
			l := line
			last = &l
		}
	}
	return last, other
}

// taskPod is the Job's pod (backoffLimit 0: one at most).
func (p *Platform) taskPod(w *taskWatch, job string) (*corev1.Pod, error) {
	pods, err := w.pods.Pods(p.opts.Namespace).List(k8slabels.SelectorFromSet(map[string]string{batchv1.JobNameLabel: job}))
	if err != nil || len(pods) == 0 {
		return nil, err
	}
	return pods[0], nil
}

// containerStatus finds a container's status among a pod's containers and
// init containers.
func containerStatus(pod *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// waitContainer waits, on the informers' news, until a container of the
// Job's pod has started (or, with ended, terminated). It fails at once
// when Kubernetes says the pod cannot start or the Job failed, and with
// errNotRun when the pod ended without running the container.
func (p *Platform) waitContainer(ctx context.Context, w *taskWatch, jobName, c string, ended bool) (*corev1.Pod, *corev1.ContainerStatus, error) {
	for {
		wake := w.changed.wait()
		pod, _ := p.taskPod(w, jobName)
		if pod != nil {
			if st := containerStatus(pod, c); st != nil {
				switch {
				case st.State.Terminated != nil:
					return pod, st, nil
				case st.State.Running != nil && !ended:
					return pod, st, nil
				case st.State.Waiting != nil:
					switch st.State.Waiting.Reason {
					case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError":
						return nil, nil, fmt.Errorf("pod %s: container %s: %s: %s", pod.Name, c, st.State.Waiting.Reason, st.State.Waiting.Message)
					}
				}
			}
			if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
				if st := containerStatus(pod, c); st == nil || st.State.Terminated == nil {
					return nil, nil, fmt.Errorf("pod %s %s: container %s %w", pod.Name, pod.Status.Phase, c, errNotRun)
				}
			}
		}
		job, err := w.jobs.Jobs(p.opts.Namespace).Get(jobName)
		if apierrors.IsNotFound(err) && pod == nil {
			// Not seen yet by the informer, or deleted by someone else:
			// the API server tells which.
			if _, gerr := p.cs.BatchV1().Jobs(p.opts.Namespace).Get(ctx, jobName, metav1.GetOptions{}); apierrors.IsNotFound(gerr) {
				return nil, nil, errors.New("the Job was deleted")
			}
		}
		if job != nil && (pod == nil || pod.Status.Phase == corev1.PodPending) {
			for _, cond := range job.Status.Conditions {
				if cond.Type == batchv1.JobFailed && cond.Status == corev1.ConditionTrue {
					return nil, nil, fmt.Errorf("failed: %s: %s", cond.Reason, cond.Message)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-wake:
		case <-time.After(5 * time.Second):
		}
	}
}
