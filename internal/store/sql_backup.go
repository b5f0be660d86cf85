package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// Backups.

const backupCols = "id, cluster, shard, state, job_id, target_url, object_key, object_url, size_bytes, crc64, key_count, " +
	"source_instance, started_at, finished_at, duration_ms, verified, error, schedule_slot, source_spec, repl_offset"

// backupArgs are the values of backupCols for b, in order.
func backupArgs(b Backup) ([]any, error) {
	var spec any
	if b.SourceSpec != nil {
		j, err := json.Marshal(b.SourceSpec)
		if err != nil {
			return nil, fmt.Errorf("encode source spec: %w", err)
		}
		spec = string(j)
	}
	if b.StartedAt.IsZero() {
		b.StartedAt = now()
	}
	verified := 0
	if b.Verified {
		verified = 1
	}
	var offset any
	if b.ReplOffset != 0 {
		offset = b.ReplOffset
	}
	return []any{b.ID, b.Cluster, b.Shard, b.State, b.Job, b.TargetURL, b.ObjectKey, b.Target, b.SizeBytes, b.CRC64, b.Keys,
		b.SourceInstance, timeArg(b.StartedAt), nullTimeArg(b.FinishedAt), b.DurationMs, verified, b.Error,
		nullTimeArg(b.ScheduledFor), spec, offset}, nil
}

func insertBackup(ctx context.Context, q execer, b Backup) error {
	args, err := backupArgs(b)
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, "INSERT INTO backups ("+backupCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", args...)
	return err
}

func (s *sqlStore) CreateBackupJob(ctx context.Context, j Job, backups []Backup, slot *time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if slot != nil {
			// The slot is taken only if no run recorded it (or a later one)
			// yet: a scheduler that restarts or races another one stores
			// each slot's job once.
			n, err := rowsAffected(tx.ExecContext(ctx,
				"UPDATE backup_schedules SET last_slot = ? WHERE cluster = ? AND (last_slot IS NULL OR last_slot < ?)",
				timeArg(*slot), j.Cluster, timeArg(*slot)))
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("slot %s of cluster %q already ran or the schedule is gone: %w", slot.UTC().Format(time.RFC3339), j.Cluster, ErrConflict)
			}
		}
		if err := s.insertJob(ctx, tx, j); err != nil {
			return err
		}
		for _, b := range backups {
			if err := insertBackup(ctx, tx, b); err != nil {
				if s.d.isDuplicate(err) {
					return fmt.Errorf("backup id %q is taken: %w", b.ID, ErrConflict)
				}
				return fmt.Errorf("backup %q: %w", b.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create backup job for cluster %q: %w", j.Cluster, err)
	}
	return nil
}

// PutBackup updates the record with that id or inserts it.
func (s *sqlStore) PutBackup(ctx context.Context, b Backup) error {
	args, err := backupArgs(b)
	if err == nil {
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			// Every column but the id, then the id for the WHERE.
			upd := append(append([]any{}, args[1:]...), b.ID)
			n, err := rowsAffected(tx.ExecContext(ctx,
				"UPDATE backups SET cluster = ?, shard = ?, state = ?, job_id = ?, target_url = ?, object_key = ?, object_url = ?, "+
					"size_bytes = ?, crc64 = ?, key_count = ?, source_instance = ?, started_at = ?, finished_at = ?, duration_ms = ?, "+
					"verified = ?, error = ?, schedule_slot = ?, source_spec = ?, repl_offset = ? WHERE id = ?", upd...))
			if err != nil || n > 0 {
				return err
			}
			return insertBackup(ctx, tx, b)
		})
	}
	if s.d.isDuplicate(err) {
		err = ErrConflict
	}
	if err != nil {
		return fmt.Errorf("put backup %q: %w", b.ID, err)
	}
	return nil
}

func (s *sqlStore) GetBackup(ctx context.Context, id string) (Backup, error) {
	out, err := s.queryBackups(ctx, "SELECT "+backupCols+" FROM backups WHERE id = ?", id)
	if err == nil && len(out) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return Backup{}, fmt.Errorf("get backup %q: %w", id, err)
	}
	return out[0], nil
}

func (s *sqlStore) ListBackups(ctx context.Context, cluster string) ([]Backup, error) {
	var (
		out []Backup
		err error
	)
	if cluster == "" {
		out, err = s.queryBackups(ctx, "SELECT "+backupCols+" FROM backups ORDER BY started_at DESC, id DESC")
	} else {
		out, err = s.queryBackups(ctx, "SELECT "+backupCols+" FROM backups WHERE cluster = ? ORDER BY started_at DESC, id DESC", cluster)
	}
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	return out, nil
}

