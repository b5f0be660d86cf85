package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/store"
)

// routeRoles is the contract's table (docs/security.md "Roles"): the least
// role that may call each route, written here independently of the
// registrations. Every registered route must have an entry, so a route
// added without one fails TestEveryRouteEnforcesItsRole.
var routeRoles = map[string]auth.Role{
	"GET /api/v1/health":                                     public,
	"POST /api/v1/session":                                   public,
	"GET /api/v1/session":                                    auth.Viewer,
	"DELETE /api/v1/session":                                 auth.Viewer,
	"POST /api/v1/clusters":                                  auth.Operator,
	"GET /api/v1/clusters":                                   auth.Viewer,
	"GET /api/v1/clusters/{name}":                            auth.Viewer,
	"DELETE /api/v1/clusters/{name}":                         auth.Admin,
	"PATCH /api/v1/clusters/{name}":                          auth.Operator,
	"POST /api/v1/clusters/{name}/failover":                  auth.Operator,
	"GET /api/v1/clusters/{name}/events":                     auth.Viewer,
	"GET /api/v1/clusters/{name}/credentials":                auth.Admin,
	"POST /api/v1/clusters/{name}/credentials/rotate":        auth.Admin,
	"POST /api/v1/clusters/{name}/credentials/rotate/finish": auth.Admin,
	"GET /api/v1/jobs":                                       auth.Viewer,
	"GET /api/v1/jobs/{id}":                                  auth.Viewer,
	"POST /api/v1/clusters/{name}/backups":                   auth.Operator,
	"GET /api/v1/clusters/{name}/backups":                    auth.Viewer,
	"GET /api/v1/clusters/{name}/backup-schedule":            auth.Viewer,
	"PUT /api/v1/clusters/{name}/backup-schedule":            auth.Operator,
	"DELETE /api/v1/clusters/{name}/backup-schedule":         auth.Operator,
	"POST /api/v1/backups/import":                            auth.Operator,
	"GET /api/v1/backups/{id}":                               auth.Viewer,
	"DELETE /api/v1/backups/{id}":                            auth.Admin,
	"POST /api/v1/backups/{id}/restore":                      auth.Operator,
	"POST /api/v1/backups/{id}/verify":                       auth.Operator,
	"POST /api/v1/users":                                     auth.Admin,
	"GET /api/v1/users":                                      auth.Admin,
	// Registered for viewers, who may change their own password (see
	// TestUsersAPI); another user's is the admin's.
	"PATCH /api/v1/users/{name}":                 auth.Admin,
	"DELETE /api/v1/users/{name}":                auth.Admin,
	"POST /api/v1/tokens":                        auth.Admin,
	"GET /api/v1/tokens":                         auth.Admin,
	"DELETE /api/v1/tokens/{name}":               auth.Admin,
	"GET /api/v1/audit":                          auth.Admin,
	"GET /api/v1/alerts":                         auth.Viewer,
	"GET /api/v1/clusters/{name}/alert-rules":    auth.Operator,
	"PUT /api/v1/clusters/{name}/alert-rules":    auth.Operator,
	"POST /api/v1/silences":                      auth.Operator,
	"GET /api/v1/silences":                       auth.Viewer,
	"DELETE /api/v1/silences/{id}":               auth.Operator,
	"GET /api/v1/notifications":                  auth.Admin,
	"PUT /api/v1/notifications":                  auth.Admin,
	"GET /api/v1/notifications/deliveries":       auth.Operator,
	"POST /api/v1/notifications/test":            auth.Admin,
	"GET /api/v1/clusters/{name}/autoscaling":    auth.Viewer,
	"PUT /api/v1/clusters/{name}/autoscaling":    auth.Operator,
	"DELETE /api/v1/clusters/{name}/autoscaling": auth.Operator,
	// Unknown endpoints: any principal gets the 404.
	"/api/": auth.Viewer,
}

// principals of the table, each as a bearer token ("" for none).
type caller struct {
	name  string
	token string
	role  auth.Role // "" when refused outright
}

