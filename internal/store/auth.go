package store

import (
	"context"
	"time"
)

// User is a console user. PasswordHash is the self-describing argon2id
// hash of internal/auth (never the password).
type User struct {
	Name         string
	PasswordHash string
	Role         string
	CreatedAt    time.Time
}

// Token is an API token. Hash is the hex SHA-256 of the token: the token
// itself is shown once, when it is made, and never stored.
type Token struct {
	Name       string
	Hash       string
	Role       string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
}

// Session is a console session. IDHash is the hex SHA-256 of the session
// id the cookie carries; the id itself is never stored. CSRF is the
// session's CSRF token (it proves nothing without the cookie).
type Session struct {
	IDHash     string
	Name       string // the principal's name
	Kind       string // "user" or "token"
	Role       string
	CSRF       string
	CreatedAt  time.Time
	LastSeenAt time.Time
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	At        time.Time
	Principal string // "" when the request had none
	Kind      string
	Remote    string
	Method    string
	Path      string
	Status    int
	Summary   string
}

// Access is users, API tokens, sessions and the audit log (migration 8).
type Access interface {
	// CreateUser inserts a user. ErrConflict when the name is taken.
	CreateUser(ctx context.Context, u User) error
	// CreateFirstUser inserts u only when there is no user at all;
	// created is false when there was one.
	CreateFirstUser(ctx context.Context, u User) (created bool, err error)
	// GetUser: ErrNotFound when absent.
	GetUser(ctx context.Context, name string) (User, error)
	// ListUsers lists users by name.
	ListUsers(ctx context.Context) ([]User, error)
	// UpdateUser sets the password hash and/or the role (nil: kept). A
	// new role is also given to the user's live sessions. ErrNotFound
	// when absent.
	UpdateUser(ctx context.Context, name string, passwordHash, role *string) error
	// DeleteUser removes the user and ends their sessions. ErrNotFound
	// when absent.
	DeleteUser(ctx context.Context, name string) error

	// CreateToken inserts a token. ErrConflict when the name is taken.
	CreateToken(ctx context.Context, t Token) error
	// TokenByHash finds a token by the hash of its secret. ErrNotFound.
	TokenByHash(ctx context.Context, hash string) (Token, error)
	// ListTokens lists tokens by name.
	ListTokens(ctx context.Context) ([]Token, error)
	// TouchToken records a use of the token at the given time.
	TouchToken(ctx context.Context, name string, at time.Time) error
	// DeleteToken revokes a token and ends the sessions signed in with
	// it. ErrNotFound when absent.
	DeleteToken(ctx context.Context, name string) error

	// CreateSession inserts a session.
	CreateSession(ctx context.Context, s Session) error
	// GetSession finds a session by the hash of its id. ErrNotFound.
	GetSession(ctx context.Context, idHash string) (Session, error)
	// TouchSession records activity on the session at the given time.
	TouchSession(ctx context.Context, idHash string, at time.Time) error
	// EndSessions ends every session of the principal (kind, name) but
	// the one whose id hash is except ("": none), and returns how many.
	EndSessions(ctx context.Context, kind, name, except string) (int64, error)
	// DeleteSession ends a session (no error when it is gone already).
	DeleteSession(ctx context.Context, idHash string) error
	// DeleteStaleSessions removes the sessions last seen before idleBefore
	// or created before createdBefore, and returns how many.
	DeleteStaleSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error)

	// AddAudit appends an entry.
	AddAudit(ctx context.Context, e AuditEntry) error
	// ListAudit lists entries newest first, at most limit (<= 0: all).
	ListAudit(ctx context.Context, limit int) ([]AuditEntry, error)
	// PruneAudit keeps at most keep entries (the newest) and none older
	// than before; it returns how many it removed.
	PruneAudit(ctx context.Context, keep int, before time.Time) (int64, error)
}
