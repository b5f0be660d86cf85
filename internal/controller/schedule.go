package controller

import (
	"context"
	"errors"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/schedule"
	"github.com/redis-manager/redis-manager/internal/store"
)

// schedulerTick is how often the scheduler looks for due slots; schedules
// may name seconds, so it looks several times a second.
const schedulerTick = 250 * time.Millisecond

// latestSlot returns the latest slot of s in (after, now]: the one run a
// scheduler owes when it wakes up at now, having last run the slot after.
// Earlier missed slots are skipped on purpose: a manager that was down for
// a day takes one backup, not twenty-four. It looks back from now in
// doubling windows, so a long gap costs a few steps, not one per slot.
func latestSlot(s cron.Schedule, after, now time.Time) (time.Time, bool) {
	first := s.Next(after)
	if first.IsZero() || first.After(now) {
		return time.Time{}, false
	}
	for d := time.Second; ; d *= 2 {
		from := now.Add(-d)
		if !from.After(after) {
			from = after
		}
		if t := s.Next(from); !t.IsZero() && !t.After(now) {
			for {
				n := s.Next(t)
				if n.IsZero() || n.After(now) {
					return t, true
				}
				t = n
			}
		}
	}
}

// runScheduler starts the backup job of each schedule's due slot. The slot
// is recorded in the same transaction as the job (store.CreateBackupJob),
// so a restart neither loses a run (the job resumes) nor doubles it (the
// slot is taken).
func (c *Controller) runScheduler(ctx context.Context) {
	t := time.NewTicker(schedulerTick)
	defer t.Stop()
	var rotationsChecked time.Time
	for {
		now := time.Now().UTC()
		c.fireDueSchedules(ctx, now)
		// Password rotations whose grace period is over, once a second.
		if now.Sub(rotationsChecked) >= time.Second {
			c.finishDueRotations(ctx, now)
			rotationsChecked = now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Controller) fireDueSchedules(ctx context.Context, now time.Time) {
	list, err := c.store.ListBackupSchedules(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("list backup schedules", "err", err)
		}
		return
	}
	for _, s := range list {
		c.fireSchedule(ctx, s, now)
	}
}

// fireSchedule starts the backup of a schedule's latest due slot, if any.
// While the cluster is busy (created, restored, deleted, or another backup
// runs) the slot stays due and runs once that ends.
func (c *Controller) fireSchedule(ctx context.Context, s store.BackupSchedule, now time.Time) {
	sched, err := schedule.Parse(s.Cron)
	if err != nil {
		c.log.Debug("backup schedule unreadable", "cluster", s.Cluster, "err", err)
		return
	}
	after := s.UpdatedAt
	if s.LastSlot != nil && s.LastSlot.After(after) {
		after = *s.LastSlot
	}
	slot, ok := latestSlot(sched, after, now)
	if !ok {
		return
	}
	log := c.log.With("cluster", s.Cluster, "slot", slot.Format(time.RFC3339))
	cl, err := c.store.GetCluster(ctx, s.Cluster)
	if errors.Is(err, store.ErrNotFound) {
		log.Debug("scheduled backup: no cluster", "err", err)
		return
	}
	if err != nil {
		// The slot stays due: the next tick tries again.
		if ctx.Err() == nil {
			log.Error("scheduled backup: read cluster", "err", err)
		}
		return
	}
	busy, err := jobspec.NotBackupable(ctx, c.store, cl.Name)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("scheduled backup waits", "err", err)
		}
		return
	}
	if busy != "" {
		log.Debug("scheduled backup waits", "reason", busy)
		return
	}
	shards := make([]int, cl.Spec.Shards)
	for i := range shards {
		shards[i] = i
	}
	job, _, err := jobspec.StartBackup(ctx, c.store, c.cfg.BackupTarget, cl, shards, &slot)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			log.Debug("scheduled backup waits", "reason", err)
		} else if ctx.Err() == nil {
			log.Error("start scheduled backup", "err", err)
		}
		return
	}
	if late := now.Sub(slot); late > 5*time.Second {
		log.Info("scheduled backup started late (the manager was down or the cluster busy at its slot)", "job", job.ID, "late", late.Round(time.Second))
	} else {
		log.Info("scheduled backup started", "job", job.ID)
	}
	c.Kick()
}