func (s *sqlStore) queryBackups(ctx context.Context, query string, args ...any) ([]Backup, error) {
	rows, err := s.reads.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Backup
	for rows.Next() {
		var (
			b                       Backup
			started, finished, slot dbTime
			verified                int
			spec                    sql.NullString
			offset                  sql.NullInt64
		)
		if err := rows.Scan(&b.ID, &b.Cluster, &b.Shard, &b.State, &b.Job, &b.TargetURL, &b.ObjectKey, &b.Target,
			&b.SizeBytes, &b.CRC64, &b.Keys, &b.SourceInstance, &started, &finished, &b.DurationMs, &verified, &b.Error,
			&slot, &spec, &offset); err != nil {
			return nil, err
		}
		b.StartedAt, b.FinishedAt, b.ScheduledFor = started.t, finished.ptr(), slot.ptr()
		b.Verified = verified != 0
		b.ReplOffset = offset.Int64
		if spec.Valid {
			b.SourceSpec = &api.ClusterSpec{}
			if err := json.Unmarshal([]byte(spec.String), b.SourceSpec); err != nil {
				return nil, fmt.Errorf("decode source spec of backup %q: %w", b.ID, err)
			}
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

func (s *sqlStore) DeleteBackup(ctx context.Context, id string) error {
	err := s.write(ctx, "delete backup", func(q execer) error {
		n, err := rowsAffected(q.ExecContext(ctx, "DELETE FROM backups WHERE id = ?", id))
		if err == nil && n == 0 {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete backup %q: %w", id, err)
	}
	return nil
}

// Backup schedules.

const scheduleCols = "cluster, cron, retain, max_age_ms, last_slot, created_at, updated_at"

func (s *sqlStore) PutBackupSchedule(ctx context.Context, bs BackupSchedule) error {
	if bs.UpdatedAt.IsZero() {
		bs.UpdatedAt = now()
	}
	if bs.CreatedAt.IsZero() {
		bs.CreatedAt = bs.UpdatedAt
	}
	maxAge := bs.MaxAge.Milliseconds()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx,
			"UPDATE backup_schedules SET cron = ?, retain = ?, max_age_ms = ?, updated_at = ? WHERE cluster = ?",
			bs.Cron, bs.Retain, maxAge, timeArg(bs.UpdatedAt), bs.Cluster))
		if err != nil || n > 0 {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO backup_schedules ("+scheduleCols+") VALUES (?, ?, ?, ?, ?, ?, ?)",
			bs.Cluster, bs.Cron, bs.Retain, maxAge, nullTimeArg(bs.LastSlot), timeArg(bs.CreatedAt), timeArg(bs.UpdatedAt))
		return err
	})
	if s.d.isDuplicate(err) {
		err = ErrConflict
	}
	if err != nil {
		return fmt.Errorf("put backup schedule of cluster %q: %w", bs.Cluster, err)
	}
	return nil
}

func (s *sqlStore) GetBackupSchedule(ctx context.Context, cluster string) (BackupSchedule, error) {
	out, err := s.querySchedules(ctx, "SELECT "+scheduleCols+" FROM backup_schedules WHERE cluster = ?", cluster)
	if err == nil && len(out) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return BackupSchedule{}, fmt.Errorf("get backup schedule of cluster %q: %w", cluster, err)
	}
	return out[0], nil
}

func (s *sqlStore) ListBackupSchedules(ctx context.Context) ([]BackupSchedule, error) {
	out, err := s.querySchedules(ctx, "SELECT "+scheduleCols+" FROM backup_schedules ORDER BY cluster")
	if err != nil {
		return nil, fmt.Errorf("list backup schedules: %w", err)
	}
	return out, nil
}

func (s *sqlStore) querySchedules(ctx context.Context, query string, args ...any) ([]BackupSchedule, error) {
	rows, err := s.reads.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BackupSchedule
	for rows.Next() {
		var (
			bs                     BackupSchedule
			maxAge                 int64
			last, created, updated dbTime
		)
		if err := rows.Scan(&bs.Cluster, &bs.Cron, &bs.Retain, &maxAge, &last, &created, &updated); err != nil {
			return nil, err
		}
		bs.MaxAge = time.Duration(maxAge) * time.Millisecond
		bs.LastSlot, bs.CreatedAt, bs.UpdatedAt = last.ptr(), created.t, updated.t
		out = append(out, bs)
	}
	return out, rows.Err()
}

func (s *sqlStore) DeleteBackupSchedule(ctx context.Context, cluster string) error {
	err := s.write(ctx, "delete backup schedule", func(q execer) error {
		n, err := rowsAffected(q.ExecContext(ctx, "DELETE FROM backup_schedules WHERE cluster = ?", cluster))
		if err == nil && n == 0 {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete backup schedule of cluster %q: %w", cluster, err)
	}
	return nil
}
