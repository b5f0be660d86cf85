package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters. A hash records the ones it was
// made with, so they can change without invalidating stored hashes.
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultParams are RFC 9106's second recommended option (64 MiB, 3
// passes) with 2 lanes: about 0.1 s on one core of a 2020s server. A
// sign-in costs 64 MiB for that long, which is why the server lets only a
// few hash at once.
var DefaultParams = Params{MemoryKiB: 64 * 1024, Time: 3, Threads: 2}

const (
	saltLen = 16
	keyLen  = 32
)

// HashPassword returns the self-describing argon2id hash of password in the
// PHC string format:
//
//	$argon2id$v=19$m=65536,t=3,p=2$<salt, base64>$<key, base64>
func HashPassword(password string, p Params) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// DecoyHash returns a hash in HashPassword's format, with p and a random
// salt and key, that no password matches: checking a password against it
// costs what checking against a real hash of p costs. A sign-in for an
// unknown user checks against one, so its time does not tell that the user
// does not exist; and making it costs no hashing.
func DecoyHash(p Params) string {
	salt := make([]byte, saltLen)
	key := make([]byte, keyLen)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(key)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// ParamsOf returns the parameters a hash was made with.
func ParamsOf(hash string) (Params, error) {
	parts := strings.Split(hash, "$")
	var p Params
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, ErrBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return p, ErrBadHash
	}
	return p, nil
}

// ErrBadHash: a stored hash this code cannot read.
var ErrBadHash = errors.New("unreadable password hash")

// CheckPassword reports whether password matches hash, comparing in
// constant time.
func CheckPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, ErrBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, ErrBadHash
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil ||
		p.MemoryKiB < 8 || p.MemoryKiB > 4<<20 || p.Time < 1 || p.Time > 100 || p.Threads < 1 {
		return false, ErrBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(want) < 16 {
		return false, ErrBadHash
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// TokenPrefix starts every API token, so a leaked one is recognisable (and
// secret scanners can find it).
const TokenPrefix = "rmt_"

// NewToken returns a new API token: the prefix and 32 random bytes.
func NewToken() (string, error) {
	s, err := RandomString(32)
	if err != nil {
		return "", err
	}
	return TokenPrefix + s, nil
}

// RandomString returns n random bytes, base64url-encoded without padding.
func RandomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashSecret is how the store keeps a token or a session id: the hex
// SHA-256. Both are 32 random bytes, out of reach of any guessing, so a
// fast hash is enough; what it protects against is a read of the store.
func HashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
