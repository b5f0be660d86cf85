package instance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/platform"
)

func TestSeedFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, ok, err := ReadSeedFile(filepath.Join(dir, "none.json")); ok || err != nil {
		t.Errorf("a missing seed file: ok %v, %v; want no seed, no error", ok, err)
	}
	src := platform.SeedSource{TargetURL: "s3://b/p?endpoint=x", Key: "c/0/t.rdb", Size: 42, CRC64: "00ff", Progress: func(int64) {}}
	b, err := json.Marshal(SeedFileOf(src))
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "seed.json")
	if err := os.WriteFile(good, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sf, ok, err := ReadSeedFile(good)
	got := sf.Source()
	if !ok || err != nil || got.TargetURL != src.TargetURL || got.Key != src.Key || got.Size != 42 || got.CRC64 != "00ff" {
		t.Errorf("ReadSeedFile = %+v, %v, %v", sf, ok, err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"key":""}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadSeedFile(bad); err == nil {
		t.Error("a seed file without target and key is taken")
	}
}

// A failed seed's error reaches the platform as a task protocol line with
// its kind (Kubernetes: the termination message).
func TestSeedFailedReport(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "termination-log")
	o := runOptions{seedError: out}
	err := o.seedFailed(fmt.Errorf("seed: k: %w", backup.ErrCorrupt))
	if !errors.Is(err, backup.ErrCorrupt) {
		t.Errorf("seedFailed returned %v, want the error", err)
	}
	b, rerr := os.ReadFile(out)
	var line platform.TaskLine
	if rerr != nil || json.Unmarshal(b, &line) != nil || line.Error == nil || line.Error.Kind != platform.TaskErrCorrupt || line.Error.Message != err.Error() {
		t.Fatalf("termination log %q, %v", b, rerr)
	}
	if back := TaskErr(*line.Error); !errors.Is(back, backup.ErrCorrupt) {
		t.Errorf("read back: %v, want ErrCorrupt", back)
	}
}
