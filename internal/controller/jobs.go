package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/leader"
	"github.com/redis-manager/redis-manager/internal/store"
)

// step is one idempotent part of a job: running it again after a crash
// converges to the same result.
type step struct {
	name string
	run  func(ctx context.Context, r *jobRun) error
}

// jobRun is one execution of a job.
type jobRun struct {
	c   *Controller
	job store.Job
	log *slog.Logger

	mu        sync.Mutex
	stepIndex int
	nSteps    int
	lastSave  time.Time
}

// jobPollEvery is how often the job runner lists unfinished jobs besides
// being kicked: a job stored through another manager's API (a standby
// stores intent only) kicks only that process, so the leader finds it by
// listing, within a second.
const jobPollEvery = time.Second

// runJobs starts every pending or running job it finds, at start (resume
// after a restart or a takeover) and whenever kicked.
func (c *Controller) runJobs(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		jobs, err := c.store.UnfinishedJobs(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Error("list unfinished jobs", "err", err)
		}
		for _, j := range jobs {
			if !c.running.claim(j.ID, true) {
				continue // already being run
			}
			wg.Add(1)
			go func(j store.Job) {
				defer wg.Done()
				c.runJob(ctx, j)
				c.running.remove(j.ID)
				c.Wake()
			}(j)
		}
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-time.After(jobPollEvery):
		}
	}
}

// stepsFor returns the plan of a job kind, and what to do when it fails.
func (c *Controller) stepsFor(kind string) (steps []step, onFail func(ctx context.Context, r *jobRun), err error) {
	switch kind {
	case api.JobCreate:
		return createSteps(), undoCreate, nil
	case api.JobDelete:
		return deleteSteps(), nil, nil
	case api.JobScale:
		return scaleSteps(), nil, nil
	case api.JobFailover:
		return failoverSteps(), nil, nil
	case api.JobReplaceInstance:
		return replaceSteps(), nil, nil
	case api.JobBackup:
		return backupSteps(), failRunningBackups, nil
	case api.JobBackupDelete:
		return backupDeleteSteps(), nil, nil
	case api.JobBackupVerify:
		return verifySteps(), cleanVerify, nil
	case api.JobRestore:
		return restoreSteps(), undoRestore, nil
	case api.JobRotateCredentials:
		return rotateSteps(), nil, nil
	case api.JobFinishRotation:
		return finishRotationSteps(), nil, nil
	}
	return nil, nil, fmt.Errorf("job kind %q is not supported by this version", kind)
}

func (c *Controller) runJob(ctx context.Context, j store.Job) {
	r := &jobRun{c: c, job: j, log: c.log.With("job", j.ID, "kind", j.Kind, "cluster", j.Cluster)}
	steps, onFail, err := c.stepsFor(j.Kind)
	if err != nil {
		r.finish(ctx, err)
		return
	}
	resumed := j.State == api.StateRunning
	if len(r.job.Steps) != len(steps) {
		r.job.Steps = make([]api.Step, len(steps))
		for i, s := range steps {
			r.job.Steps[i] = api.Step{Name: s.name, State: api.StatePending}
		}
	}
	now := time.Now().UTC()
	r.job.State = api.StateRunning
	if r.job.StartedAt == nil {
		r.job.StartedAt = &now
	}
	r.nSteps = len(steps)
	if resumed {
		r.log.Info("resuming job after restart")
	}
	c.Wake()
	for i, s := range steps {
		if r.job.Steps[i].State == api.StateSucceeded {
			continue
		}
		r.mu.Lock()
		r.stepIndex = i
		started := time.Now().UTC()
		r.job.Steps[i].State, r.job.Steps[i].StartedAt = api.StateRunning, &started
		r.job.Progress = float64(i) / float64(len(steps))
		r.job.Message = s.name
		r.mu.Unlock()
		if err := r.save(ctx, true); errors.Is(err, store.ErrFenced) {
			// Another manager leads now and resumes this job; this one
			// must not run a step it cannot record.
			r.log.Warn("job abandoned: leadership lost", "step", s.name)
			return
		}
		err := s.run(ctx, r)
		// Steps are idempotent: one that failed on a timeout talking to an
		// instance or a Sentinel (a busy host, a process that stalled for
		// a moment) runs again, a few times, before the job fails.
		for try := 1; err != nil && try < stepTries && transient(err) && ctx.Err() == nil; try++ {
			r.log.Warn("job step timed out; running it again", "step", s.name, "try", try+1, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(try) * time.Second):
			}
			if ctx.Err() == nil {
				err = s.run(ctx, r)
			}
		}
		if ctx.Err() != nil {
			return // shutting down: the job stays running and resumes at next start
		}
		if err != nil && (errors.Is(err, leader.ErrNotLeader) || errors.Is(err, store.ErrFenced) || !c.leader.Status().Leader) {
			// The step failed because this manager stopped leading: not
			// the job's failure. The next leader resumes it.
			r.log.Warn("job abandoned: leadership lost", "step", s.name, "err", err)
			return
		}
		finished := time.Now().UTC()
		r.mu.Lock()
		r.job.Steps[i].FinishedAt = &finished
		if err != nil {
			r.job.Steps[i].State = api.StateFailed
			r.mu.Unlock()
			err = fmt.Errorf("%s: %w", s.name, err)
			r.log.Error("job step failed", "step", s.name, "err", err)
			if onFail != nil {
				onFail(ctx, r)
			}
			r.finish(ctx, err)
			return
		}
		r.job.Steps[i].State = api.StateSucceeded
		r.mu.Unlock()
		r.log.Info("job step done", "step", s.name, "took", finished.Sub(started).Round(time.Millisecond))
	}
	r.finish(ctx, nil)
}

