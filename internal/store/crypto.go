package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// keySize is the length of the key file: an AES-256 key, raw bytes.
const keySize = 32

// ErrDecrypt is returned when a stored secret cannot be decrypted: the key
// file is not the one the database was written with, or the value was
// altered. The secret itself is never part of the message.
var ErrDecrypt = errors.New("cannot decrypt stored secret: wrong key file or corrupted value")

// sealer encrypts secrets for the database with AES-256-GCM. Each value gets
// a fresh random nonce, stored in front of the ciphertext; the column holds
// base64(nonce || ciphertext || tag).
//
// The additional data binds a ciphertext to its place (table, column, row),
// so a value copied into another row or column fails to decrypt instead of
// handing one cluster's password to another.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(key), keySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(plaintext, where string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("encrypt %s: %w", where, err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(plaintext), []byte(where))
	return base64.StdEncoding.EncodeToString(out), nil
}

func (s *sealer) open(stored, where string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(stored)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return "", fmt.Errorf("decrypt %s: %w", where, ErrDecrypt)
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(where))
	if err != nil {
		return "", fmt.Errorf("decrypt %s: %w", where, ErrDecrypt)
	}
	return string(plain), nil
}

// secretPlace names where a secret lives; it is the AEAD additional data and
// the subject of error messages (never the value).
func secretPlace(column, cluster string) string {
	return fmt.Sprintf("%s of cluster %q", column, cluster)
}

// loadKey reads the key file, or creates it with a random key (mode 0600)
// when it does not exist. A file of the wrong length is refused rather than
// padded or replaced: replacing it would make every stored secret unreadable.
func loadKey(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("key file: no path given")
	}
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err = createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("key file %s: %d bytes, want exactly %d (a raw AES-256 key); refusing to start", path, len(key), keySize)
	}
	return key, nil
}

// createKey writes a new random key to a temporary file and links it into
// place, so a process starting at the same moment sees either no file or the
// whole key, never a half-written one; the loser of the race reads the
// winner's key.
func createKey(path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key := make([]byte, keySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".keyfile-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return os.ReadFile(path)
		}
		return nil, err
	}
	return key, nil
}
