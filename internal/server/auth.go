package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/store"
)

// Access control (docs/security.md): one gate in front of every request
// finds the principal (a bearer token or a session cookie), checks CSRF on
// state-changing session requests, enforces the route's role on /api/, and
// writes the audit log.

// public is the "role" of the two routes anyone may call: health and
// sign-in. Every other route names the least role that may call it.
const public auth.Role = "public"

// MaxSessionAge ends a session this long after sign-in, however active.
const MaxSessionAge = 12 * time.Hour

// DefaultSessionIdleTimeout ends a session not used for this long.
const DefaultSessionIdleTimeout = 30 * time.Minute

// Audit retention (sweepAccess): entries older than AuditMaxAge go, and at
// most AuditKeep entries stay.
const (
	AuditMaxAge = 90 * 24 * time.Hour
	AuditKeep   = 100_000
)

// maxHashing bounds the argon2id hashes computed at once (64 MiB each).
const maxHashing = 2

// How the principal was found.
const (
	viaNone    = ""
	viaBearer  = "bearer"
	viaSession = "session"
)

// gate is the middleware. Its routes map comes from the route function of
// Handler: each pattern with its role.
type gate struct {
	adminToken string
	access     store.Access // nil: only the admin token, no sessions
	idle       time.Duration
	log        *slog.Logger
	mux        *http.ServeMux
	roles      map[string]auth.Role
	patterns   []string // in registration order, for tests
	hashing    chan struct{}
	// decoyHash is what an unknown user's password is checked against
	// (auth.DecoyHash of the default parameters).
	decoyHash string
	// checked, when set (tests), is told each hash a password is checked
	// against.
	checked  func(hash string)
	failures failureLog
	now      func() time.Time
}

type ctxKey int

const (
	noteKey ctxKey = iota
	viaKey
)

// note is what a handler tells the gate about its request: the audit
// summary, the principal of a sign-in, a cookie to set.
type note struct {
	summary   string
	principal *auth.Principal
	cookie    *http.Cookie
	sessionID string // the session id hash of the request's cookie, if any
}

func noteOf(r *http.Request) *note {
	if n, ok := r.Context().Value(noteKey).(*note); ok {
		return n
	}
	return &note{}
}

// setSummary sets the request's audit summary. It must never hold a secret.
func setSummary(r *http.Request, format string, a ...any) {
	noteOf(r).summary = fmt.Sprintf(format, a...)
}

func viaOf(r *http.Request) string {
	v, _ := r.Context().Value(viaKey).(string)
	return v
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	isAPI := strings.HasPrefix(r.URL.Path, "/api/")
	_, pattern := g.mux.Handler(r)
	need, known := g.roles[pattern]
	if !known {
		if isAPI && pattern != "" {
			// Put on the mux without a role: refused, loudly, rather
			// than served to anyone.
			g.log.Error("API route registered without a role; register it with route or handle", "pattern", pattern)
			writeJSON(w, http.StatusInternalServerError, api.ErrorBody{Error: api.ErrorDetail{Code: "internal",
				Message: fmt.Sprintf("route %s has no role", pattern)}})
			return
		}
		need = auth.Viewer // a 404/405 of the mux, a redirect: any principal
	}
	n := &note{}
	ctx := context.WithValue(r.Context(), noteKey, n)
	p, via, why := g.identify(r, n)
	if via != viaNone {
		ctx = auth.WithPrincipal(ctx, p)
	}
	ctx = context.WithValue(ctx, viaKey, via)
	r = r.WithContext(ctx)

	audited := isAPI && (!safeMethod(r.Method) || strings.HasSuffix(pattern, "/credentials"))
	rec := &statusWriter{ResponseWriter: w}
	if audited {
		w = rec
		defer g.audit(r, rec, n, p, via)
	}

	if isAPI && need != public && via == viaNone {
		n.summary = "refused: " + why
		g.unauthorized(w, r, why)
		return
	}
	// Sign-in itself needs no CSRF token (a stale session's page signs in
	// again), only its own origin: see below.
	if via == viaSession && !safeMethod(r.Method) && pattern != "POST /api/v1/session" {
		if msg := csrfProblem(r, p.CSRF); msg != "" {
			n.summary = "refused: " + msg
			writeJSON(w, http.StatusForbidden, api.ErrorBody{Error: api.ErrorDetail{Code: "csrf", Message: msg}})
			return
		}
	}
	if pattern == "POST /api/v1/session" && !sameOrigin(r) {
		n.summary = "refused: foreign origin"
		writeJSON(w, http.StatusForbidden, api.ErrorBody{Error: api.ErrorDetail{Code: "csrf", Message: "the request's Origin is not this server"}})
		return
	}
	if isAPI && need != public && !p.Role.Allows(need) {
		n.summary = fmt.Sprintf("refused: needs role %s", need)
		writeJSON(w, http.StatusForbidden, api.ErrorBody{Error: api.ErrorDetail{Code: "forbidden",
			Message: fmt.Sprintf("%s %q has role %s; this needs %s", p.Kind, p.Name, p.Role, need)}})
		return
	}
	g.mux.ServeHTTP(w, r)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// csrfProblem checks a state-changing request made with a session cookie:
// it must carry the session's CSRF token and, when it names an origin, come
// from this server's own. "" when it passes.
func csrfProblem(r *http.Request, want string) string {
	got := r.Header.Get(auth.CSRFHeader)
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return "missing or wrong " + auth.CSRFHeader + " header: send the session's CSRF token"
	}
	if !sameOrigin(r) {
		return "the request's Origin is not this server"
	}
	return ""
}

