package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/alerts"
	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/controller"
	"github.com/redis-manager/redis-manager/internal/leader"
	"github.com/redis-manager/redis-manager/internal/platform/fake"
	"github.com/redis-manager/redis-manager/internal/service"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/store/storetest"
)

// These tests serve the real handler (httptest) over a real SQLite store
// and the real service, on the in-memory platform; no controller runs, so
// no job ever starts.

const testAdminToken = "admin-token-0123456789abcdef0123456789abcdef"

// cheap are argon2id parameters for users the tests put in the store
// directly; hashes say their parameters, so they check as any other.
var cheap = auth.Params{MemoryKiB: 64, Time: 1, Threads: 1}

type testServer struct {
	*httptest.Server
	st   store.Store
	gate *gate
}

type serverOpts struct {
	idle time.Duration
	tls  bool
}

func newTestServer(t *testing.T, o serverOpts) *testServer {
	t.Helper()
	dir := t.TempDir()
	st := storetest.SQLite(t, dir)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	plat := fake.New(fake.Options{})
	el := leader.New(leader.Config{ID: "test", Exclusive: true}, st, log)
	ctl := controller.New(controller.Config{BackupTarget: "file://" + filepath.Join(dir, "backups"), ScratchDir: filepath.Join(dir, "tmp"), Leader: el}, st, plat, log)
	svc := service.New(service.Config{BackupTarget: "file://" + filepath.Join(dir, "backups")}, st, plat, ctl, ctl, log)
	h, g := newHandler(HandlerConfig{Service: svc, Leadership: el, Token: testAdminToken, Version: "test", Access: st,
		SessionIdleTimeout: o.idle, Metrics: http.NotFoundHandler(), Log: log,
		Alerts: st, Notifier: alerts.NewNotifier(alerts.NotifierConfig{}, st, log), Autoscaling: st})
	ts := &testServer{st: st, gate: g}
	if o.tls {
		ts.Server = httptest.NewTLSServer(h)
	} else {
		ts.Server = httptest.NewServer(h)
	}
	t.Cleanup(ts.Close)
	return ts
}

// addUser puts a user in the store with a cheap hash.
func (ts *testServer) addUser(t *testing.T, name, password string, role auth.Role) {
	t.Helper()
	h, err := auth.HashPassword(password, cheap)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.st.CreateUser(t.Context(), store.User{Name: name, PasswordHash: h, Role: string(role)}); err != nil {
		t.Fatal(err)
	}
}

// req is one request; cookie and csrf make it a session request.
type req struct {
	method, path, body string
	bearer             string
	cookie             *http.Cookie
	csrf, origin       string
}

type resp struct {
	status  int
	body    []byte
	cookies []*http.Cookie
	header  http.Header
}

