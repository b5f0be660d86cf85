// Package auth is who may do what: principals (users and API tokens), their
// roles, and how a request carries one (a bearer token, or a console
// session cookie with its CSRF token).
package auth

import "context"

// Role is what a principal may do. Each role may do everything the roles
// before it may.
type Role string

// The roles of API.md's "Access control".
const (
	// Viewer reads everything but credentials.
	Viewer Role = "viewer"
	// Operator also creates, scales, fails over, backs up and restores.
	Operator Role = "operator"
	// Admin also deletes, reads credentials, and manages users, tokens and
	// the audit log.
	Admin Role = "admin"
)

func (r Role) rank() int {
	switch r {
	case Viewer:
		return 1
	case Operator:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether a principal of role r may do what needs role need.
func (r Role) Allows(need Role) bool { return r.rank() > 0 && r.rank() >= need.rank() }

// Principal kinds.
const (
	KindUser  = "user"
	KindToken = "token"
)

// Principal is who makes a request.
type Principal struct {
	// Name is the user's or the token's name ("admin" for the admin
	// token of <data-dir>/admin.token).
	Name string `json:"name"`
	// Kind is KindUser or KindToken.
	Kind string `json:"kind"`
	Role Role   `json:"role"`
	// CSRF is the session's CSRF token when the request came with a
	// console session cookie; "" for bearer tokens. The console puts it in
	// its pages; state-changing requests send it back in CSRFHeader.
	CSRF string `json:"-"`
}

// Names of what carries a principal.
const (
	// SessionCookie holds a console session's id.
	SessionCookie = "redis_manager_session"
	// CSRFHeader carries the session's CSRF token on every state-changing
	// request authenticated by the session cookie.
	CSRFHeader = "X-CSRF-Token"
)

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of the request ctx belongs to, if one
// was authenticated.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
