package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestUserTokenAuditCommands drives the access commands against a real
// manager: users and tokens made, listed, used and removed; the password
// only on stdin, never in a request the CLI logs or prints.
func TestUserTokenAuditCommands(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{Ports: 2})
	cli := func(stdin string, args ...string) cliRun {
		t.Helper()
		return runCLI(t, false, stdin, append([]string{"--server", s.URL, "--token", s.Token}, args...)...)
	}
	r := cli("ana-password-1\n", "user", "create", "ana", "--role", "operator", "--password-stdin")
	if r.err != nil || r.stdout != "user ana created with role operator\n" {
		t.Fatalf("user create: %v %q %q", r.err, r.stdout, r.stderr)
	}
	if got := s.lastRequest(t, "POST", "/api/v1/users"); !jsonEqual(t, string(got.Body), `{"name":"ana","password":"ana-password-1","role":"operator"}`) || got.Status != 201 {
		t.Fatalf("user create sent %s → %d", got.Body, got.Status)
	}
	// Without --password-stdin and no terminal: refused, nothing sent.
	before := s.count("POST")
	if r := cli("", "user", "create", "bo", "--role", "viewer"); r.err == nil || !strings.Contains(r.err.Error(), "--password-stdin") {
		t.Fatalf("user create without a terminal: %v", r.err)
	}
	if s.count("POST") != before {
		t.Fatal("user create without a password sent a request")
	}
	if r := cli("", "user", "create", "bo"); r.err == nil || !strings.Contains(r.err.Error(), "role") {
		t.Fatalf("user create without --role: %v", r.err)
	}

	r = cli("", "user", "list", "-o", "json")
	if r.err != nil || !jsonEqual(t, r.stdout, string(s.lastRequest(t, "GET", "/api/v1/users").Response)) {
		t.Fatalf("user list -o json: %v %s", r.err, r.stdout)
	}
	users := decode[struct{ Users []api.User }](t, []byte(r.stdout)).Users
	if len(users) != 2 || users[0].Name != "admin" || users[1].Name != "ana" || users[1].Role != "operator" {
		t.Fatalf("users: %+v (want the first admin and ana)", users)
	}
	r = cli("", "user", "list")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.err != nil || len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.HasPrefix(lines[2], "ana") || !strings.Contains(lines[2], "operator") {
		t.Fatalf("user list: %v\n%s", r.err, r.stdout)
	}
	if r := cli("ana-password-2\n", "user", "set-password", "ana", "--password-stdin"); r.err != nil || r.stdout != "password of user ana changed\n" {
		t.Fatalf("set-password: %v %q", r.err, r.stdout)
	}
	if code, _ := s.Call(t, "POST", "/api/v1/session", "", `{"name":"ana","password":"ana-password-2"}`); code != 200 {
		t.Fatalf("sign-in with the new password: %d", code)
	}

	// A token is printed once, alone on stdout, and works.
	r = cli("", "token", "create", "ci", "--role", "viewer", "--expires-in-days", "7")
	tok := strings.TrimSpace(r.stdout)
	if r.err != nil || !strings.HasPrefix(tok, "rmt_") || strings.Contains(tok, "\n") || !strings.Contains(r.stderr, "shown only now") {
		t.Fatalf("token create: %v %q %q", r.err, r.stdout, r.stderr)
	}
	viewer := runCLI(t, false, "", "--server", s.URL, "--token", tok, "cluster", "list", "-o", "json")
	if viewer.err != nil {
		t.Fatalf("cluster list with the viewer token: %v", viewer.err)
	}
	if r := runCLI(t, false, "", "--server", s.URL, "--token", tok, "token", "list"); r.err == nil || !strings.Contains(r.err.Error(), "forbidden") {
		t.Fatalf("token list with a viewer token: %v, want forbidden", r.err)
	}
	r = cli("", "token", "list", "-o", "json")
	toks := decode[struct{ Tokens []api.Token }](t, []byte(r.stdout)).Tokens
	if r.err != nil || len(toks) != 1 || toks[0].Name != "ci" || toks[0].ExpiresAt == nil || toks[0].LastUsedAt == nil || toks[0].Token != "" {
		t.Fatalf("token list: %v %s", r.err, r.stdout)
	}
	if strings.Contains(r.stdout, tok) {
		t.Fatal("token list shows the secret")
	}
	if r := cli("", "token", "revoke", "ci"); r.err != nil || r.stdout != "token ci revoked\n" {
		t.Fatalf("token revoke: %v %q", r.err, r.stdout)
	}
	if r := runCLI(t, false, "", "--server", s.URL, "--token", tok, "cluster", "list"); r.err == nil || !strings.Contains(r.err.Error(), "unauthorized") {
		t.Fatalf("cluster list with a revoked token: %v, want unauthorized", r.err)
	}
	if r := cli("", "user", "delete", "ana"); r.err != nil || r.stdout != "user ana deleted\n" {
		t.Fatalf("user delete: %v %q", r.err, r.stdout)
	}

	// The audit log, newest first, without a secret.
	r = cli("", "audit", "--limit", "4", "-o", "json")
	if r.err != nil || !jsonEqual(t, r.stdout, string(s.lastRequest(t, "GET", "/api/v1/audit").Response)) {
		t.Fatalf("audit -o json: %v %s", r.err, r.stdout)
	}
	if q := s.lastRequest(t, "GET", "/api/v1/audit").Query; q != "limit=4" {
		t.Fatalf("audit --limit 4 sent query %q", q)
	}
	entries := decode[struct{ Entries []api.AuditEntry }](t, []byte(r.stdout)).Entries
	var got []string
	for _, e := range entries {
		got = append(got, e.Method+" "+e.Path+" "+e.Principal)
	}
	want := []string{"DELETE /api/v1/users/ana admin", "DELETE /api/v1/tokens/ci admin", "POST /api/v1/tokens admin", "POST /api/v1/session ana"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("audit: %q, want %q", got, want)
	}
	for _, sec := range []string{tok, "ana-password-1", "ana-password-2", s.Token} {
		if strings.Contains(r.stdout, sec) {
			t.Fatalf("a secret is in the audit log: %s", r.stdout)
		}
	}
	r = cli("", "audit", "--limit", "1")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.err != nil || len(lines) != 2 || !strings.Contains(lines[1], "token:admin") ||
		!strings.Contains(lines[1], "DELETE") || !strings.Contains(lines[1], "/api/v1/users/ana") || !strings.Contains(lines[1], "204") {
		t.Fatalf("audit table: %v\n%s", r.err, r.stdout)
	}

	// The first admin's password file signs in.
	pw, err := os.ReadFile(filepath.Join(s.DataDir, "admin.password"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(api.SignInRequest{Name: "admin", Password: strings.TrimSpace(string(pw))})
	if code, _ := s.Call(t, "POST", "/api/v1/session", "", string(body)); code != 200 {
		t.Fatalf("first admin sign-in: %d", code)
	}
}