func (r resp) errCode() string {
	var e api.ErrorBody
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (ts *testServer) do(t *testing.T, q req) resp {
	t.Helper()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	r, err := http.NewRequestWithContext(t.Context(), q.method, ts.URL+q.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if q.bearer != "" {
		r.Header.Set("Authorization", "Bearer "+q.bearer)
	}
	if q.cookie != nil {
		r.AddCookie(q.cookie)
	}
	if q.csrf != "" {
		r.Header.Set(auth.CSRFHeader, q.csrf)
	}
	if q.origin != "" {
		r.Header.Set("Origin", q.origin)
	}
	res, err := ts.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: b, cookies: res.Cookies(), header: res.Header}
}

// token makes an API token with the admin token and returns its secret.
func (ts *testServer) token(t *testing.T, name string, role auth.Role) string {
	t.Helper()
	res := ts.do(t, req{method: "POST", path: "/api/v1/tokens", bearer: testAdminToken, body: `{"name":"` + name + `","role":"` + string(role) + `"}`})
	if res.status != 201 {
		t.Fatalf("create token %s: %d %s", name, res.status, res.body)
	}
	var tok api.Token
	if err := json.Unmarshal(res.body, &tok); err != nil || !strings.HasPrefix(tok.Token, auth.TokenPrefix) || len(tok.Token) < len(auth.TokenPrefix)+43 {
		t.Fatalf("create token %s: %s %v", name, res.body, err)
	}
	return tok.Token
}

// signIn signs in and returns the session cookie and CSRF token.
func (ts *testServer) signIn(t *testing.T, name, password string) (*http.Cookie, api.Session) {
	t.Helper()
	res := ts.do(t, req{method: "POST", path: "/api/v1/session", body: `{"name":"` + name + `","password":"` + password + `"}`})
	if res.status != 200 {
		t.Fatalf("sign in %s: %d %s", name, res.status, res.body)
	}
	var s api.Session
	if err := json.Unmarshal(res.body, &s); err != nil {
		t.Fatal(err)
	}
	for _, c := range res.cookies {
		if c.Name == auth.SessionCookie {
			return c, s
		}
	}
	t.Fatalf("sign in %s: no %s cookie in %v", name, auth.SessionCookie, res.header["Set-Cookie"])
	return nil, s
}

func TestSignInAndSession(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOpts{})
	ts.addUser(t, "ana", "ana-password-1", auth.Operator)

	c, s := ts.signIn(t, "ana", "ana-password-1")
	if s.Principal != (api.Principal{Name: "ana", Kind: "user", Role: "operator"}) || len(s.CSRFToken) < 40 || s.IdleTimeoutMs != DefaultSessionIdleTimeout.Milliseconds() {
		t.Fatalf("sign-in answer: %+v", s)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/" || len(c.Value) < 40 {
		t.Fatalf("session cookie over plain HTTP: %+v (want HttpOnly, SameSite=Strict, Path=/, not Secure)", c)
	}
	// The store keeps the id's hash, never the id.
	if _, err := ts.st.GetSession(t.Context(), auth.HashSecret(c.Value)); err != nil {
		t.Fatalf("session not stored under the hash of its id: %v", err)
	}
	if _, err := ts.st.GetSession(t.Context(), c.Value); err == nil {
		t.Fatal("the session is stored under its plain id")
	}
	got := ts.do(t, req{method: "GET", path: "/api/v1/session", cookie: c})
	var s2 api.Session
	_ = json.Unmarshal(got.body, &s2)
	if got.status != 200 || s2 != s {
		t.Fatalf("GET session: %d %s, want %+v", got.status, got.body, s)
	}
	if res := ts.do(t, req{method: "GET", path: "/api/v1/clusters", cookie: c}); res.status != 200 {
		t.Fatalf("GET clusters with the session: %d %s", res.status, res.body)
	}
	// The console's paths get the principal, never a 401.
	ts.gate.mux.HandleFunc("GET /whoami-test", func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.FromContext(r.Context())
		_, _ = w.Write([]byte(p.Name + "/" + p.Kind + "/" + string(p.Role) + "/" + map[bool]string{true: "yes", false: "no"}[ok && p.CSRF == s.CSRFToken]))
	})
	if res := ts.do(t, req{method: "GET", path: "/whoami-test", cookie: c}); res.status != 200 || string(res.body) != "ana/user/operator/yes" {
		t.Fatalf("console path with the session: %d %q", res.status, res.body)
	}
	if res := ts.do(t, req{method: "GET", path: "/whoami-test", bearer: "wrong"}); res.status != 200 || string(res.body) != "///no" {
		t.Fatalf("console path with a wrong token: %d %q", res.status, res.body)
	}

	// Sign-out ends the session in the store and clears the cookie.
	out := ts.do(t, req{method: "DELETE", path: "/api/v1/session", cookie: c, csrf: s.CSRFToken})
	if out.status != 204 {
		t.Fatalf("sign out: %d %s", out.status, out.body)
	}
	cleared := false
	for _, k := range out.cookies {
		cleared = cleared || (k.Name == auth.SessionCookie && k.Value == "" && k.MaxAge < 0)
	}
	if !cleared {
		t.Fatalf("sign-out did not clear the cookie: %v", out.header["Set-Cookie"])
	}
	if _, err := ts.st.GetSession(t.Context(), auth.HashSecret(c.Value)); err == nil {
		t.Fatal("the session is still in the store after sign-out")
	}
	if res := ts.do(t, req{method: "GET", path: "/api/v1/clusters", cookie: c}); res.status != 401 || res.errCode() != "unauthorized" {
		t.Fatalf("the old cookie after sign-out: %d %s, want 401", res.status, res.body)
	}
	if res := ts.do(t, req{method: "GET", path: "/whoami-test", cookie: c}); string(res.body) != "///no" {
		t.Fatalf("console path with an ended session: %q", res.body)
	}
}