// TestEveryRouteEnforcesItsRole sends every registered route's request as
// no one, a viewer, an operator, an admin, an expired and a revoked token,
// and checks each status: 401 without a valid token, 403 below the route's
// role, and otherwise what the admin token gets (which must be neither).
func TestEveryRouteEnforcesItsRole(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOpts{})
	expired := "rmt_expired-token-secret-0123456789abcdefghijkl"
	past := time.Now().Add(-time.Minute)
	if err := ts.st.CreateToken(t.Context(), store.Token{Name: "old", Hash: auth.HashSecret(expired), Role: "admin", ExpiresAt: &past}); err != nil {
		t.Fatal(err)
	}
	revoked := ts.token(t, "gone", auth.Admin)
	if res := ts.do(t, req{method: "DELETE", path: "/api/v1/tokens/gone", bearer: testAdminToken}); res.status != 204 {
		t.Fatalf("revoke: %d %s", res.status, res.body)
	}
	callers := []caller{
		{"admin token", testAdminToken, auth.Admin},
		{"no auth", "", ""},
		{"viewer", ts.token(t, "v", auth.Viewer), auth.Viewer},
		{"operator", ts.token(t, "o", auth.Operator), auth.Operator},
		{"admin", ts.token(t, "a", auth.Admin), auth.Admin},
		{"expired token", expired, ""},
		{"revoked token", revoked, ""},
		{"wrong token", "rmt_not-a-token", ""},
	}

	registered := map[string]bool{}
	for _, p := range ts.gate.patterns {
		registered[p] = true
		if _, ok := routeRoles[p]; !ok {
			t.Errorf("route %q is registered but has no entry in routeRoles: add its role to the table (and docs/security.md)", p)
		}
		if got, want := ts.gate.roles[p], routeRoles[p]; want != "" && got != want && p != "PATCH /api/v1/users/{name}" {
			t.Errorf("route %q is registered with role %q, the table says %q", p, got, want)
		}
	}
	for p := range routeRoles {
		if !registered[p] {
			t.Errorf("routeRoles has %q, which is not registered", p)
		}
	}
	patterns := append([]string(nil), ts.gate.patterns...)
	sort.Strings(patterns)
	for _, pattern := range patterns {
		need, ok := routeRoles[pattern]
		if !ok {
			continue
		}
		method, path, found := strings.Cut(pattern, " ")
		if !found {
			method, path = "GET", pattern+"v1/no-such-endpoint"
		}
		path = strings.NewReplacer("{name}", "nosuch", "{id}", "nosuch").Replace(path)
		body := ""
		if method == "POST" || method == "PUT" || method == "PATCH" {
			body = "{}"
		}
		var adminStatus int
		for _, c := range callers {
			res := ts.do(t, req{method: method, path: path, body: body, bearer: c.token})
			var want int
			switch {
			case c.name == "admin token":
				adminStatus = res.status
				if res.status == 401 || res.status == 403 || res.status >= 500 {
					t.Errorf("%s as %s: %d %s; the admin token must pass every route", pattern, c.name, res.status, res.body)
				}
				continue
			case need == public:
				want = adminStatus
			case c.role == "":
				want = http.StatusUnauthorized
			case !c.role.Allows(need):
				want = http.StatusForbidden
			default:
				want = adminStatus
			}
			if res.status != want {
				t.Errorf("%s as %s: %d %s, want %d", pattern, c.name, res.status, res.body, want)
				continue
			}
			var e api.ErrorBody
			_ = json.Unmarshal(res.body, &e)
			if want == 401 && e.Error.Code != "unauthorized" || want == 403 && e.Error.Code != "forbidden" {
				t.Errorf("%s as %s: body %s, want code %s", pattern, c.name, res.body, map[int]string{401: "unauthorized", 403: "forbidden"}[want])
			}
		}
	}
	if t.Failed() {
		return
	}
	// The table above ran; it must have exercised every role.
	t.Logf("%d routes × %d callers", len(patterns), len(callers))
}

