package e2eui

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/internal/testenv"
)

var (
	browserOnce sync.Once
	browser     *Browser
	browserErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBinary()
	if browser != nil {
		browser.Close()
	}
	os.Exit(code)
}

// sharedBrowser starts Chromium once per test binary. Without Chromium the
// test is skipped, unless CI=true, where it fails: CI must not pass by
// skipping.
func sharedBrowser(t testing.TB) *Browser {
	t.Helper()
	browserOnce.Do(func() { browser, browserErr = StartBrowser() })
	if browserErr != nil {
		if os.Getenv("CI") == "true" || os.Getenv("REDIS_MANAGER_REQUIRE_CHROMIUM") == "1" {
			t.Fatal(browserErr)
		}
		t.Skip(browserErr)
	}
	return browser
}

// secret is a random password.
func secret() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// request is one raw HTTP request to a manager.
type request struct {
	Method, Path, Body string
	Token              string // Authorization: Bearer
	Cookie             string // redis_manager_session value
	CSRF               string // X-CSRF-Token
	Origin             string
}

// do sends r to base without following redirects and returns the status,
// the Location header and the body.
func do(t testing.TB, base string, r request) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(r.Method, base+r.Path, strings.NewReader(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	if r.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	if r.Cookie != "" {
		req.AddCookie(&http.Cookie{Name: "redis_manager_session", Value: r.Cookie})
	}
	if r.CSRF != "" {
		req.Header.Set("X-CSRF-Token", r.CSRF)
	}
	if r.Origin != "" {
		req.Header.Set("Origin", r.Origin)
	}
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Location"), body
}

// mustJSON sends r and decodes a 2xx answer into out; another status fails
// the test.
func mustJSON(t testing.TB, base string, r request, out any) {
	t.Helper()
	status, _, body := do(t, base, r)
	if status/100 != 2 {
		t.Fatalf("%s %s: %d %s", r.Method, r.Path, status, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v in %s", r.Method, r.Path, err, body)
		}
	}
}

// createUser makes a user through the API with the admin token.
func createUser(t testing.TB, m *testenv.Manager, name, role string) string {
	t.Helper()
	pw := secret()
	body, _ := json.Marshal(map[string]string{"name": name, "password": pw, "role": role})
	mustJSON(t, m.URL, request{Method: "POST", Path: "/api/v1/users", Token: m.Token, Body: string(body)}, nil)
	return pw
}

// createToken makes an API token through the API with the admin token and
// returns its secret.
func createToken(t testing.TB, m *testenv.Manager, name, role string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "role": role})
	var out struct {
		Token string `json:"token"`
	}
	mustJSON(t, m.URL, request{Method: "POST", Path: "/api/v1/tokens", Token: m.Token, Body: string(body)}, &out)
	if out.Token == "" {
		t.Fatal("POST /api/v1/tokens answered no token")
	}
	return out.Token
}

// waitAPI polls f every 100 ms until it returns true.
func waitAPI(t testing.TB, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
