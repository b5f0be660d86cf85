package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Leases.
//
// A lease row holds its holder, its epoch and its expiry in milliseconds
// since the Unix epoch by the database's clock (dialect.nowMs): managers
// never compare their own clocks with it. Taking or renewing locks the row
// (SQLite: the IMMEDIATE transaction; MySQL: SELECT ... FOR UPDATE), and a
// fenced write takes a shared lock on it in its own transaction, so a
// takeover and a deposed leader's write are ordered: the write either
// commits before the takeover or reads the new epoch and is refused.

func (s *sqlStore) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, bool, error) {
	if holder == "" {
		return Lease{}, false, errors.New("acquire lease: empty holder")
	}
	// The row exists before anyone locks it: locking a missing row takes
	// gap locks in InnoDB, and two first acquirers would deadlock.
	_, err := s.db.ExecContext(ctx, "INSERT INTO leases (name, holder, epoch, expires_ms) VALUES (?, '', 0, 0)", name)
	if err != nil && !s.d.isDuplicate(err) {
		return Lease{}, false, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	var (
		out  Lease
		held bool
	)
	err = s.inTxUnfenced(ctx, func(tx *sql.Tx) error {
		var (
			cur       Lease
			expiresMs int64
			nowMs     int64
		)
		err := tx.QueryRowContext(ctx, "SELECT holder, epoch, expires_ms, "+s.d.nowMs+" FROM leases WHERE name = ?"+s.d.lockUpdate, name).
			Scan(&cur.Holder, &cur.Epoch, &expiresMs, &nowMs)
		if err != nil {
			return err
		}
		cur.Name = name
		valid := expiresMs > nowMs
		switch {
		case cur.Holder == holder && valid:
			// A renewal: same epoch.
			if _, err := tx.ExecContext(ctx, "UPDATE leases SET expires_ms = ? WHERE name = ?", nowMs+ttl.Milliseconds(), name); err != nil {
				return err
			}
			cur.TTL, held = ttl, true
		case !valid || cur.Holder == "":
			// A takeover (or the same holder again after it lapsed):
			// the next epoch fences every write of the previous term.
			cur.Holder, cur.Epoch = holder, cur.Epoch+1
			if _, err := tx.ExecContext(ctx, "UPDATE leases SET holder = ?, epoch = ?, expires_ms = ? WHERE name = ?",
				cur.Holder, cur.Epoch, nowMs+ttl.Milliseconds(), name); err != nil {
				return err
			}
			cur.TTL, held = ttl, true
		default:
			cur.TTL = time.Duration(expiresMs-nowMs) * time.Millisecond
		}
		out = cur
		return nil
	})
	if err != nil {
		return Lease{}, false, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	return out, held, nil
}

func (s *sqlStore) ReleaseLease(ctx context.Context, name, holder string, epoch int64) error {
	// Expired at once, holder kept empty: the next AcquireLease is a
	// takeover with the next epoch.
	_, err := s.db.ExecContext(ctx, "UPDATE leases SET holder = '', expires_ms = 0 WHERE name = ? AND holder = ? AND epoch = ?", name, holder, epoch)
	if err != nil {
		return fmt.Errorf("release lease %q: %w", name, err)
	}
	return nil
}

// GetLease returns ErrNotFound too for a lease nobody ever held (epoch 0).
func (s *sqlStore) GetLease(ctx context.Context, name string) (Lease, error) {
	var (
		l                Lease
		expiresMs, nowMs int64
	)
	err := s.db.QueryRowContext(ctx, "SELECT holder, epoch, expires_ms, "+s.d.nowMs+" FROM leases WHERE name = ?", name).
		Scan(&l.Holder, &l.Epoch, &expiresMs, &nowMs)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && l.Epoch == 0) {
		err = ErrNotFound
	}
	if err != nil {
		return Lease{}, fmt.Errorf("get lease %q: %w", name, err)
	}
	l.Name = name
	if expiresMs > nowMs {
		l.TTL = time.Duration(expiresMs-nowMs) * time.Millisecond
	}
	return l, nil
}

// checkFence refuses the transaction's write when ctx carries a fence whose
// holder no longer holds the lease at that epoch, or whose lease expired by
// the database's clock. It locks the lease row shared until the
// transaction ends.
func (s *sqlStore) checkFence(ctx context.Context, tx *sql.Tx, op string) error {
	f, ok := FenceFrom(ctx)
	if !ok {
		return nil
	}
	var (
		holder string
		epoch  int64
		valid  bool
	)
	err := tx.QueryRowContext(ctx, "SELECT holder, epoch, expires_ms > "+s.d.nowMs+" FROM leases WHERE name = ?"+s.d.lockShared, f.Name).
		Scan(&holder, &epoch, &valid)
	if errors.Is(err, sql.ErrNoRows) {
		holder = ""
	} else if err != nil {
		return fmt.Errorf("check fence: %w", err)
	}
	if holder != f.Holder || epoch != f.Epoch || !valid {
		if f.Refused != nil {
			f.Refused(op)
		}
		return fmt.Errorf("%s: lease %q is held by %q at epoch %d (valid %t), this write was made under epoch %d: %w",
			op, f.Name, holder, epoch, valid, f.Epoch, ErrFenced)
	}
	return nil
}

// write runs fn on the database, or, when ctx carries a fence, in a
// transaction that checks the fence first.
func (s *sqlStore) write(ctx context.Context, op string, fn func(q execer) error) error {
	if _, ok := FenceFrom(ctx); !ok {
		return fn(s.db)
	}
	return s.inTxOp(ctx, op, func(tx *sql.Tx) error { return fn(tx) })
}
