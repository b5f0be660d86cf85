package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/console"
	"github.com/redis-manager/redis-manager/internal/platform/fake"
	"github.com/redis-manager/redis-manager/internal/service"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/store/storetest"
)

// idle is a job runner that runs nothing: these tests look at pages, no
// controller acts on the jobs the service stores.
type idle struct{}

func (idle) Kick() {}

// fixture is a real service on a real SQLite store, with recorded
// clusters, events, jobs and backups the pages show.
type fixture struct {
	svc   *service.Service
	st    store.Store
	h     http.Handler
	users *memAccess
}

// memAccess is an honest in-memory implementation of console.Access.
type memAccess struct {
	users  []console.User
	tokens []console.Token
	audit  []console.AuditEntry
}

func (m *memAccess) ListUsers(context.Context) ([]console.User, error)   { return m.users, nil }
func (m *memAccess) ListTokens(context.Context) ([]console.Token, error) { return m.tokens, nil }
func (m *memAccess) Audit(_ context.Context, limit int) ([]console.AuditEntry, error) {
	if len(m.audit) > limit {
		return m.audit[:limit], nil
	}
	return m.audit, nil
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	dir := tb.TempDir()
	st := storetest.SQLite(tb, dir)
	svc := service.New(service.Config{BackupTarget: "file://" + filepath.Join(dir, "backups")}, st, fake.New(fake.Options{Limit: 100000}), nil, idle{}, slog.New(slog.DiscardHandler))
	now := time.Now().UTC().Truncate(time.Second)
	acc := &memAccess{
		users:  []console.User{{Name: "admin", Role: auth.Admin, CreatedAt: now}, {Name: "vera", Role: auth.Viewer, CreatedAt: now}},
		tokens: []console.Token{{Name: "ci", Role: auth.Viewer, CreatedAt: now}},
		audit:  []console.AuditEntry{{At: now, Principal: "admin", Kind: "user", Remote: "127.0.0.1", Method: "POST", Path: "/api/v1/clusters", Status: 202, Summary: "created orders"}},
	}
	f := &fixture{svc: svc, st: st, users: acc,
		h: console.New(console.Config{Service: svc, Access: acc, Autoscaling: st, Version: "test"})}
	return f
}

// addCluster creates a cluster through the service and records an
// observed status with the given phase.
func (f *fixture) addCluster(tb testing.TB, name, phase string, shards, replicas int) {
	tb.Helper()
	ctx := context.Background()
	if _, _, err := f.svc.CreateCluster(ctx, api.CreateClusterRequest{Name: name, Shards: &shards, Replicas: &replicas, Maxmemory: "64mb"}); err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC()
	status := api.ClusterStatus{Phase: phase, ObservedAt: &now}
	for s := 0; s < shards; s++ {
		sh := api.ShardStatus{Index: s, SentinelName: fmt.Sprintf("%s-%d", name, s),
			Master: &api.InstanceStatus{Name: fmt.Sprintf("%s-%d-0", name, s), Address: "127.0.0.1:17001", Role: "master", Up: true, Keys: 42, UsedMemoryBytes: 2 << 20,
				OpsPerSec: 1000, ConnectedClients: 7}}
		for r := 1; r <= replicas; r++ {
			sh.Replicas = append(sh.Replicas, api.InstanceStatus{Name: fmt.Sprintf("%s-%d-%d", name, s, r), Address: "127.0.0.1:17002", Role: "replica",
				Up: phase != api.PhaseDegraded || r > 1, MasterLinkStatus: "up", LagBytes: int64(r * 10), Keys: 42, UsedMemoryBytes: 2 << 20, OpsPerSec: 10, ConnectedClients: 3})
		}
		status.Shards = append(status.Shards, sh)
	}
	for i := 0; i < 3; i++ {
		status.Sentinels = append(status.Sentinels, api.SentinelStatus{Name: fmt.Sprintf("%s-sentinel-%d", name, i), Address: "127.0.0.1:17010", Up: true, Monitors: []string{name + "-0"}})
	}
	if err := f.st.UpdateClusterStatus(ctx, name, status); err != nil {
		tb.Fatal(err)
	}
}

