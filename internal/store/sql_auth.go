package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Users, API tokens, sessions and the audit log (Access, migration 8).
//
// None of these writes carries the leader's fence: they are API requests,
// which every manager serves, leader or not.

// Users.

func (s *sqlStore) CreateUser(ctx context.Context, u User) error {
	if err := s.insertUser(ctx, s.db, u); err != nil {
		return fmt.Errorf("create user %q: %w", u.Name, err)
	}
	return nil
}

func (s *sqlStore) insertUser(ctx context.Context, q execer, u User) error {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now()
	}
	_, err := q.ExecContext(ctx, "INSERT INTO users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
		u.Name, u.PasswordHash, u.Role, timeArg(u.CreatedAt))
	if s.d.isDuplicate(err) {
		return fmt.Errorf("name is taken: %w", ErrConflict)
	}
	return err
}

func (s *sqlStore) CreateFirstUser(ctx context.Context, u User) (bool, error) {
	created := false
	err := s.inTxUnfenced(ctx, func(tx *sql.Tx) error {
		var n int
		// No locking read: on MySQL it would take a gap lock on the empty
		// table and two managers starting at once could deadlock. Two that
		// both see no user insert the same name (the default), and the
		// second gets ErrConflict; SQLite's IMMEDIATE transaction
		// serializes them anyway.
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM users").Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if err := s.insertUser(ctx, tx, u); err != nil {
			return err
		}
		created = true
		return nil
	})
	if errors.Is(err, ErrConflict) {
		return false, nil // another manager made it first
	}
	if err != nil {
		return false, fmt.Errorf("create first user: %w", err)
	}
	return created, nil
}

const userCols = "name, password_hash, role, created_at"

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var (
		u  User
		at dbTime
	)
	if err := row.Scan(&u.Name, &u.PasswordHash, &u.Role, &at); err != nil {
		return User{}, err
	}
	u.CreatedAt = at.t
	return u, nil
}

func (s *sqlStore) GetUser(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, "SELECT "+userCols+" FROM users WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %q: %w", name, err)
	}
	return u, nil
}

func (s *sqlStore) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+userCols+" FROM users ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func (s *sqlStore) UpdateUser(ctx context.Context, name string, passwordHash, role *string) error {
	err := s.inTxUnfenced(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, "SELECT 1 FROM users WHERE name = ?"+s.d.lockUpdate, name).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		if passwordHash != nil {
			if _, err := tx.ExecContext(ctx, "UPDATE users SET password_hash = ? WHERE name = ?", *passwordHash, name); err != nil {
				return err
			}
		}
		if role != nil {
			if _, err := tx.ExecContext(ctx, "UPDATE users SET role = ? WHERE name = ?", *role, name); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE sessions SET role = ? WHERE kind = 'user' AND principal = ?", *role, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update user %q: %w", name, err)
	}
	return nil
}

func (s *sqlStore) DeleteUser(ctx context.Context, name string) error {
	err := s.inTxUnfenced(ctx, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, "DELETE FROM users WHERE name = ?", name))
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM sessions WHERE kind = 'user' AND principal = ?", name)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	return nil
}

// API tokens.

const tokenCols = "name, token_hash, role, created_at, expires_at, last_used_at"

func (s *sqlStore) CreateToken(ctx context.Context, t Token) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now()
	}
	_, err := s.db.ExecContext(ctx, "INSERT INTO api_tokens ("+tokenCols+") VALUES (?, ?, ?, ?, ?, ?)",
		t.Name, t.Hash, t.Role, timeArg(t.CreatedAt), nullTimeArg(t.ExpiresAt), nullTimeArg(t.LastUsedAt))
	if s.d.isDuplicate(err) {
		err = fmt.Errorf("name is taken: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.Name, err)
	}
	return nil
}

func scanToken(row interface{ Scan(...any) error }) (Token, error) {
	var (
		t                      Token
		created, expires, used dbTime
	)
	if err := row.Scan(&t.Name, &t.Hash, &t.Role, &created, &expires, &used); err != nil {
		return Token{}, err
	}
	t.CreatedAt, t.ExpiresAt, t.LastUsedAt = created.t, expires.ptr(), used.ptr()
	return t, nil
}

func (s *sqlStore) TokenByHash(ctx context.Context, hash string) (Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, "SELECT "+tokenCols+" FROM api_tokens WHERE token_hash = ?", hash))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Token{}, fmt.Errorf("find token: %w", err)
	}
	return t, nil
}

func (s *sqlStore) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+tokenCols+" FROM api_tokens ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func (s *sqlStore) TouchToken(ctx context.Context, name string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, "UPDATE api_tokens SET last_used_at = ? WHERE name = ?", timeArg(at), name); err != nil {
		return fmt.Errorf("touch token %q: %w", name, err)
	}
	return nil
}

