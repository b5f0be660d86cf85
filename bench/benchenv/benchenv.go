package benchenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// Manager is a running redis-manager server.
type Manager struct {
	Client  *api.Client
	DataDir string
	URL     string // http://HOST:PORT
	Token   string
	cmd     *exec.Cmd
}

// Start runs `bin serve` with ports from portBase on; BENCH_LOG_LEVEL=info
// shows its log on stderr.
func Start(bin string, portBase, ports int, extra ...string) (*Manager, error) {
	dir, err := os.MkdirTemp("", "redis-manager-bench-")
	if err != nil {
		return nil, err
	}
	return StartIn(bin, dir, portBase, ports, extra...)
}

// StartIn is Start on a given data dir: several managers on one MySQL
// store share one (bench/takeover).
func StartIn(bin, dir string, portBase, ports int, extra ...string) (*Manager, error) {
	// The local platform starts every instance from the redis-server on
	// PATH; without one each create fails, so say so once, up front.
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server is not on PATH (make deps installs it from Debian's packages): %w", err)
	}
	level := os.Getenv("BENCH_LOG_LEVEL")
	if level == "" {
		level = "warn"
	}
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir,
		"--port-range", fmt.Sprintf("%d-%d", portBase, portBase+ports-1), "--log-level", level}, extra...)
	cmd := exec.Command(bin, args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stderr)
	url := ""
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "listening on ") {
			url = strings.TrimPrefix(l, "listening on ")
			break
		}
	}
	go func() {
		for sc.Scan() {
			if os.Getenv("BENCH_LOG_LEVEL") != "" {
				fmt.Fprintln(os.Stderr, sc.Text())
			}
		}
	}()
	m := &Manager{DataDir: dir, URL: url, cmd: cmd}
	if url == "" {
		m.Stop()
		return nil, fmt.Errorf("manager did not start")
	}
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		m.Stop()
		return nil, err
	}
	m.Token = strings.TrimSpace(string(tok))
	m.Client = api.NewClient(url, m.Token)
	m.Client.PollInterval = 10 * time.Millisecond
	return m, nil
}

// InstancePids lists the processes whose working directory is under the
// data dir's instances/ (every instance chdirs into its own): the
// redis-servers and Sentinels a manager on that data dir started.
func InstancePids(dataDir string) []int {
	root := filepath.Join(dataDir, "instances") + "/"
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && strings.HasPrefix(cwd+"/", root) {
			out = append(out, pid)
		}
	}
	return out
}

// Stop stops the manager, kills the instances it started and removes its
// data dir.
func (m *Manager) Stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		// A manager that does not stop within 20 s is killed.
		_ = m.cmd.Process.Kill()
		<-done
	}
	// Killed until none is left: an instance the manager was starting
	// as it stopped appears a moment later.
	for i := 0; i < 10; i++ {
		pids := InstancePids(m.DataDir)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
	os.RemoveAll(m.DataDir)
}

// Kill kills the manager with SIGKILL, as a crash would, and reaps it.
func (m *Manager) Kill() {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
}

// Pid is the manager's process id.
func (m *Manager) Pid() int { return m.cmd.Process.Pid }

// RedisVersion is the version of the redis-server on PATH, for reports.
func RedisVersion() string {
	out, _ := exec.Command("redis-server", "--version").Output()
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return v
		}
	}
	return "?"
}

// Int returns a pointer to n, for the optional fields of API requests.
func Int(n int) *int { return &n }
