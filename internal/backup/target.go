package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// Target stores backup objects under a base (a directory, a bucket and
// prefix). Keys are slash-separated paths relative to that base, as built by
// ObjectKey.
type Target interface {
	// Put stores what r yields under key and returns the object's URL. The
	// object appears only when r reaches io.EOF: if r fails or ctx ends
	// first, nothing is left behind (the temporary file is removed, the
	// multipart upload aborted) and the error is returned. sizeHint is the
	// expected size (0 when unknown); S3 uses it to pick the part size.
	Put(ctx context.Context, key string, r io.Reader, sizeHint int64) (url string, err error)
	// Get opens a stored object; a missing one gives an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes an object; removing a missing one is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the objects whose keys start with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Object, error)
}

// Object is an entry of Target.List.
type Object struct {
	Key      string
	Size     int64
	Modified time.Time
}

// ErrNotFound is returned by Target.Get for a missing object.
var ErrNotFound = errors.New("backup object not found")

// Option tunes OpenTarget.
type Option func(*options)

type options struct {
	accessKeyID, secretAccessKey string
	readOnly                     bool
}

// ReadOnly opens a target only to read it: a file:// directory is not
// created (a missing one is an error), and Put and Delete fail with
// ErrReadOnly. Imports open targets this way.
func ReadOnly() Option {
	return func(o *options) { o.readOnly = true }
}

// ErrReadOnly is returned by Put and Delete of a target opened ReadOnly.
var ErrReadOnly = errors.New("target opened read-only")

type readOnlyTarget struct{ Target }

func (readOnlyTarget) Put(context.Context, string, io.Reader, int64) (string, error) {
	return "", ErrReadOnly
}

func (readOnlyTarget) Delete(context.Context, string) error { return ErrReadOnly }

func wrapReadOnly(t Target, o options) Target {
	if o.readOnly {
		return readOnlyTarget{t}
	}
	return t
}

// WithCredentials gives an S3 target static credentials instead of the
// standard AWS chain (environment, shared config, instance role).
func WithCredentials(accessKeyID, secretAccessKey string) Option {
	return func(o *options) { o.accessKeyID, o.secretAccessKey = accessKeyID, secretAccessKey }
}

// OpenTarget opens the target a URL names:
//
//	file:///abs/dir
//	s3://BUCKET/PREFIX?endpoint=URL&region=R&pathStyle=true
//
// For s3, endpoint (any S3-compatible server), region (default: the AWS
// chain's, else us-east-1) and pathStyle (needed by most servers other than
// AWS) are optional; credentials come from the standard AWS chain unless
// WithCredentials is given. OpenTarget checks that the bucket is reachable
// (HeadBucket, bounded by S3CheckTimeout), so a wrong endpoint, bucket or
// credentials fail here, with the S3 error text, before any snapshot is
// taken.
func OpenTarget(ctx context.Context, rawURL string, opts ...Option) (Target, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the whole URL, secrets included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("open backup target: invalid URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		t, err := openFile(u, !o.readOnly)
		if err != nil {
			return nil, fmt.Errorf("open backup target %s: %w", redact(u), err)
		}
		return wrapReadOnly(t, o), nil
	case "s3":
		t, err := openS3(ctx, u, o)
		if err != nil {
			return nil, fmt.Errorf("open backup target %s: %w", redact(u), err)
		}
		return wrapReadOnly(t, o), nil
	}
	return nil, fmt.Errorf("open backup target %s: unknown scheme %q (want file or s3)", redact(u), u.Scheme)
}

// redact drops user info and the values of unknown query parameters from
// a URL before it goes into an error: target URLs carry no secrets, but an
// operator may paste one that does (s3://…?secretKey=…).
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	q := c.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "pathStyle":
		default:
			q[k] = []string{"REDACTED"}
		}
	}
	c.RawQuery = q.Encode()
	return c.String()
}

// checkKey rejects keys that would escape the target's base.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return fmt.Errorf("invalid object key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("invalid object key %q", key)
		}
	}
	return nil
}

const (
	keyTimeLayout   = "2006-01-02T150405Z"
	keyTimeLayoutMs = "2006-01-02T150405.000Z"
)

