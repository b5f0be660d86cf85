// Package e2eui drives the web console in a real headless Chromium
// (github.com/chromedp/chromedp) against real managers started by
// internal/testenv: the browser tests of issue 13, the screenshots of
// docs/ui.md (make screenshots) and the first-load byte counts of
// bench/console use it.
package e2eui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package puts the browser;
// REDIS_MANAGER_CHROMIUM overrides it.
func ChromiumPath() string {
	if p := os.Getenv("REDIS_MANAGER_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// Browser is one headless Chromium process. Each Tab opens in a browser
// context of its own (cookies and storage apart, like a private window),
// so tests share the process but never a session.
type Browser struct {
	ctx    context.Context // the browser's chromedp context
	cancel func()
	dir    string
	out    syncBuffer // Chromium's stdout and stderr
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartBrowser starts headless Chromium (--no-sandbox --disable-gpu).
func StartBrowser() (*Browser, error) {
	path := ChromiumPath()
	if path == "" {
		return nil, errors.New("chromium is not installed (make deps-test installs Debian's chromium)")
	}
	dir, err := os.MkdirTemp("", "redis-manager-chromium-")
	if err != nil {
		return nil, err
	}
	b := &Browser{dir: dir}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(dir),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&b.out),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	b.ctx = bctx
	b.cancel = func() { cancelBrowser(); cancelAlloc() }
	// The first Run starts the browser; it lives as long as bctx.
	if err := chromedp.Do(bctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("start chromium: %w\n%s", err, b.Output())
	}
	return b, nil
}

// Output is what Chromium printed so far.
func (b *Browser) Output() string { return b.out.String() }

// Close stops Chromium and removes its profile.
func (b *Browser) Close() {
	b.cancel()
	for range 50 { // Chromium's children may still write there a moment
		if err := os.RemoveAll(b.dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// T is what a Tab needs of its test: testing.TB has it, and so has the
// console benchmark's stand-in (bench/console).
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	Failed() bool
}

// Tab is one page of a browser context of its own, with a base URL (a
// manager's) that paths are resolved against.
type Tab struct {
	t    T
	b    *Browser
	Ctx  context.Context
	Base string
	// Console collects the page's console messages and uncaught
	// exceptions, logged when the test fails.
	console syncBuffer
}

// NewTab opens a tab in a new browser context. When the test fails, the
// tab's URL, console and Chromium's output go to the test log.
func (b *Browser) NewTab(t T, base string) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	tab := &Tab{t: t, b: b, Ctx: ctx, Base: strings.TrimRight(base, "/")}
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("open tab: %v\n%s", err, b.Output())
	}
	_ = chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range e.Args {
				if len(a.Value) > 0 {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			fmt.Fprintf(&tab.console, "console.%s: %s\n", e.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			fmt.Fprintf(&tab.console, "exception at %s:%d: %s\n", d.URL, d.LineNumber, msg)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			u, _ := tab.eval(`location.href`)
			t.Logf("tab at %s; page console:\n%s", u, tab.console.String())
			t.Logf("chromium output (last lines):\n%s", lastLines(b.Output(), 40))
		}
		cancel()
	})
	return tab
}

// URL resolves a path against the tab's base.
func (tab *Tab) URL(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return tab.Base + path
}

// run runs actions with a timeout.
func (tab *Tab) run(timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(tab.Ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// Go navigates to path and waits until the page's <main data-page> is
// there; it returns the page's name (data-page).
func (tab *Tab) Go(path string) string {
	tab.t.Helper()
	if err := tab.run(20*time.Second, chromedp.Navigate(tab.URL(path)), chromedp.WaitReady(chromedp.CSS("main[data-page]"))); err != nil {
		tab.t.Fatalf("open %s: %v (page now: %s)", path, err, tab.Location())
	}
	return tab.Page()
}

// Page is the current page's data-page ("" when none).
func (tab *Tab) Page() string {
	s, _ := tab.eval(`(document.querySelector("main[data-page]")||{dataset:{}}).dataset.page||""`)
	return s
}

// Location is the tab's current URL.
func (tab *Tab) Location() string {
	s, _ := tab.eval(`location.href`)
	return s
}

// eval evaluates a JavaScript expression whose value is a string.
func (tab *Tab) eval(js string) (string, error) {
	ctx, cancel := context.WithTimeout(tab.Ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](js))
}

// Eval evaluates a JavaScript expression (awaiting a promise) and decodes
// its value into T; an error fails the test.
func Eval[T any](tab *Tab, js string) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tab.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// Count is the number of elements matching a CSS selector.
func (tab *Tab) Count(sel string) int {
	tab.t.Helper()
	return Eval[int](tab, fmt.Sprintf(`document.querySelectorAll(%s).length`, strconv.Quote(sel)))
}

// Text is the trimmed text of the first element matching sel ("" when none).
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	return Eval[string](tab, fmt.Sprintf(`((document.querySelector(%s)||{}).textContent||"").trim()`, strconv.Quote(sel)))
}

// Attr is an attribute of the first element matching sel, and whether the
// element has it.
func (tab *Tab) Attr(sel, name string) (string, bool) {
	tab.t.Helper()
	v := Eval[*string](tab, fmt.Sprintf(`(e => e && e.hasAttribute(%[2]s) ? e.getAttribute(%[2]s) : null)(document.querySelector(%[1]s))`,
		strconv.Quote(sel), strconv.Quote(name)))
	if v == nil {
		return "", false
	}
	return *v, true
}

// WaitFor waits until an element matches sel.
func (tab *Tab) WaitFor(sel string, timeout time.Duration) {
	tab.t.Helper()
	if err := tab.run(timeout, chromedp.WaitReady(chromedp.CSS(sel))); err != nil {
		tab.t.Fatalf("no %s on %s within %s: %v", sel, tab.Location(), timeout, err)
	}
}

// WaitUntil polls a JavaScript condition every 50 ms until it is true and
// returns how long that took; it fails the test after timeout.
func (tab *Tab) WaitUntil(what, js string, timeout time.Duration) time.Duration {
	tab.t.Helper()
	start := time.Now()
	for {
		ok, err := tab.evalBool(js)
		if err == nil && ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			tab.t.Fatalf("%s: not within %s on %s (last error %v)", what, timeout, tab.Location(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (tab *Tab) evalBool(js string) (bool, error) {
	ctx, cancel := context.WithTimeout(tab.Ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+js+`)`))
}

// Fill sets an input's value as typing would (input and change events).
func (tab *Tab) Fill(sel, value string) {
	tab.t.Helper()
	ok := Eval[bool](tab, fmt.Sprintf(`(e => { if (!e) return false; e.focus(); e.value = %[2]s;
		e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true })(document.querySelector(%[1]s))`,
		strconv.Quote(sel), strconv.Quote(value)))
	if !ok {
		tab.t.Fatalf("no %s to fill on %s", sel, tab.Location())
	}
}

// Click clicks the first element matching sel with a real mouse event.
func (tab *Tab) Click(sel string) {
	tab.t.Helper()
	if err := tab.run(10*time.Second, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err != nil {
		tab.t.Fatalf("click %s on %s: %v", sel, tab.Location(), err)
	}
}

// Mark sets a value on the page's window object; Marked tells whether it
// is still there. A page that reloads or navigates loses it: the tests
// assert "without reloading" with it.
func (tab *Tab) Mark() {
	tab.t.Helper()
	Eval[bool](tab, `(window.__uitestMark = true)`)
}

// Marked reports whether the window set by Mark is still the page's.
func (tab *Tab) Marked() bool {
	tab.t.Helper()
	return Eval[bool](tab, `window.__uitestMark === true`)
}

// SignIn signs in through the console's sign-in page (the form's inputs
// name and password) and waits for the overview.
func (tab *Tab) SignIn(name, password string) {
	tab.t.Helper()
	if p := tab.Go("/sign-in"); p != "sign-in" {
		tab.t.Fatalf("/sign-in shows data-page %q", p)
	}
	tab.Fill(`main[data-page="sign-in"] input[name="name"]`, name)
	tab.Fill(`main[data-page="sign-in"] input[name="password"]`, password)
	tab.Click(`main[data-page="sign-in"] form [type="submit"]`)
	tab.WaitUntil("overview after signing in as "+name, `document.querySelector('main[data-page="overview"]')`, 15*time.Second)
}

// Cookie returns the value of the tab's cookie for the base URL (HttpOnly
// ones too), and whether it is set.
func (tab *Tab) Cookie(name string) (network.Cookie, bool) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{tab.Base + "/"}})
	if err != nil {
		tab.t.Fatalf("get cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return *c, true
		}
	}
	return network.Cookie{}, false
}

// Screenshot takes a full-page PNG at the given width (CSS pixels).
func (tab *Tab) Screenshot(width int64) []byte {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, 900)); err != nil {
		tab.t.Fatalf("viewport %d: %v", width, err)
	}
	time.Sleep(300 * time.Millisecond) // let charts re-lay out for the width
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tab.t.Fatalf("screenshot: %v", err)
	}
	return png
}

