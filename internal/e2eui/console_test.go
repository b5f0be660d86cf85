package e2eui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// consoleEnv is what the subtests of TestConsole share: one manager on a
// fixed port (so the disconnect subtest can restart it where the pages
// reconnect), its users, and the cluster the operator creates.
type consoleEnv struct {
	m                   *testenv.Manager
	b                   *Browser
	operator, viewer    string // passwords of users olga (operator) and vic (viewer)
	admin               string // password of user ada (admin)
	viewerToken         string // API token of role viewer
	op                  *Tab   // olga's tab
	shots               string // where screenshots go ("" for nowhere)
	cluster, restoredTo string
	live                bool // the manager serves the live stream (GET /api/v1/stream)
}

// needLive skips a step that needs the live stream while the build has
// none, naming what is missing.
func (e *consoleEnv) needLive(t *testing.T) {
	t.Helper()
	if !e.live {
		skipOrFail(t, "needs the live stream GET /api/v1/stream (branch series): the pages cannot update without reloading")
	}
}

// shot takes a full-page screenshot at width and, under make screenshots
// (REDIS_MANAGER_SCREENSHOTS=DIR), writes it to DIR/name.png.
func (e *consoleEnv) shot(t *testing.T, tab *Tab, name string, width int64) {
	t.Helper()
	png := tab.Screenshot(width)
	if len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG (%d bytes)", name, len(png))
	}
	if width != 1280 {
		_ = tab.run(tabTimeout, emulateWidth(1280))
	}
	if e.shots == "" {
		return
	}
	if err := os.MkdirAll(e.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.shots, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", filepath.Join(e.shots, name+".png"))
}

// actionsOtherThanSignOut counts the action buttons a page offers besides
// signing out.
const actionsOtherThanSignOut = `[data-action]:not([data-action="sign-out"])`

// TestConsole drives the console in real Chromium against one real manager
// with real redis-server and Sentinel processes, in order: sign in; create
// a cluster through the form (a field error first) and see it become Ready
// on an overview opened before, without reloading; kill -9 its master and
// see the failover on the cluster page's timeline within 3 s without
// reloading; scale its replicas; back it up and restore the backup into a
// new cluster; a viewer sees no action and the API refuses the viewer's
// session and token alike (403); a forged cross-site POST is refused and
// changes nothing; the page shows when the manager is gone and reconnects
// when it is back; sign-out ends the session. Along the way it takes the
// screenshots of docs/ui.md (written under make screenshots).
func TestConsole(t *testing.T) {
	b := sharedBrowser(t)
	port := testenv.FreePort(t)
	m := testenv.StartManager(t, testenv.ManagerOptions{Args: []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port)}})
	requireConsole(t, m)
	e := &consoleEnv{m: m, b: b, cluster: "web", restoredTo: "web-copy", shots: os.Getenv("REDIS_MANAGER_SCREENSHOTS")}
	e.live = streams(t, m)
	e.operator = createUser(t, m, "olga", "operator")
	e.viewer = createUser(t, m, "vic", "viewer")
	e.admin = createUser(t, m, "ada", "admin")
	e.viewerToken = createToken(t, m, "dashboards", "viewer")
	e.op = b.NewTab(t, m.URL) // the operator's tab, for every step

	steps := []struct {
		name string
		f    func(*testing.T, *consoleEnv)
	}{
		{"SignIn", testSignIn},
		{"CreateThroughForm", testCreate},
		{"FailoverOnTimeline", testFailover},
		{"Scale", testScale},
		{"BackupAndRestore", testBackupRestore},
		{"ViewerSeesNoActions", testViewer},
		{"ForgedCrossSitePost", testForgedPost},
		{"AdminPages", testAdminPages},
		{"DisconnectedAndBack", testDisconnect},
		{"SignOut", testSignOut},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.f(t, e) }) {
			// Later steps build on earlier ones (the cluster, the
			// session): stop at the first failure.
			t.FailNow()
		}
	}
}