func TestSecureCookieUnderTLS(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOpts{tls: true})
	ts.addUser(t, "ana", "ana-password-1", auth.Viewer)
	c, _ := ts.signIn(t, "ana", "ana-password-1")
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie under TLS: %+v, want Secure, HttpOnly, SameSite=Strict", c)
	}
}

func TestWrongPasswordAndUnknownUserLookAlike(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOpts{})
	ts.addUser(t, "ana", "ana-password-1", auth.Viewer)
	wrong := ts.do(t, req{method: "POST", path: "/api/v1/session", body: `{"name":"ana","password":"not-her-password"}`})
	unknown := ts.do(t, req{method: "POST", path: "/api/v1/session", body: `{"name":"nobody","password":"not-her-password"}`})
	if wrong.status != 401 || unknown.status != 401 || !bytes.Equal(wrong.body, unknown.body) {
		t.Fatalf("wrong password: %d %s; unknown user: %d %s; want the same 401", wrong.status, wrong.body, unknown.status, unknown.body)
	}
	var e api.ErrorBody
	if err := json.Unmarshal(wrong.body, &e); err != nil || e.Error.Code != "unauthorized" || e.Error.Message != "wrong user name or password" {
		t.Fatalf("sign-in failure body: %s", wrong.body)
	}
	for _, res := range []resp{wrong, unknown} {
		if len(res.cookies) != 0 {
			t.Fatalf("a failed sign-in set cookies: %v", res.header["Set-Cookie"])
		}
	}
	// A token sign-in: wrong token refused, right one makes a session.
	if res := ts.do(t, req{method: "POST", path: "/api/v1/session", body: `{"token":"rmt_nope"}`}); res.status != 401 {
		t.Fatalf("sign-in with a wrong token: %d", res.status)
	}
	tok := ts.token(t, "ci", auth.Operator)
	res := ts.do(t, req{method: "POST", path: "/api/v1/session", body: `{"token":"` + tok + `"}`})
	var s api.Session
	_ = json.Unmarshal(res.body, &s)
	if res.status != 200 || s.Principal != (api.Principal{Name: "ci", Kind: "token", Role: "operator"}) || s.CSRFToken == "" {
		t.Fatalf("sign-in with a token: %d %s", res.status, res.body)
	}
}

