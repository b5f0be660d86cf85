package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/store"
)

// The endpoints of API.md's "Access control": the session (sign-in and
// sign-out), users, API tokens and the audit log.

// MinPasswordLength is the shortest password a user may be given.
const MinPasswordLength = 8

var principalName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

func checkName(name string) error {
	if !principalName.MatchString(name) {
		return badRequest("name", "name %q: want 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", truncate(name, 80))
	}
	return nil
}

func checkPassword(pw string) error {
	if len(pw) < MinPasswordLength {
		return badRequest("password", "password: want at least %d characters", MinPasswordLength)
	}
	if len(pw) > 1024 {
		return badRequest("password", "password: want at most 1024 characters")
	}
	return nil
}

func checkRole(role string) error {
	if !auth.Role(role).Valid() {
		return badRequest("role", "role %q: want viewer, operator or admin", truncate(role, 40))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

var errNoAccessStore = &httpError{http.StatusNotImplemented, api.ErrorDetail{Code: "not_implemented", Message: "users, tokens and sessions need the store"}}

// hash computes an argon2id hash, at most maxHashing at once.
func (g *gate) hash(ctx context.Context, password string) (string, error) {
	if err := g.acquireHashing(ctx); err != nil {
		return "", err
	}
	defer func() { <-g.hashing }()
	return auth.HashPassword(password, auth.DefaultParams)
}

func (g *gate) acquireHashing(ctx context.Context) error {
	select {
	case g.hashing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkUserPassword verifies name and password. An unknown user costs the
// same hash as a known one, so the answer's time does not tell them apart.
func (g *gate) checkUserPassword(ctx context.Context, name, password string) (store.User, bool, error) {
	u, err := g.access.GetUser(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.User{}, false, err
	}
	known := err == nil
	hash := u.PasswordHash
	if !known {
		hash = g.decoyHash
	}
	if err := g.acquireHashing(ctx); err != nil {
		return store.User{}, false, err
	}
	g.checked(hash)
	ok, err := auth.CheckPassword(hash, password)
	<-g.hashing
	if err != nil {
		return store.User{}, false, fmt.Errorf("user %q: %w", name, err)
	}
	return u, ok && known, nil
}

var errSignIn = &httpError{http.StatusUnauthorized, api.ErrorDetail{Code: "unauthorized", Message: "wrong user name or password"}}

func (g *gate) sessionBody(p auth.Principal) api.Session {
	s := api.Session{Principal: api.Principal{Name: p.Name, Kind: p.Kind, Role: string(p.Role)}}
	if p.CSRF != "" {
		s.CSRFToken, s.IdleTimeoutMs = p.CSRF, g.idle.Milliseconds()
	}
	return s
}

func (g *gate) signIn(r *http.Request) (int, any, error) {
	if g.access == nil {
		return 0, nil, errNoAccessStore
	}
	var req api.SignInRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	host := remoteHost(r)
	if wait, blocked := g.failures.blocked(host, g.now()); blocked {
		setSummary(r, "refused: too many failed sign-ins from %s", host)
		return 0, nil, &httpError{http.StatusTooManyRequests, api.ErrorDetail{Code: "too_many_requests",
			Message: fmt.Sprintf("too many failed sign-ins from this address; try again in %d s", int(wait.Seconds())+1)}}
	}
	var p auth.Principal
	switch {
	case req.Token != "" && (req.Name != "" || req.Password != ""):
		return 0, nil, badRequest("token", "give a token, or a name and password, not both")
	case req.Token != "":
		tp, err := g.tokenPrincipal(r.Context(), req.Token)
		if err != nil {
			g.failures.add(host, g.now())
			setSummary(r, "sign-in with a token failed")
			return 0, nil, &httpError{http.StatusUnauthorized, api.ErrorDetail{Code: "unauthorized", Message: "wrong, revoked or expired token"}}
		}
		p = tp
	default:
		if req.Name == "" {
			return 0, nil, badRequest("name", "name: required (or give a token)")
		}
		u, ok, err := g.checkUserPassword(r.Context(), req.Name, req.Password)
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			g.failures.add(host, g.now())
			setSummary(r, "sign-in failed for user %q", truncate(req.Name, 64))
			return 0, nil, errSignIn
		}
		p = auth.Principal{Name: u.Name, Kind: auth.KindUser, Role: auth.Role(u.Role)}
	}
	id, err := auth.RandomString(32)
	if err != nil {
		return 0, nil, err
	}
	if p.CSRF, err = auth.RandomString(32); err != nil {
		return 0, nil, err
	}
	now := g.now()
	if err := g.access.CreateSession(r.Context(), store.Session{IDHash: auth.HashSecret(id), Name: p.Name, Kind: p.Kind,
		Role: string(p.Role), CSRF: p.CSRF, CreatedAt: now, LastSeenAt: now}); err != nil {
		return 0, nil, err
	}
	n := noteOf(r)
	n.principal = &p
	n.summary = "signed in"
	n.cookie = &http.Cookie{Name: auth.SessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode}
	return 200, g.sessionBody(p), nil
}

func (g *gate) getSession(r *http.Request) (int, any, error) {
	p, _ := auth.FromContext(r.Context())
	return 200, g.sessionBody(p), nil
}

func (g *gate) signOut(r *http.Request) (int, any, error) {
	n := noteOf(r)
	if viaOf(r) == viaSession && n.sessionID != "" {
		if err := g.access.DeleteSession(r.Context(), n.sessionID); err != nil {
			return 0, nil, err
		}
		n.summary = "signed out"
	}
	n.cookie = &http.Cookie{Name: auth.SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode}
	return http.StatusNoContent, nil, nil
}

func userView(u store.User) api.User {
	return api.User{Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt}
}

func (g *gate) createUser(r *http.Request) (int, any, error) {
	if g.access == nil {
		return 0, nil, errNoAccessStore
	}
	var req api.CreateUserRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	setSummary(r, "create user %q", truncate(req.Name, 64))
	if err := checkName(req.Name); err != nil {
		return 0, nil, err
	}
	if err := checkRole(req.Role); err != nil {
		return 0, nil, err
	}
	if err := checkPassword(req.Password); err != nil {
		return 0, nil, err
	}
	h, err := g.hash(r.Context(), req.Password)
	if err != nil {
		return 0, nil, err
	}
	u := store.User{Name: req.Name, PasswordHash: h, Role: req.Role, CreatedAt: g.now().UTC().Truncate(time.Microsecond)}
	if err := g.access.CreateUser(r.Context(), u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return 0, nil, &httpError{http.StatusConflict, api.ErrorDetail{Code: "conflict", Field: "name", Message: fmt.Sprintf("user %q already exists", req.Name)}}
		}
		return 0, nil, err
	}
	setSummary(r, "created user %q with role %s", u.Name, u.Role)
	return http.StatusCreated, userView(u), nil
}

func (g *gate) listUsers(r *http.Request) (int, any, error) {
	if g.access == nil {
		return 0, nil, errNoAccessStore
	}
	us, err := g.access.ListUsers(r.Context())
	out := make([]api.User, 0, len(us))
	for _, u := range us {
		out = append(out, userView(u))
	}
	return 200, map[string]any{"users": out}, err
}

func notFound(format string, a ...any) error {
	return &httpError{http.StatusNotFound, api.ErrorDetail{Code: "not_found", Message: fmt.Sprintf(format, a...)}}
}

func (g *gate) updateUser(r *http.Request) (int, any, error) {
	if g.access == nil {
		return 0, nil, errNoAccessStore
	}
	name := r.PathValue("name")
	var req api.UpdateUserRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	p, _ := auth.FromContext(r.Context())
	self := p.Kind == auth.KindUser && p.Name == name
	// Anyone signed in may change their own password; the rest is the
	// admin's.
	if !p.Role.Allows(auth.Admin) && (!self || req.Role != nil) {
		setSummary(r, "refused: change user %q needs role admin", truncate(name, 64))
		return 0, nil, &httpError{http.StatusForbidden, api.ErrorDetail{Code: "forbidden",
			Message: "only an admin may change another user or a role; you may change your own password"}}
	}
	var what []string
	var hash *string
	if req.Password != nil {
		if err := checkPassword(*req.Password); err != nil {
			return 0, nil, err
		}
		if self {
			if req.CurrentPassword == nil || *req.CurrentPassword == "" {
				return 0, nil, badRequest("currentPassword", "give your current password to change it")
			}
			if _, ok, err := g.checkUserPassword(r.Context(), name, *req.CurrentPassword); err != nil {
				return 0, nil, err
			} else if !ok {
				setSummary(r, "refused: change own password %q: wrong current password", truncate(name, 64))
				return 0, nil, &httpError{http.StatusForbidden, api.ErrorDetail{Code: "forbidden", Field: "currentPassword",
					Message: "the current password is wrong"}}
			}
		}
		h, err := g.hash(r.Context(), *req.Password)
		if err != nil {
			return 0, nil, err
		}
		hash = &h
		what = append(what, "password")
	}
	if req.Role != nil {
		if err := checkRole(*req.Role); err != nil {
			return 0, nil, err
		}
		what = append(what, "role "+*req.Role)
	}
	if len(what) == 0 {
		return 0, nil, badRequest("", "give password or role")
	}
	setSummary(r, "change user %q: %v", truncate(name, 64), what)
	if err := g.access.UpdateUser(r.Context(), name, hash, req.Role); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return 0, nil, notFound("user %q not found", name)
		}
		return 0, nil, err
	}
	if hash != nil {
		// A new password ends the user's other sessions: whoever knew the
		// old one is signed out. The session making the change (the
		// user's own) stays.
		keep := ""
		if viaOf(r) == viaSession && self {
			keep = noteOf(r).sessionID
		}
		if _, err := g.access.EndSessions(r.Context(), auth.KindUser, name, keep); err != nil {
			return 0, nil, err
		}
	}
	u, err := g.access.GetUser(r.Context(), name)
	return 200, userView(u), err
}