// ObjectKey is where a backup of one shard taken at t goes:
// <cluster>/<shard>/<2006-01-02T150405Z>.rdb (UTC). Two backups of one shard
// started in the same second would share it: the caller then uses
// ObjectKeyMs.
func ObjectKey(cluster string, shard int, t time.Time) string {
	return fmt.Sprintf("%s/%d/%s.rdb", cluster, shard, t.UTC().Format(keyTimeLayout))
}

// ObjectKeyMs is ObjectKey with milliseconds
// (<cluster>/<shard>/<2006-01-02T150405.000Z>.rdb), for a second backup of a
// shard within the same second.
func ObjectKeyMs(cluster string, shard int, t time.Time) string {
	return fmt.Sprintf("%s/%d/%s.rdb", cluster, shard, t.UTC().Format(keyTimeLayoutMs))
}

// ParseObjectKey reverses ObjectKey; ok is false for any other key (a
// sidecar, a foreign object).
func ParseObjectKey(key string) (cluster string, shard int, t time.Time, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 || parts[0] == "" || !strings.HasSuffix(parts[2], ".rdb") {
		return "", 0, time.Time{}, false
	}
	shard, err := strconv.Atoi(parts[1])
	if err != nil || shard < 0 {
		return "", 0, time.Time{}, false
	}
	stamp := strings.TrimSuffix(parts[2], ".rdb")
	t, err = time.Parse(keyTimeLayout, stamp)
	if err != nil {
		if t, err = time.Parse(keyTimeLayoutMs, stamp); err != nil {
			return "", 0, time.Time{}, false
		}
	}
	return parts[0], shard, t, true
}

// SidecarKey is the key of the JSON metadata stored next to a backup
// object: the same path with .json instead of .rdb.
func SidecarKey(key string) string {
	return strings.TrimSuffix(key, path.Ext(key)) + ".json"
}

// Metadata is the JSON sidecar of a backup object: enough to rebuild the
// store's record from the bucket alone (`backup import`).
type Metadata struct {
	Cluster        string    `json:"cluster"`
	Shard          int       `json:"shard"`
	Key            string    `json:"key"`
	SizeBytes      int64     `json:"sizeBytes"`
	CRC64          string    `json:"crc64"`
	NoChecksum     bool      `json:"noChecksum,omitempty"`
	Keys           int64     `json:"keys"`
	RDBVersion     int       `json:"rdbVersion"`
	RedisVersion   string    `json:"redisVersion,omitempty"`
	SourceInstance string    `json:"sourceInstance"`
	StartedAt      time.Time `json:"startedAt"`
	FinishedAt     time.Time `json:"finishedAt"`
}

// NewMetadata describes the backup stored under key from its Result;
// cluster and shard come from the key when it follows ObjectKey's layout.
func NewMetadata(key, sourceInstance string, res Result, startedAt, finishedAt time.Time) Metadata {
	cluster, shard, _, _ := ParseObjectKey(key)
	return Metadata{
		Cluster: cluster, Shard: shard, Key: key,
		SizeBytes: res.Bytes, CRC64: res.CRC64, NoChecksum: res.NoChecksum,
		Keys: res.Keys, RDBVersion: res.RDBVersion, RedisVersion: res.RedisVersion,
		SourceInstance: sourceInstance,
		StartedAt:      startedAt.UTC(), FinishedAt: finishedAt.UTC(),
	}
}

// WriteMetadata stores m as the sidecar of m.Key.
func WriteMetadata(ctx context.Context, t Target, m Metadata) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("write metadata of %s: %w", m.Key, err)
	}
	data = append(data, '\n')
	if _, err := t.Put(ctx, SidecarKey(m.Key), bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("write metadata of %s: %w", m.Key, err)
	}
	return nil
}

// ReadMetadata loads the sidecar of the backup object key.
func ReadMetadata(ctx context.Context, t Target, key string) (Metadata, error) {
	var m Metadata
	rc, err := t.Get(ctx, SidecarKey(key))
	if err != nil {
		return m, fmt.Errorf("read metadata of %s: %w", key, err)
	}
	defer rc.Close()
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&m); err != nil {
		return m, fmt.Errorf("read metadata of %s: %w", key, err)
	}
	return m, nil
}

// ctxReader stops a copy when ctx ends, for readers that do not watch it.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