func (s *sqlStore) DeleteToken(ctx context.Context, name string) error {
	err := s.inTxUnfenced(ctx, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, "DELETE FROM api_tokens WHERE name = ?", name))
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM sessions WHERE kind = 'token' AND principal = ?", name)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete token %q: %w", name, err)
	}
	return nil
}

// Sessions.

const sessionCols = "id_hash, principal, kind, role, csrf, created_at, last_seen_at"

func (s *sqlStore) CreateSession(ctx context.Context, ss Session) error {
	if ss.CreatedAt.IsZero() {
		ss.CreatedAt = now()
	}
	if ss.LastSeenAt.IsZero() {
		ss.LastSeenAt = ss.CreatedAt
	}
	_, err := s.db.ExecContext(ctx, "INSERT INTO sessions ("+sessionCols+") VALUES (?, ?, ?, ?, ?, ?, ?)",
		ss.IDHash, ss.Name, ss.Kind, ss.Role, ss.CSRF, timeArg(ss.CreatedAt), timeArg(ss.LastSeenAt))
	if err != nil {
		return fmt.Errorf("create session for %s %q: %w", ss.Kind, ss.Name, err)
	}
	return nil
}

func (s *sqlStore) GetSession(ctx context.Context, idHash string) (Session, error) {
	var (
		ss            Session
		created, seen dbTime
	)
	err := s.db.QueryRowContext(ctx, "SELECT "+sessionCols+" FROM sessions WHERE id_hash = ?", idHash).
		Scan(&ss.IDHash, &ss.Name, &ss.Kind, &ss.Role, &ss.CSRF, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	ss.CreatedAt, ss.LastSeenAt = created.t, seen.t
	return ss, nil
}

func (s *sqlStore) TouchSession(ctx context.Context, idHash string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, "UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?", timeArg(at), idHash); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

func (s *sqlStore) DeleteSession(ctx context.Context, idHash string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM sessions WHERE id_hash = ?", idHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

func (s *sqlStore) EndSessions(ctx context.Context, kind, name, except string) (int64, error) {
	n, err := rowsAffected(s.db.ExecContext(ctx, "DELETE FROM sessions WHERE kind = ? AND principal = ? AND id_hash <> ?", kind, name, except))
	if err != nil {
		return 0, fmt.Errorf("end sessions of %s %q: %w", kind, name, err)
	}
	return n, nil
}

func (s *sqlStore) DeleteStaleSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error) {
	n, err := rowsAffected(s.db.ExecContext(ctx, "DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?",
		timeArg(idleBefore), timeArg(createdBefore)))
	if err != nil {
		return 0, fmt.Errorf("delete stale sessions: %w", err)
	}
	return n, nil
}

// Audit log.

func (s *sqlStore) AddAudit(ctx context.Context, e AuditEntry) error {
	if e.At.IsZero() {
		e.At = now()
	}
	_, err := s.db.ExecContext(ctx, "INSERT INTO audit_log (at, principal, kind, remote, method, path, status, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		timeArg(e.At), e.Principal, e.Kind, e.Remote, e.Method, e.Path, e.Status, e.Summary)
	if err != nil {
		return fmt.Errorf("add audit entry: %w", err)
	}
	return nil
}

func (s *sqlStore) ListAudit(ctx context.Context, limit int) ([]AuditEntry, error) {
	query := "SELECT at, principal, kind, remote, method, path, status, summary FROM audit_log ORDER BY id DESC"
	var args []any
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var (
			e  AuditEntry
			at dbTime
		)
		if err := rows.Scan(&at, &e.Principal, &e.Kind, &e.Remote, &e.Method, &e.Path, &e.Status, &e.Summary); err != nil {
			return nil, fmt.Errorf("list audit log: %w", err)
		}
		e.At = at.t
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *sqlStore) PruneAudit(ctx context.Context, keep int, before time.Time) (int64, error) {
	n, err := rowsAffected(s.db.ExecContext(ctx, "DELETE FROM audit_log WHERE at < ?", timeArg(before)))
	if err != nil {
		return 0, fmt.Errorf("prune audit log: %w", err)
	}
	if keep <= 0 {
		return n, nil
	}
	// The id of the oldest entry kept; MySQL cannot delete from a table
	// its own subquery reads, so it is read first.
	var oldest int64
	err = s.db.QueryRowContext(ctx, "SELECT id FROM audit_log ORDER BY id DESC LIMIT 1 OFFSET ?", keep-1).Scan(&oldest)
	if errors.Is(err, sql.ErrNoRows) {
		return n, nil
	}
	if err != nil {
		return n, fmt.Errorf("prune audit log: %w", err)
	}
	m, err := rowsAffected(s.db.ExecContext(ctx, "DELETE FROM audit_log WHERE id < ?", oldest))
	if err != nil {
		return n, fmt.Errorf("prune audit log: %w", err)
	}
	return n + m, nil
}