// addHistory records a failover event (as controller/watch.go writes
// it), a backup and a schedule.
func (f *fixture) addHistory(tb testing.TB, name string) {
	tb.Helper()
	ctx := context.Background()
	at := time.Now().UTC().Add(time.Second)
	lost := at.Add(-1500 * time.Millisecond)
	shard := 0
	ev := api.Event{ID: eventID(name), Cluster: name, Shard: &shard, Type: "failover", At: at, Message: "failover of " + name + "-0",
		Details: map[string]any{"oldMaster": name + "-0-0", "newMaster": name + "-0-1", "switchedAt": at, "fast": true,
			"lostAt": lost, "detectedAt": lost.Add(200 * time.Millisecond), "promotedAt": lost.Add(900 * time.Millisecond), "writeUnavailableMs": int64(1500)}}
	if err := f.st.AddEvent(ctx, ev); err != nil {
		tb.Fatal(err)
	}
	fin := at.Add(2 * time.Second)
	b := store.Backup{Backup: api.Backup{ID: backupID(name), Cluster: name, Shard: 0, State: api.StateSucceeded, Target: "file:///x", SizeBytes: 4096, Keys: 42,
		StartedAt: at, FinishedAt: &fin, Verified: true}}
	if err := f.st.PutBackup(ctx, b); err != nil {
		tb.Fatal(err)
	}
	retain := 7
	if _, err := f.svc.PutBackupSchedule(ctx, name, api.BackupScheduleRequest{Cron: "0 3 * * *", Retain: &retain}); err != nil {
		tb.Fatal(err)
	}
}

func (f *fixture) get(tb testing.TB, path string, p *auth.Principal) (*http.Response, string) {
	tb.Helper()
	r := httptest.NewRequest("GET", path, nil)
	if p != nil {
		r = r.WithContext(auth.WithPrincipal(r.Context(), *p))
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	resp := w.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func principal(role auth.Role) *auth.Principal {
	return &auth.Principal{Name: "u-" + string(role), Kind: auth.KindUser, Role: role, CSRF: "csrf-" + string(role)}
}

var pagePaths = map[string]string{
	"overview": "/", "cluster": "/clusters/orders", "create": "/clusters/new", "events": "/events",
	"jobs": "/jobs", "audit": "/audit", "users": "/users", "account": "/account",
}

func TestSignedOutRedirectsToSignIn(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/", "/clusters/orders", "/clusters/new", "/events", "/jobs", "/jobs/j_x", "/audit", "/users", "/account", "/events?cluster=a&x=1"} {
		resp, _ := f.get(t, path, nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("GET %s signed out: status %d, want 303", path, resp.StatusCode)
			continue
		}
		want := "/sign-in?next=" + urlEscape(path)
		if loc := resp.Header.Get("Location"); loc != want {
			t.Errorf("GET %s signed out: Location %q, want %q", path, loc, want)
		}
	}
	// The sign-in page itself renders for nobody, with the strict policy.
	resp, body := f.get(t, "/sign-in?next=/clusters/orders", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `data-page="sign-in"`) || !strings.Contains(body, `data-next="/clusters/orders"`) {
		t.Fatalf("sign-in page: %d\n%s", resp.StatusCode, body)
	}
	checkPageHeaders(t, "/sign-in", resp)
	for _, in := range []string{`name="name"`, `name="password"`, `name="token"`} {
		if !strings.Contains(body, in) {
			t.Errorf("sign-in form lacks %s", in)
		}
	}
	// An open redirect is not possible through next.
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
		_, body := f.get(t, "/sign-in?next="+urlEscape(next), nil)
		if !strings.Contains(body, `data-next="/"`) {
			t.Errorf("next=%q kept: the form must go to / instead", next)
		}
	}
	// Signed in, the form is still there: signing in again replaces the session.
	resp, body = f.get(t, "/sign-in?next=/jobs", principal(auth.Viewer))
	if resp.StatusCode != 200 || !strings.Contains(body, `data-next="/jobs"`) {
		t.Errorf("sign-in while signed in: %d", resp.StatusCode)
	}
}

func urlEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "/", "%2F", "?", "%3F", "=", "%3D", "&", "%26", ":", "%3A", "\\", "%5C")
	return r.Replace(s)
}

func checkPageHeaders(t *testing.T, path string, resp *http.Response) {
	t.Helper()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", path, csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: Content-Security-Policy allows unsafe code: %q", path, csp)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", path, cc)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("%s: Content-Type %q", path, ct)
	}
}