func (g *gate) deleteUser(r *http.Request) (int, any, error) {
	if g.access == nil {
		return 0, nil, errNoAccessStore
	}
	name := r.PathValue("name")
	setSummary(r, "delete user %q", truncate(name, 64))
	if err := g.access.DeleteUser(r.Context(), name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return 0, nil, notFound("user %q not found", name)
		}
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func tokenView(t store.Token) api.Token {
	return api.Token{Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt}
}

func (g *gate) createToken(r *http.Request) (int, any, error) {
	if g.access == nil {
		return 0, nil, errNoAccessStore
	}
	var req api.CreateTokenRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	setSummary(r, "create token %q", truncate(req.Name, 64))
	if err := checkName(req.Name); err != nil {
		return 0, nil, err
	}
	if req.Name == "admin" {
		return 0, nil, badRequest("name", `name "admin" is the admin token's`)
	}
	if err := checkRole(req.Role); err != nil {
		return 0, nil, err
	}
	if req.ExpiresInDays < 0 || req.ExpiresInDays > 3650 {
		return 0, nil, badRequest("expiresInDays", "expiresInDays: want 0 (never) to 3650")
	}
	secret, err := auth.NewToken()
	if err != nil {
		return 0, nil, err
	}
	now := g.now().UTC().Truncate(time.Microsecond)
	t := store.Token{Name: req.Name, Hash: auth.HashSecret(secret), Role: req.Role, CreatedAt: now}
	if req.ExpiresInDays > 0 {
		e := now.Add(time.Duration(req.ExpiresInDays) * 24 * time.Hour)
		t.ExpiresAt = &e
	}
	if err := g.access.CreateToken(r.Context(), t); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return 0, nil, &httpError{http.StatusConflict, api.ErrorDetail{Code: "conflict", Field: "name", Message: fmt.Sprintf("token %q already exists", req.Name)}}
		}
		return 0, nil, err
	}
	setSummary(r, "created token %q with role %s", t.Name, t.Role)
	out := tokenView(t)
	out.Token = secret
	return http.StatusCreated, out, nil
}

