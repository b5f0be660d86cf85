package e2eui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestHarness checks the harness itself: Chromium starts, a tab reaches a
// real manager, reads what it serves, and takes screenshots at both widths.
func TestHarness(t *testing.T) {
	b := sharedBrowser(t)
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	tab := b.NewTab(t, m.URL)
	if err := tab.run(tabTimeout, navigate(tab.URL("/api/v1/health"))); err != nil {
		t.Fatal(err)
	}
	body := Eval[string](tab, `document.body.innerText`)
	if !strings.Contains(body, `"leader"`) {
		t.Fatalf("health in Chromium: %q", body)
	}
	for _, w := range []int64{1280, 390} {
		png := tab.Screenshot(w)
		if len(png) < 100 || string(png[1:4]) != "PNG" {
			t.Fatalf("screenshot at %d px is not a PNG (%d bytes)", w, len(png))
		}
		if got := Eval[int](tab, `window.innerWidth`); int64(got) != w {
			t.Errorf("viewport %d px wide, want %d", got, w)
		}
	}
}

// TestHarnessActions checks the harness's actions on a small page of its
// own: a form filled and sent, a wait on a data- hook, the mark that tells
// a reload, an HttpOnly cookie, response statuses, and the byte count of a
// first load (the page and its script).
func TestHarnessActions(t *testing.T) {
	b := sharedBrowser(t)
	script := strings.Repeat("// padding\n", 500) + `document.body.dataset.live = "connected";`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/app.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = io.WriteString(w, script)
		case "/sign-in":
			http.SetCookie(w, &http.Cookie{Name: "s", Value: "v", HttpOnly: true, SameSite: http.SameSiteStrictMode, Path: "/"})
			_, _ = io.WriteString(w, `<!doctype html><body><main data-page="sign-in"><form onsubmit="event.preventDefault();
				document.querySelector('main').dataset.page = 'overview'; document.querySelector('main').innerText = this.elements.name.value">
				<label>Name <input name="name"></label><button type="submit">Sign in</button></form></main><script src="/app.js"></script>`)
		case "/forbidden":
			w.WriteHeader(403)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	tab := b.NewTab(t, srv.URL)
	if p := tab.Go("/sign-in"); p != "sign-in" {
		t.Fatalf("page %q", p)
	}
	tab.Mark()
	tab.Fill(`input[name="name"]`, "olga")
	tab.Click(`form [type="submit"]`)
	tab.WaitUntil("overview", `document.querySelector('main[data-page="overview"]')`, 5*time.Second)
	if got := tab.Text("main"); got != "olga" || !tab.Marked() {
		t.Fatalf("text %q marked %v", got, tab.Marked())
	}
	if v, ok := tab.Attr("body", "data-live"); !ok || v != "connected" {
		t.Fatalf("data-live %q %v", v, ok)
	}
	if c, ok := tab.Cookie("s"); !ok || c.Value != "v" || !c.HTTPOnly || c.SameSite != "Strict" {
		t.Fatalf("cookie %+v %v", c, ok)
	}
	tab.Go("/sign-in")
	if tab.Marked() {
		t.Fatal("the mark survived a navigation")
	}
	statuses := make(chan int, 4)
	stop := listenResponses(t, tab, "/forbidden", statuses)
	if got := Eval[int](tab, `fetch("/forbidden", {method: "POST"}).then(r => r.status)`); got != 403 {
		t.Fatalf("fetch status %d", got)
	}
	select {
	case s := <-statuses:
		if s != 403 {
			t.Fatalf("listened status %d", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no response event")
	}
	stop()
	tr := tab.FirstLoad("/sign-in", 300*time.Millisecond)
	if tr.Requests < 2 || tr.ByURL["/app.js"] < int64(len(script)) || tr.Bytes < tr.ByURL["/app.js"]+300 {
		t.Fatalf("first load %+v (script %d bytes)", tr, len(script))
	}
}
