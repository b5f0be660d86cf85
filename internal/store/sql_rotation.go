package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Password rotation. The next and previous passwords are sealed like the
// cluster's password, each bound to its own place.

func (s *sqlStore) openRotation(c *Cluster, next, old, nextS, oldS sql.NullString, endsAt dbTime) error {
	var err error
	if nextS.Valid {
		if c.Rotation.NextSentinel, err = s.seal.open(nextS.String, secretPlace("next sentinel password", c.Name)); err != nil {
			return err
		}
	}
	if oldS.Valid {
		if c.Rotation.OldSentinel, err = s.seal.open(oldS.String, secretPlace("old sentinel password", c.Name)); err != nil {
			return err
		}
	}
	if next.Valid {
		if c.Rotation.Next, err = s.seal.open(next.String, secretPlace("next password", c.Name)); err != nil {
			return err
		}
	}
	if old.Valid {
		if c.Rotation.Old, err = s.seal.open(old.String, secretPlace("old password", c.Name)); err != nil {
			return err
		}
	}
	c.Rotation.EndsAt = endsAt.ptr()
	return nil
}

func (s *sqlStore) sealOptional(secret, place, name string) (any, error) {
	if secret == "" {
		return nil, nil
	}
	return s.seal.seal(secret, secretPlace(place, name))
}

func (s *sqlStore) StartRotation(ctx context.Context, name, next, nextSentinel string, j Job) error {
	nextEnc, err := s.sealOptional(next, "next password", name)
	if err != nil {
		return fmt.Errorf("start rotation of cluster %q: %w", name, err)
	}
	nextSEnc, err := s.sealOptional(nextSentinel, "next sentinel password", name)
	if err != nil {
		return fmt.Errorf("start rotation of cluster %q: %w", name, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx,
			"UPDATE clusters SET next_password_enc = ?, next_sentinel_password_enc = ?, rev = ?, spec_rev = ? WHERE name = ? AND next_password_enc IS NULL AND old_password_enc IS NULL",
			nextEnc, nextSEnc, newRev(), newRev(), name))
		if err != nil {
			return err
		}
		if n == 0 {
			var one int
			if err := tx.QueryRowContext(ctx, "SELECT 1 FROM clusters WHERE name = ?", name).Scan(&one); err != nil {
				return ErrNotFound
			}
			return fmt.Errorf("a password rotation is already under way; finish it first: %w", ErrConflict)
		}
		return s.insertJob(ctx, tx, j)
	})
	if err != nil {
		return fmt.Errorf("start rotation of cluster %q: %w", name, err)
	}
	return nil
}

func (s *sqlStore) DueRotations(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx,
		"SELECT name FROM clusters WHERE old_password_enc IS NOT NULL AND rotation_ends_at IS NOT NULL AND rotation_ends_at <= ? ORDER BY name",
		timeArg(now))
	if err != nil {
		return nil, fmt.Errorf("list due rotations: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list due rotations: %w", err)
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

func (s *sqlStore) SetRotation(ctx context.Context, name, password, sentinelPassword string, r Rotation) error {
	pw, err := s.seal.seal(password, secretPlace("password", name))
	if err != nil {
		return fmt.Errorf("set rotation of cluster %q: %w", name, err)
	}
	spw, err := s.seal.seal(sentinelPassword, secretPlace("sentinel password", name))
	if err != nil {
		return fmt.Errorf("set rotation of cluster %q: %w", name, err)
	}
	nextSEnc, err := s.sealOptional(r.NextSentinel, "next sentinel password", name)
	if err != nil {
		return fmt.Errorf("set rotation of cluster %q: %w", name, err)
	}
	oldSEnc, err := s.sealOptional(r.OldSentinel, "old sentinel password", name)
	if err != nil {
		return fmt.Errorf("set rotation of cluster %q: %w", name, err)
	}
	nextEnc, err := s.sealOptional(r.Next, "next password", name)
	if err != nil {
		return fmt.Errorf("set rotation of cluster %q: %w", name, err)
	}
	oldEnc, err := s.sealOptional(r.Old, "old password", name)
	if err != nil {
		return fmt.Errorf("set rotation of cluster %q: %w", name, err)
	}
	err = s.write(ctx, "set rotation", func(q execer) error {
		n, err := rowsAffected(q.ExecContext(ctx,
			"UPDATE clusters SET password_enc = ?, next_password_enc = ?, old_password_enc = ?, rotation_ends_at = ?, "+
				"sentinel_password_enc = ?, next_sentinel_password_enc = ?, old_sentinel_password_enc = ?, rev = ?, spec_rev = ? WHERE name = ?",
			pw, nextEnc, oldEnc, nullTimeArg(r.EndsAt), spw, nextSEnc, oldSEnc, newRev(), newRev(), name))
		if err == nil && n == 0 {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("set rotation of cluster %q: %w", name, err)
	}
	return nil
}
