package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/store"
)

// Sidecar is the JSON stored next to each object: the engine's Metadata
// plus what rebuilds the record on import.
type Sidecar struct {
	backup.Metadata
	ID           string           `json:"id,omitempty"`
	Job          string           `json:"job,omitempty"`
	Verified     *bool            `json:"verified,omitempty"`
	ScheduledFor *time.Time       `json:"scheduledFor,omitempty"`
	SourceSpec   *api.ClusterSpec `json:"sourceSpec,omitempty"`
	ReplOffset   int64            `json:"replOffset,omitempty"`
}

// Result is the engine's result the sidecar records.
func (s Sidecar) Result() backup.Result {
	return backup.Result{Bytes: s.SizeBytes, CRC64: s.CRC64, NoChecksum: s.NoChecksum, Keys: s.Keys,
		RDBVersion: s.RDBVersion, RedisVersion: s.RedisVersion, KeysCounted: s.Verified == nil || *s.Verified}
}

// WriteSidecar stores the sidecar of a succeeded backup next to its object.
func WriteSidecar(ctx context.Context, t backup.Target, b store.Backup, res backup.Result) error {
	m := backup.NewMetadata(b.ObjectKey, b.SourceInstance, res, b.StartedAt, *b.FinishedAt)
	verified := b.Verified
	data, err := json.MarshalIndent(Sidecar{Metadata: m, ID: b.ID, Job: b.Job, Verified: &verified,
		ScheduledFor: b.ScheduledFor, SourceSpec: b.SourceSpec, ReplOffset: b.ReplOffset}, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	_, err = t.Put(ctx, backup.SidecarKey(b.ObjectKey), bytes.NewReader(data), int64(len(data)))
	return err
}

// ReadSidecar reads the sidecar of the object under key.
func ReadSidecar(ctx context.Context, t backup.Target, key string) (Sidecar, error) {
	var s Sidecar
	rc, err := t.Get(ctx, backup.SidecarKey(key))
	if err != nil {
		return s, err
	}
	defer rc.Close()
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&s); err != nil {
		return s, fmt.Errorf("read sidecar of %s: %w", key, err)
	}
	return s, nil
}

// ObjectURL is the URL a target gives the object under key, as the target
// itself reports it (file:///dir/key, s3://bucket/prefix/key).
func ObjectURL(target, key string) string {
	u, err := url.Parse(target)
	if err != nil {
		return ""
	}
	switch u.Scheme {
	case "file":
		dir := filepath.Clean(filepath.FromSlash(u.Path))
		return (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dir, filepath.FromSlash(key)))}).String()
	case "s3":
		prefix := strings.TrimPrefix(u.Path, "/")
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		return "s3://" + u.Host + "/" + prefix + key
	}
	return ""
}