// inlineScript finds a <script> with a body that is not JSON data, and
// inline event handlers and style attributes, which the policy forbids.
var (
	scriptTag   = regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`)
	inlineAttrs = regexp.MustCompile(`\s(on[a-z]+|style)=`)
)

func checkNoInlineCode(t *testing.T, path, body string) {
	t.Helper()
	for _, m := range scriptTag.FindAllStringSubmatch(body, -1) {
		if strings.TrimSpace(m[2]) != "" && !strings.Contains(m[1], `type="application/json"`) {
			t.Errorf("%s: inline script %q", path, m[0])
		}
		if m[2] == "" && !strings.Contains(m[1], `src="/static/`) {
			t.Errorf("%s: script from outside /static/: %q", path, m[0])
		}
	}
	if m := inlineAttrs.FindString(body); m != "" {
		t.Errorf("%s: inline handler or style attribute %q", path, m)
	}
}

// The actions each role finds on each page (data-action hooks); every
// other action of actionsOf must be absent.
var roleActions = map[auth.Role]map[string][]string{
	auth.Viewer: {
		"overview": {"sign-out"}, "cluster": {"sign-out"}, "events": {"sign-out"}, "jobs": {"sign-out"},
		"account": {"sign-out", "change-password"},
	},
	auth.Operator: {
		"overview": {"sign-out"}, "cluster": {"sign-out", "scale", "failover", "backup", "restore", "verify", "autoscale", "autoscale-off"}, "create": {"sign-out", "create"},
		"events": {"sign-out"}, "jobs": {"sign-out"}, "account": {"sign-out", "change-password"},
	},
	auth.Admin: {
		"overview": {"sign-out"}, "cluster": {"sign-out", "scale", "failover", "backup", "restore", "verify", "autoscale", "autoscale-off", "delete", "delete-backup"},
		"create": {"sign-out", "create"}, "events": {"sign-out"}, "jobs": {"sign-out"}, "audit": {"sign-out"},
		"users":   {"sign-out", "create-user", "delete-user", "create-token", "delete-token"},
		"account": {"sign-out", "change-password"},
	},
}

var actionAttr = regexp.MustCompile(`data-action="([a-z-]+)"`)

func actionsOf(body string) map[string]bool {
	out := map[string]bool{}
	for _, m := range actionAttr.FindAllStringSubmatch(body, -1) {
		out[m[1]] = true
	}
	return out
}

func TestPagesForEachRole(t *testing.T) {
	f := newFixture(t)
	f.addCluster(t, "orders", api.PhaseReady, 2, 2)
	f.addHistory(t, "orders")
	for _, role := range []auth.Role{auth.Viewer, auth.Operator, auth.Admin} {
		for page, path := range pagePaths {
			resp, body := f.get(t, path, principal(role))
			want, allowed := roleActions[role][page]
			name := fmt.Sprintf("%s %s", role, path)
			if !allowed {
				// Pages the role may not use answer 403 with an explanation, no actions.
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s: status %d, want 403", name, resp.StatusCode)
				}
				if !strings.Contains(body, "your role ("+string(role)+")") {
					t.Errorf("%s: the 403 page does not say why", name)
				}
				checkPageHeaders(t, name, resp)
				continue
			}
			if resp.StatusCode != 200 {
				t.Errorf("%s: status %d\n%s", name, resp.StatusCode, body)
				continue
			}
			checkPageHeaders(t, name, resp)
			checkNoInlineCode(t, name, body)
			checkAccessibleMarkup(t, name, body)
			if page == "cluster" && role == auth.Admin && len(controlTag.FindAllString(body, -1)) < 10 {
				t.Errorf("%s: the markup check found only %d controls", name, len(controlTag.FindAllString(body, -1)))
			}
			if !strings.Contains(body, `<main id="main" data-page="`+page+`"`) {
				t.Errorf("%s: no <main data-page=%q>", name, page)
			}
			if !strings.Contains(body, `<meta name="csrf-token" content="csrf-`+string(role)+`">`) {
				t.Errorf("%s: the session's CSRF token is not in the page", name)
			}
			got := actionsOf(body)
			for _, a := range want {
				if !got[a] {
					t.Errorf("%s: action %q missing", name, a)
				}
				delete(got, a)
			}
			for a := range got {
				if a == "schedule" || a == "delete-schedule" {
					if role == auth.Viewer {
						t.Errorf("%s: viewer sees %q", name, a)
					}
					continue
				}
				t.Errorf("%s: action %q present, the role may not use it", name, a)
			}
			// Links to pages the role may not use are absent too.
			if role != auth.Admin && (strings.Contains(body, `href="/audit"`) || strings.Contains(body, `href="/users"`)) {
				t.Errorf("%s: links to the admin pages", name)
			}
			if role == auth.Viewer && strings.Contains(body, `href="/clusters/new"`) {
				t.Errorf("%s: viewer has a link to the create form", name)
			}
		}
	}
}