func TestIdleTimeoutEndsSession(t *testing.T) {
	t.Parallel()
	const idle = time.Second
	ts := newTestServer(t, serverOpts{idle: idle})
	ts.addUser(t, "ana", "ana-password-1", auth.Viewer)
	c, s := ts.signIn(t, "ana", "ana-password-1")
	if s.IdleTimeoutMs != idle.Milliseconds() {
		t.Fatalf("idleTimeoutMs %d, want %d", s.IdleTimeoutMs, idle.Milliseconds())
	}
	// Activity keeps it alive past the timeout...
	for range 6 {
		time.Sleep(idle / 3)
		if res := ts.do(t, req{method: "GET", path: "/api/v1/session", cookie: c}); res.status != 200 {
			t.Fatalf("an active session ended: %d %s", res.status, res.body)
		}
	}
	// ...and idleness ends it.
	time.Sleep(idle + idle/2)
	if res := ts.do(t, req{method: "GET", path: "/api/v1/session", cookie: c}); res.status != 401 {
		t.Fatalf("after %s idle: %d %s, want 401", idle+idle/2, res.status, res.body)
	}
	if _, err := ts.st.GetSession(t.Context(), auth.HashSecret(c.Value)); err == nil {
		t.Fatal("the idle session is still in the store")
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOpts{})
	ts.addUser(t, "root", "root-password-1", auth.Admin)
	c, s := ts.signIn(t, "root", "root-password-1")
	body := `{"name":"t1","role":"viewer"}`
	if res := ts.do(t, req{method: "POST", path: "/api/v1/tokens", cookie: c, body: body}); res.status != 403 || res.errCode() != "csrf" {
		t.Fatalf("cookie POST without the CSRF header: %d %s, want 403 csrf", res.status, res.body)
	}
	if res := ts.do(t, req{method: "POST", path: "/api/v1/tokens", cookie: c, body: body, csrf: "forged"}); res.status != 403 || res.errCode() != "csrf" {
		t.Fatalf("cookie POST with a wrong CSRF token: %d %s, want 403 csrf", res.status, res.body)
	}
	if res := ts.do(t, req{method: "POST", path: "/api/v1/tokens", cookie: c, body: body, csrf: s.CSRFToken, origin: "https://evil.example"}); res.status != 403 || res.errCode() != "csrf" {
		t.Fatalf("cookie POST from a foreign origin: %d %s, want 403 csrf", res.status, res.body)
	}
	if ts, err := ts.st.ListTokens(t.Context()); err != nil || len(ts) != 0 {
		t.Fatalf("a refused request made a token: %+v %v", ts, err)
	}
	if res := ts.do(t, req{method: "POST", path: "/api/v1/tokens", cookie: c, body: body, csrf: s.CSRFToken}); res.status != 201 {
		t.Fatalf("cookie POST with the CSRF header: %d %s, want 201", res.status, res.body)
	}
	if res := ts.do(t, req{method: "DELETE", path: "/api/v1/tokens/t1", cookie: c, csrf: s.CSRFToken, origin: ts.URL}); res.status != 204 {
		t.Fatalf("cookie DELETE with the CSRF header from our own origin: %d %s, want 204", res.status, res.body)
	}
	// Reads need no CSRF token; bearer requests need none either.
	if res := ts.do(t, req{method: "GET", path: "/api/v1/tokens", cookie: c}); res.status != 200 {
		t.Fatalf("cookie GET: %d", res.status)
	}
	if res := ts.do(t, req{method: "POST", path: "/api/v1/tokens", bearer: testAdminToken, body: `{"name":"t2","role":"viewer"}`, origin: "https://evil.example"}); res.status != 201 {
		t.Fatalf("bearer POST: %d %s", res.status, res.body)
	}
	// A forged cross-site sign-in is refused too.
	if res := ts.do(t, req{method: "POST", path: "/api/v1/session", body: `{"name":"root","password":"root-password-1"}`, origin: "https://evil.example"}); res.status != 403 {
		t.Fatalf("sign-in from a foreign origin: %d %s, want 403", res.status, res.body)
	}
}