// skipOrFail skips a test whose build lacks a part, or fails it under
// CI=true: CI must not pass by skipping.
func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// requireConsole skips the test, naming what is missing, while the parts
// it drives are not in this build: the sign-in page (branch console) and
// the session API (branch auth).
func requireConsole(t *testing.T, m *testenv.Manager) {
	t.Helper()
	st, _, body := do(t, m.URL, request{Method: "GET", Path: "/sign-in"})
	if st != 200 || !strings.Contains(string(body), `data-page="sign-in"`) {
		skipOrFail(t, fmt.Sprintf("the console's sign-in page is missing (GET /sign-in: %d): needs branch console", st))
	}
	if st, _, _ := do(t, m.URL, request{Method: "POST", Path: "/api/v1/session", Body: `{"name":"nobody","password":"x"}`}); st != 401 {
		skipOrFail(t, fmt.Sprintf("the session API is missing (POST /api/v1/session with a wrong password: %d, want 401): needs branch auth", st))
	}
}

// streams tells whether the manager serves the live stream.
func streams(t *testing.T, m *testenv.Manager) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", m.URL+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+m.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer res.Body.Close()
	return res.StatusCode == 200 && strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream")
}

func testSignIn(t *testing.T, e *consoleEnv) {
	tab := e.b.NewTab(t, e.m.URL)
	// Not signed in: every page sends the browser to the sign-in page.
	tab.Go("/clusters/new")
	if p := tab.Page(); p != "sign-in" {
		t.Fatalf("/clusters/new without a session shows %q, want sign-in", p)
	}
	if u := tab.Location(); !strings.Contains(u, "/sign-in") || !strings.Contains(u, "next=") {
		t.Errorf("redirected to %s, want /sign-in?next=…", u)
	}
	e.shot(t, tab, "sign-in", 1280)
	// A wrong password keeps the page and says so.
	tab.Fill(`main[data-page="sign-in"] input[name="name"]`, "olga")
	tab.Fill(`main[data-page="sign-in"] input[name="password"]`, "not-"+e.operator)
	tab.Click(`main[data-page="sign-in"] form [type="submit"]`)
	tab.WaitUntil("the sign-in page says the password is wrong",
		`document.querySelector('main[data-page="sign-in"]') && document.querySelector("main").innerText.includes("wrong user name or password")`, 10*time.Second)
	if _, ok := tab.Cookie("redis_manager_session"); ok {
		t.Fatal("a wrong password set a session cookie")
	}

	e.op.SignIn("olga", e.operator)
	c, ok := e.op.Cookie("redis_manager_session")
	if !ok {
		t.Fatal("no session cookie after signing in")
	}
	if !c.HTTPOnly || c.SameSite != "Strict" || c.Path != "/" {
		t.Errorf("session cookie HttpOnly %v SameSite %q Path %q, want HttpOnly, Strict, /", c.HTTPOnly, c.SameSite, c.Path)
	}
	if csrf, ok := e.op.Attr(`meta[name="csrf-token"]`, "content"); !ok || len(csrf) < 16 {
		t.Errorf("no <meta name=csrf-token> with a token on the overview: %q", csrf)
	}
	if live, _ := e.op.Attr("body", "data-live"); live == "" {
		t.Error("<body> has no data-live")
	}
}

