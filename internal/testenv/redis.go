package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BootRedis writes conf to dir/file and starts `redis-server dir/file args…`
// in dir (stdout and stderr to dir/stdout.log), waits until it accepts
// connections on 127.0.0.1:port and kills it when the test ends. An error
// says why it did not start, with what it wrote.
func BootRedis(t testing.TB, dir, file, conf string, port int, args ...string) error {
	t.Helper()
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", append([]string{path}, args...)...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		logf.Close()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start: %s", ServerOutput(dir))
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server did not listen on %s: %s", addr, ServerOutput(dir))
		}
	}
}

// ServerOutput is what a server in dir wrote: config errors go to stdout,
// the rest to its log file.
func ServerOutput(dir string) string {
	var out []string
	for _, f := range []string{"stdout.log", "redis.log"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); len(b) > 0 {
			out = append(out, strings.TrimSpace(string(b)))
		}
	}
	return strings.Join(out, "\n")
}