func TestFirstAdmin(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOpts{})
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := firstAdmin(t.Context(), ts.st, dir, "", "", log); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.password")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	pw := strings.TrimSpace(string(b))
	if len(pw) < 20 {
		t.Fatalf("first admin password %d characters long", len(pw))
	}
	_, s := ts.signIn(t, "admin", pw)
	if s.Principal != (api.Principal{Name: "admin", Kind: "user", Role: "admin"}) {
		t.Fatalf("first admin signs in as %+v", s.Principal)
	}
	// A second start leaves the user and its password alone.
	if err := firstAdmin(t.Context(), ts.st, t.TempDir(), "other", "", log); err != nil {
		t.Fatal(err)
	}
	if us, _ := ts.st.ListUsers(t.Context()); len(us) != 1 || us[0].Name != "admin" {
		t.Fatalf("users after a second start: %+v", us)
	}
	ts.signIn(t, "admin", pw)

	// Two managers sharing a data dir and a store start at once: one
	// admin, whose password is the file's, and no other file left.
	ts3 := newTestServer(t, serverOpts{})
	shared := t.TempDir()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := firstAdmin(t.Context(), ts3.st, shared, "", "", log); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ents, _ := os.ReadDir(shared); len(ents) != 1 || ents[0].Name() != "admin.password" {
		t.Fatalf("data dir after two first starts: %v", ents)
	}
	b, _ = os.ReadFile(filepath.Join(shared, "admin.password"))
	ts3.signIn(t, "admin", strings.TrimSpace(string(b)))

	// --admin-user and --admin-password-file choose them on an empty store.
	ts2 := newTestServer(t, serverOpts{})
	pwFile := filepath.Join(dir, "chosen")
	if err := os.WriteFile(pwFile, []byte("chosen-password-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir2 := t.TempDir()
	if err := firstAdmin(t.Context(), ts2.st, dir2, "boss", pwFile, log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "admin.password")); err == nil {
		t.Fatal("admin.password written although --admin-password-file was given")
	}
	ts2.signIn(t, "boss", "chosen-password-1")
	if err := os.WriteFile(pwFile, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := firstAdmin(t.Context(), newTestServer(t, serverOpts{}).st, t.TempDir(), "boss", pwFile, log); err == nil {
		t.Fatal("a 5-character admin password was accepted")
	}
}

func TestUsersAPI(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOpts{})
	admin := func(method, path, body string) resp {
		return ts.do(t, req{method: method, path: path, body: body, bearer: testAdminToken})
	}
	res := admin("POST", "/api/v1/users", `{"name":"ana","password":"ana-password-1","role":"operator"}`)
	var u api.User
	_ = json.Unmarshal(res.body, &u)
	if res.status != 201 || u.Name != "ana" || u.Role != "operator" || u.CreatedAt.IsZero() || strings.Contains(string(res.body), "argon2") {
		t.Fatalf("create user: %d %s", res.status, res.body)
	}
	stored, _ := ts.st.GetUser(t.Context(), "ana")
	if !strings.HasPrefix(stored.PasswordHash, "$argon2id$v=19$m=65536,t=3,p=2$") || strings.Contains(stored.PasswordHash, "ana-password-1") {
		t.Fatalf("stored hash %q", stored.PasswordHash)
	}
	for _, bad := range []struct{ body, field string }{
		{`{"name":"bo","password":"short","role":"viewer"}`, "password"},
		{`{"name":"bo","password":"long-enough-1","role":"root"}`, "role"},
		{`{"name":"b o","password":"long-enough-1","role":"viewer"}`, "name"},
		{`{"name":"bo","password":"long-enough-1","role":"viewer","extra":1}`, "extra"},
	} {
		res := admin("POST", "/api/v1/users", bad.body)
		var e api.ErrorBody
		_ = json.Unmarshal(res.body, &e)
		if res.status != 400 || e.Error.Field != bad.field {
			t.Errorf("create user %s: %d %s, want 400 on field %s", bad.body, res.status, res.body, bad.field)
		}
	}
	if res := admin("POST", "/api/v1/users", `{"name":"ana","password":"ana-password-2","role":"viewer"}`); res.status != 409 {
		t.Fatalf("duplicate user: %d", res.status)
	}
	res = admin("GET", "/api/v1/users", "")
	if res.status != 200 || !strings.Contains(string(res.body), `"name": "ana"`) || strings.Contains(string(res.body), "argon2") {
		t.Fatalf("list users: %d %s", res.status, res.body)
	}
	// A user changes their own password, not their role nor another's.
	c, s := ts.signIn(t, "ana", "ana-password-1")
	self := func(method, path, body string) resp {
		return ts.do(t, req{method: method, path: path, body: body, cookie: c, csrf: s.CSRFToken})
	}
	other, _ := ts.signIn(t, "ana", "ana-password-1") // e.g. on another machine
	// Her own password needs her current one: a session alone is not enough.
	if res := self("PATCH", "/api/v1/users/ana", `{"password":"ana-password-2"}`); res.status != 400 || !strings.Contains(string(res.body), `"field": "currentPassword"`) {
		t.Fatalf("own password change without the current one: %d %s, want 400 on currentPassword", res.status, res.body)
	}
	if res := self("PATCH", "/api/v1/users/ana", `{"password":"ana-password-2","currentPassword":"not-her-password"}`); res.status != 403 {
		t.Fatalf("own password change with a wrong current one: %d %s, want 403", res.status, res.body)
	}
	if res := self("GET", "/api/v1/session", ""); res.status != 200 {
		t.Fatalf("ana's session after refused changes: %d", res.status)
	}
	if res := self("PATCH", "/api/v1/users/ana", `{"password":"ana-password-2","currentPassword":"ana-password-1"}`); res.status != 200 {
		t.Fatalf("own password change: %d %s", res.status, res.body)
	}
	// The change ends her other sessions, not the one that made it.
	if res := ts.do(t, req{method: "GET", path: "/api/v1/session", cookie: other}); res.status != 401 {
		t.Fatalf("another session of ana after her password change: %d, want 401", res.status)
	}
	if res := self("GET", "/api/v1/session", ""); res.status != 200 {
		t.Fatalf("the session that changed the password: %d, want 200", res.status)
	}
	if res := self("PATCH", "/api/v1/users/ana", `{"role":"admin"}`); res.status != 403 {
		t.Fatalf("own role change: %d %s, want 403", res.status, res.body)
	}
	admin("POST", "/api/v1/users", `{"name":"bo","password":"bo-password-1","role":"viewer"}`)
	if res := self("PATCH", "/api/v1/users/bo", `{"password":"hijacked-pw-1"}`); res.status != 403 {
		t.Fatalf("another's password change by an operator: %d %s, want 403", res.status, res.body)
	}
	if res := signInStatus(ts, t, "ana", "ana-password-1"); res != 401 {
		t.Fatalf("sign-in with the old password: %d", res)
	}
	ts.signIn(t, "ana", "ana-password-2")
	// An admin's password reset ends all of bo's sessions.
	bo, _ := ts.signIn(t, "bo", "bo-password-1")
	if res := admin("PATCH", "/api/v1/users/bo", `{"password":"bo-password-2"}`); res.status != 200 {
		t.Fatalf("admin sets bo's password: %d %s", res.status, res.body)
	}
	if res := ts.do(t, req{method: "GET", path: "/api/v1/session", cookie: bo}); res.status != 401 {
		t.Fatalf("bo's session after the admin reset his password: %d, want 401", res.status)
	}
	// The admin changes a role; the live session follows at once.
	if res := admin("PATCH", "/api/v1/users/ana", `{"role":"viewer"}`); res.status != 200 {
		t.Fatalf("role change: %d %s", res.status, res.body)
	}
	if res := self("POST", "/api/v1/clusters/x/failover", `{}`); res.status != 403 {
		t.Fatalf("failover by a user demoted to viewer: %d %s, want 403", res.status, res.body)
	}
	if res := admin("DELETE", "/api/v1/users/ana", ""); res.status != 204 {
		t.Fatalf("delete user: %d %s", res.status, res.body)
	}
	if res := self("GET", "/api/v1/clusters", ""); res.status != 401 {
		t.Fatalf("a deleted user's session: %d, want 401", res.status)
	}
	if res := admin("DELETE", "/api/v1/users/ana", ""); res.status != 404 {
		t.Fatalf("delete a deleted user: %d", res.status)
	}
}