func TestClusterPageShowsTopologyTimelineJobsBackups(t *testing.T) {
	f := newFixture(t)
	f.addCluster(t, "orders", api.PhaseReady, 2, 2)
	f.addHistory(t, "orders")
	_, body := f.get(t, "/clusters/orders", principal(auth.Viewer))
	for _, want := range []string{
		`data-cluster-phase="orders">Ready<`,
		`data-instance="orders-1-2" data-role="replica"`, `orders-sentinel-2`,
		// The timings are from the loss: detected at 200 ms, promoted at 900 ms, switched at 1500 ms.
		`data-failover="e_fo1" data-detected-ms="200" data-promoted-ms="900" data-switched-ms="1500"`,
		`<code>orders-0-0</code> → <code>orders-0-1</code>`,
		`data-backup="b_one"`, `Cron <code>0 3 * * *</code>`,
		`data-charts data-cluster="orders"`, `data-chart="opsPerSec"`, `data-chart="lagBytes"`, `data-chart="hitRatio"`, `data-chart="clients"`, `data-chart="usedMemoryBytes"`,
		`data-stream="/api/v1/stream?cluster=orders"`, `data-live="disconnected"`, `id="live-notice"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("cluster page lacks %s", want)
		}
	}
	// The create job the service stored shows with its progress.
	js, err := f.svc.ListJobs(context.Background(), "orders")
	if err != nil || len(js) == 0 {
		t.Fatalf("jobs: %v %v", js, err)
	}
	if want := fmt.Sprintf(`data-job="%s" data-job-state="%s"`, js[0].ID, js[0].State); !strings.Contains(body, want) {
		t.Errorf("cluster page lacks the job: %s", want)
	}
	// The job page has the job's hooks too; unknown ids and clusters are 404.
	resp, jb := f.get(t, "/jobs/"+js[0].ID, principal(auth.Viewer))
	if resp.StatusCode != 200 || !strings.Contains(jb, `data-page="job"`) || !strings.Contains(jb, `data-job="`+js[0].ID+`"`) {
		t.Errorf("job page: %d", resp.StatusCode)
	}
	for _, p := range []string{"/jobs/j_nope", "/clusters/nope", "/nowhere"} {
		if resp, _ := f.get(t, p, principal(auth.Viewer)); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestLiveFragment(t *testing.T) {
	f := newFixture(t)
	f.addCluster(t, "orders", api.PhaseCreating, 1, 1)
	_, body := f.get(t, "/clusters/orders?fragment=live", principal(auth.Viewer))
	if strings.Contains(body, "<html") || strings.Contains(body, `data-action="scale"`) {
		t.Fatalf("the fragment is more than the live regions:\n%s", body)
	}
	for _, id := range []string{"cluster-head", "alerts", "topology", "autoscaling", "timeline", "jobs", "backups", "cluster-events"} {
		if !strings.Contains(body, `id="`+id+`"`) {
			t.Errorf("fragment lacks region %s", id)
		}
	}
	if n := strings.Count(body, `hx-swap-oob="true"`); n != 8 {
		t.Errorf("%d regions swap out of band, want 8", n)
	}
	if strings.Contains(body, `data-form="autoscale"`) {
		t.Error("the fragment carries the autoscaling form: a live update would replace what the user types")
	}
	_, full := f.get(t, "/clusters/orders", principal(auth.Viewer))
	if strings.Contains(full, "hx-swap-oob") {
		t.Error("the full page carries hx-swap-oob")
	}
	// The phase changes and the fragment shows it.
	now := time.Now().UTC()
	if err := f.st.UpdateClusterStatus(context.Background(), "orders", api.ClusterStatus{Phase: api.PhaseReady, ObservedAt: &now}); err != nil {
		t.Fatal(err)
	}
	_, body = f.get(t, "/clusters/orders?fragment=live", principal(auth.Viewer))
	if !strings.Contains(body, `data-cluster-phase="orders">Ready<`) {
		t.Error("fragment does not show the new phase")
	}
	for _, p := range []string{"/?fragment=live", "/events?fragment=live", "/jobs?fragment=live"} {
		resp, b := f.get(t, p, principal(auth.Viewer))
		if resp.StatusCode != 200 || !strings.Contains(b, `hx-swap-oob="true"`) || strings.Contains(b, "<html") {
			t.Errorf("%s: %d\n%s", p, resp.StatusCode, b)
		}
	}
	if resp, _ := f.get(t, "/?fragment=nope", principal(auth.Viewer)); resp.StatusCode != 404 {
		t.Errorf("unknown fragment: %d, want 404", resp.StatusCode)
	}
}

func TestOverviewProblemsFirst(t *testing.T) {
	f := newFixture(t)
	f.addCluster(t, "alpha", api.PhaseReady, 1, 1)
	f.addCluster(t, "beta", api.PhaseDegraded, 1, 2)
	f.addCluster(t, "gamma", api.PhaseCreating, 1, 1)
	f.addCluster(t, "delta", api.PhaseFailed, 1, 1)
	f.addHistory(t, "alpha")
	_, body := f.get(t, "/", principal(auth.Viewer))
	var order []string
	for _, m := range regexp.MustCompile(`<tr data-cluster="([a-z]+)">`).FindAllStringSubmatch(body, -1) {
		order = append(order, m[1])
	}
	if got, want := strings.Join(order, ","), "delta,beta,gamma,alpha"; got != want {
		t.Errorf("overview order %s, want %s", got, want)
	}
	for _, want := range []string{`data-cluster-phase="beta">Degraded<`, `2 / 3`, `2.0 MiB / 64.0 MiB`, `data-stream="/api/v1/stream"`} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %s", want)
		}
	}
	// Ops/s and clients add up over the instances observed up: beta has
	// one replica down.
	beta := body[strings.Index(body, `<tr data-cluster="beta">`):]
	beta = beta[:strings.Index(beta, "</tr>")]
	if !strings.Contains(beta, `<td class="num">1010</td>`) || !strings.Contains(beta, `<td class="num">10</td>`) {
		t.Errorf("beta's ops/s and clients: %s", beta)
	}
	// alpha's last backup, the others' none; no alerts exist yet.
	alpha := body[strings.Index(body, `<tr data-cluster="alpha">`):]
	alpha = alpha[:strings.Index(alpha, "</tr>")]
	if !strings.Contains(alpha, "succeeded") || !strings.Contains(alpha, "—") {
		t.Errorf("alpha's row: %s", alpha)
	}
}

func TestEventsJobsAuditUsersPages(t *testing.T) {
	f := newFixture(t)
	f.addCluster(t, "orders", api.PhaseReady, 1, 1)
	f.addCluster(t, "carts", api.PhaseReady, 1, 1)
	f.addHistory(t, "orders")
	_, body := f.get(t, "/events", principal(auth.Viewer))
	if !strings.Contains(body, `data-event="e_fo1" data-event-type="failover"`) {
		t.Error("events page lacks the failover event")
	}
	_, body = f.get(t, "/events?cluster=carts", principal(auth.Viewer))
	if strings.Contains(body, `data-event="e_fo1"`) {
		t.Error("events of carts show an event of orders")
	}
	// The filtered list stays filtered when it refreshes, and listens to that cluster only.
	for _, want := range []string{`hx-get="/events?cluster=carts&amp;fragment=live"`, `data-stream="/api/v1/stream?cluster=carts"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/events?cluster=carts lacks %s", want)
		}
	}
	_, body = f.get(t, "/events?cluster=carts&fragment=live", principal(auth.Viewer))
	if strings.Contains(body, `data-event="e_fo1"`) {
		t.Error("the live fragment of carts' events shows an event of orders")
	}
	_, body = f.get(t, "/jobs?cluster=carts", principal(auth.Viewer))
	if strings.Count(body, `data-job-state="pending"`) != 1 || !strings.Contains(body, `hx-get="/jobs?cluster=carts&amp;fragment=live"`) {
		t.Errorf("/jobs?cluster=carts: want carts' create job only, refreshed as carts'")
	}
	_, body = f.get(t, "/jobs", principal(auth.Viewer))
	if strings.Count(body, `data-job-state="pending"`) != 2 {
		t.Errorf("jobs page: want both create jobs pending\n%s", body)
	}
	_, body = f.get(t, "/audit", principal(auth.Admin))
	if !strings.Contains(body, "POST /api/v1/clusters") || !strings.Contains(body, "created orders") {
		t.Error("audit page lacks the entry")
	}
	_, body = f.get(t, "/users", principal(auth.Admin))
	for _, want := range []string{`data-user="vera"`, `data-token="ci"`, `data-url="/api/v1/users/vera"`, `data-url="/api/v1/tokens/ci"`, `id="token-once"`} {
		if !strings.Contains(body, want) {
			t.Errorf("users page lacks %s", want)
		}
	}
}

