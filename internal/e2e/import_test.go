package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestImportOnlyReads: an import never creates a path, reads only under
// the backup target or an --import-root, stores nothing a sidecar claims
// without checking it with the API's rules, and sends no request to an S3
// endpoint nobody configured.
func TestImportOnlyReads(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	m := testenv.StartManager(t, testenv.ManagerOptions{Ports: 4, Args: []string{"--import-root", "file://" + root}})
	ctx := context.Background()

	// A path that does not exist is refused and not created.
	missing := filepath.Join(t.TempDir(), "x", "a", "b")
	if _, err := m.Client.ImportBackups(ctx, "file://"+missing); !isStatus(err, http.StatusUnprocessableEntity) {
		t.Errorf("import of a missing dir: %v, want 422", err)
	}
	if _, err := os.Stat(filepath.Dir(filepath.Dir(missing))); !os.IsNotExist(err) {
		t.Errorf("the import created %s: %v", filepath.Dir(filepath.Dir(missing)), err)
	}
	// Outside every allowed root: refused before anything is read.
	for _, target := range []string{"file:///etc", "file:///root", "file://" + filepath.Dir(m.DataDir)} {
		start := time.Now()
		_, err := m.Client.ImportBackups(ctx, target)
		if !isStatus(err, http.StatusUnprocessableEntity) || !strings.Contains(err.Error(), "import-root") {
			t.Errorf("import of %s: %v, want 422 naming --import-root", target, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("import of %s took %v: it walked the tree", target, d)
		}
	}
	// A symbolic link inside the root that leads out of it.
	if err := os.Symlink("/etc", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Client.ImportBackups(ctx, "file://"+filepath.Join(root, "link")); !isStatus(err, http.StatusUnprocessableEntity) {
		t.Errorf("import through a symlink out of the root: %v, want 422", err)
	}

	// Crafted sidecars are skipped, each with its reason; a sound one is
	// imported.
	put := func(cluster string, shard int, sidecar map[string]any) string {
		dir := filepath.Join(root, "set", cluster, fmt.Sprint(shard))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		base := filepath.Join(dir, "2026-11-25T042627Z")
		if err := os.WriteFile(base+".rdb", []byte("REDIS0010"), 0o600); err != nil {
			t.Fatal(err)
		}
		sc := map[string]any{"cluster": cluster, "shard": shard, "key": cluster + "/" + fmt.Sprint(shard) + "/2026-11-25T042627Z.rdb",
			"sizeBytes": 9, "crc64": "0123456789abcdef", "keys": 0, "rdbVersion": 10, "sourceInstance": cluster + "-0-1",
			"startedAt": "2026-11-25T04:26:27Z", "finishedAt": "2026-11-25T04:26:28Z"}
		for k, v := range sidecar {
			sc[k] = v
		}
		b, _ := json.Marshal(sc)
		if err := os.WriteFile(base+".json", b, 0o600); err != nil {
			t.Fatal(err)
		}
		return cluster + "/" + fmt.Sprint(shard)
	}
	bad := map[string]string{
		put("evilid", 0, map[string]any{"id": "../../../tmp/x"}):      "not a backup id",
		put("evilname", 0, map[string]any{"cluster": "../../etc\nx"}): "sidecar names cluster",
		put("Bad_Name", 0, nil):                                                       "object key: cluster",
		put("bigshard", 99, nil):                                                      "shard 99",
		put("evilsrc", 0, map[string]any{"sourceInstance": "a b"}):                    "sourceInstance",
		put("evilcrc", 0, map[string]any{"crc64": "zz"}):                              "crc64",
		put("evilspec", 0, map[string]any{"sourceSpec": map[string]any{"shards": 0}}): "sourceSpec",
	}
	put("good", 0, map[string]any{"id": "b_01JGOOD"})
	res, err := m.Client.ImportBackups(ctx, "file://"+filepath.Join(root, "set"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Imported) != 1 || res.Imported[0].ID != "b_01JGOOD" || res.Imported[0].Cluster != "good" {
		t.Errorf("imported %+v, want only the sound backup b_01JGOOD", res.Imported)
	}
	for prefix, why := range bad {
		found := false
		for _, s := range res.Skipped {
			if strings.HasPrefix(s, prefix+"/") && strings.Contains(s, why) {
				found = true
			}
		}
		if !found {
			t.Errorf("no skip of %s saying %q in %q", prefix, why, res.Skipped)
		}
	}
	for _, name := range []string{"evilid", "evilname", "bigshard", "evilsrc", "evilcrc", "evilspec"} {
		if list, err := m.Client.ListBackups(ctx, name); err == nil && len(list) > 0 {
			t.Errorf("a crafted record was stored for %s: %+v", name, list)
		}
	}

	// An S3 endpoint that is not configured gets no request at all.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	target := fmt.Sprintf("s3://bucket/p?endpoint=http://%s&pathStyle=true", ln.Addr())
	if _, err := m.Client.ImportBackups(ctx, target); !isStatus(err, http.StatusUnprocessableEntity) {
		t.Errorf("import from an unconfigured S3 endpoint: %v, want 422", err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := conns.Load(); n != 0 {
		t.Errorf("the import connected %d times to an S3 endpoint nobody configured", n)
	}
}
