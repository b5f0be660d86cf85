package instance

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestProbe runs `instance probe` against a real redis-server: PONG with
// the password of the file (a mounted Secret) is ready; a server that
// refuses every password given still answers, and counts as ready (a
// rotation must not take every pod out of its Services); nothing
// listening is not ready.
func TestProbe(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	if err := testenv.BootRedis(t, dir, "redis.conf", fmt.Sprintf("port %d\nbind 127.0.0.1\nrequirepass right\nsave \"\"\n", port), port); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "password")
	probe := func(password, env string) (string, error) {
		t.Helper()
		if err := os.WriteFile(file, []byte(password), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv(EnvProbePassword, env)
		cmd := NewCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs([]string{"probe", "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--password-file", file, "--timeout", "1s"})
		err := cmd.Execute()
		return out.String(), err
	}
	if out, err := probe("right", ""); err != nil {
		t.Errorf("probe with the right password in the file: %v %s", err, out)
	}
	if out, err := probe("old", "right"); err != nil {
		t.Errorf("probe with a stale file and the right password in the environment: %v %s", err, out)
	}
	if out, err := probe("old", "older"); err != nil || !strings.Contains(out, "refuses the passwords") {
		t.Errorf("probe of a server refusing every password: %v %q, want ready, said", err, out)
	}
	closed := testenv.FreePort(t)
	cmd := NewCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"probe", "--addr", fmt.Sprintf("127.0.0.1:%d", closed), "--timeout", "300ms"})
	if err := cmd.Execute(); err == nil {
		t.Error("probe of a port nothing listens on: ready, want an error")
	}
}
