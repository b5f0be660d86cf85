package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestFirstAdminSignsInOverTLS: a real manager serving HTTPS makes the
// first admin with a random password in <data-dir>/admin.password (0600);
// that password signs in, the session cookie is Secure, HttpOnly and
// SameSite=Strict, and under --metrics-auth an API token (any role) reads
// /metrics while a session cookie does not. The idle timeout comes from
// REDIS_MANAGER_SESSION_IDLE_TIMEOUT.
func TestFirstAdminSignsInOverTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile := selfSigned(t, t.TempDir())
	m := testenv.StartManager(t, testenv.ManagerOptions{Args: []string{"--tls-cert", certFile, "--tls-key", keyFile, "--metrics-auth"},
		Env: []string{"REDIS_MANAGER_SESSION_IDLE_TIMEOUT=45m"}})
	pwFile := filepath.Join(m.DataDir, "admin.password")
	fi, err := os.Stat(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %v, want 0600", pwFile, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(pwFile)
	pw := strings.TrimSpace(string(b))
	if log, _ := os.ReadFile(m.LogPath()); strings.Contains(string(log), pw) {
		t.Fatal("the first admin's password is in the manager's log")
	}

	pool := x509.NewCertPool()
	certPEM, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(certPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(method, path, body string, hdr map[string]string, c *http.Cookie) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, m.URL+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if c != nil {
			req.AddCookie(c)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp, out
	}

	resp, body := call("POST", "/api/v1/session", `{"name":"admin","password":"`+pw+`"}`, nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("sign in with the first admin's password: %d %s", resp.StatusCode, body)
	}
	var s api.Session
	_ = json.Unmarshal(body, &s)
	if s.Principal.Name != "admin" || s.Principal.Role != "admin" || s.Principal.Kind != "user" || s.CSRFToken == "" ||
		s.IdleTimeoutMs != (45*time.Minute).Milliseconds() {
		t.Fatalf("session: %s", body)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "redis_manager_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.Secure || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie under TLS: %v", resp.Header["Set-Cookie"])
	}
	if resp, body := call("GET", "/api/v1/clusters", "", nil, cookie); resp.StatusCode != 200 {
		t.Fatalf("clusters with the session: %d %s", resp.StatusCode, body)
	}
	// A token made through the session (with its CSRF token) reads the
	// metrics; the session itself does not.
	resp, body = call("POST", "/api/v1/tokens", `{"name":"prom","role":"viewer"}`, map[string]string{"X-CSRF-Token": s.CSRFToken}, cookie)
	if resp.StatusCode != 201 {
		t.Fatalf("create token: %d %s", resp.StatusCode, body)
	}
	var tok api.Token
	_ = json.Unmarshal(body, &tok)
	if resp, _ := call("GET", "/metrics", "", map[string]string{"Authorization": "Bearer " + tok.Token}, nil); resp.StatusCode != 200 {
		t.Fatalf("/metrics with a viewer token: %d", resp.StatusCode)
	}
	if resp, _ := call("GET", "/metrics", "", nil, cookie); resp.StatusCode != 401 {
		t.Fatalf("/metrics with a session cookie: %d, want 401", resp.StatusCode)
	}
	if resp, _ := call("GET", "/metrics", "", map[string]string{"Authorization": "Bearer rmt_wrong"}, nil); resp.StatusCode != 401 {
		t.Fatalf("/metrics with a wrong token: %d, want 401", resp.StatusCode)
	}
	// Sign-out ends the session for every manager of the store.
	if resp, body := call("DELETE", "/api/v1/session", "", map[string]string{"X-CSRF-Token": s.CSRFToken}, cookie); resp.StatusCode != 204 {
		t.Fatalf("sign out: %d %s", resp.StatusCode, body)
	}
	if resp, _ := call("GET", "/api/v1/clusters", "", nil, cookie); resp.StatusCode != 401 {
		t.Fatalf("clusters after sign-out: %d, want 401", resp.StatusCode)
	}
	// The audit log has the sign-in, the token and the sign-out, by
	// the admin user, with no secret.
	cl := api.NewClient(m.URL, m.Token)
	cl.HTTPClient = hc
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	entries, err := cl.Audit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(entries)
	for _, secret := range []string{pw, tok.Token, cookie.Value, s.CSRFToken, m.Token} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("a secret is in the audit log: %s", raw)
		}
	}
	want := []string{"DELETE /api/v1/session 204 admin", "POST /api/v1/tokens 201 admin", "POST /api/v1/session 200 admin"}
	var got []string
	for _, e := range entries {
		if e.Path == "/api/v1/session" || e.Path == "/api/v1/tokens" {
			got = append(got, e.Method+" "+e.Path+" "+strconv.Itoa(e.Status)+" "+e.Principal)
		}
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("audit entries %q, want %q (newest first)", got, want)
	}
}
