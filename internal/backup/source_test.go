package backup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Both transfer forms against real servers: the snapshot verifies, counts
// the keys DBSIZE counts, matches what VerifyReader says of the bytes, and
// a server booted from those bytes holds the same data.
func TestStreamRDBForms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		diskless string
		logLine  string // how Redis names the form it used
	}{
		{"yes", "target: replicas sockets"},
		{"no", "target: disk"},
	} {
		t.Run("diskless="+tc.diskless, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			src := startRedis(t, "", "repl-diskless-sync "+tc.diskless)
			loadData(t, src, 2000)
			var buf bytes.Buffer
			var calls atomic.Int64
			var last atomic.Int64
			res, err := StreamRDB(ctx, src.Addr, testPassword, &buf, func(n int64) { calls.Add(1); last.Store(n) })
			if err != nil {
				t.Fatalf("StreamRDB: %v\n%s", err, src.Log())
			}
			if !strings.Contains(src.Log(), tc.logLine) {
				t.Fatalf("redis did not use the %q form:\n%s", tc.logLine, src.Log())
			}
			if want := src.DBSize(ctx); res.Keys != want || !res.KeysCounted {
				t.Fatalf("keys %d (counted %v), DBSIZE says %d", res.Keys, res.KeysCounted, want)
			}
			if res.Bytes != int64(buf.Len()) || last.Load() != res.Bytes || calls.Load() == 0 {
				t.Fatalf("bytes %d, wrote %d, last progress %d", res.Bytes, buf.Len(), last.Load())
			}
			if res.RDBVersion != 10 || res.RedisVersion == "" || len(res.CRC64) != 16 || res.NoChecksum {
				t.Fatalf("result %+v", res)
			}
			again, err := VerifyReader(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if again.CRC64 != res.CRC64 || again.Keys != res.Keys || again.Bytes != res.Bytes {
				t.Fatalf("VerifyReader %+v, StreamRDB %+v", again, res)
			}

			dump := filepath.Join(t.TempDir(), "dump.rdb")
			if err := os.WriteFile(dump, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			restored := startRedis(t, dump)
			assertSameData(t, src, restored)
		})
	}
}

func assertSameData(t *testing.T, want, got *redisServer) {
	t.Helper()
	w, g := snapshotData(t, want), snapshotData(t, got)
	if len(w) != len(g) {
		t.Errorf("%d keys, want %d", len(g), len(w))
	}
	bad := 0
	for k, v := range w {
		if g[k] != v && bad < 5 {
			bad++
			t.Errorf("key %s:\n got %.200s\nwant %.200s", k, g[k], v)
		}
	}
}

func TestStreamRDBErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := startRedis(t, "")

	t.Run("wrong password", func(t *testing.T) {
		_, err := StreamRDB(ctx, src.Addr, "wrong-"+testPassword, &bytes.Buffer{}, nil)
		if err == nil || !strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), testPassword) {
			t.Fatalf("err = %v", err)
		}
		t.Log(err)
	})
	t.Run("no master link", func(t *testing.T) {
		replica := startRedis(t, "", "replicaof 127.0.0.1 1", "masterauth x")
		_, err := StreamRDB(ctx, replica.Addr, testPassword, &bytes.Buffer{}, nil)
		if !errors.Is(err, ErrNoMasterLink) || !strings.Contains(err.Error(), "NOMASTERLINK") {
			t.Fatalf("err = %v", err)
		}
		t.Log(err)
	})
	t.Run("refused", func(t *testing.T) {
		_, err := StreamRDB(ctx, "127.0.0.1:1", testPassword, &bytes.Buffer{}, nil)
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Fatalf("err = %v", err)
		}
		t.Log(err)
	})
	t.Run("writer fails", func(t *testing.T) {
		boom := errors.New("disk full")
		_, err := StreamRDB(ctx, src.Addr, testPassword, failWriter{boom}, nil)
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		t.Log(err)
	})
	t.Run("cancelled", func(t *testing.T) {
		big := startRedis(t, "", "repl-diskless-sync yes")
		big.Do(ctx, "DEBUG", "POPULATE", 200000, "k", 100)
		cctx, cancel := context.WithCancel(ctx)
		start := time.Now()
		_, err := StreamRDB(cctx, big.Addr, testPassword, slowWriter{}, func(n int64) {
			if n > 0 {
				cancel()
			}
		})
		if !errors.Is(err, context.Canceled) || time.Since(start) > 10*time.Second {
			t.Fatalf("err = %v after %s", err, time.Since(start))
		}
		t.Log(err)
	})
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

// slowWriter keeps a transfer going long enough to interrupt it.
type slowWriter struct{}

func (slowWriter) Write(p []byte) (int, error) { time.Sleep(time.Millisecond); return len(p), nil }