// sameOrigin reports whether the request's Origin header, if any, is the
// request's own scheme://host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host) && u.Path == ""
}

// identify finds the request's principal: the bearer token, else the
// session cookie. why says what was wrong when none was found.
func (g *gate) identify(r *http.Request, n *note) (auth.Principal, string, string) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return auth.Principal{}, viaNone, "the Authorization header is not a bearer token"
		}
		p, err := g.tokenPrincipal(r.Context(), tok)
		if err != nil {
			return auth.Principal{}, viaNone, err.Error()
		}
		return p, viaBearer, ""
	}
	c, err := r.Cookie(auth.SessionCookie)
	if err != nil || c.Value == "" {
		return auth.Principal{}, viaNone, "no credentials"
	}
	if g.access == nil {
		return auth.Principal{}, viaNone, "sessions are not enabled"
	}
	hash := auth.HashSecret(c.Value)
	n.sessionID = hash
	s, err := g.access.GetSession(r.Context(), hash)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			g.log.Error("read session", "err", err)
		}
		return auth.Principal{}, viaNone, "the session has ended; sign in again"
	}
	now := g.now()
	if now.Sub(s.LastSeenAt) > g.idle || now.Sub(s.CreatedAt) > MaxSessionAge {
		if err := g.access.DeleteSession(r.Context(), hash); err != nil {
			g.log.Warn("end stale session", "err", err)
		}
		return auth.Principal{}, viaNone, "the session has ended; sign in again"
	}
	// Record activity, at most every tenth of the idle timeout (a minute
	// at most): a write per request would be wasted.
	if now.Sub(s.LastSeenAt) > min(g.idle/10, time.Minute) {
		if err := g.access.TouchSession(r.Context(), hash, now); err != nil {
			g.log.Warn("touch session", "err", err)
		}
	}
	return auth.Principal{Name: s.Name, Kind: s.Kind, Role: auth.Role(s.Role), CSRF: s.CSRF}, viaSession, ""
}

// tokenPrincipal checks a bearer token: the admin token, or an API token
// that is neither revoked nor expired.
func (g *gate) tokenPrincipal(ctx context.Context, tok string) (auth.Principal, error) {
	if g.adminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(g.adminToken)) == 1 {
		return auth.Principal{Name: "admin", Kind: auth.KindToken, Role: auth.Admin}, nil
	}
	if g.access == nil || !strings.HasPrefix(tok, auth.TokenPrefix) {
		return auth.Principal{}, errors.New("wrong API token")
	}
	// Looked up by its SHA-256: the store never holds the token, and the
	// lookup's timing tells nothing about the token itself.
	t, err := g.access.TokenByHash(ctx, auth.HashSecret(tok))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			g.log.Error("read token", "err", err)
		}
		return auth.Principal{}, errors.New("wrong or revoked API token")
	}
	now := g.now()
	if t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
		return auth.Principal{}, fmt.Errorf("API token %q expired at %s", t.Name, t.ExpiresAt.Format(time.RFC3339))
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute {
		if err := g.access.TouchToken(ctx, t.Name, now); err != nil {
			g.log.Warn("touch token", "err", err)
		}
	}
	return auth.Principal{Name: t.Name, Kind: auth.KindToken, Role: auth.Role(t.Role)}, nil
}

