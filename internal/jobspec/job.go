package jobspec

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
)

// New returns a pending job of kind for cluster, created at now.
func New(kind, cluster string, now time.Time) store.Job {
	return store.Job{Job: api.Job{
		ID: NewID("j"), Kind: kind, Cluster: cluster, State: api.StatePending,
		Message: "waiting to start", Steps: []api.Step{}, CreatedAt: now,
	}}
}

// NewID returns a sortable unique id: prefix, millisecond time, randomness,
// in Crockford base32 like a ULID.
func NewID(prefix string) string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var b strings.Builder
	b.WriteString(prefix + "_")
	ms := uint64(time.Now().UnixMilli())
	for i := 9; i >= 0; i-- {
		b.WriteByte(alphabet[(ms>>(uint(i)*5))&31])
	}
	r := make([]byte, 10)
	_, _ = rand.Read(r)
	for _, x := range r {
		b.WriteByte(alphabet[x&31])
	}
	return b.String()
}

// Error is an error the API shows to users as is. Kind is store.ErrNotFound
// or store.ErrConflict, so callers map it with errors.Is.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

// NotFound is an Error of kind store.ErrNotFound (HTTP 404).
func NotFound(format string, a ...any) error {
	return &Error{Kind: store.ErrNotFound, Msg: fmt.Sprintf(format, a...)}
}

// Conflict is an Error of kind store.ErrConflict (HTTP 409).
func Conflict(format string, a ...any) error {
	return &Error{Kind: store.ErrConflict, Msg: fmt.Sprintf(format, a...)}
}
