package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Access control (API.md "Access control"): users, API tokens, sessions and
// the audit log.

// Principal is who made a request: a user or an API token, with its role.
type Principal struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // "user" or "token"
	Role string `json:"role"` // "viewer", "operator" or "admin"
}

// SignInRequest is the body of POST /api/v1/session: a user name and
// password, or a token.
type SignInRequest struct {
	Name     string `json:"name,omitempty"`
	Password string `json:"password,omitempty"`
	Token    string `json:"token,omitempty"`
}

// Session is the answer of POST and GET /api/v1/session.
type Session struct {
	Principal Principal `json:"principal"`
	// CSRFToken goes back in the X-CSRF-Token header of every
	// state-changing request made with the session cookie. Empty when the
	// request was made with a bearer token (no session).
	CSRFToken     string `json:"csrfToken,omitempty"`
	IdleTimeoutMs int64  `json:"idleTimeoutMs,omitempty"`
}

// User is a console user (never with its password or hash).
type User struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
}

// CreateUserRequest is the body of POST /api/v1/users.
type CreateUserRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

// UpdateUserRequest is the body of PATCH /api/v1/users/{name}: only the
// fields given change.
type UpdateUserRequest struct {
	Password *string `json:"password,omitempty"`
	// CurrentPassword is required when users change their own password
	// (signed in as themselves): a stolen session alone cannot lock the
	// owner out. An admin changing another user's password omits it.
	CurrentPassword *string `json:"currentPassword,omitempty"`
	Role            *string `json:"role,omitempty"`
}

// Token is an API token. Token (the secret) is set only in the answer of
// POST /api/v1/tokens: it is shown once.
type Token struct {
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"createdAt"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
	Token      string     `json:"token,omitempty"`
}

// CreateTokenRequest is the body of POST /api/v1/tokens. ExpiresInDays 0
// (or left out): the token does not expire.
type CreateTokenRequest struct {
	Name          string `json:"name"`
	Role          string `json:"role"`
	ExpiresInDays int    `json:"expiresInDays,omitempty"`
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	At        time.Time `json:"at"`
	Principal string    `json:"principal"`
	Kind      string    `json:"kind"`
	Remote    string    `json:"remote"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Status    int       `json:"status"`
	Summary   string    `json:"summary"`
}

// WhoAmI returns the principal the client's token stands for.
func (c *Client) WhoAmI(ctx context.Context) (Session, error) {
	var out Session
	err := c.do(ctx, http.MethodGet, "/api/v1/session", nil, &out)
	return out, err
}

// CreateUser makes a console user.
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (User, error) {
	var out User
	err := c.do(ctx, http.MethodPost, "/api/v1/users", req, &out)
	return out, err
}

// ListUsers lists the console users.
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	var out struct {
		Users []User `json:"users"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/users", nil, &out)
	return out.Users, err
}

// UpdateUser changes a user's password and/or role.
func (c *Client) UpdateUser(ctx context.Context, name string, req UpdateUserRequest) (User, error) {
	var out User
	err := c.do(ctx, http.MethodPatch, "/api/v1/users/"+url.PathEscape(name), req, &out)
	return out, err
}

// DeleteUser removes a user and ends their sessions.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/users/"+url.PathEscape(name), nil, nil)
}

// CreateToken makes an API token; the answer's Token is the secret, shown
// only this once.
func (c *Client) CreateToken(ctx context.Context, req CreateTokenRequest) (Token, error) {
	var out Token
	err := c.do(ctx, http.MethodPost, "/api/v1/tokens", req, &out)
	return out, err
}

// ListTokens lists the API tokens (never their secrets).
func (c *Client) ListTokens(ctx context.Context) ([]Token, error) {
	var out struct {
		Tokens []Token `json:"tokens"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/tokens", nil, &out)
	return out.Tokens, err
}

// RevokeToken deletes an API token.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(name), nil, nil)
}

// Audit returns the newest audit entries first, at most limit (0: the
// server's default).
func (c *Client) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	path := "/api/v1/audit"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out struct {
		Entries []AuditEntry `json:"entries"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Entries, err
}
