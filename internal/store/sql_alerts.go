package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// Alerts, alert rule overrides, silences, webhooks and deliveries (Alerts,
// migration 9).

func (s *sqlStore) ListAlerts(ctx context.Context) ([]api.Alert, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT body FROM alerts ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	out := []api.Alert{}
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("list alerts: %w", err)
		}
		var a api.Alert
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			return nil, fmt.Errorf("list alerts: decode: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

func (s *sqlStore) PutAlert(ctx context.Context, a api.Alert, notify ...Outgoing) error {
	id := AlertID(a)
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("put alert %s: encode: %w", id, err)
	}
	put := func(q execer) error {
		res, err := q.ExecContext(ctx, "UPDATE alerts SET state = ?, body = ?, updated_at = ? WHERE id = ?",
			a.State, string(body), timeArg(now()), id)
		n, err := rowsAffected(res, err)
		if err != nil || n > 0 {
			return err
		}
		_, err = q.ExecContext(ctx, "INSERT INTO alerts (id, cluster, state, body, updated_at) VALUES (?, ?, ?, ?, ?)",
			id, a.Cluster, a.State, string(body), timeArg(now()))
		return err
	}
	if len(notify) == 0 {
		err = s.write(ctx, "put alert", put)
	} else {
		// The state and its notifications in one transaction: a manager
		// that dies in between loses neither (nor sends one twice).
		err = s.inTxOp(ctx, "put alert", func(tx *sql.Tx) error {
			if err := put(tx); err != nil {
				return err
			}
			for _, o := range notify {
				if _, err := queueNotification(ctx, tx, o); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("put alert %s: %w", id, err)
	}
	return nil
}

func (s *sqlStore) DeleteAlert(ctx context.Context, a api.Alert) error {
	id := AlertID(a)
	err := s.write(ctx, "delete alert", func(q execer) error {
		_, err := q.ExecContext(ctx, "DELETE FROM alerts WHERE id = ?", id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete alert %s: %w", id, err)
	}
	return nil
}

func (s *sqlStore) GetAlertRules(ctx context.Context, cluster string) (api.AlertRules, error) {
	var body string
	err := s.db.QueryRowContext(ctx, "SELECT rules FROM alert_rules WHERE cluster = ?", cluster).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return api.AlertRules{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get alert rules of cluster %q: %w", cluster, err)
	}
	rules := api.AlertRules{}
	if err := json.Unmarshal([]byte(body), &rules); err != nil {
		return nil, fmt.Errorf("get alert rules of cluster %q: decode: %w", cluster, err)
	}
	return rules, nil
}

func (s *sqlStore) PutAlertRules(ctx context.Context, cluster string, rules api.AlertRules) error {
	body, err := json.Marshal(rules)
	if err != nil {
		return fmt.Errorf("put alert rules of cluster %q: encode: %w", cluster, err)
	}
	err = s.inTxUnfenced(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM alert_rules WHERE cluster = ?", cluster); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO alert_rules (cluster, rules) VALUES (?, ?)", cluster, string(body))
		return err
	})
	if err != nil {
		return fmt.Errorf("put alert rules of cluster %q: %w", cluster, err)
	}
	return nil
}

func (s *sqlStore) CreateSilence(ctx context.Context, sl api.Silence) error {
	body, err := json.Marshal(sl)
	if err != nil {
		return fmt.Errorf("create silence: encode: %w", err)
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO silences (id, body, ends_at) VALUES (?, ?, ?)", sl.ID, string(body), timeArg(sl.EndsAt))
	if s.d.isDuplicate(err) {
		err = fmt.Errorf("id is taken: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create silence %q: %w", sl.ID, err)
	}
	return nil
}

func (s *sqlStore) ListSilences(ctx context.Context, at time.Time) ([]api.Silence, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT body FROM silences WHERE ends_at > ? ORDER BY ends_at, id", timeArg(at))
	if err != nil {
		return nil, fmt.Errorf("list silences: %w", err)
	}
	defer rows.Close()
	out := []api.Silence{}
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("list silences: %w", err)
		}
		var sl api.Silence
		if err := json.Unmarshal([]byte(body), &sl); err != nil {
			return nil, fmt.Errorf("list silences: decode: %w", err)
		}
		out = append(out, sl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list silences: %w", err)
	}
	return out, nil
}

func (s *sqlStore) DeleteSilence(ctx context.Context, id string) error {
	n, err := rowsAffected(s.db.ExecContext(ctx, "DELETE FROM silences WHERE id = ?", id))
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete silence %q: %w", id, err)
	}
	return nil
}

func webhookPlace(name string) string { return fmt.Sprintf("secret of webhook %q", name) }

func (s *sqlStore) PutWebhooks(ctx context.Context, hooks []Webhook) error {
	err := s.inTxUnfenced(ctx, func(tx *sql.Tx) error {
		kept := map[string]string{}
		rows, err := tx.QueryContext(ctx, "SELECT name, secret_enc FROM webhooks")
		if err != nil {
			return err
		}
		for rows.Next() {
			var name, enc string
			if err := rows.Scan(&name, &enc); err != nil {
				rows.Close()
				return err
			}
			kept[name] = enc
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM webhooks"); err != nil {
			return err
		}
		for i, h := range hooks {
			enc, ok := kept[h.Name]
			if h.Secret != "set" {
				if enc, err = s.seal.seal(h.Secret, webhookPlace(h.Name)); err != nil {
					return err
				}
			} else if !ok {
				return fmt.Errorf("webhook %q has no stored secret to keep: %w", h.Name, ErrNotFound)
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO webhooks (name, position, url, format, secret_enc) VALUES (?, ?, ?, ?, ?)",
				h.Name, i, h.URL, h.Format, enc)
			if s.d.isDuplicate(err) {
				return fmt.Errorf("webhook name %q is used twice: %w", h.Name, ErrConflict)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put webhooks: %w", err)
	}
	return nil
}

func (s *sqlStore) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT name, url, format, secret_enc FROM webhooks ORDER BY position")
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	out := []Webhook{}
	for rows.Next() {
		var (
			h   Webhook
			enc string
		)
		if err := rows.Scan(&h.Name, &h.URL, &h.Format, &enc); err != nil {
			return nil, fmt.Errorf("list webhooks: %w", err)
		}
		if h.Secret, err = s.seal.open(enc, webhookPlace(h.Name)); err != nil {
			return nil, fmt.Errorf("list webhooks: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

func (s *sqlStore) AddDelivery(ctx context.Context, d api.Delivery) (int64, error) {
	if d.At.IsZero() {
		d.At = now()
	}
	d.ID = 0
	body, err := json.Marshal(d)
	if err != nil {
		return 0, fmt.Errorf("add delivery: encode: %w", err)
	}
	res, err := s.db.ExecContext(ctx, "INSERT INTO deliveries (at, body) VALUES (?, ?)", timeArg(d.At), string(body))
	if err != nil {
		return 0, fmt.Errorf("add delivery to %q: %w", d.Webhook, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("add delivery to %q: %w", d.Webhook, err)
	}
	return id, nil
}

func (s *sqlStore) ListDeliveries(ctx context.Context, limit int) ([]api.Delivery, error) {
	query := "SELECT id, body FROM deliveries ORDER BY id DESC"
	var args []any
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	out := []api.Delivery{}
	for rows.Next() {
		var (
			id   int64
			body string
			d    api.Delivery
		)
		if err := rows.Scan(&id, &body); err != nil {
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			return nil, fmt.Errorf("list deliveries: decode: %w", err)
		}
		d.ID = id
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

func (s *sqlStore) PruneDeliveries(ctx context.Context, keep int) error {
	var cut sql.NullInt64
	err := s.db.QueryRowContext(ctx, "SELECT id FROM deliveries ORDER BY id DESC LIMIT 1 OFFSET ?", keep).Scan(&cut)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err == nil {
		_, err = s.db.ExecContext(ctx, "DELETE FROM deliveries WHERE id <= ?", cut.Int64)
	}
	if err != nil {
		return fmt.Errorf("prune deliveries: %w", err)
	}
	return nil
}