func testCreate(t *testing.T, e *consoleEnv) {
	// An overview opened before the cluster exists, watched without reload.
	watch := e.b.NewTab(t, e.m.URL)
	watch.SignIn("olga", e.operator)
	watch.Mark()
	sel := fmt.Sprintf(`[data-cluster-phase=%q]`, e.cluster)

	op := e.op
	if p := op.Go("/clusters/new"); p != "create" {
		t.Fatalf("/clusters/new shows %q", p)
	}
	// The API's validation error shows next to its field.
	_, _, body := do(t, e.m.URL, request{Method: "POST", Path: "/api/v1/clusters", Token: e.m.Token, Body: `{"name":"Web_1"}`})
	var eb api.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Field != "name" {
		t.Fatalf("the API's answer to a bad name: %s", body)
	}
	op.Fill(`main[data-page="create"] input[name="name"]`, "Web_1")
	op.Click(`main[data-page="create"] form [type="submit"]`)
	op.WaitUntil("the name's error next to its field", fmt.Sprintf(`(() => {
		const input = document.querySelector('main[data-page="create"] input[name="name"]');
		if (!input) return false;
		const msg = %s;
		const ids = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
		if (ids.some(id => (document.getElementById(id) || {innerText: ""}).innerText.includes(msg))) return true;
		let el = input;
		for (let i = 0; i < 3 && el; i++, el = el.parentElement) if (el.innerText && el.innerText.includes(msg)) return true;
		return false })()`, strconv.Quote(eb.Error.Message)), 10*time.Second)
	e.shot(t, op, "create-field-error", 1280)
	if _, err := e.m.Client.GetCluster(context.Background(), "web_1"); !api.IsNotFound(err) {
		t.Fatalf("a refused form made a cluster: %v", err)
	}

	op.Fill(`main[data-page="create"] input[name="name"]`, e.cluster)
	op.Fill(`main[data-page="create"] input[name="replicas"]`, "1")
	start := time.Now()
	op.Click(`main[data-page="create"] form [type="submit"]`)
	if !e.live {
		e.m.WaitPhase(context.Background(), e.cluster, api.PhaseReady, 90*time.Second)
		op.Go("/clusters/" + e.cluster)
		if got := op.Text(sel); got != "Ready" {
			t.Fatalf("the cluster page of a Ready cluster shows %q", got)
		}
		e.needLive(t)
	}
	// The overview tab shows the new cluster, then Ready, on its own.
	watch.WaitUntil("the new cluster on the open overview", fmt.Sprintf(`document.querySelector(%q)`, sel), 10*time.Second)
	first := watch.Text(sel)
	watch.WaitUntil("Ready on the open overview", fmt.Sprintf(`(document.querySelector(%q)||{}).textContent && document.querySelector(%q).textContent.trim() === "Ready"`, sel, sel), 90*time.Second)
	if !watch.Marked() {
		t.Fatal("the overview reloaded: it must update in place")
	}
	t.Logf("the open overview showed %s as %q, then Ready %.1fs after the form was sent", e.cluster, first, time.Since(start).Seconds())
	cl, err := e.m.Client.GetCluster(context.Background(), e.cluster)
	if err != nil {
		t.Fatal(err)
	}
	testenv.CheckStatus(t, cl, 1, 1, 3)
	// The operator's own tab shows it Ready too (wherever the form led).
	op.Go("/clusters/" + e.cluster)
	op.WaitUntil("Ready on the cluster page", fmt.Sprintf(`(document.querySelector(%q)||{textContent:""}).textContent.trim() === "Ready"`, sel), 15*time.Second)
}

func testFailover(t *testing.T, e *consoleEnv) {
	e.needLive(t)
	ctx := context.Background()
	op := e.op
	op.Go("/clusters/" + e.cluster)
	op.WaitUntil("live", `document.body.dataset.live === "connected"`, 10*time.Second)
	op.Mark()
	before := op.Count("[data-failover]")
	cl, err := e.m.Client.GetCluster(ctx, e.cluster)
	if err != nil {
		t.Fatal(err)
	}
	old := cl.Status.Shards[0].Master
	killed := time.Now()
	if err := syscallKill(old.Pid); err != nil {
		t.Fatal(err)
	}
	took := op.WaitUntil("a new failover on the timeline", fmt.Sprintf(`document.querySelectorAll("[data-failover]").length > %d`, before), 10*time.Second)
	seen := time.Since(killed)
	t.Logf("failover on the timeline %.2fs after kill -9 of %s (%s)", seen.Seconds(), old.Name, took)
	if seen > 3*time.Second {
		t.Errorf("the failover showed %.2fs after the kill, want within 3 s", seen.Seconds())
	}
	if !op.Marked() {
		t.Fatal("the cluster page reloaded: it must update in place")
	}
	// The newest entry carries its timings: detected ≤ promoted ≤ switched.
	timings := Eval[map[string]string](op, `(() => { const es = [...document.querySelectorAll("[data-failover]")];
		const e = es.find(x => x.hasAttribute("data-switched-ms")) || es[0]; const o = {};
		for (const k of ["detectedMs", "promotedMs", "switchedMs"]) if (e.dataset[k] !== undefined) o[k] = e.dataset[k];
		return o })()`)
	// The timings count from when the master was lost (or detected).
	// "detected" is known only when Sentinel detected the loss itself:
	// on the fast path the manager saw the process die and forced the
	// failover, so the entry may leave it empty ("when known").
	var prev float64 = -1
	for _, k := range []string{"detectedMs", "promotedMs", "switchedMs"} {
		if k == "detectedMs" && timings[k] == "" {
			continue
		}
		v, err := strconv.ParseFloat(timings[k], 64)
		if err != nil || v < 0 {
			t.Errorf("failover entry %s = %q, want a number of ms (entry %v)", k, timings[k], timings)
			continue
		}
		if v < prev {
			t.Errorf("failover timings out of order: %v", timings)
		}
		prev = v
	}
	if prev > 3000 {
		t.Errorf("switched after %.0f ms, want within 3 s of the kill", prev)
	}
	e.m.WaitPhase(ctx, e.cluster, api.PhaseReady, 60*time.Second)
	sel := fmt.Sprintf(`[data-cluster-phase=%q]`, e.cluster)
	op.WaitUntil("Ready again on the page", fmt.Sprintf(`document.querySelector(%q).textContent.trim() === "Ready"`, sel), 15*time.Second)
	if e.shots != "" {
		time.Sleep(25 * time.Second) // a few more 10 s samples, so the charts draw lines
	}
	e.shot(t, op, "cluster", 1280)
	e.shot(t, op, "cluster-390px", 390)
}

