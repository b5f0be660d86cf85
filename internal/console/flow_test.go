package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/console"
	"github.com/redis-manager/redis-manager/internal/server"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/stream"
	"github.com/redis-manager/redis-manager/internal/timeseries"
)

// flowServer is the whole HTTP stack as serve builds it: the API with
// its gate (sessions, CSRF, roles, audit), the series and the stream, and
// the console, over the fixture's service and SQLite store.
func flowServer(t testing.TB, f *fixture) *httptest.Server {
	t.Helper()
	access, ok := f.st.(store.Access)
	if !ok {
		t.Fatal("the SQLite store keeps no users")
	}
	log := slog.New(slog.DiscardHandler)
	hub := stream.New(f.svc, log)
	t.Cleanup(hub.Close)
	web := console.New(console.Config{Service: f.svc, Access: console.StoreAccess(access), Version: "test", Log: log})
	h := server.Handler(server.HandlerConfig{Service: f.svc, Leadership: noLeader{}, Token: testToken, Version: "test", Access: access,
		Console: web, Series: timeseries.New(), Stream: hub, Log: log})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for _, u := range []struct {
		name string
		role auth.Role
	}{{"vera", auth.Viewer}, {"otto", auth.Operator}, {"ada", auth.Admin}} {
		hash, err := auth.HashPassword("pw-"+u.name, auth.Params{MemoryKiB: 64, Time: 1, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := access.CreateUser(context.Background(), store.User{Name: u.name, PasswordHash: hash, Role: string(u.role), CreatedAt: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

type session struct {
	cookie *http.Cookie
	csrf   string
}

func signIn(t testing.TB, srv *httptest.Server, name string) session {
	t.Helper()
	res, err := http.Post(srv.URL+"/api/v1/session", "application/json", strings.NewReader(`{"name":"`+name+`","password":"pw-`+name+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		CSRFToken string `json:"csrfToken"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != 200 {
		t.Fatalf("sign in %s: %d %v", name, res.StatusCode, err)
	}
	for _, c := range res.Cookies() {
		if c.Name == auth.SessionCookie {
			return session{cookie: c, csrf: body.CSRFToken}
		}
	}
	t.Fatalf("sign in %s: no session cookie", name)
	return session{}
}

func (s session) do(t *testing.T, srv *httptest.Server, method, path, body string, csrf bool) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, _ := http.NewRequest(method, srv.URL+path, rd)
	if s.cookie != nil {
		r.AddCookie(s.cookie)
	}
	if csrf {
		r.Header.Set(auth.CSRFHeader, s.csrf)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noRedirect.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// The console behind the real gate: signed out it sends to the sign-in
// page; a session's pages carry its CSRF token, which the API then
// requires for the console's actions; each role finds its actions and the
// API refuses the others'.
func TestConsoleWithRealSessions(t *testing.T) {
	f := newFixture(t)
	f.addCluster(t, "orders", api.PhaseReady, 1, 1)
	f.addHistory(t, "orders")
	// The create job is done (no controller runs here).
	js, err := f.st.ListJobs(context.Background(), "orders")
	if err != nil || len(js) != 1 {
		t.Fatalf("jobs: %v %v", js, err)
	}
	js[0].State = api.StateSucceeded
	if err := f.st.UpdateJob(context.Background(), js[0]); err != nil {
		t.Fatal(err)
	}
	srv := flowServer(t, f)

	res, _ := session{}.do(t, srv, "GET", "/clusters/orders", "", false)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/sign-in?next=%2Fclusters%2Forders" {
		t.Fatalf("signed out: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res, body := (session{}).do(t, srv, "GET", "/sign-in", "", false); res.StatusCode != 200 || !strings.Contains(body, `data-page="sign-in"`) {
		t.Fatalf("sign-in page through the gate: %d", res.StatusCode)
	}

	vera, otto, ada := signIn(t, srv, "vera"), signIn(t, srv, "otto"), signIn(t, srv, "ada")
	for _, c := range []struct {
		s    session
		role string
	}{{vera, "viewer"}, {otto, "operator"}, {ada, "admin"}} {
		res, body := c.s.do(t, srv, "GET", "/clusters/orders", "", false)
		if res.StatusCode != 200 || !strings.Contains(body, `<meta name="csrf-token" content="`+c.s.csrf+`">`) {
			t.Fatalf("%s: cluster page %d without the session's CSRF token", c.role, res.StatusCode)
		}
		if !strings.Contains(body, `<span class="role">`+c.role+`</span>`) {
			t.Errorf("%s: the page does not show the role", c.role)
		}
	}
	_, body := vera.do(t, srv, "GET", "/clusters/orders", "", false)
	if a := actionsOf(body); len(a) != 1 || !a["sign-out"] {
		t.Errorf("viewer's actions: %v", a)
	}
	// What the viewer is not offered, the API refuses the viewer too.
	if res, _ := vera.do(t, srv, "POST", "/api/v1/clusters/orders/backups", "{}", true); res.StatusCode != http.StatusForbidden {
		t.Errorf("viewer backup: %d, want 403", res.StatusCode)
	}
	// The operator's backup button works as the page's script calls it:
	// with the CSRF token; without it the API refuses.
	if res, _ := otto.do(t, srv, "POST", "/api/v1/clusters/orders/backups", "{}", false); res.StatusCode != http.StatusForbidden {
		t.Errorf("backup without CSRF token: %d, want 403", res.StatusCode)
	}
	if res, b := otto.do(t, srv, "POST", "/api/v1/clusters/orders/backups", "{}", true); res.StatusCode != http.StatusAccepted {
		t.Errorf("operator backup: %d %s", res.StatusCode, b)
	}
	// The audit page shows that call, by its user.
	res, body = ada.do(t, srv, "GET", "/audit", "", false)
	if res.StatusCode != 200 || !strings.Contains(body, "otto") || !strings.Contains(body, "/api/v1/clusters/orders/backups") {
		t.Errorf("audit page: %d\n%s", res.StatusCode, body)
	}
	// The users page lists the store's users, never a hash.
	_, body = ada.do(t, srv, "GET", "/users", "", false)
	for _, u := range []string{"vera", "otto", "ada"} {
		if !strings.Contains(body, `data-user="`+u+`"`) {
			t.Errorf("users page lacks %s", u)
		}
	}
	if strings.Contains(body, "argon2id") {
		t.Error("users page shows a password hash")
	}
	if res, _ := otto.do(t, srv, "GET", "/users", "", false); res.StatusCode != http.StatusForbidden {
		t.Errorf("operator on /users: %d", res.StatusCode)
	}

	// A viewer's page opens the stream with its session: it answers.
	r, _ := http.NewRequest("GET", srv.URL+"/api/v1/stream?cluster=orders", nil)
	r.AddCookie(vera.cookie)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sres, err := http.DefaultClient.Do(r.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer sres.Body.Close()
	if sres.StatusCode != 200 || !strings.HasPrefix(sres.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("viewer's stream: %d %q", sres.StatusCode, sres.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(sres.Body)
	sawCluster := false
	for sc.Scan() {
		if sc.Text() == "event: cluster" {
			sawCluster = true
			break
		}
	}
	if !sawCluster {
		t.Error("the stream sent no cluster at connect")
	}
	cancel()

	// Signing out ends the session: the console sends to the sign-in page.
	if res, _ := vera.do(t, srv, "DELETE", "/api/v1/session", "", true); res.StatusCode != http.StatusNoContent {
		t.Errorf("sign out: %d", res.StatusCode)
	}
	if res, _ := vera.do(t, srv, "GET", "/", "", false); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign-out: %d, want 303", res.StatusCode)
	}
}
