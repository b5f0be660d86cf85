package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestAccess runs the users, tokens, sessions and audit log methods
// against every engine.
func TestAccess(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, eng)
			t.Run("users", func(t *testing.T) { testUsers(t, e) })
			t.Run("tokens", func(t *testing.T) { testTokens(t, e) })
			t.Run("sessions", func(t *testing.T) { testSessions(t, e) })
			t.Run("audit", func(t *testing.T) { testAudit(t, e) })
			t.Run("first user, concurrently", func(t *testing.T) { testFirstUserRace(t, newEnv(t, eng)) })
		})
	}
}

func testUsers(t *testing.T, e *env) {
	ctx := t.Context()
	s := e.s
	first := User{Name: "root", PasswordHash: "$argon2id$first", Role: "admin", CreatedAt: base}
	if created, err := s.CreateFirstUser(ctx, first); err != nil || !created {
		t.Fatalf("CreateFirstUser on an empty table: created=%v err=%v", created, err)
	}
	if created, err := s.CreateFirstUser(ctx, User{Name: "other", PasswordHash: "x", Role: "admin"}); err != nil || created {
		t.Fatalf("CreateFirstUser with a user present: created=%v err=%v, want false, nil", created, err)
	}
	ana := User{Name: "ana", PasswordHash: "$argon2id$ana", Role: "operator", CreatedAt: base.Add(time.Second)}
	if err := s.CreateUser(ctx, ana); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, ana); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate user: %v, want ErrConflict", err)
	}
	// Names compare exactly on both engines.
	if err := s.CreateUser(ctx, User{Name: "Ana", PasswordHash: "h", Role: "viewer"}); err != nil {
		t.Fatalf("Ana beside ana: %v", err)
	}
	got, err := s.GetUser(ctx, "ana")
	if err != nil || got != ana {
		t.Fatalf("GetUser: %+v %v, want %+v", got, err, ana)
	}
	if _, err := s.GetUser(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetUser(nobody): %v", err)
	}
	us, err := s.ListUsers(ctx)
	if err != nil || len(us) != 3 || us[0].Name != "Ana" || us[1].Name != "ana" || us[2].Name != "root" {
		t.Fatalf("ListUsers: %+v %v", us, err)
	}
	// A new role reaches the user's live sessions; a new password does
	// not touch the role.
	if err := s.CreateSession(ctx, Session{IDHash: "s-ana", Name: "ana", Kind: "user", Role: "operator", CSRF: "c"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, Session{IDHash: "s-ana-token", Name: "ana", Kind: "token", Role: "admin", CSRF: "c"}); err != nil {
		t.Fatal(err)
	}
	h, role := "$argon2id$new", "viewer"
	if err := s.UpdateUser(ctx, "ana", &h, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetUser(ctx, "ana"); got.PasswordHash != h || got.Role != "operator" {
		t.Fatalf("after a password change: %+v", got)
	}
	if err := s.UpdateUser(ctx, "ana", nil, &role); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetUser(ctx, "ana"); got.PasswordHash != h || got.Role != "viewer" {
		t.Fatalf("after a role change: %+v", got)
	}
	if ss, _ := s.GetSession(ctx, "s-ana"); ss.Role != "viewer" {
		t.Fatalf("the user's session kept role %q after the change", ss.Role)
	}
	if ss, _ := s.GetSession(ctx, "s-ana-token"); ss.Role != "admin" {
		t.Fatalf("a token's session of the same name changed role to %q", ss.Role)
	}
	if err := s.UpdateUser(ctx, "nobody", &h, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateUser(nobody): %v", err)
	}
	if err := s.DeleteUser(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, "s-ana"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the deleted user's session: %v, want ErrNotFound", err)
	}
	if _, err := s.GetSession(ctx, "s-ana-token"); err != nil {
		t.Fatalf("a token's session of the same name ended with the user: %v", err)
	}
	if err := s.DeleteUser(ctx, "ana"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteUser twice: %v", err)
	}
}

func testTokens(t *testing.T, e *env) {
	ctx := t.Context()
	s := e.s
	exp := base.Add(30 * 24 * time.Hour)
	ci := Token{Name: "ci", Hash: "aa11", Role: "viewer", CreatedAt: base, ExpiresAt: &exp}
	if err := s.CreateToken(ctx, ci); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, Token{Name: "ci", Hash: "bb22", Role: "admin"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate token name: %v", err)
	}
	if err := s.CreateToken(ctx, Token{Name: "other", Hash: "aa11", Role: "admin"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate token hash: %v", err)
	}
	if err := s.CreateToken(ctx, Token{Name: "deploy", Hash: "cc33", Role: "operator", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	got, err := s.TokenByHash(ctx, "aa11")
	if err != nil || got.Name != "ci" || got.Role != "viewer" || !got.CreatedAt.Equal(base) || got.ExpiresAt == nil ||
		!got.ExpiresAt.Equal(exp) || got.LastUsedAt != nil {
		t.Fatalf("TokenByHash: %+v %v", got, err)
	}
	if _, err := s.TokenByHash(ctx, "zz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("TokenByHash(unknown): %v", err)
	}
	used := base.Add(time.Hour)
	if err := s.TouchToken(ctx, "ci", used); err != nil {
		t.Fatal(err)
	}
	ts, err := s.ListTokens(ctx)
	if err != nil || len(ts) != 2 || ts[0].Name != "ci" || ts[0].LastUsedAt == nil || !ts[0].LastUsedAt.Equal(used) ||
		ts[1].Name != "deploy" || ts[1].ExpiresAt != nil {
		t.Fatalf("ListTokens: %+v %v", ts, err)
	}
	if err := s.CreateSession(ctx, Session{IDHash: "s-ci", Name: "ci", Kind: "token", Role: "viewer", CSRF: "c"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenByHash(ctx, "aa11"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a revoked token is still found: %v", err)
	}
	if _, err := s.GetSession(ctx, "s-ci"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a session signed in with a revoked token lives on: %v", err)
	}
	if err := s.DeleteToken(ctx, "ci"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteToken twice: %v", err)
	}
}

func testSessions(t *testing.T, e *env) {
	ctx := t.Context()
	s := e.s
	old := Session{IDHash: "old", Name: "bo", Kind: "user", Role: "viewer", CSRF: "csrf-old", CreatedAt: base, LastSeenAt: base}
	idle := Session{IDHash: "idle", Name: "bo", Kind: "user", Role: "viewer", CSRF: "csrf-idle", CreatedAt: base.Add(20 * time.Hour), LastSeenAt: base.Add(20 * time.Hour)}
	live := Session{IDHash: "live", Name: "bo", Kind: "user", Role: "viewer", CSRF: "csrf-live", CreatedAt: base.Add(20 * time.Hour), LastSeenAt: base.Add(20 * time.Hour)}
	for _, ss := range []Session{old, idle, live} {
		if err := s.CreateSession(ctx, ss); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetSession(ctx, "live")
	if err != nil || got != live {
		t.Fatalf("GetSession: %+v %v, want %+v", got, err, live)
	}
	seen := base.Add(24 * time.Hour)
	if err := s.TouchSession(ctx, "live", seen); err != nil {
		t.Fatal(err)
	}
	// The "old" one is past its maximum age, "idle" past the idle
	// timeout; "live" was just touched.
	n, err := s.DeleteStaleSessions(ctx, base.Add(23*time.Hour), base.Add(12*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteStaleSessions: %d %v, want 2", n, err)
	}
	if got, err := s.GetSession(ctx, "live"); err != nil || !got.LastSeenAt.Equal(seen) {
		t.Fatalf("live session: %+v %v", got, err)
	}
	for _, id := range []string{"old", "idle"} {
		if _, err := s.GetSession(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("stale session %s: %v", id, err)
		}
	}
	// EndSessions: all of a principal's but one, nobody else's.
	for _, ss := range []Session{
		{IDHash: "cy-1", Name: "cy", Kind: "user", Role: "viewer", CSRF: "c"},
		{IDHash: "cy-2", Name: "cy", Kind: "user", Role: "viewer", CSRF: "c"},
		{IDHash: "cy-3", Name: "cy", Kind: "user", Role: "viewer", CSRF: "c"},
		{IDHash: "cy-token", Name: "cy", Kind: "token", Role: "viewer", CSRF: "c"},
	} {
		if err := s.CreateSession(ctx, ss); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.EndSessions(ctx, "user", "cy", "cy-2"); err != nil || n != 2 {
		t.Fatalf("EndSessions: %d %v, want 2", n, err)
	}
	for id, alive := range map[string]bool{"cy-1": false, "cy-2": true, "cy-3": false, "cy-token": true, "live": true} {
		if _, err := s.GetSession(ctx, id); (err == nil) != alive {
			t.Errorf("session %s after EndSessions: %v, want alive=%v", id, err, alive)
		}
	}
	if n, err := s.EndSessions(ctx, "user", "cy", ""); err != nil || n != 1 {
		t.Fatalf("EndSessions without an exception: %d %v, want 1", n, err)
	}
	if err := s.DeleteSession(ctx, "live"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, "live"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ended session: %v", err)
	}
	if err := s.DeleteSession(ctx, "live"); err != nil {
		t.Fatalf("ending an ended session: %v", err)
	}
}

func testAudit(t *testing.T, e *env) {
	ctx := t.Context()
	s := e.s
	// Entries of the same microsecond keep their order.
	for i := range 10 {
		at := base.Add(time.Duration(i/2) * 24 * time.Hour)
		if err := s.AddAudit(ctx, AuditEntry{At: at, Principal: "ana", Kind: "user", Remote: "127.0.0.1:5000", Method: "POST",
			Path: fmt.Sprintf("/api/v1/x/%d", i), Status: 200 + i, Summary: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.ListAudit(ctx, 0)
	if err != nil || len(all) != 10 {
		t.Fatalf("ListAudit: %d %v", len(all), err)
	}
	for i, a := range all {
		if want := fmt.Sprintf("/api/v1/x/%d", 9-i); a.Path != want || a.Status != 209-i || a.Principal != "ana" || a.Kind != "user" ||
			a.Remote != "127.0.0.1:5000" || a.Method != "POST" || a.Summary != "ok" {
			t.Fatalf("entry %d: %+v, want path %s (newest first)", i, a, want)
		}
	}
	if top, _ := s.ListAudit(ctx, 3); len(top) != 3 || top[0].Path != "/api/v1/x/9" {
		t.Fatalf("ListAudit(3): %+v", top)
	}
	// Older than day 1 (entries 0 and 1) go by age; then 5 are kept.
	n, err := s.PruneAudit(ctx, 5, base.Add(24*time.Hour))
	if err != nil || n != 5 {
		t.Fatalf("PruneAudit: %d %v, want 5 removed", n, err)
	}
	left, _ := s.ListAudit(ctx, 0)
	if len(left) != 5 || left[0].Path != "/api/v1/x/9" || left[4].Path != "/api/v1/x/5" {
		t.Fatalf("after pruning: %+v", left)
	}
	if n, err := s.PruneAudit(ctx, 5, base); err != nil || n != 0 {
		t.Fatalf("PruneAudit again: %d %v", n, err)
	}
}

// testFirstUserRace: managers starting at once on an empty store make one
// first user between them, and none fails.
func testFirstUserRace(t *testing.T, e *env) {
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for i := range n {
		wg.Go(func() {
			ok, err := e.s.CreateFirstUser(t.Context(), User{Name: "admin", PasswordHash: fmt.Sprintf("h%d", i), Role: "admin"})
			if err != nil {
				t.Errorf("CreateFirstUser %d: %v", i, err)
			}
			if ok {
				mu.Lock()
				created++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	us, err := e.s.ListUsers(t.Context())
	if created != 1 || err != nil || len(us) != 1 {
		t.Fatalf("%d of %d calls created the first user; users %+v %v", created, n, us, err)
	}
}