func (g *gate) unauthorized(w http.ResponseWriter, r *http.Request, why string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="redis-manager"`)
	// Answer before any body is read, and close: otherwise the server
	// would wait for a body the client may never send.
	w.Header().Set("Connection", "close")
	msg := "missing or wrong API token: send Authorization: Bearer <token> (the admin token is in <data-dir>/admin.token), or sign in"
	if why != "no credentials" && why != "" {
		msg = why
	}
	writeJSON(w, http.StatusUnauthorized, api.ErrorBody{Error: api.ErrorDetail{Code: "unauthorized", Message: msg}})
}

// audit writes the request's entry. It runs after the answer, on a context
// of its own: a client that hangs up does not erase its trace.
func (g *gate) audit(r *http.Request, rec *statusWriter, n *note, p auth.Principal, via string) {
	if g.access == nil {
		g.log.Info("audit", "principal", p.Name, "method", r.Method, "path", r.URL.Path, "status", rec.status, "summary", n.summary)
		return
	}
	e := store.AuditEntry{Remote: r.RemoteAddr, Method: r.Method, Path: r.URL.Path, Status: rec.code(), Summary: n.summary}
	switch {
	case n.principal != nil: // a sign-in: who signed in
		e.Principal, e.Kind = n.principal.Name, n.principal.Kind
	case via != viaNone:
		e.Principal, e.Kind = p.Name, p.Kind
	}
	if len(e.Path) > 1000 {
		e.Path = e.Path[:1000]
	}
	if len(e.Summary) > 500 {
		e.Summary = e.Summary[:500]
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := g.access.AddAudit(ctx, e); err != nil {
		g.log.Error("write audit entry", "err", err, "method", r.Method, "path", r.URL.Path, "principal", e.Principal)
	}
}

// statusWriter remembers the status of the answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// requireBearer is --metrics-auth: GET /metrics needs a valid token, the
// admin token or any API token (the gate found it before).
func requireBearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if viaOf(r) != viaBearer {
			w.Header().Set("WWW-Authenticate", `Bearer realm="redis-manager"`)
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusUnauthorized, api.ErrorBody{Error: api.ErrorDetail{Code: "unauthorized",
				Message: "missing or wrong API token: send Authorization: Bearer <token> (the token is in <data-dir>/admin.token)"}})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Failed sign-ins are limited per remote host: after signInFailures
// failures within signInWindow, sign-ins from that host are refused (429)
// until the oldest of them leaves the window. Each failure already costs
// an argon2id hash; this bounds online guessing from one address to 10 a
// minute per manager. A wrong password and an unknown user count alike.
const (
	signInFailures = 10
	signInWindow   = time.Minute
)

type failureLog struct {
	mu sync.Mutex
	m  map[string][]time.Time
}

// recent returns host's failures within the window (dropping older ones).
func (f *failureLog) recent(host string, now time.Time) []time.Time {
	ts := f.m[host]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= signInWindow {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(f.m, host)
	} else {
		f.m[host] = ts
	}
	return ts
}

// blocked reports whether host has used up its failures, and for how long.
func (f *failureLog) blocked(host string, now time.Time) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := f.recent(host, now)
	if len(ts) < signInFailures {
		return 0, false
	}
	return signInWindow - now.Sub(ts[0]), true
}

func (f *failureLog) add(host string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string][]time.Time{}
	}
	if len(f.m) > 10000 { // bounded memory: forget hosts whose failures are old
		for h := range f.m {
			f.recent(h, now)
		}
	}
	f.m[host] = append(f.recent(host, now), now)
}

func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