func TestStaticAssets(t *testing.T) {
	f := newFixture(t)
	_, body := f.get(t, "/", principal(auth.Viewer))
	urls := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(body, -1)
	if len(urls) < 3 {
		t.Fatalf("page links %d assets", len(urls))
	}
	for _, m := range urls {
		resp, b := f.get(t, m[1], nil)
		if resp.StatusCode != 200 || len(b) == 0 {
			t.Errorf("%s: %d", m[1], resp.StatusCode)
			continue
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", m[1], cc)
		}
		ct := resp.Header.Get("Content-Type")
		if !(strings.HasPrefix(ct, "text/javascript") || strings.HasPrefix(ct, "text/css") || ct == "image/svg+xml") {
			t.Errorf("%s: Content-Type %q", m[1], ct)
		}
		// Another hash: the current file, but not cached for long.
		stale := regexp.MustCompile(`/static/[0-9a-f]+/`).ReplaceAllString(m[1], "/static/000000000000/")
		resp, _ = f.get(t, stale, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s: %d %q", stale, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
	}
	if resp, _ := f.get(t, "/static/abc/nope.js", nil); resp.StatusCode != 404 {
		t.Errorf("missing asset: %d", resp.StatusCode)
	}
}

// The create form has, for every field the API names in a validation
// error, an input of that name and a slot for its message. The errors
// come from the real API handler over the real service.
func TestCreateFormFieldErrors(t *testing.T) {
	f := newFixture(t)
	_, form := f.get(t, "/clusters/new", principal(auth.Operator))
	bad := []string{
		`{"name": "Bad_Name"}`,
		`{"name": "ok", "shards": 0}`,
		`{"name": "ok", "replicas": -1}`,
		`{"name": "ok", "sentinels": 2}`,
		`{"name": "ok", "maxmemory": "lots"}`,
		`{"name": "ok", "maxmemoryPolicy": "random"}`,
		`{"name": "ok", "persistence": "tape"}`,
		`{"name": "ok", "sentinel": {"downAfterMs": 5}}`,
		`{"name": "ok", "sentinel": {"failoverTimeoutMs": 5}}`,
		`{"name": "ok", "sentinel": {"parallelSyncs": 99}}`,
		`{"name": "ok", "replicas": 1, "minReplicasToWrite": 3}`,
		`{"name": "ok", "shards": "two"}`,
	}
	apiH := apiHandler(f)
	for _, b := range bad {
		r := httptest.NewRequest("POST", "/api/v1/clusters", strings.NewReader(b))
		r.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		apiH.ServeHTTP(w, r)
		var eb api.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || w.Code < 400 || w.Code >= 500 {
			t.Errorf("%s: %d %s", b, w.Code, w.Body)
			continue
		}
		field := eb.Error.Field
		if field == "" {
			t.Errorf("%s: the API names no field: %+v", b, eb.Error)
			continue
		}
		if !strings.Contains(form, `name="`+field+`"`) {
			t.Errorf("%s: the API's field %q has no input in the form", b, field)
		}
		if !strings.Contains(form, `data-error-for="`+field+`"`) {
			t.Errorf("%s: the API's field %q has no error slot in the form", b, field)
		}
		if !strings.Contains(form, `aria-describedby="err-`+field+`"`) && !strings.Contains(form, `err-`+field+`"`) {
			t.Errorf("%s: field %q's input is not described by its error", b, field)
		}
	}
	checkAccessibleMarkup(t, "/clusters/new", form)
}

// eventID and backupID name addHistory's records: e_fo1 and b_one for
// orders, the cluster most tests use.
func eventID(cluster string) string {
	if cluster == "orders" || cluster == "alpha" {
		return "e_fo1"
	}
	return "e_fo1_" + cluster
}

func backupID(cluster string) string {
	if cluster == "orders" || cluster == "alpha" {
		return "b_one"
	}
	return "b_one_" + cluster
}

// A fast failover (the platform saw the master die and the manager forced
// it) has no Sentinel detection: it is detected at 0 ms, by the platform.
func TestFailoverTimelineFast(t *testing.T) {
	f := newFixture(t)
	f.addCluster(t, "orders", api.PhaseReady, 1, 1)
	at := time.Now().UTC()
	lost := at.Add(-400 * time.Millisecond)
	shard := 0
	ev := api.Event{ID: "e_fast", Cluster: "orders", Shard: &shard, Type: "failover", At: at, Message: "failover",
		Details: map[string]any{"oldMaster": "orders-0-0", "newMaster": "orders-0-1", "switchedAt": at, "fast": true,
			"lostAt": lost, "forcedAt": lost.Add(20 * time.Millisecond), "promotedAt": lost.Add(190 * time.Millisecond)}}
	if err := f.st.AddEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	_, body := f.get(t, "/clusters/orders", principal(auth.Viewer))
	for _, want := range []string{
		`data-failover="e_fast" data-detected-ms="0" data-promoted-ms="190" data-switched-ms="400"`,
		`detected (platform)`, `failover forced</span> <strong>20 ms`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("timeline lacks %s", want)
		}
	}
}