// finish records the final state of the job.
func (r *jobRun) finish(ctx context.Context, err error) {
	now := time.Now().UTC()
	r.mu.Lock()
	r.job.FinishedAt = &now
	if err != nil {
		r.job.State, r.job.Error, r.job.Message = api.StateFailed, err.Error(), "failed"
	} else {
		r.job.State, r.job.Progress, r.job.Message = api.StateSucceeded, 1, "done"
	}
	r.mu.Unlock()
	if err := r.save(ctx, true); err != nil {
		r.log.Warn("job outcome not recorded", "state", r.job.State, "err", err)
		return
	}
	r.log.Info("job finished", "state", r.job.State, "took", now.Sub(r.job.CreatedAt).Round(time.Millisecond))
	started := r.job.CreatedAt
	if r.job.StartedAt != nil {
		started = *r.job.StartedAt
	}
	r.c.metrics.jobDuration.WithLabelValues(r.job.Kind, r.job.State).Observe(now.Sub(started).Seconds())
}

// progress reports progress within the current step (0..1) with a message.
func (r *jobRun) progress(ctx context.Context, within float64, msg string) {
	r.mu.Lock()
	if within > 1 {
		within = 1
	}
	r.job.Progress = (float64(r.stepIndex) + within) / float64(r.nSteps)
	r.job.Message = msg
	r.mu.Unlock()
	_ = r.save(ctx, false)
}

// save stores the job; progress updates are throttled to a few a second.
// The record is fenced (leader work's ctx carries the term's fence): a
// deposed leader's save fails with store.ErrFenced.
func (r *jobRun) save(ctx context.Context, force bool) error {
	r.mu.Lock()
	if !force && time.Since(r.lastSave) < 250*time.Millisecond {
		r.mu.Unlock()
		return nil
	}
	r.lastSave = time.Now()
	j := r.job
	j.Steps = append([]api.Step(nil), r.job.Steps...)
	r.mu.Unlock()
	// A job's record must be written even while the manager shuts down.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := r.c.store.UpdateJob(wctx, j)
	if err != nil && !errors.Is(err, context.Canceled) {
		r.log.Error("save job", "err", err)
	}
	return err
}

// event records an event of the job's cluster.
func (c *Controller) event(ctx context.Context, cluster string, shard *int, typ, msg string, details map[string]any) {
	ev := api.Event{ID: jobspec.NewID("e"), Cluster: cluster, Shard: shard, Type: typ, At: time.Now().UTC(), Message: msg, Details: details}
	if typ == "failover" {
		// Planned or not; the write unavailability is known for the
		// unplanned ones the watcher timed (writeUnavailableMs).
		ms, _ := details["writeUnavailableMs"].(int64)
		c.metrics.failover(cluster, time.Duration(ms)*time.Millisecond)
	}
	if err := c.store.AddEvent(context.WithoutCancel(ctx), ev); err != nil {
		c.log.Error("record event", "type", typ, "err", err)
	}
}

// stepTries is how many times a step that timed out runs.
const stepTries = 3

// transient tells a network timeout (an i/o deadline, a dial that timed
// out) from a failure worth failing the job for.
func transient(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, context.DeadlineExceeded)
}