func (g *gate) listTokens(r *http.Request) (int, any, error) {
	if g.access == nil {
		return 0, nil, errNoAccessStore
	}
	ts, err := g.access.ListTokens(r.Context())
	out := make([]api.Token, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenView(t))
	}
	return 200, map[string]any{"tokens": out}, err
}

func (g *gate) deleteToken(r *http.Request) (int, any, error) {
	if g.access == nil {
		return 0, nil, errNoAccessStore
	}
	name := r.PathValue("name")
	setSummary(r, "revoke token %q", truncate(name, 64))
	if err := g.access.DeleteToken(r.Context(), name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return 0, nil, notFound("token %q not found", name)
		}
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// DefaultAuditLimit and MaxAuditLimit bound GET /api/v1/audit.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 10000
)

func (g *gate) listAudit(r *http.Request) (int, any, error) {
	if g.access == nil {
		return 0, nil, errNoAccessStore
	}
	limit := DefaultAuditLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxAuditLimit {
			return 0, nil, badRequest("limit", "limit %q: want 1 to %d", truncate(s, 20), MaxAuditLimit)
		}
		limit = n
	}
	es, err := g.access.ListAudit(r.Context(), limit)
	out := make([]api.AuditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, api.AuditEntry{At: e.At, Principal: e.Principal, Kind: e.Kind, Remote: e.Remote, Method: e.Method,
			Path: e.Path, Status: e.Status, Summary: e.Summary})
	}
	return 200, map[string]any{"entries": out}, err
}