func TestClusterPageHidesJobsOfAnEarlierNamesake(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.addCluster(t, "orders", api.PhaseReady, 1, 1)
	old, err := f.st.ListJobs(ctx, "orders")
	if err != nil || len(old) != 1 {
		t.Fatal(old, err)
	}
	old[0].State = api.StateSucceeded
	if err := f.st.UpdateJob(ctx, old[0]); err != nil {
		t.Fatal(err)
	}
	if err := f.st.DeleteCluster(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	f.addCluster(t, "orders", api.PhaseCreating, 1, 1)
	_, body := f.get(t, "/clusters/orders", principal(auth.Viewer))
	if strings.Contains(body, `data-job="`+old[0].ID+`"`) {
		t.Error("the cluster page shows the job of the deleted cluster of the same name")
	}
	if strings.Count(body, `data-job="`) != 1 {
		t.Errorf("want the new create job only, got %d jobs", strings.Count(body, `data-job="`))
	}
}

var (
	idAttr      = regexp.MustCompile(`\sid="([^"]+)"`)
	controlTag  = regexp.MustCompile(`<(?:input|select)\b[^>]*>`)
	describedBy = regexp.MustCompile(`aria-describedby="([^"]+)"`)
	controlID   = regexp.MustCompile(`\sid="([^"]+)"`)
	labelFor    = regexp.MustCompile(`<label for="([^"]+)"`)
	buttonTag   = regexp.MustCompile(`<button\b[^>]*>`)
)

// checkAccessibleMarkup: ids are unique, every input and select has an id
// and a <label for> it, every aria-describedby names elements of the page,
// every button says its type (no accidental submits).
func checkAccessibleMarkup(t *testing.T, name, body string) {
	t.Helper()
	ids := map[string]int{}
	for _, m := range idAttr.FindAllStringSubmatch(body, -1) {
		ids[m[1]]++
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("%s: id %q is used %d times", name, id, n)
		}
	}
	labels := map[string]bool{}
	for _, m := range labelFor.FindAllStringSubmatch(body, -1) {
		labels[m[1]] = true
	}
	for _, tag := range controlTag.FindAllString(body, -1) {
		m := controlID.FindStringSubmatch(tag)
		if m == nil {
			t.Errorf("%s: control without id (so without a label): %s", name, tag)
			continue
		}
		if !labels[m[1]] {
			t.Errorf("%s: control %s has no <label for>", name, m[1])
		}
	}
	for _, m := range describedBy.FindAllStringSubmatch(body, -1) {
		for _, id := range strings.Fields(m[1]) {
			if ids[id] == 0 {
				t.Errorf("%s: aria-describedby names %q, which is not in the page", name, id)
			}
		}
	}
	for _, b := range buttonTag.FindAllString(body, -1) {
		if !strings.Contains(b, ` type="`) {
			t.Errorf("%s: button without a type: %s", name, b)
		}
	}
}