// Transfer is what a first load of a page moved over the network.
type Transfer struct {
	Requests int
	Bytes    int64 // encoded (on the wire) bytes of every response, headers included
	ByURL    map[string]int64
}

// FirstLoad loads path in a tab with the browser cache disabled, waits for
// the load event and for the network to be quiet for quiet, and sums the
// encoded bytes of every response (Network.loadingFinished), assets
// included. Long-lived requests that never finish (the event stream) are
// not counted.
func (tab *Tab) FirstLoad(path string, quiet time.Duration) Transfer {
	tab.t.Helper()
	var mu sync.Mutex
	urls := map[network.RequestID]string{}
	tr := Transfer{ByURL: map[string]int64{}}
	last := time.Now()
	lctx, stop := context.WithCancel(tab.Ctx)
	defer stop()
	if err := chromedp.Listen(lctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			urls[e.RequestID] = e.Request.URL
			last = time.Now()
		case *network.EventLoadingFinished:
			u := urls[e.RequestID]
			tr.Requests++
			tr.Bytes += int64(e.EncodedDataLength)
			tr.ByURL[u] += int64(e.EncodedDataLength)
			last = time.Now()
		}
	}); err != nil {
		tab.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(tab.Ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		tab.t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
		tab.t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(tab.URL(path))); err != nil {
		tab.t.Fatalf("load %s: %v", path, err)
	}
	for {
		mu.Lock()
		idle := time.Since(last)
		mu.Unlock()
		if idle >= quiet {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, _ = chromedp.Call(ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: false})
	mu.Lock()
	defer mu.Unlock()
	out := tr
	out.ByURL = map[string]int64{}
	for u, n := range tr.ByURL {
		if pu, err := url.Parse(u); err == nil && pu.Path != "" && (pu.Scheme == "http" || pu.Scheme == "https") {
			u = pu.Path
			if pu.RawQuery != "" {
				u += "?" + pu.RawQuery
			}
		} else if len(u) > 40 {
			u = u[:40] + "…"
		}
		out.ByURL[u] += n
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

const tabTimeout = 20 * time.Second

func navigate(u string) chromedp.Action[chromedp.Void] { return chromedp.Navigate(u) }

func emulateWidth(w int64) chromedp.Action[chromedp.Void] { return chromedp.EmulateViewport(w, 900) }

// listenResponses sends the HTTP status of every response the tab receives
// whose URL path starts with prefix (documents, fetches, no-cors ones too)
// on ch, until stop is called.
func listenResponses(t T, tab *Tab, prefix string, ch chan<- int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(tab.Ctx)
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok {
			if u, err := url.Parse(e.Response.URL); err == nil && strings.HasPrefix(u.Path, prefix) {
				select {
				case ch <- int(e.Response.Status):
				default:
				}
			}
		}
	}); err != nil {
		cancel()
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(tab.Ctx, 10*time.Second)
	defer ccancel()
	if _, err := chromedp.Call(cctx, network.Enable, network.EnableParams{}); err != nil {
		cancel()
		t.Fatal(err)
	}
	return cancel
}
