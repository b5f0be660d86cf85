package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// The outbox (migration 10). A row lives from the moment a notification is
// queued for a webhook until it is delivered or its last attempt failed;
// whichever manager's notifier claims it sends it. A claim is a
// conditional UPDATE, so two managers never hold one row at once; it runs
// out by itself when its manager dies.

func (s *sqlStore) QueueNotification(ctx context.Context, o Outgoing) (int64, error) {
	return queueNotification(ctx, s.db, o)
}

func queueNotification(ctx context.Context, q execer, o Outgoing) (int64, error) {
	if o.CreatedAt.IsZero() {
		o.CreatedAt = now()
	}
	body, err := json.Marshal(o.Notification)
	if err != nil {
		return 0, fmt.Errorf("queue notification: encode: %w", err)
	}
	res, err := q.ExecContext(ctx, `INSERT INTO outbox (created_at, webhook, body, attempts, last_error, last_status, next_at, claimed_by, claimed_until)
		VALUES (?, ?, ?, 0, '', 0, ?, '', NULL)`, timeArg(o.CreatedAt), o.Webhook, string(body), timeArg(o.CreatedAt))
	if err != nil {
		return 0, fmt.Errorf("queue notification for %q: %w", o.Webhook, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("queue notification for %q: %w", o.Webhook, err)
	}
	return id, nil
}

func (s *sqlStore) ClaimNotifications(ctx context.Context, by string, at, until time.Time, limit int) ([]Outgoing, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM outbox WHERE next_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)
		ORDER BY id LIMIT ?`, timeArg(at), timeArg(at), limit)
	if err != nil {
		return nil, fmt.Errorf("claim notifications: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("claim notifications: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim notifications: %w", err)
	}
	var out []Outgoing
	for _, id := range ids {
		// Claimed only if nobody claimed it in between.
		res, err := s.db.ExecContext(ctx, `UPDATE outbox SET claimed_by = ?, claimed_until = ?
			WHERE id = ? AND (claimed_until IS NULL OR claimed_until < ?)`, by, timeArg(until), id, timeArg(at))
		if err != nil {
			return out, fmt.Errorf("claim notification %d: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			continue
		}
		var (
			o       Outgoing
			created dbTime
			body    string
		)
		err = s.db.QueryRowContext(ctx, `SELECT id, created_at, webhook, body, attempts, last_error, last_status FROM outbox WHERE id = ?`, id).
			Scan(&o.ID, &created, &o.Webhook, &body, &o.Attempts, &o.LastError, &o.LastStatus)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("claim notification %d: %w", id, err)
		}
		if err := json.Unmarshal([]byte(body), &o.Notification); err != nil {
			return out, fmt.Errorf("claim notification %d: decode: %w", id, err)
		}
		o.CreatedAt = created.t
		out = append(out, o)
	}
	return out, nil
}

func (s *sqlStore) RetryNotification(ctx context.Context, o Outgoing, next time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE outbox SET attempts = ?, last_error = ?, last_status = ?, next_at = ?, claimed_by = '', claimed_until = NULL WHERE id = ?`,
		o.Attempts, o.LastError, o.LastStatus, timeArg(next), o.ID); err != nil {
		return fmt.Errorf("retry notification %d: %w", o.ID, err)
	}
	return nil
}

func (s *sqlStore) DoneNotification(ctx context.Context, id int64) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM outbox WHERE id = ?`, id); err != nil {
		return fmt.Errorf("remove notification %d: %w", id, err)
	}
	return nil
}

func (s *sqlStore) ReleaseNotifications(ctx context.Context, by string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE outbox SET claimed_by = '', claimed_until = NULL WHERE claimed_by = ?`, by); err != nil {
		return fmt.Errorf("release notifications of %q: %w", by, err)
	}
	return nil
}
