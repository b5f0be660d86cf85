package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// schedulerTick is how often the scheduler looks for due slots; schedules
// may name seconds, so it looks several times a second.
const schedulerTick = 250 * time.Millisecond

// cronParser reads 5 fields (minute hour day-of-month month day-of-week),
// 6 with seconds first, and the @hourly … @yearly descriptors.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parseCron parses a schedule's expression. @every is refused: its slots
// are not tied to the clock, so after a restart nobody could tell which
// slot was missed; time zones are refused: schedules run in UTC.
func parseCron(expr string) (cron.Schedule, error) {
	e := strings.TrimSpace(expr)
	switch {
	case e == "":
		return nil, errors.New(`is required, e.g. "0 3 * * *" (every day at 03:00 UTC)`)
	case strings.HasPrefix(e, "@every"):
		return nil, fmt.Errorf("%q: @every is not supported; name the times, e.g. \"0 */6 * * *\"", e)
	case strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ="):
		return nil, fmt.Errorf("%q: time zones are not supported; schedules run in UTC", e)
	}
	s, err := cronParser.Parse(e)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron expression (minute hour day-of-month month day-of-week, or seconds first): %v", e, err)
	}
	if s.Next(time.Now().UTC()).IsZero() {
		return nil, fmt.Errorf("%q never fires", e)
	}
	return s, nil
}

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
	sched, err := parseCron(s.Cron)
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
	busy, err := c.notBackupable(ctx, cl.Name)
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
	job, _, err := c.startBackup(ctx, cl, shards, &slot)
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

// PutBackupSchedule sets a cluster's backup schedule and retention. Slots
// count from now: a new or changed schedule never fires for the past.
func (c *Controller) PutBackupSchedule(ctx context.Context, name string, req api.BackupScheduleRequest) (api.BackupSchedule, error) {
	if _, err := c.getCluster(ctx, name); err != nil {
		return api.BackupSchedule{}, err
	}
	if _, err := parseCron(req.Cron); err != nil {
		return api.BackupSchedule{}, &spec.FieldError{Kind: spec.Invalid, Field: "cron", Message: err.Error()}
	}
	s := store.BackupSchedule{Cluster: name, Cron: strings.TrimSpace(req.Cron)}
	if req.Retain != nil {
		if *req.Retain < 0 {
			return api.BackupSchedule{}, &spec.FieldError{Kind: spec.Invalid, Field: "retain", Message: fmt.Sprintf("must be 0 (keep all) or more, got %d", *req.Retain)}
		}
		s.Retain = *req.Retain
	}
	maxAge, err := parseMaxAge(req.MaxAge, req.MaxAgeMs)
	if err != nil {
		return api.BackupSchedule{}, err
	}
	s.MaxAge = maxAge
	now := time.Now().UTC().Truncate(time.Microsecond)
	s.CreatedAt, s.UpdatedAt = now, now
	if err := c.store.PutBackupSchedule(ctx, s); err != nil {
		return api.BackupSchedule{}, err
	}
	stored, err := c.store.GetBackupSchedule(ctx, name)
	if err != nil {
		return api.BackupSchedule{}, err
	}
	return scheduleView(stored, time.Now()), nil
}

// parseMaxAge reads maxAge ("168h", "7d") or maxAgeMs; 0 means no limit.
func parseMaxAge(s string, ms *int64) (time.Duration, error) {
	bad := func(field, format string, a ...any) error {
		return &spec.FieldError{Kind: spec.Invalid, Field: field, Message: fmt.Sprintf(format, a...)}
	}
	var d time.Duration
	if s = strings.TrimSpace(s); s != "" {
		if days, ok := strings.CutSuffix(s, "d"); ok {
			n, err := strconv.ParseFloat(days, 64)
			if err != nil {
				return 0, bad("maxAge", "%q is not a duration: use e.g. \"168h\" or \"7d\"", s)
			}
			d = time.Duration(n * float64(24*time.Hour))
		} else {
			var err error
			if d, err = time.ParseDuration(s); err != nil {
				return 0, bad("maxAge", "%q is not a duration: use e.g. \"168h\" or \"7d\"", s)
			}
		}
		if d < 0 {
			return 0, bad("maxAge", "must not be negative, got %q", s)
		}
	}
	if ms != nil {
		if *ms < 0 {
			return 0, bad("maxAgeMs", "must not be negative, got %d", *ms)
		}
		m := time.Duration(*ms) * time.Millisecond
		if s != "" && m != d {
			return 0, bad("maxAgeMs", "gives %s but maxAge gives %s; send one of them", m, d)
		}
		d = m
	}
	return d, nil
}

// GetBackupSchedule returns a cluster's backup schedule.
func (c *Controller) GetBackupSchedule(ctx context.Context, name string) (api.BackupSchedule, error) {
	s, err := c.store.GetBackupSchedule(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		if _, cerr := c.getCluster(ctx, name); cerr != nil {
			return api.BackupSchedule{}, cerr
		}
		return api.BackupSchedule{}, notFound("cluster %q has no backup schedule", name)
	}
	if err != nil {
		return api.BackupSchedule{}, err
	}
	return scheduleView(s, time.Now()), nil
}

// DeleteBackupSchedule removes a cluster's schedule and returns it; the
// backups it took stay.
func (c *Controller) DeleteBackupSchedule(ctx context.Context, name string) (api.BackupSchedule, error) {
	s, err := c.GetBackupSchedule(ctx, name)
	if err != nil {
		return s, err
	}
	if err := c.store.DeleteBackupSchedule(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return s, err
	}
	s.NextSlot = nil
	return s, nil
}

func scheduleView(s store.BackupSchedule, now time.Time) api.BackupSchedule {
	v := api.BackupSchedule{Cluster: s.Cluster, Cron: s.Cron, Retain: s.Retain, MaxAgeMs: s.MaxAge.Milliseconds(),
		LastSlot: s.LastSlot, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
	if sched, err := parseCron(s.Cron); err == nil {
		after := now.UTC()
		if s.UpdatedAt.After(after) {
			after = s.UpdatedAt
		}
		if next := sched.Next(after); !next.IsZero() {
			v.NextSlot = &next
		}
	}
	return v
}