// act clicks the action button and, if the console asks for values in a
// form or dialog around it (the replica count, a restore's target, a typed
// name to confirm), fills them, then confirms.
func act(t *testing.T, tab *Tab, action string, fields map[string]string, confirm string) {
	t.Helper()
	sel := fmt.Sprintf(`[data-action=%q]`, action)
	tab.WaitFor(sel, 10*time.Second)
	// Values asked for before the click, in the button's form.
	for name, v := range fields {
		if Eval[bool](tab, fmt.Sprintf(`!!((document.querySelector(%q).closest("form")||document.createElement("form")).querySelector('[name=%q]'))`, sel, name)) {
			tab.Fill(fmt.Sprintf(`form:has(%s) [name=%q]`, sel, name), v)
			delete(fields, name)
		}
	}
	tab.Click(sel)
	if len(fields) == 0 && confirm == "" {
		return
	}
	// Values asked for after the click, in an open dialog.
	tab.WaitUntil("the "+action+" dialog", `document.querySelector("dialog[open]")`, 5*time.Second)
	for name, v := range fields {
		tab.Fill(fmt.Sprintf(`dialog[open] [name=%q]`, name), v)
	}
	if confirm != "" {
		tab.Fill(`dialog[open] input[type="text"]:not([name]), dialog[open] input[name="confirm"]`, confirm)
	}
	tab.Click(`dialog[open] [type="submit"]`)
}

func testScale(t *testing.T, e *consoleEnv) {
	e.needLive(t)
	ctx := context.Background()
	op := e.op
	op.Go("/clusters/" + e.cluster)
	op.Mark()
	act(t, op, "scale", map[string]string{"replicas": "2"}, "")
	waitAPI(t, "2 replicas in the spec", 10*time.Second, func() bool {
		cl, err := e.m.Client.GetCluster(ctx, e.cluster)
		return err == nil && cl.Spec.Replicas == 2
	})
	sel := fmt.Sprintf(`[data-cluster-phase=%q]`, e.cluster)
	op.WaitUntil("Ready with 2 replicas", fmt.Sprintf(`document.querySelector(%q).textContent.trim() === "Ready"`, sel), 90*time.Second)
	cl := e.m.WaitPhase(ctx, e.cluster, api.PhaseReady, 30*time.Second)
	testenv.CheckStatus(t, cl, 1, 2, 3)
	// The new replica is on the page, without a reload.
	for _, r := range cl.Status.Shards[0].Replicas {
		op.WaitUntil("replica "+r.Name+" on the page", fmt.Sprintf(`document.querySelector("main").innerText.includes(%q)`, r.Name), 15*time.Second)
	}
	if !op.Marked() {
		t.Error("the page reloaded during the scale")
	}
}

