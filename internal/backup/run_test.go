package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Backups of known data to file:// and S3, from diskless and disk-based
// sources: the result matches DBSIZE, the stored object re-verifies, the
// sidecar describes it, a redis-server booted from the download holds the
// same data, and a stored object with one byte changed is refused.
func TestRunRoundTrip(t *testing.T) {
	t.Parallel()
	targets := openTargets(t)
	for _, diskless := range []string{"yes", "no"} {
		t.Run("diskless="+diskless, func(t *testing.T) {
			t.Parallel()
			src := startRedis(t, "", "repl-diskless-sync "+diskless)
			loadData(t, src, 2000)
			want := src.DBSize(context.Background())
			for name, tc := range targets {
				t.Run(name, func(t *testing.T) {
					ctx := context.Background()
					key := ObjectKey("shop-"+diskless, 1, time.Now())
					res, err := Run(ctx, src.Addr, testPassword, tc.tgt, key, 1<<20, nil)
					if err != nil {
						t.Fatalf("Run: %v\n%s", err, src.Log())
					}
					if res.Keys != want || !res.KeysCounted || res.NoChecksum || res.Object == "" || !strings.HasSuffix(res.Object, key) {
						t.Fatalf("result %+v, DBSIZE %d", res, want)
					}
					objs, err := tc.tgt.List(ctx, "shop-"+diskless+"/1/")
					if err != nil || len(objs) != 2 || objs[0].Key != SidecarKey(key) || objs[1].Key != key || objs[1].Size != res.Bytes {
						t.Fatalf("list %+v, %v", objs, err)
					}
					m, err := ReadMetadata(ctx, tc.tgt, key)
					if err != nil {
						t.Fatal(err)
					}
					if m.Cluster != "shop-"+diskless || m.Shard != 1 || m.CRC64 != res.CRC64 || m.Keys != want ||
						m.SizeBytes != res.Bytes || m.SourceInstance != src.Addr || m.RDBVersion != 10 || m.FinishedAt.Before(m.StartedAt) {
						t.Fatalf("metadata %+v for %+v", m, res)
					}

					// Download through VerifyCopy, as a restore would, and boot
					// a server from it.
					dump := filepath.Join(t.TempDir(), "dump.rdb")
					data := download(t, tc.tgt, key)
					f, err := os.Create(dump)
					if err != nil {
						t.Fatal(err)
					}
					got, err := VerifyCopy(f, bytes.NewReader(data))
					f.Close()
					if err != nil || got.CRC64 != res.CRC64 || got.Keys != want {
						t.Fatalf("verify stored object: %+v, %v", got, err)
					}
					assertSameData(t, src, startRedis(t, dump))

					// One byte changed in the stored object.
					data[len(data)/2] ^= 1
					if _, err := tc.tgt.Put(ctx, key, bytes.NewReader(data), 0); err != nil {
						t.Fatal(err)
					}
					if _, err := VerifyReader(bytes.NewReader(download(t, tc.tgt, key))); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("corrupt object verified: %v", err)
					}
				})
			}
		})
	}
}

