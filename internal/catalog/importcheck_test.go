package catalog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

func TestCheckImportSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	inside := filepath.Join(dir, "backups", "old")
	if err := os.MkdirAll(inside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "backups", "out")); err != nil {
		t.Fatal(err)
	}
	allowed := []string{"file://" + filepath.Join(dir, "backups"), "s3://bkt/prod?endpoint=http://minio:9000&region=x&pathStyle=true"}
	tests := []struct {
		target string
		ok     bool
	}{
		{"file://" + filepath.Join(dir, "backups"), true},
		{"file://" + inside, true},
		{"file://" + filepath.Join(dir, "backups", "not-yet"), true}, // opening it fails next, with its own error
		{"file://" + filepath.Join(dir, "backups", "out"), false},    // a symlink out of the root
		{"file://" + filepath.Join(dir, "backups", "..", "x"), false},
		{"file://" + dir + "/backupsX", false},
		{"file:///etc", false},
		{"file://relative", false},
		{"s3://bkt/prod?endpoint=http://minio:9000&pathStyle=true", true},
		{"s3://bkt/prod/older?endpoint=http://minio:9000", true},
		{"s3://bkt/production?endpoint=http://minio:9000", true},
		{"s3://bkt/prod?endpoint=http://evil:9000", false},
		{"s3://bkt/prod", false}, // AWS, not the configured endpoint
		{"s3://other/prod?endpoint=http://minio:9000", true},
		{"http://x/y", false},
	}
	for _, tc := range tests {
		err := CheckImportSource(tc.target, allowed, filepath.EvalSymlinks)
		if (err == nil) != tc.ok {
			t.Errorf("CheckImportSource(%s) = %v, want ok=%v", tc.target, err, tc.ok)
		}
	}
	if err := CheckImportSource("file:///etc", allowed, nil); err == nil || strings.Contains(err.Error(), "region") {
		t.Errorf("error %v must name the roots without their other parameters", err)
	}
}

func TestValidateSidecar(t *testing.T) {
	t.Parallel()
	good := Sidecar{ID: "b_01ABC", Job: "j_01ABC"}
	good.Cluster, good.Shard, good.SourceInstance, good.CRC64 = "orders", 1, "orders-1-2", "0123456789abcdef"
	good.StartedAt, good.FinishedAt = time.Unix(100, 0), time.Unix(200, 0)
	if err := ValidateSidecar(good, "orders", 1); err != nil {
		t.Fatalf("sound sidecar refused: %v", err)
	}
	spec := api.ClusterSpec{Shards: 0}
	for name, f := range map[string]func(*Sidecar) (string, int){
		"id":         func(s *Sidecar) (string, int) { s.ID = "../../../tmp/x"; return "orders", 1 },
		"job":        func(s *Sidecar) (string, int) { s.Job = "j_../x"; return "orders", 1 },
		"cluster":    func(s *Sidecar) (string, int) { s.Cluster = "../../etc\nx"; return "orders", 1 },
		"shard":      func(s *Sidecar) (string, int) { s.Shard = 2; return "orders", 1 },
		"key name":   func(s *Sidecar) (string, int) { s.Cluster = "Orders"; return "Orders", 1 },
		"key shard":  func(s *Sidecar) (string, int) { s.Shard = 16; return "orders", 16 },
		"source":     func(s *Sidecar) (string, int) { s.SourceInstance = "x\ny"; return "orders", 1 },
		"crc":        func(s *Sidecar) (string, int) { s.CRC64 = "XYZ"; return "orders", 1 },
		"size":       func(s *Sidecar) (string, int) { s.SizeBytes = -1; return "orders", 1 },
		"times":      func(s *Sidecar) (string, int) { s.FinishedAt = time.Unix(1, 0); return "orders", 1 },
		"sourceSpec": func(s *Sidecar) (string, int) { s.SourceSpec = &spec; return "orders", 1 },
	} {
		sc := good
		c, sh := f(&sc)
		if err := ValidateSidecar(sc, c, sh); err == nil {
			t.Errorf("%s: crafted sidecar %+v accepted", name, sc)
		}
	}
}
