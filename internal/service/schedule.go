package service

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/schedule"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// PutBackupSchedule sets a cluster's backup schedule and retention. Slots
// count from now: a new or changed schedule never fires for the past.
func (svc *Service) PutBackupSchedule(ctx context.Context, name string, req api.BackupScheduleRequest) (api.BackupSchedule, error) {
	if _, err := svc.getCluster(ctx, name); err != nil {
		return api.BackupSchedule{}, err
	}
	if _, err := schedule.Parse(req.Cron); err != nil {
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
	if err := svc.store.PutBackupSchedule(ctx, s); err != nil {
		return api.BackupSchedule{}, err
	}
	stored, err := svc.store.GetBackupSchedule(ctx, name)
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
func (svc *Service) GetBackupSchedule(ctx context.Context, name string) (api.BackupSchedule, error) {
	s, err := svc.store.GetBackupSchedule(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		if _, cerr := svc.getCluster(ctx, name); cerr != nil {
			return api.BackupSchedule{}, cerr
		}
		return api.BackupSchedule{}, jobspec.NotFound("cluster %q has no backup schedule", name)
	}
	if err != nil {
		return api.BackupSchedule{}, err
	}
	return scheduleView(s, time.Now()), nil
}

// DeleteBackupSchedule removes a cluster's schedule and returns it; the
// backups it took stay.
func (svc *Service) DeleteBackupSchedule(ctx context.Context, name string) (api.BackupSchedule, error) {
	s, err := svc.GetBackupSchedule(ctx, name)
	if err != nil {
		return s, err
	}
	if err := svc.store.DeleteBackupSchedule(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return s, err
	}
	s.NextSlot = nil
	return s, nil
}

func scheduleView(s store.BackupSchedule, now time.Time) api.BackupSchedule {
	v := api.BackupSchedule{Cluster: s.Cluster, Cron: s.Cron, Retain: s.Retain, MaxAgeMs: s.MaxAge.Milliseconds(),
		LastSlot: s.LastSlot, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
	if sched, err := schedule.Parse(s.Cron); err == nil {
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