// TestClusterPageAutoscaling: the autoscaling card shows the stored
// policy, the engine's state (readings, cooldowns, windows) and its
// decisions to every role; only operators and admins get the form, filled
// with the policy.
func TestClusterPageAutoscaling(t *testing.T) {
	f := newFixture(t)
	f.addCluster(t, "orders", api.PhaseReady, 1, 1)
	ctx := context.Background()
	_, body := f.get(t, "/clusters/orders", principal(auth.Viewer))
	if !strings.Contains(body, `data-autoscale="off"`) || !strings.Contains(body, "No autoscaling policy") {
		t.Fatal("the card does not say there is no policy")
	}
	ms := func(v int64) *int64 { return &v }
	p := api.AutoscalePolicy{Replicas: &api.AutoscaleReplicas{Min: 1, Max: 4, Metric: api.MetricOps, Target: 2500},
		ScaleOutAfterMs: ms(60000), ScaleOutCooldownMs: ms(180000), ScaleInCooldownMs: ms(600000), StabilizationMs: ms(900000), FailoverWindowMs: ms(600000), DryRun: true}
	if err := f.st.PutAutoscalePolicy(ctx, "orders", p); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	out, below := now.Add(-time.Minute), now.Add(-450*time.Second)
	st := api.AutoscaleState{LastScaleOutAt: &out, BelowSince: &below, LastJob: "j_123",
		Readings: &api.AutoscaleReadings{At: now, Metric: api.MetricOps, Target: 2500, Signal: 1200, Replicas: 2,
			Shards: []api.AutoscaleShardReadings{{Shard: 0, Average: 1200, Replicas: []api.AutoscaleReplicaReadings{{Name: "orders-0-1", OpsPerSec: 1200, Clients: 9}}}}}}
	if err := f.st.PutAutoscaleState(ctx, "orders", st); err != nil {
		t.Fatal(err)
	}
	if err := f.st.AddEvent(ctx, api.Event{ID: "e_as1", Cluster: "orders", Type: api.EventAutoscale, At: now, Message: "autoscale scale-out 2 → 3 replicas per shard held back (bgsave): orders-0-0 runs a BGSAVE",
		Details: map[string]any{"action": "scale-out", "outcome": "held", "guard": "bgsave", "guardMessage": "orders-0-0 runs a BGSAVE",
			"readings": map[string]any{"metric": "ops", "signal": 3100.0, "target": 2500.0, "replicas": 2.0}}}); err != nil {
		t.Fatal(err)
	}
	for _, role := range []auth.Role{auth.Viewer, auth.Operator} {
		_, body := f.get(t, "/clusters/orders", principal(role))
		for _, want := range []string{`data-autoscale="on"`, "1–4 per shard, metric <code>ops</code>, target 2500 per replica", "yes: decisions are recorded",
			"orders-0-1</code> cpu 0 %, 1200 ops/s, 9 clients", "no scale-out before", "no scale-in before", `<progress max="100" value="50"`,
			`data-decision="e_as1" data-outcome="held" data-guard="bgsave"`, "held: bgsave", "ops 3100 (target 2500); 2 replicas per shard", "j_123"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: the card lacks %q", role, want)
			}
		}
		form := strings.Contains(body, `data-form="autoscale"`)
		if form != (role != auth.Viewer) {
			t.Errorf("%s: autoscaling form present %v", role, form)
		}
		if form && (!strings.Contains(body, `name="replicas.max" type="number" min="1" value="4"`) || !strings.Contains(body, `id="as-dry" name="dryRun" type="checkbox" data-type="bool" checked`)) {
			t.Errorf("%s: the form is not filled with the policy", role)
		}
	}
}