// TestSignInCostsOneHashEitherWay: a sign-in with a wrong password and one
// with an unknown user each check the password against exactly one argon2id
// hash of the default parameters (the user's, or the gate's decoy), so
// their time does not tell whether the user exists. (The time itself is
// measured by BenchmarkCheckPassword in internal/auth, not asserted here:
// a timing assertion fails on a loaded machine.)
func TestSignInCostsOneHashEitherWay(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	if res := ts.do(t, req{method: "POST", path: "/api/v1/users", bearer: testAdminToken, body: `{"name":"ana","password":"ana-password-1","role":"viewer"}`}); res.status != 201 {
		t.Fatalf("create user: %d %s", res.status, res.body)
	}
	var mu sync.Mutex
	var hashes []string
	ts.gate.checked = func(h string) { mu.Lock(); hashes = append(hashes, h); mu.Unlock() }
	signIn := func(body string, status int) []auth.Params {
		mu.Lock()
		hashes = nil
		mu.Unlock()
		if res := ts.do(t, req{method: "POST", path: "/api/v1/session", body: body}); res.status != status {
			t.Fatalf("%s: %d, want %d", body, res.status, status)
		}
		mu.Lock()
		defer mu.Unlock()
		var ps []auth.Params
		for _, h := range hashes {
			p, err := auth.ParamsOf(h)
			if err != nil {
				t.Fatalf("%s: checked against an unreadable hash %q", body, h)
			}
			ps = append(ps, p)
		}
		return ps
	}
	for _, c := range []struct {
		body   string
		status int
	}{
		{`{"name":"ana","password":"ana-password-1"}`, 200},
		{`{"name":"ana","password":"not-the-password"}`, 401},
		{`{"name":"nobody","password":"not-the-password"}`, 401},
		{`{"name":"nobody","password":""}`, 401},
	} {
		ps := signIn(c.body, c.status)
		if len(ps) != 1 || ps[0] != auth.DefaultParams {
			t.Errorf("%s: checked against %v, want exactly one hash of %v", c.body, ps, auth.DefaultParams)
		}
	}
	// The decoy matches no password, not even an empty one.
	for _, pw := range []string{"", "not-the-password", "no such user"} {
		if ok, err := auth.CheckPassword(ts.gate.decoyHash, pw); ok || err != nil {
			t.Errorf("the decoy hash matches %q (%v)", pw, err)
		}
	}
}