func testBackupRestore(t *testing.T, e *consoleEnv) {
	e.needLive(t)
	ctx := context.Background()
	cl, _ := e.m.Client.GetCluster(ctx, e.cluster)
	creds, err := e.m.Client.Credentials(ctx, e.cluster)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Master.Address, Password: creds.Password, Protocol: 2})
	defer rc.Close()
	if err := rc.Set(ctx, "console-test", "restored-through-the-console", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Do(ctx, "WAIT", 2, 5000).Err(); err != nil {
		t.Fatal(err)
	}

	op := e.op
	op.Go("/clusters/" + e.cluster)
	op.Mark()
	before := op.Count(`[data-action="restore"]`)
	act(t, op, "backup", nil, "")
	op.WaitUntil("the new backup with its restore action", fmt.Sprintf(`document.querySelectorAll('[data-action="restore"]').length > %d`, before), 60*time.Second)
	bs, err := e.m.Client.ListBackups(ctx, e.cluster)
	if err != nil || len(bs) == 0 || bs[0].State != api.StateSucceeded {
		t.Fatalf("backups after the console's backup: %+v %v", bs, err)
	}
	// The backup's job shows on the page, finished, without a reload.
	js, err := e.m.Client.ListJobs(ctx, e.cluster)
	if err != nil || len(js) == 0 || js[0].Kind != api.JobBackup {
		t.Fatalf("the newest job of %s is not the backup: %+v %v", e.cluster, js, err)
	}
	op.WaitUntil("the backup job succeeded on the page", fmt.Sprintf(`(document.querySelector('[data-job=%q]')||{dataset:{}}).dataset.jobState === "succeeded"`, js[0].ID), 10*time.Second)
	if !op.Marked() {
		t.Error("the cluster page reloaded during the backup")
	}
	act(t, op, "restore", map[string]string{"cluster": e.restoredTo}, "")
	cp := e.m.WaitPhase(ctx, e.restoredTo, api.PhaseReady, 90*time.Second)
	ccreds, err := e.m.Client.Credentials(ctx, e.restoredTo)
	if err != nil {
		t.Fatal(err)
	}
	rc2 := redis.NewClient(&redis.Options{Addr: cp.Status.Shards[0].Master.Address, Password: ccreds.Password, Protocol: 2})
	defer rc2.Close()
	if v, err := rc2.Get(ctx, "console-test").Result(); err != nil || v != "restored-through-the-console" {
		t.Fatalf("the restored cluster has console-test = %q %v", v, err)
	}
	op.Go("/")
	op.WaitUntil("the restored cluster Ready on the overview", fmt.Sprintf(`(document.querySelector('[data-cluster-phase=%q]')||{textContent:""}).textContent.trim() === "Ready"`, e.restoredTo), 15*time.Second)
	e.shot(t, op, "overview", 1280)
}

