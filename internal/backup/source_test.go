package backup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
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

// fakeMaster accepts one replication connection, answers the handshake
// (three commands, no AUTH) with +OK and hands the connection to reply
// after SYNC.
func fakeMaster(t *testing.T, reply func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 0; i < 3; i++ {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
			var args []string
			for j := 0; j < 2*n; j++ {
				arg, err := br.ReadString('\n')
				if err != nil {
					return
				}
				args = append(args, strings.TrimSpace(arg))
			}
			if args[1] != "SYNC" {
				c.Write([]byte("+OK\r\n"))
			}
		}
		reply(c)
	}()
	return l.Addr().String()
}

// writeChunks sends b in pieces of at most n bytes, flushed one by one, so
// the reader sees the boundaries.
func writeChunks(c net.Conn, b []byte, n int) {
	for len(b) > 0 {
		k := min(n, len(b))
		if _, err := c.Write(b[:k]); err != nil {
			return
		}
		b = b[k:]
		time.Sleep(100 * time.Microsecond)
	}
}

// Both forms from a scripted master: keepalives first, the payload cut
// into small reads (the EOF mark split across them), and every way the
// transfer can break.
func TestStreamRDBProtocol(t *testing.T) {
	t.Parallel()
	rdb := rdbOf("0010", []byte{opSelectDB, 0, opResizeDB, 1, 0, typeString, 1, 'k', 1, 'v'})
	mark := strings.Repeat("0123456789", 4)
	for name, tc := range map[string]struct {
		reply   func(c net.Conn)
		wantErr string
	}{
		"sized": {reply: func(c net.Conn) {
			c.Write([]byte("\n\n\n"))
			fmt.Fprintf(c, "$%d\r\n", len(rdb))
			writeChunks(c, rdb, 3)
		}},
		"eof mark": {reply: func(c net.Conn) {
			c.Write([]byte("\n"))
			fmt.Fprintf(c, "$EOF:%s\r\n", mark)
			writeChunks(c, append(append([]byte(nil), rdb...), mark...), 7)
		}},
		"eof mark in one write": {reply: func(c net.Conn) {
			fmt.Fprintf(c, "$EOF:%s\r\n%s%s", mark, rdb, mark)
		}},
		"closed before the snapshot": {wantErr: "connection closed by the source before the snapshot", reply: func(c net.Conn) {
			c.Write([]byte("\n\n"))
		}},
		"error reply": {wantErr: "redis replied -ERR something", reply: func(c net.Conn) {
			c.Write([]byte("\n-ERR something\r\n"))
		}},
		"sized, cut": {wantErr: fmt.Sprintf("connection lost after 10 of %d bytes", len(rdb)), reply: func(c net.Conn) {
			fmt.Fprintf(c, "$%d\r\n", len(rdb))
			c.Write(rdb[:10])
		}},
		"eof mark, cut": {wantErr: "before the end mark", reply: func(c net.Conn) {
			fmt.Fprintf(c, "$EOF:%s\r\n", mark)
			c.Write(rdb)
		}},
		"bad mark": {wantErr: "EOF mark of 3 bytes", reply: func(c net.Conn) {
			c.Write([]byte("$EOF:abc\r\n"))
		}},
		"crc mismatch": {wantErr: "corrupt rdb: crc64", reply: func(c net.Conn) {
			bad := bytes.Clone(rdb)
			bad[len(bad)-1] ^= 1
			fmt.Fprintf(c, "$%d\r\n%s", len(bad), bad)
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr := fakeMaster(t, tc.reply)
			var buf bytes.Buffer
			res, err := StreamRDB(context.Background(), addr, "", &buf, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				t.Log(err)
				return
			}
			if err != nil || !bytes.Equal(buf.Bytes(), rdb) || res.Keys != 1 || res.Bytes != int64(len(rdb)) {
				t.Fatalf("res %+v, err %v, %d bytes written", res, err, buf.Len())
			}
		})
	}
}

// chunkedReader hands out its data in reads of random sizes up to max.
type chunkedReader struct {
	data []byte
	max  int
	rnd  *rand.Rand
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+c.rnd.IntN(c.max))], c.data)
	c.data = c.data[n:]
	return n, nil
}

// markReader releases exactly the bytes before the mark, whatever the
// sizes of the reads it gets and of the buffers it is read into (smaller
// than the mark included), and reports a stream that ends without the mark.
func TestMarkReader(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	mark := []byte(strings.Repeat("abcdefghij", 4))
	for _, size := range []int{0, 1, 39, 40, 41, 79, 80, 81, 1000, 100000} {
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = byte(rnd.Uint32())
		}
		for _, maxChunk := range []int{1, 7, 40, 41, 4096, 1 << 20} {
			for _, bufSize := range []int{1, 3, 40, 80, 81, 128, 4096, 300000} {
				for _, withMark := range []bool{true, false} {
					data := append([]byte(nil), payload...)
					if withMark {
						data = append(data, mark...)
					}
					m := newMarkReader(&chunkedReader{data: data, max: maxChunk, rnd: rnd}, mark)
					var got []byte
					buf := make([]byte, bufSize)
					var err error
					for {
						var n int
						n, err = m.Read(buf)
						got = append(got, buf[:n]...)
						if err != nil {
							break
						}
					}
					if withMark && (err != io.EOF || !bytes.Equal(got, payload)) {
						t.Fatalf("size %d chunks ≤%d buffer %d: %d bytes, err %v", size, maxChunk, bufSize, len(got), err)
					}
					if !withMark && (err == nil || err == io.EOF || !strings.Contains(err.Error(), "before the end mark") ||
						!errors.Is(err, io.ErrUnexpectedEOF) || len(got) > size) {
						t.Fatalf("no mark, size %d chunks ≤%d buffer %d: %d bytes, err %v", size, maxChunk, bufSize, len(got), err)
					}
				}
			}
		}
	}
}

// A source that accepts and never answers is bounded by ctx.
func TestStreamRDBSilentSource(t *testing.T) {
	t.Parallel()
	addr := fakeMaster(t, func(c net.Conn) { time.Sleep(5 * time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := StreamRDB(ctx, addr, "", &bytes.Buffer{}, nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("after %s: %v", time.Since(start), err)
	}
}

// Writes go on during the snapshot: the fork's point-in-time copy is what
// arrives, whole and verified, in both forms.
func TestStreamRDBWhileWriting(t *testing.T) {
	t.Parallel()
	for _, diskless := range []string{"yes", "no"} {
		t.Run("diskless="+diskless, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			src := startRedis(t, "", "repl-diskless-sync "+diskless)
			src.Do(ctx, "DEBUG", "POPULATE", 50000, "key", 100)
			before := src.DBSize(ctx)
			stop := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				c := src.Client(0)
				defer c.Close()
				for i := 0; ; i++ {
					select {
					case <-stop:
						done <- nil
						return
					default:
					}
					if err := c.Set(ctx, fmt.Sprint("new:", i), i, 0).Err(); err != nil {
						done <- err
						return
					}
				}
			}()
			var buf bytes.Buffer
			res, err := StreamRDB(ctx, src.Addr, testPassword, &buf, nil)
			close(stop)
			if werr := <-done; werr != nil {
				t.Fatal(werr)
			}
			if err != nil {
				t.Fatalf("StreamRDB: %v\n%s", err, src.Log())
			}
			after := src.DBSize(ctx)
			if res.Keys < before || res.Keys > after || after == before {
				t.Fatalf("keys %d, DBSIZE %d before and %d after", res.Keys, before, after)
			}
		})
	}
}
