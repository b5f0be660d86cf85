package auth

import (
	"regexp"
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	p := Params{MemoryKiB: 1024, Time: 2, Threads: 1}
	h, err := HashPassword("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=1024,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(h) {
		t.Fatalf("hash %q is not in the PHC form with salt and parameters", h)
	}
	h2, _ := HashPassword("correct horse", p)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no random salt")
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct horse ": false, "": false, "Correct horse": false} {
		if ok, err := CheckPassword(h, pw); err != nil || ok != want {
			t.Errorf("CheckPassword(%q): %v %v, want %v", pw, ok, err, want)
		}
	}
	// A hash made with other parameters still checks: they are read
	// from the hash.
	if ok, _ := CheckPassword(h, "correct horse"); !ok {
		t.Fatal("hash with non-default parameters does not check")
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43),
		"$argon2id$v=18$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=1024,t=2,p=1$!!$" + strings.Repeat("A", 43)} {
		if _, err := CheckPassword(bad, "x"); err == nil {
			t.Errorf("CheckPassword accepted the hash %q", bad)
		}
	}
}

func TestTokens(t *testing.T) {
	a, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewToken()
	if a == b || !strings.HasPrefix(a, TokenPrefix) || len(a) != len(TokenPrefix)+43 {
		t.Fatalf("tokens %q %q: want distinct, %s + 43 characters (32 bytes)", a, b, TokenPrefix)
	}
	if HashSecret(a) == HashSecret(b) || len(HashSecret(a)) != 64 || strings.Contains(HashSecret(a), a) {
		t.Fatal("HashSecret is not a SHA-256 hex digest")
	}
}

// BenchmarkCheckPassword is the cost of one sign-in with DefaultParams.
func BenchmarkCheckPassword(b *testing.B) {
	h, err := HashPassword("a password of a user", DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _ := CheckPassword(h, "a password of a user"); !ok {
			b.Fatal("no match")
		}
	}
}
