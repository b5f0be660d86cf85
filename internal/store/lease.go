package store

import (
	"context"
	"errors"
	"time"
)

// ErrFenced is returned by a write carrying a Fence (WithFence) when the
// fence's holder no longer holds that lease at that epoch: a deposed leader's
// write, refused in the transaction that would have stored it.
var ErrFenced = errors.New("fenced: this manager no longer holds the leader lease")

// Lease is the state of a named lease. Expiry is decided by the database's
// clock only, never by a manager's: managers' clocks may disagree, the
// database's is one.
type Lease struct {
	Name   string
	Holder string // "" when released
	// Epoch increases each time the lease changes hands or is taken again
	// after it expired or was released; renewals keep it. It is the fencing
	// token of the holder's writes.
	Epoch int64
	// TTL is what was left of the lease when it was read, by the database's
	// clock (0 when expired).
	TTL time.Duration
}

// Fence names the lease and epoch a write is made under. Writes carrying a
// fence are stored only while Holder holds Name at Epoch and the lease has
// not expired by the database's clock, checked in the write's own
// transaction.
type Fence struct {
	Name   string
	Holder string
	Epoch  int64
	// Refused, when set, is called with the refused operation's name each
	// time the fence refuses a write (for logs and counters).
	Refused func(op string)
}

type fenceKey struct{}

// WithFence returns a context whose store writes are checked against f.
// Writes under a context without a fence (API requests: they store intent
// only) are not checked.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence ctx carries, if any.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// Leases are named leases kept in the database (migration 3).
type Leases interface {
	// AcquireLease takes the lease for holder, or renews it when holder
	// has it, for ttl by the database's clock. It returns the lease as it
	// stands afterwards; held tells whether holder has it. A lease another
	// holder keeps and that has not expired is left alone (held false).
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (l Lease, held bool, err error)
	// ReleaseLease gives the lease up if holder has it at epoch, so a
	// standby can take it at once (a manager that stops cleanly).
	ReleaseLease(ctx context.Context, name, holder string, epoch int64) error
	// GetLease reads the lease; ErrNotFound when nobody ever took it.
	GetLease(ctx context.Context, name string) (Lease, error)
}