// TestAuditEveryMutatingCall: each mutating call and credentials read
// leaves one entry with its principal, method, path and status, and none
// holds a secret.
func TestAuditEveryMutatingCall(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOpts{})
	ts.addUser(t, "ana", "ana-password-1", auth.Admin)
	op := ts.token(t, "ops", auth.Operator)
	viewer := ts.token(t, "look", auth.Viewer)
	c, s := ts.signIn(t, "ana", "ana-password-1")
	secrets := []string{testAdminToken, op, viewer, c.Value, s.CSRFToken, "ana-password-1", "bo-password-1", "bo-password-2", "wrong-password-9", "webhook-secret-7"}

	type call struct {
		req
		principal, kind string
		status          int
	}
	calls := []call{
		{req{method: "POST", path: "/api/v1/users", bearer: testAdminToken, body: `{"name":"bo","password":"bo-password-1","role":"viewer"}`}, "admin", "token", 201},
		{req{method: "PATCH", path: "/api/v1/users/bo", cookie: c, csrf: s.CSRFToken, body: `{"password":"bo-password-2"}`}, "ana", "user", 200},
		{req{method: "POST", path: "/api/v1/session", body: `{"name":"bo","password":"wrong-password-9"}`}, "", "", 401},
		{req{method: "POST", path: "/api/v1/session", body: `{"name":"bo","password":"bo-password-2"}`}, "bo", "user", 200},
		{req{method: "POST", path: "/api/v1/clusters", bearer: viewer, body: `{"name":"orders"}`}, "look", "token", 403},
		{req{method: "POST", path: "/api/v1/clusters/orders/failover", bearer: op, body: `{}`}, "ops", "token", 404},
		{req{method: "DELETE", path: "/api/v1/clusters/orders"}, "", "", 401},
		{req{method: "POST", path: "/api/v1/tokens", cookie: c, body: `{"name":"x","role":"viewer"}`}, "ana", "user", 403},
		{req{method: "GET", path: "/api/v1/clusters/orders/credentials", bearer: testAdminToken}, "admin", "token", 404},
		{req{method: "POST", path: "/api/v1/tokens", bearer: testAdminToken, body: `{"name":"tmp","role":"admin","expiresInDays":1}`}, "admin", "token", 201},
		{req{method: "DELETE", path: "/api/v1/tokens/tmp", bearer: testAdminToken}, "admin", "token", 204},
		{req{method: "DELETE", path: "/api/v1/users/bo", cookie: c, csrf: s.CSRFToken}, "ana", "user", 204},
		{req{method: "PUT", path: "/api/v1/notifications", bearer: testAdminToken, body: `{"webhooks":[{"name":"ops","url":"https://hooks.example/x","secret":"webhook-secret-7","format":"json"}]}`}, "admin", "token", 200},
		{req{method: "PUT", path: "/api/v1/notifications", bearer: op, body: `{"webhooks":[]}`}, "ops", "token", 403},
		{req{method: "POST", path: "/api/v1/silences", bearer: op, body: `{"durationMs":60000,"comment":"maintenance"}`}, "ops", "token", 201},
		{req{method: "PUT", path: "/api/v1/clusters/orders/alert-rules", bearer: op, body: `{"memory-high":{"threshold":101}}`}, "ops", "token", 400},
		{req{method: "DELETE", path: "/api/v1/session", cookie: c, csrf: s.CSRFToken}, "ana", "user", 204},
	}
	before, _ := ts.st.ListAudit(t.Context(), 0)
	for _, k := range calls {
		res := ts.do(t, k.req)
		if res.status != k.status {
			t.Fatalf("%s %s: %d %s, want %d", k.method, k.path, res.status, res.body, k.status)
		}
		if k.path == "/api/v1/tokens" && res.status == 201 {
			var tok api.Token
			_ = json.Unmarshal(res.body, &tok)
			secrets = append(secrets, tok.Token)
		}
	}
	// Reads other than credentials are not audited.
	ts.do(t, req{method: "GET", path: "/api/v1/clusters", bearer: viewer})
	ts.do(t, req{method: "GET", path: "/api/v1/users", bearer: testAdminToken})

	all, err := ts.st.ListAudit(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	got := all[:len(all)-len(before)]
	if len(got) != len(calls) {
		for _, e := range got {
			t.Logf("%+v", e)
		}
		t.Fatalf("%d audit entries for %d audited calls", len(got), len(calls))
	}
	for i, k := range calls {
		e := got[len(got)-1-i] // newest first
		if e.Method != k.method || e.Path != k.path || e.Status != k.status || e.Principal != k.principal || e.Kind != k.kind ||
			!strings.HasPrefix(e.Remote, "127.0.0.1:") || e.Summary == "" || time.Since(e.At) > time.Minute {
			t.Errorf("entry %d: %+v, want %s %s %d by %s %q", i, e, k.method, k.path, k.status, k.kind, k.principal)
		}
		line := fmt.Sprintf("%+v", e)
		for _, sec := range secrets {
			if sec != "" && strings.Contains(line, sec) {
				t.Errorf("entry %d holds a secret: %s", i, line)
			}
		}
	}
	// The API serves them newest first, to admins only.
	res := ts.do(t, req{method: "GET", path: "/api/v1/audit?limit=3", bearer: testAdminToken})
	var out struct{ Entries []api.AuditEntry }
	if err := json.Unmarshal(res.body, &out); err != nil || res.status != 200 || len(out.Entries) != 3 || out.Entries[0].Path != "/api/v1/session" || out.Entries[0].Method != "DELETE" {
		t.Fatalf("GET audit: %d %s", res.status, res.body)
	}
	if res := ts.do(t, req{method: "GET", path: "/api/v1/audit?limit=0", bearer: testAdminToken}); res.status != 400 {
		t.Fatalf("limit=0: %d", res.status)
	}
}

// TestRouteWithoutRoleRefused: an /api/ endpoint put on the mux without a
// role is served to no one.
func TestRouteWithoutRoleRefused(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOpts{})
	ts.gate.mux.HandleFunc("GET /api/v1/sneaky", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("secret")) })
	for _, tok := range []string{"", testAdminToken} {
		if res := ts.do(t, req{method: "GET", path: "/api/v1/sneaky", bearer: tok}); res.status != 500 || strings.Contains(string(res.body), "secret") {
			t.Fatalf("route without a role, token %q: %d %s, want 500", tok, res.status, res.body)
		}
	}
}
