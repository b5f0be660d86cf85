package kubernetes

import (
	"context"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"

	"github.com/redis-manager/redis-manager/internal/platform"
)

// AnnotationObjectKey names, on a snapshot Job, the object key it writes:
// the key its backup record holds, by which a manager resuming the backup
// finds the Job (an annotation: keys hold '/' and ':').
const AnnotationObjectKey = "redis-manager.io/object-key"

// orphanAdoptGrace is how long a snapshot Job a previous leader left
// running waits, from this manager's first task, for the resumed backup to
// adopt it; then it is deleted. A new leader resumes its jobs at once, so
// the backup reaches its snapshot within seconds.
var orphanAdoptGrace = time.Minute

// adoptable: a snapshot Job naming its object, which outlives its manager.
func adoptable(j *batchv1.Job) bool {
	return j.Labels[LabelTask] == platform.TaskSnapshot && j.Annotations[AnnotationObjectKey] != ""
}

// AdoptSnapshot implements platform.SnapshotAdopter: the snapshot Job a
// previous leader started for key, running or finished and not yet
// deleted, is followed to its end as runJob does (progress from its log,
// the outcome from its last line) and then deleted. No Job: found is
// false.
func (p *Platform) AdoptSnapshot(ctx context.Context, key string, progress func(platform.TaskProgress)) (platform.TaskResult, bool, error) {
	w, err := p.startTasks(ctx)
	if err != nil {
		return platform.TaskResult{}, false, err
	}
	jobs, err := w.jobs.Jobs(p.opts.Namespace).List(k8slabels.SelectorFromSet(map[string]string{LabelTask: platform.TaskSnapshot}))
	if err != nil {
		return platform.TaskResult{}, false, err
	}
	var job *batchv1.Job
	for _, j := range jobs {
		if j.DeletionTimestamp == nil && j.Annotations[AnnotationObjectKey] == key {
			job = j
			break
		}
	}
	if job == nil {
		return platform.TaskResult{}, false, nil
	}
	w.mu.Lock()
	if w.adopted == nil {
		w.adopted = map[string]bool{}
	}
	w.adopted[job.Name] = true
	w.mu.Unlock()
	p.log.Info("adopting the snapshot Job a previous leader started", "job", job.Name, "key", key, "finished", jobFinished(job))
	lines, err := p.followJob(ctx, w, job.DeepCopy(), []string{"snapshot"}, func(_ string, tp platform.TaskProgress) {
		if progress != nil {
			progress(tp)
		}
	})
	if err != nil {
		return platform.TaskResult{}, true, err
	}
	res, err := outcome(lines["snapshot"])
	return res, true, err
}

// sweepUnadopted deletes, after orphanAdoptGrace, the snapshot Jobs a
// previous leader left running (pending) that no resumed backup adopted
// and that still run: their backup was not resumed (its job ended), and a
// Job left running would upload an object nobody records.
func (p *Platform) sweepUnadopted(ctx context.Context, w *taskWatch, pending []string) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(orphanAdoptGrace):
	}
	for _, name := range pending {
		w.mu.Lock()
		adopted := w.adopted[name]
		w.mu.Unlock()
		if adopted {
			continue
		}
		j, err := w.jobs.Jobs(p.opts.Namespace).Get(name)
		if err != nil || jobFinished(j) || j.DeletionTimestamp != nil {
			continue
		}
		p.deleteOrphan(ctx, j, "deleted a snapshot Job a previous manager left running that no resumed backup adopted")
	}
}