func testViewer(t *testing.T, e *consoleEnv) {
	ctx := context.Background()
	vt := e.b.NewTab(t, e.m.URL)
	vt.SignIn("vic", e.viewer)
	for _, path := range []string{"/", "/clusters/" + e.cluster, "/jobs", "/events"} {
		vt.Go(path)
		if n := vt.Count(actionsOtherThanSignOut); n != 0 {
			t.Errorf("%s shows a viewer %d action buttons: %s", path, n,
				Eval[string](vt, `[...document.querySelectorAll('[data-action]:not([data-action="sign-out"])')].map(e => e.dataset.action).join(" ")`))
		}
	}
	vt.Go("/clusters/" + e.cluster)
	if got := vt.Text(fmt.Sprintf(`[data-cluster-phase=%q]`, e.cluster)); got != "Ready" {
		t.Errorf("the viewer's cluster page shows %s as %q", e.cluster, got)
	}
	jobsBefore, _ := e.m.Client.ListJobs(ctx, e.cluster)
	refused := []struct{ method, path, body string }{
		{"POST", "/api/v1/clusters", `{"name":"viewer-made"}`},
		{"PATCH", "/api/v1/clusters/" + e.cluster, `{"replicas":1}`},
		{"POST", "/api/v1/clusters/" + e.cluster + "/failover", `{"shard":0}`},
		{"POST", "/api/v1/clusters/" + e.cluster + "/backups", `{}`},
		{"DELETE", "/api/v1/clusters/" + e.cluster, ``},
		{"GET", "/api/v1/clusters/" + e.cluster + "/credentials", ``},
	}
	for _, r := range refused {
		// The viewer's session, from the page, with its CSRF token.
		jsBody := "undefined"
		if r.body != "" {
			jsBody = strconv.Quote(r.body)
		}
		status := Eval[int](vt, fmt.Sprintf(`fetch(%q, {method: %q, headers: {"Content-Type": "application/json",
			"X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content}, body: %s}).then(r => r.status)`,
			r.path, r.method, jsBody))
		if status != http.StatusForbidden {
			t.Errorf("%s %s with the viewer's session: %d, want 403", r.method, r.path, status)
		}
		// The viewer's API token.
		st, _, body := do(t, e.m.URL, request{Method: r.method, Path: r.path, Body: r.body, Token: e.viewerToken})
		if st != http.StatusForbidden || !strings.Contains(string(body), `"forbidden"`) {
			t.Errorf("%s %s with a viewer token: %d %s, want 403 forbidden", r.method, r.path, st, body)
		}
	}
	jobsAfter, _ := e.m.Client.ListJobs(ctx, e.cluster)
	if len(jobsAfter) != len(jobsBefore) {
		t.Errorf("refused requests made jobs: %d before, %d after", len(jobsBefore), len(jobsAfter))
	}
	if _, err := e.m.Client.GetCluster(ctx, "viewer-made"); !api.IsNotFound(err) {
		t.Errorf("a viewer made a cluster: %v", err)
	}
	// What a viewer may do, it can: read through the API with its token,
	// and change its own password on its account page, with the current one.
	if st, _, body := do(t, e.m.URL, request{Method: "GET", Path: "/api/v1/clusters/" + e.cluster, Token: e.viewerToken}); st != 200 {
		t.Errorf("GET the cluster with a viewer token: %d %s", st, body)
	}
	vt.Go("/account")
	vt.Fill("#cp-current", "not-the-password")
	vt.Fill("#cp-new", "vic-new-password-1")
	vt.Click(`button[data-action="change-password"]`)
	vt.WaitUntil("the wrong current password shown next to its field",
		`document.querySelector('[data-error-for="currentPassword"]').textContent.trim() !== ""`, 5*time.Second)
	vt.Fill("#cp-current", e.viewer)
	vt.Click(`button[data-action="change-password"]`)
	vt.WaitUntil("the password changed", `location.search.includes("changed=1")`, 10*time.Second)
	e.viewer = "vic-new-password-1"
	again := e.b.NewTab(t, e.m.URL)
	again.SignIn("vic", e.viewer)
	if page := again.Page(); page != "overview" {
		t.Errorf("signed in with the new password: page %q, want overview", page)
	}
}

