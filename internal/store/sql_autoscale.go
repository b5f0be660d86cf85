package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis-manager/redis-manager/api"
)

func (s *sqlStore) GetAutoscalePolicy(ctx context.Context, cluster string) (api.AutoscalePolicy, error) {
	var body string
	err := s.db.QueryRowContext(ctx, "SELECT policy FROM autoscale_policies WHERE cluster = ?", cluster).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return api.AutoscalePolicy{}, fmt.Errorf("autoscaling policy of cluster %q: %w", cluster, ErrNotFound)
	}
	if err != nil {
		return api.AutoscalePolicy{}, fmt.Errorf("get autoscaling policy of cluster %q: %w", cluster, err)
	}
	var p api.AutoscalePolicy
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		return api.AutoscalePolicy{}, fmt.Errorf("get autoscaling policy of cluster %q: decode: %w", cluster, err)
	}
	return p, nil
}

func (s *sqlStore) ListAutoscalePolicies(ctx context.Context) (map[string]api.AutoscalePolicy, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT cluster, policy FROM autoscale_policies ORDER BY cluster")
	if err != nil {
		return nil, fmt.Errorf("list autoscaling policies: %w", err)
	}
	defer rows.Close()
	out := map[string]api.AutoscalePolicy{}
	for rows.Next() {
		var name, body string
		if err := rows.Scan(&name, &body); err != nil {
			return nil, fmt.Errorf("list autoscaling policies: %w", err)
		}
		var p api.AutoscalePolicy
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			return nil, fmt.Errorf("list autoscaling policies: decode %q: %w", name, err)
		}
		out[name] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list autoscaling policies: %w", err)
	}
	return out, nil
}

func (s *sqlStore) PutAutoscalePolicy(ctx context.Context, cluster string, p api.AutoscalePolicy) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("put autoscaling policy of cluster %q: encode: %w", cluster, err)
	}
	err = s.inTxUnfenced(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM autoscale_policies WHERE cluster = ?", cluster); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO autoscale_policies (cluster, policy, updated_at) VALUES (?, ?, ?)", cluster, string(body), timeArg(now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("put autoscaling policy of cluster %q: %w", cluster, err)
	}
	return nil
}

func (s *sqlStore) DeleteAutoscalePolicy(ctx context.Context, cluster string) error {
	err := s.inTxUnfenced(ctx, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, "DELETE FROM autoscale_policies WHERE cluster = ?", cluster))
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM autoscale_state WHERE cluster = ?", cluster)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete autoscaling policy of cluster %q: %w", cluster, err)
	}
	return nil
}

func (s *sqlStore) GetAutoscaleState(ctx context.Context, cluster string) (api.AutoscaleState, error) {
	var body string
	err := s.db.QueryRowContext(ctx, "SELECT state FROM autoscale_state WHERE cluster = ?", cluster).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return api.AutoscaleState{}, nil
	}
	if err != nil {
		return api.AutoscaleState{}, fmt.Errorf("get autoscaling state of cluster %q: %w", cluster, err)
	}
	var st api.AutoscaleState
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return api.AutoscaleState{}, fmt.Errorf("get autoscaling state of cluster %q: decode: %w", cluster, err)
	}
	return st, nil
}

func (s *sqlStore) PutAutoscaleState(ctx context.Context, cluster string, st api.AutoscaleState) error {
	body, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("put autoscaling state of cluster %q: encode: %w", cluster, err)
	}
	err = s.write(ctx, "put autoscaling state", func(q execer) error {
		res, err := q.ExecContext(ctx, "UPDATE autoscale_state SET state = ?, updated_at = ? WHERE cluster = ?", string(body), timeArg(now()), cluster)
		n, err := rowsAffected(res, err)
		if err != nil || n > 0 {
			return err
		}
		_, err = q.ExecContext(ctx, "INSERT INTO autoscale_state (cluster, state, updated_at) VALUES (?, ?, ?)", cluster, string(body), timeArg(now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("put autoscaling state of cluster %q: %w", cluster, err)
	}
	return nil
}

func (s *sqlStore) ListEventsOfType(ctx context.Context, cluster, typ string, limit int) ([]api.Event, error) {
	query := "SELECT id, cluster, shard, type, at, message, details FROM events WHERE cluster = ? AND type = ? ORDER BY at DESC, id DESC"
	args := []any{cluster, typ}
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	out, err := s.queryEvents(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s events of cluster %q: %w", typ, cluster, err)
	}
	return out, nil
}