// accessRoutes registers the endpoints above.
func (g *gate) accessRoutes(route func(string, auth.Role, handler)) {
	route("POST /api/v1/session", public, g.signIn)
	route("GET /api/v1/session", auth.Viewer, g.getSession)
	route("DELETE /api/v1/session", auth.Viewer, g.signOut)
	route("POST /api/v1/users", auth.Admin, g.createUser)
	route("GET /api/v1/users", auth.Admin, g.listUsers)
	// Viewer: anyone may change their own password; updateUser checks
	// the rest needs admin.
	route("PATCH /api/v1/users/{name}", auth.Viewer, g.updateUser)
	route("DELETE /api/v1/users/{name}", auth.Admin, g.deleteUser)
	route("POST /api/v1/tokens", auth.Admin, g.createToken)
	route("GET /api/v1/tokens", auth.Admin, g.listTokens)
	route("DELETE /api/v1/tokens/{name}", auth.Admin, g.deleteToken)
	route("GET /api/v1/audit", auth.Admin, g.listAudit)
}

// sweepAccess ends stale sessions and trims the audit log every interval
// until ctx ends. Every manager sharing the store runs it; the deletes are
// idempotent.
func sweepAccess(ctx context.Context, a store.Access, idle, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		now := time.Now()
		if n, err := a.DeleteStaleSessions(ctx, now.Add(-idle), now.Add(-MaxSessionAge)); err != nil {
			log.Warn("end stale sessions", "err", err)
		} else if n > 0 {
			log.Debug("ended stale sessions", "count", n)
		}
		if n, err := a.PruneAudit(ctx, AuditKeep, now.Add(-AuditMaxAge)); err != nil {
			log.Warn("trim audit log", "err", err)
		} else if n > 0 {
			log.Info("trimmed audit log", "removed", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// firstAdmin makes the first admin user when the store has none: name
// (default "admin") with the password of passwordFile, or a random one
// written to <dataDir>/admin.password (0600). There is no default password.
func firstAdmin(ctx context.Context, a store.Access, dataDir, name, passwordFile string, log *slog.Logger) error {
	if name == "" {
		name = "admin"
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("--admin-user: %w", err)
	}
	users, err := a.ListUsers(ctx)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return nil
	}
	var (
		password string
		pending  string // the password file before the user exists
	)
	final := filepath.Join(dataDir, "admin.password")
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return fmt.Errorf("--admin-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
		if err := checkPassword(password); err != nil {
			return fmt.Errorf("--admin-password-file %s: %w", passwordFile, err)
		}
	} else {
		if password, err = auth.RandomString(18); err != nil {
			return err
		}
		// Written before the user exists, under a name of its own
		// (managers sharing a data dir may start at once): a crash in
		// between leaves a file with the password, never a user whose
		// password nobody knows. It becomes admin.password once the user
		// is stored.
		f, err := os.CreateTemp(dataDir, "admin.password.*") // mode 0600
		if err != nil {
			return fmt.Errorf("write the first admin's password: %w", err)
		}
		pending = f.Name()
		_, err = f.WriteString(password + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(pending)
			return fmt.Errorf("write the first admin's password: %w", err)
		}
	}
	h, err := auth.HashPassword(password, auth.DefaultParams)
	if err != nil {
		return err
	}
	created, err := a.CreateFirstUser(ctx, store.User{Name: name, PasswordHash: h, Role: string(auth.Admin)})
	if err != nil || !created { // !created: another manager of the store made its own first
		if pending != "" {
			_ = os.Remove(pending)
		}
		return err
	}
	if pending == "" {
		log.Info("created the first admin user with the password of --admin-password-file", "user", name)
		return nil
	}
	if err := os.Rename(pending, final); err != nil {
		return fmt.Errorf("the first admin's password is in %s: %w", pending, err)
	}
	log.Warn("created the first admin user; its password is in the file named here: sign in, then change it or make your own users", "user", name, "passwordFile", final)
	return nil
}
