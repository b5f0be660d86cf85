package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/redis-manager/redis-manager/internal/testenv"
)

func TestPartSize(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct{ hint, want int64 }{
		{0, 16 * mib},
		{1, 5 * mib},
		{500 << 20, 5 * mib},
		{50_000 * mib, 5 * mib},
		{50_001 * mib, 6 * mib},
		{1 << 40, 105 * mib},
		{1 << 50, 5 << 30},
	} {
		if got := PartSize(tc.hint); got != tc.want {
			t.Errorf("PartSize(%d) = %d, want %d", tc.hint, got, tc.want)
		}
		if tc.hint > 0 && tc.hint <= maxParts*maxPartSize && PartSize(tc.hint)*maxParts < tc.hint {
			t.Errorf("PartSize(%d): 10,000 parts do not cover the hint", tc.hint)
		}
	}
}

func TestObjectKey(t *testing.T) {
	at := time.Date(2025, 3, 9, 14, 5, 7, 999, time.FixedZone("CET", 3600))
	key := ObjectKey("shop", 2, at)
	if key != "shop/2/2025-03-09T130507Z.rdb" {
		t.Fatalf("key %q", key)
	}
	if k := ObjectKeyMs("shop", 2, time.Date(2025, 3, 9, 13, 5, 7, 123456789, time.UTC)); k != "shop/2/2025-03-09T130507.123Z.rdb" {
		t.Errorf("ObjectKeyMs = %q", k)
	} else if c, sh, at, ok := ParseObjectKey(k); !ok || c != "shop" || sh != 2 || at.Nanosecond() != 123000000 {
		t.Errorf("ParseObjectKey(%q) = %s %d %v %v", k, c, sh, at, ok)
	}
	if SidecarKey(key) != "shop/2/2025-03-09T130507Z.json" {
		t.Fatalf("sidecar %q", SidecarKey(key))
	}
	c, s, ts, ok := ParseObjectKey(key)
	if !ok || c != "shop" || s != 2 || !ts.Equal(at.Truncate(time.Second)) {
		t.Fatalf("parse: %q %d %v %v", c, s, ts, ok)
	}
	for _, bad := range []string{"shop/2/2025-03-09T130507Z.json", "shop/x/2025-03-09T130507Z.rdb", "a/shop/2/2025-03-09T130507Z.rdb", "shop/2/yesterday.rdb", "/2/2025-03-09T130507Z.rdb"} {
		if _, _, _, ok := ParseObjectKey(bad); ok {
			t.Errorf("ParseObjectKey(%q) accepted", bad)
		}
	}
}

func TestOpenTargetBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"ftp://host/dir",
		"file://relative/dir",
		"file:relative",
		"s3:///prefix",
		"s3://bucket/p?pathstyle=true",
		"s3://user:hunter2@bucket/p",
		"s3://bucket/p?secretKey=hunter2",
		"s3://bucket/p?endpoint=localhost:9000",
		"s3://bucket/p?pathStyle=maybe",
		"://",
		"s3://user:hunter2@bucket/%zz",
	} {
		_, err := OpenTarget(context.Background(), u)
		if err == nil {
			t.Errorf("OpenTarget(%q) accepted", u)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("secret in error: %v", err)
		}
		t.Log(err)
	}
}

// openTargets gives a file target and an S3 target (gofakes3 over HTTP),
// each with a function listing every file or pending upload left behind.
func openTargets(t *testing.T) map[string]struct {
	tgt      Target
	leftover func() []string
} {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	ft, err := OpenTarget(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.StartS3(t)
	st, err := OpenTarget(ctx, srv.URL("team/backups"), WithCredentials(srv.AccessKeyID, srv.SecretAccessKey))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]struct {
		tgt      Target
		leftover func() []string
	}{
		"file": {ft, func() []string {
			var out []string
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					out = append(out, p)
				}
				return nil
			})
			return out
		}},
		"s3": {st, func() []string {
			s := st.(*s3Target)
			var out []string
			objs, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket)})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs.Contents {
				out = append(out, "object "+aws.ToString(o.Key))
			}
			ups, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket)})
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range ups.Uploads {
				out = append(out, "upload "+aws.ToString(u.Key))
			}
			return out
		}},
	}
}