// TestFailedSignInsLimited: after 10 failed sign-ins within a minute from
// one address, sign-ins from it are refused (429), even with the right
// password, until the window moves on.
func TestFailedSignInsLimited(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOpts{})
	var (
		mu  sync.Mutex
		now = time.Now()
	)
	ts.gate.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ts.addUser(t, "ana", "ana-password-1", auth.Viewer)
	signIn := func(name, pw string) resp {
		return ts.do(t, req{method: "POST", path: "/api/v1/session", body: `{"name":"` + name + `","password":"` + pw + `"}`})
	}
	for i := range 10 {
		name := "ana"
		if i%2 == 1 {
			name = "nobody"
		}
		if res := signIn(name, "guess-number-"+strconv.Itoa(i)); res.status != 401 {
			t.Fatalf("failure %d: %d %s", i, res.status, res.body)
		}
		advance(time.Second)
	}
	for _, pw := range []string{"another-guess", "ana-password-1"} {
		if res := signIn("ana", pw); res.status != 429 || res.errCode() != "too_many_requests" {
			t.Fatalf("sign-in after 10 failures (%s): %d %s, want 429", pw, res.status, res.body)
		}
	}
	// Bearer tokens are not affected.
	if res := ts.do(t, req{method: "GET", path: "/api/v1/session", bearer: testAdminToken}); res.status != 200 {
		t.Fatalf("admin token while sign-ins are blocked: %d", res.status)
	}
	// The first failure (now 10 s old) leaves the window 60 s after it:
	// one more try.
	advance(50 * time.Second)
	if res := signIn("ana", "ana-password-1"); res.status != 200 {
		t.Fatalf("sign-in once the window moved on: %d %s", res.status, res.body)
	}
	if res := signIn("ana", "wrong-again-1"); res.status != 401 {
		t.Fatalf("a failure with 9 in the window: %d", res.status)
	}
	if res := signIn("ana", "ana-password-1"); res.status != 429 {
		t.Fatalf("sign-in with 10 failures in the window again: %d, want 429", res.status)
	}
}

func signInStatus(ts *testServer, t *testing.T, name, password string) int {
	t.Helper()
	return ts.do(t, req{method: "POST", path: "/api/v1/session", body: `{"name":"` + name + `","password":"` + password + `"}`}).status
}
