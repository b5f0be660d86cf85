package testenv

import (
	"net"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is an S3-protocol server (gofakes3, objects in memory) serving real
// HTTP on a loopback port, with one empty bucket. gofakes3 checks no
// signatures; the credentials are there so the AWS SDK has something to
// sign with.
type S3 struct {
	Endpoint        string // http://HOST:PORT (127.0.0.1 unless S3Host)
	Bucket          string
	Region          string
	AccessKeyID     string
	SecretAccessKey string
}

// S3Option tunes StartS3.
type S3Option func(*s3Options)

type s3Options struct{ host string }

// S3Host makes the server listen on host (an address of this machine)
// instead of 127.0.0.1: for clients elsewhere that reach this machine
// there, e.g. pods on the Kubernetes test node (10.217.0.1).
func S3Host(host string) S3Option { return func(o *s3Options) { o.host = host } }

// StartS3 starts an S3 server for one test and stops it in t.Cleanup. It
// changes no process-wide state: in-process callers pass the credentials
// (backup.WithCredentials(s.AccessKeyID, s.SecretAccessKey)), a manager
// process gets them from Env.
func StartS3(t testing.TB, opts ...S3Option) *S3 {
	t.Helper()
	o := s3Options{host: "127.0.0.1"}
	for _, f := range opts {
		f(&o)
	}
	backend := s3mem.New()
	const bucket = "backups"
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	srv := httptest.NewUnstartedServer(gofakes3.New(backend).Server())
	l, err := net.Listen("tcp", net.JoinHostPort(o.host, "0"))
	if err != nil {
		t.Fatalf("S3 server: listen on %s: %v", o.host, err)
	}
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return &S3{
		Endpoint:        srv.URL,
		Bucket:          bucket,
		Region:          "us-east-1",
		AccessKeyID:     "test-access-key",
		SecretAccessKey: "test-secret-key",
	}
}

// URL is the s3:// target URL of prefix in the bucket.
func (s *S3) URL(prefix string) string {
	q := url.Values{"endpoint": {s.Endpoint}, "region": {s.Region}, "pathStyle": {"true"}}
	return (&url.URL{Scheme: "s3", Host: s.Bucket, Path: "/" + prefix, RawQuery: q.Encode()}).String()
}

// Env is the AWS SDK environment of a process that uses this server.
func (s *S3) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretAccessKey,
		"AWS_REGION=" + s.Region,
	}
}