func TestTargets(t *testing.T) {
	t.Parallel()
	for name, tc := range openTargets(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			tgt := tc.tgt
			small := []byte("small object")
			big := make([]byte, 11<<20+12345) // three parts of 5 MiB
			rand.Read(big)
			for key, data := range map[string][]byte{"c/0/small.rdb": small, "c/1/big.rdb": big, "d/0/other.rdb": small} {
				u, err := tgt.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasSuffix(u, key) {
					t.Fatalf("url %q for %q", u, key)
				}
				rc, err := tgt.Get(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("get %s: %d bytes back, want %d (err %v)", key, len(got), len(data), err)
				}
			}
			objs, err := tgt.List(ctx, "c/")
			if err != nil || len(objs) != 2 || objs[0].Key != "c/0/small.rdb" || objs[1].Key != "c/1/big.rdb" || objs[1].Size != int64(len(big)) {
				t.Fatalf("list: %+v, %v", objs, err)
			}
			if _, err := tgt.Get(ctx, "c/9/missing.rdb"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get missing: %v", err)
			}
			for _, key := range []string{"c/0/small.rdb", "c/1/big.rdb", "d/0/other.rdb", "c/9/missing.rdb"} {
				if err := tgt.Delete(ctx, key); err != nil {
					t.Fatalf("delete %s: %v", key, err)
				}
			}
			for _, bad := range []string{"", "/abs", "a/../../etc", "a//b", "./a"} {
				if _, err := tgt.Put(ctx, bad, bytes.NewReader(small), 0); err == nil {
					t.Errorf("put %q accepted", bad)
				}
			}

			// A reader failing before or after the first part leaves nothing.
			boom := errors.New("source died")
			for _, n := range []int64{100, 7 << 20, 12 << 20} {
				r := io.MultiReader(io.LimitReader(bytes.NewReader(big), n), errReader{boom})
				if _, err := tgt.Put(ctx, "c/2/failed.rdb", r, 0); !errors.Is(err, boom) {
					t.Fatalf("put failing after %d bytes: %v", n, err)
				}
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := tgt.Put(cctx, "c/2/cancelled.rdb", bytes.NewReader(big), 0); !errors.Is(err, context.Canceled) {
				t.Fatalf("put with cancelled ctx: %v", err)
			}
			if left := tc.leftover(); len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// A misconfigured S3 target fails in OpenTarget, in bounded time, with the
// S3 error text.
func TestOpenS3Unreachable(t *testing.T) {
	t.Parallel()
	srv := testenv.StartS3(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accept, never answer
		}
	}()
	closed := testenv.FreePort(t)
	for name, tc := range map[string]struct{ url, want string }{
		"refused":        {"s3://backups/p?pathStyle=true&endpoint=http://127.0.0.1:" + strconv.Itoa(closed), "connection refused"},
		"silent":         {"s3://backups/p?pathStyle=true&endpoint=http://" + silent.Addr().String(), "deadline exceeded"},
		"missing bucket": {strings.Replace(srv.URL("p"), "backups", "nosuchbucket", 1), "NotFound"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, err := OpenTarget(context.Background(), tc.url, WithCredentials(srv.AccessKeyID, srv.SecretAccessKey))
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), tc.want) || took > 15*time.Second {
				t.Fatalf("after %s: %v", took, err)
			}
			if strings.Contains(err.Error(), srv.SecretAccessKey) {
				t.Fatalf("secret in error: %v", err)
			}
			t.Logf("after %s: %v", took.Round(time.Millisecond), err)
		})
	}
}

// Over TLS, data requests go with UNSIGNED-PAYLOAD; the objects must still
// arrive whole. Not parallel: the CA reaches the SDK through AWS_CA_BUNDLE,
// as it would for an operator's private CA.
func TestS3OverTLS(t *testing.T) {
	fake := gofakes3.New(s3memBackend(t, "tls")).Server()
	var mu sync.Mutex
	payloads := map[string]bool{} // x-amz-content-sha256 of the PUTs
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			mu.Lock()
			payloads[r.Header.Get("X-Amz-Content-Sha256")] = true
			mu.Unlock()
		}
		fake.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CA_BUNDLE", ca)
	ctx := context.Background()
	tgt, err := OpenTarget(ctx, "s3://tls/p?pathStyle=true&endpoint="+srv.URL, WithCredentials("k", "s"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tgt.(*s3Target).dataOpts) == 0 {
		t.Fatal("payload signed over TLS")
	}
	for _, size := range []int{1000, 6 << 20} {
		data := make([]byte, size)
		rand.Read(data)
		if _, err := tgt.Put(ctx, "c/0/x.rdb", bytes.NewReader(data), 0); err != nil {
			t.Fatal(err)
		}
		if got := download(t, tgt, "c/0/x.rdb"); !bytes.Equal(got, data) {
			t.Fatalf("%d bytes back, want %d", len(got), size)
		}
	}
	if len(payloads) != 1 || !payloads["UNSIGNED-PAYLOAD"] {
		t.Fatalf("payload hashes sent: %v", payloads)
	}
}

func s3memBackend(t *testing.T, bucket string) *s3mem.Backend {
	b := s3mem.New()
	if err := b.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	return b
}