func testForgedPost(t *testing.T, e *consoleEnv) {
	ctx := context.Background()
	jobsBefore, _ := e.m.Client.ListJobs(ctx, "")
	// A page on another origin (another port: same site for cookies, so
	// SameSite=Strict alone would not stop it) that the signed-in operator
	// opens: a form posts to the API on load, and a fetch tries too.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><html><body>
<form id="f" method="POST" action="%[1]s/api/v1/clusters" enctype="text/plain"><input name='{"name":"forged","x":"' value='"}'></form>
<script>
fetch(%[2]q, {method: "POST", mode: "no-cors", credentials: "include", headers: {"Content-Type": "text/plain"}, body: '{"shard":0}'})
  .finally(() => document.getElementById("f").submit());
</script></body></html>`, e.m.URL, e.m.URL+"/api/v1/clusters/"+e.cluster+"/failover")
	}))
	defer evil.Close()
	op := e.op
	responses := make(chan int, 4)
	stop := listenResponses(t, op, "/api/v1/clusters", responses)
	defer stop()
	if err := op.run(tabTimeout, navigate(evil.URL)); err != nil {
		t.Fatal(err)
	}
	got := map[int]int{}
	deadline := time.After(10 * time.Second)
	for n := 0; n < 2; n++ { // the fetch's answer and the form's
		select {
		case s := <-responses:
			got[s]++
		case <-deadline:
			t.Fatalf("the forged requests got %v answers, want 2", got)
		}
	}
	for s := range got {
		if s != http.StatusForbidden {
			t.Errorf("a forged cross-site POST was answered %d, want 403 (answers %v)", s, got)
		}
	}
	if _, err := e.m.Client.GetCluster(ctx, "forged"); !api.IsNotFound(err) {
		t.Errorf("the forged POST made a cluster: %v", err)
	}
	jobsAfter, _ := e.m.Client.ListJobs(ctx, "")
	if len(jobsAfter) != len(jobsBefore) {
		t.Errorf("the forged requests made jobs: %d before, %d after", len(jobsBefore), len(jobsAfter))
	}
	// The same session's own page still works (the session was not harmed).
	if p := op.Go("/"); p != "overview" {
		t.Errorf("after the forged page, / shows %q", p)
	}
}

func testAdminPages(t *testing.T, e *consoleEnv) {
	at := e.b.NewTab(t, e.m.URL)
	at.SignIn("ada", e.admin)
	for _, p := range []struct{ path, page, shot string }{
		{"/jobs", "jobs", "jobs"},
		{"/events", "events", "events"},
		{"/audit", "audit", "audit"},
		{"/users", "users", "users-and-tokens"},
	} {
		if got := at.Go(p.path); got != p.page {
			t.Errorf("%s shows data-page %q", p.path, got)
			continue
		}
		e.shot(t, at, p.shot, 1280)
	}
	// The audit page lists what the operator did in the console.
	at.Go("/audit")
	if txt := Eval[string](at, `document.querySelector("main").innerText`); !strings.Contains(txt, "olga") || !strings.Contains(txt, "/api/v1/clusters") {
		t.Errorf("the audit page does not show olga's create: %.500s", txt)
	}
	at.Go("/users")
	for _, a := range []string{"create-user", "delete-user", "create-token", "delete-token"} {
		if at.Count(fmt.Sprintf(`[data-action=%q]`, a)) == 0 {
			t.Errorf("the admin's users page has no %s action", a)
		}
	}
	// An operator sees none of the admin's actions.
	e.op.Go("/clusters/" + e.cluster)
	for _, a := range []string{"delete", "delete-backup"} {
		if n := e.op.Count(fmt.Sprintf(`[data-action=%q]`, a)); n != 0 {
			t.Errorf("an operator sees %d %s actions", n, a)
		}
	}
}

func testDisconnect(t *testing.T, e *consoleEnv) {
	e.needLive(t)
	op := e.op
	op.Go("/clusters/" + e.cluster)
	op.WaitUntil("connected", `document.body.dataset.live === "connected"`, 10*time.Second)
	op.Mark()
	e.m.Stop()
	took := op.WaitUntil("shown disconnected", `document.body.dataset.live === "disconnected"`, 10*time.Second)
	t.Logf("disconnected shown %.1fs after the manager stopped", took.Seconds())
	e.m.Restart() // same port, same store: the session lives on
	took = op.WaitUntil("reconnected", `document.body.dataset.live === "connected"`, 20*time.Second)
	t.Logf("reconnected %.1fs after the manager was back", took.Seconds())
	if !op.Marked() {
		t.Error("the page reloaded to reconnect")
	}
}

func testSignOut(t *testing.T, e *consoleEnv) {
	op := e.op
	op.Go("/")
	c, ok := op.Cookie("redis_manager_session")
	if !ok {
		t.Fatal("no session cookie before signing out")
	}
	if st, _, body := do(t, e.m.URL, request{Method: "GET", Path: "/api/v1/session", Cookie: c.Value}); st != 200 {
		t.Fatalf("the session before signing out: %d %s", st, body)
	}
	op.Click(`[data-action="sign-out"]`)
	op.WaitUntil("the sign-in page after signing out", `document.querySelector('main[data-page="sign-in"]')`, 10*time.Second)
	if _, ok := op.Cookie("redis_manager_session"); ok {
		t.Error("the session cookie is still set after signing out")
	}
	// The old cookie is worthless now, on the API and on the pages.
	if st, _, body := do(t, e.m.URL, request{Method: "GET", Path: "/api/v1/session", Cookie: c.Value}); st != 401 {
		t.Errorf("GET /api/v1/session with the signed-out cookie: %d %s, want 401", st, body)
	}
	if st, _, body := do(t, e.m.URL, request{Method: "GET", Path: "/api/v1/clusters", Cookie: c.Value}); st != 401 {
		t.Errorf("GET /api/v1/clusters with the signed-out cookie: %d %s, want 401", st, body)
	}
	if st, loc, _ := do(t, e.m.URL, request{Method: "GET", Path: "/", Cookie: c.Value}); st != http.StatusSeeOther || !strings.HasPrefix(loc, "/sign-in") {
		t.Errorf("GET / with the signed-out cookie: %d to %q, want 303 to /sign-in", st, loc)
	}
	// Back in the browser, a page asks to sign in again.
	if p := op.Go("/clusters/" + e.cluster); p != "sign-in" {
		t.Errorf("after signing out, a cluster page shows %q", p)
	}
}