func download(t *testing.T, tgt Target, key string) []byte {
	t.Helper()
	rc, err := tgt.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The source dies in the middle of the transfer: Run fails with a clear
// error and leaves neither an object, a sidecar, a temporary file nor a
// pending multipart upload.
func TestRunSourceKilled(t *testing.T) {
	t.Parallel()
	targets := openTargets(t)
	for name, diskless := range map[string]string{"file": "yes", "s3": "no"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			src := startRedis(t, "", "repl-diskless-sync "+diskless)
			src.Do(ctx, "DEBUG", "POPULATE", 1_000_000, "key", 100)
			tgt := targets[name].tgt
			if diskless == "no" {
				// The disk-based form sends a finished file: a reader as fast
				// as ours can drain all of it (35 MB) within one 100 ms
				// progress tick, before the kill. A consumer at most
				// 64 MB/s keeps most of it on the source's side.
				tgt = slowTarget{tgt}
			}
			var once sync.Once
			res, err := Run(ctx, src.Addr, testPassword, tgt, ObjectKey("big", 0, time.Now()), 200<<20, func(n int64) {
				if n > 8<<20 {
					once.Do(src.Kill)
				}
			})
			if err == nil || !strings.Contains(err.Error(), "connection lost") {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Fatalf("password in error: %v", err)
			}
			t.Logf("after %d bytes: %v", res.Bytes, err)
			if left := targets[name].leftover(); len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}

// A backup cancelled mid-stream returns the context's error and leaves
// nothing behind, on both paths (a file written from the reading
// goroutine, S3 through the pipe).
func TestRunCancelled(t *testing.T) {
	t.Parallel()
	targets := openTargets(t)
	// About 15 MB, a few seconds to send (each key waits at least
	// 1 µs, in practice tens); cancelled past one S3 part.
	src := startRedis(t, "", "repl-diskless-sync yes", "rdb-key-save-delay 1", "rdbcompression no")
	src.Do(context.Background(), "DEBUG", "POPULATE", 60_000, "key", 250)
	for name, tc := range targets {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// sizeHint 1 MiB: 5 MiB parts, so S3 has a multipart upload to abort.
			res, err := Run(ctx, src.Addr, testPassword, tc.tgt, ObjectKey("gone", 0, time.Now()), 1<<20, func(n int64) {
				if n > 6<<20 {
					cancel()
				}
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v after %d bytes", err, res.Bytes)
			}
			t.Logf("after %d bytes: %v", res.Bytes, err)
			if left := tc.leftover(); len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}

// slowTarget reads what it stores at most 64 KiB per millisecond.
type slowTarget struct{ Target }

func (s slowTarget) Put(ctx context.Context, key string, r io.Reader, sizeHint int64) (string, error) {
	return s.Target.Put(ctx, key, slowReader{r}, sizeHint)
}

type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return s.r.Read(p[:min(len(p), 64<<10)])
}

// flakyTarget fails the way a full disk or a refused upload does.
type flakyTarget struct {
	Target
	failData, failSidecar bool
}

var errQuota = errors.New("quota exceeded")

func (f *flakyTarget) Put(ctx context.Context, key string, r io.Reader, sizeHint int64) (string, error) {
	if f.failData && strings.HasSuffix(key, ".rdb") {
		io.CopyN(io.Discard, r, 1<<20)
		return "", errQuota
	}
	if f.failSidecar && strings.HasSuffix(key, ".json") {
		return "", errQuota
	}
	return f.Target.Put(ctx, key, r, sizeHint)
}

func TestRunTargetFails(t *testing.T) {
	t.Parallel()
	src := startRedis(t, "", "repl-diskless-sync yes")
	src.Do(context.Background(), "DEBUG", "POPULATE", 100_000, "key", 100)
	for name, tc := range map[string]struct{ data, sidecar bool }{"data": {true, false}, "sidecar": {false, true}} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ft, err := OpenTarget(context.Background(), "file://"+dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Run(context.Background(), src.Addr, testPassword, &flakyTarget{ft, tc.data, tc.sidecar}, "c/0/x.rdb", 0, nil)
			if !errors.Is(err, errQuota) || strings.Contains(err.Error(), "closed pipe") {
				t.Fatalf("err = %v", err)
			}
			t.Log(err)
			if objs, _ := ft.List(context.Background(), ""); len(objs) != 0 {
				t.Fatalf("left behind: %+v", objs)
			}
		})
	}
}

// A file target whose writes fail mid-stream (a full disk; here the file
// size limit, in a child process so nothing else is limited): Run, which
// writes a file target from the reading goroutine, says the put failed
// and why, and leaves no file behind.
func TestRunFileTargetWriteFails(t *testing.T) {
	if dir := os.Getenv("BACKUP_TEST_FSIZE_DIR"); dir != "" {
		// The child: EFBIG past 1 MiB (Go ignores SIGXFSZ).
		lim := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Fatal(err)
		}
		ft, err := OpenTarget(context.Background(), "file://"+dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Run(context.Background(), os.Getenv("BACKUP_TEST_FSIZE_ADDR"), testPassword, ft, "c/0/x.rdb", 0, nil)
		fmt.Printf("RUN ERROR: %v\n", err)
		return
	}
	t.Parallel()
	src := startRedis(t, "", "repl-diskless-sync yes")
	src.Do(context.Background(), "DEBUG", "POPULATE", 100_000, "key", 100)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunFileTargetWriteFails$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BACKUP_TEST_FSIZE_DIR="+dir, "BACKUP_TEST_FSIZE_ADDR="+src.Addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	_, line, _ := strings.Cut(string(out), "RUN ERROR: ")
	line, _, _ = strings.Cut(line, "\n")
	if !strings.Contains(line, "put file://"+dir+"/c/0/x.rdb: write ") || !strings.Contains(line, "file too large") ||
		strings.Contains(line, testPassword) {
		t.Fatalf("child says %q", out)
	}
	t.Log(line)
	left, err := filepath.Glob(filepath.Join(dir, "c", "0", "*"))
	if err != nil || len(left) != 0 {
		t.Fatalf("left behind: %v %v", left, err)
	}
}
