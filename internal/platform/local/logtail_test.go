package local

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis-manager/redis-manager/internal/platform"
)

func TestLogTail(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	p := newPlatform(t, root, "")
	id := platform.ID{Cluster: "c", Name: "c-0-0"}
	if _, err := p.LogTail(context.Background(), id, 100); err == nil {
		t.Fatal("a log read for an instance without one")
	}
	dir := p.dir(id.Cluster, id.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	log := bytes.Repeat([]byte("0123456789"), 100)
	if err := os.WriteFile(filepath.Join(dir, "redis.log"), log, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := p.LogTail(context.Background(), id, 25)
	if err != nil || string(got) != string(log[len(log)-25:]) {
		t.Fatalf("tail %q, %v", got, err)
	}
	if got, err := p.LogTail(context.Background(), id, 5000); err != nil || len(got) != len(log) {
		t.Fatalf("whole log: %d bytes, %v", len(got), err)
	}
	var _ platform.LogReader = p
}
