package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds cmd/redis-manager once per test process and returns its
// path. The binary lives in a directory removed by CleanupBinary.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "redis-manager-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "redis-manager")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		args := []string{"build", "-o", buildPath}
		if os.Getenv("REDIS_MANAGER_TEST_RACE") != "" {
			args = append(args, "-race") // the e2e tests then fail on any data race the manager reports
		}
		cmd := exec.Command("go", append(args, "./cmd/redis-manager")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// CleanupBinary removes the built binary; call it from TestMain.
func CleanupBinary() {
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
}

// Manager is a redis-manager server process started by a test.
type Manager struct {
	t       testing.TB
	Bin     string
	DataDir string
	Args    []string
	URL     string
	Token   string
	Client  *api.Client

	env     []string // extra environment, kept for Restart
	logName string   // the log file's name in DataDir

	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
}

// ManagerOptions tune StartManager.
type ManagerOptions struct {
	Ports int      // size of the port range (default 40)
	Args  []string // extra serve flags
	Env   []string
	// Share starts this manager on another one's data dir and port range
	// (several managers on one host and one MySQL store); its log is
	// manager-<ID>.log.
	Share *Manager
	// ID is passed as --id when set.
	ID string
}

// StartManager starts `redis-manager serve` on a free port with its own
// data dir and port range, and registers cleanup: the manager is stopped,
// and every instance process under its data dir is killed.
func StartManager(t testing.TB, o ManagerOptions) *Manager {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (apt-get install redis-server)")
	}
	if o.Ports == 0 {
		o.Ports = 40
	}
	m := &Manager{t: t, Bin: Binary(t), env: o.Env, logName: "manager.log"}
	var portRange string
	if o.Share != nil {
		m.DataDir, m.logName = o.Share.DataDir, "manager-"+o.ID+".log"
		portRange = o.Share.portRange()
	} else {
		lo, hi := PortRange(t, o.Ports)
		m.DataDir, portRange = t.TempDir(), fmt.Sprintf("%d-%d", lo, hi)
	}
	m.Args = []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", m.DataDir, "--port-range", portRange, "--log-level", "debug"}
	if o.ID != "" {
		m.Args = append(m.Args, "--id", o.ID)
	}
	m.Args = append(m.Args, o.Args...)
	t.Cleanup(func() {
		if t.Failed() {
			m.Dump()
		}
		m.Stop()
		if b, _ := os.ReadFile(m.LogPath()); strings.Contains(string(b), "WARNING: DATA RACE") {
			t.Errorf("the manager reported a data race:\n%s", raceReport(string(b)))
		}
		KillInstances(m.DataDir)
	})
	m.start(m.env)
	return m
}

// portRange is the --port-range the manager was started with.
func (m *Manager) portRange() string {
	for i, a := range m.Args {
		if a == "--port-range" && i+1 < len(m.Args) {
			return m.Args[i+1]
		}
	}
	return ""
}

// LogPath is the manager's log file.
func (m *Manager) LogPath() string { return filepath.Join(m.DataDir, m.logName) }

// Pid is the manager's process id (0 when it is not running).
func (m *Manager) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Pause stops the manager's process with SIGSTOP, as a long GC pause, a
// frozen VM or a debugger would; Resume continues it (SIGCONT).
func (m *Manager) Pause() { m.sendOnly(syscall.SIGSTOP) }

// Resume continues a paused manager.
func (m *Manager) Resume() { m.sendOnly(syscall.SIGCONT) }

func (m *Manager) sendOnly(sig syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		_ = m.cmd.Process.Signal(sig)
	}
}

func (m *Manager) start(env []string) {
	m.t.Helper()
	logf, err := os.OpenFile(m.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.t.Fatal(err)
	}
	cmd := exec.Command(m.Bin, m.Args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logf
	// A session of its own, as under systemd or setsid: the manager
	// raises its autogroup's priority (--local-control-nice), which must
	// not lift the test and its load generators above the instances.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if !sent && strings.HasPrefix(line, "listening on ") {
				url <- strings.TrimPrefix(line, "listening on ")
				sent = true
			}
		}
		_, _ = io.Copy(logf, stderr)
	}()
	select {
	case u := <-url:
		m.mu.Lock()
		m.cmd, m.log, m.URL = cmd, logf, u
		m.mu.Unlock()
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		m.t.Fatalf("manager did not print its listening line within 20s; log:\n%s", m.LogTail(40))
	}
	tok, err := os.ReadFile(filepath.Join(m.DataDir, "admin.token"))
	if err != nil {
		m.t.Fatal(err)
	}
	m.Token = strings.TrimSpace(string(tok))
	m.Client = api.NewClient(m.URL, m.Token)
}

// Kill stops the manager with SIGKILL, as a crash would.
func (m *Manager) Kill() {
	m.signal(syscall.SIGKILL)
}

// Stop stops the manager with SIGTERM and waits for it.
func (m *Manager) Stop() {
	m.signal(syscall.SIGTERM)
}

func (m *Manager) signal(sig syscall.Signal) {
	m.mu.Lock()
	cmd := m.cmd
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused manager handles its signal only once continued
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	m.log.Close()
}

// Restart starts the manager again on the same data dir (new HTTP port)
// and the same extra environment.
func (m *Manager) Restart() {
	m.t.Helper()
	m.Stop()
	m.start(m.env)
}

// LogTail returns the last n lines of the manager's log.
func (m *Manager) LogTail(n int) string {
	return tail(m.LogPath(), n)
}

// infoTail returns the last n lines of the manager's log above DEBUG.
func (m *Manager) infoTail(n int) string {
	b, _ := os.ReadFile(m.LogPath())
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "level=DEBUG") {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Dump logs what a failed test needs to explain itself: every cluster's
// status, the manager's log, and the last lines of each instance's log.
func (m *Manager) Dump() {
	if m.Client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if cls, err := m.Client.ListClusters(ctx); err == nil {
			b, _ := json.MarshalIndent(cls, "", "  ")
			m.t.Logf("clusters:\n%s", b)
		}
		if js, err := m.Client.ListJobs(ctx, ""); err == nil {
			b, _ := json.MarshalIndent(js, "", "  ")
			m.t.Logf("jobs:\n%s", b)
		}
	}
	m.t.Logf("manager log (INFO and above):\n%s", m.infoTail(150))
	if dir := os.Getenv("REDIS_MANAGER_TEST_ARTIFACTS"); dir != "" {
		dst := filepath.Join(dir, strings.ReplaceAll(m.t.Name(), "/", "_")+"."+m.logName)
		if b, err := os.ReadFile(m.LogPath()); err == nil && os.MkdirAll(dir, 0o755) == nil {
			_ = os.WriteFile(dst, b, 0o644)
			m.t.Logf("full manager log copied to %s", dst)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(m.DataDir, "instances", "*", "*", "redis.log"))
	for _, l := range logs {
		m.t.Logf("%s:\n%s", l, tail(l, 8))
	}
}

// InstancePids lists the pids of live processes whose working directory is
// under dataDir/instances: the instances a manager runs there.
func InstancePids(dataDir string) []int {
	root := filepath.Join(dataDir, "instances") + "/"
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err != nil || !strings.HasPrefix(cwd+"/", root) {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// KillInstances kills every instance process under dataDir and waits until
// they are gone.
func KillInstances(dataDir string) {
	for i := 0; i < 100; i++ {
		pids := InstancePids(dataDir)
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitJob waits for a job to finish and fails the test unless it succeeded.
func (m *Manager) WaitJob(ctx context.Context, id string) api.Job {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	j, err := m.Client.WaitJob(ctx, id, nil)
	if err != nil {
		m.t.Fatalf("job %s: %v", id, err)
	}
	return j
}

// WaitPhase waits until the cluster reports the phase.
func (m *Manager) WaitPhase(ctx context.Context, name, phase string, timeout time.Duration) api.Cluster {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	var last api.Cluster
	for time.Now().Before(deadline) {
		cl, err := m.Client.GetCluster(ctx, name)
		if err == nil {
			last = cl
			if cl.Status.Phase == phase {
				return cl
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.t.Fatalf("cluster %s not %s after %s: phase %q, reason %q", name, phase, timeout, last.Status.Phase, last.Status.Reason)
	return last
}

// raceReport returns the first data race report of a log.
func raceReport(log string) string {
	i := strings.Index(log, "WARNING: DATA RACE")
	end := strings.Index(log[i:], "==================")
	if end < 0 {
		end = min(len(log)-i, 4000)
	}
	return log[i : i+end]
}

// StartManagers starts n managers on one MySQL/MariaDB store (dsn) that
// share one data dir and port range, as managers on one host do; their ids
// are m1 … mn. The first one starts first, so it normally leads.
func StartManagers(t testing.TB, n int, dsn string, o ManagerOptions) []*Manager {
	t.Helper()
	o.Args = append(append([]string{}, o.Args...), "--store", dsn)
	first := o
	first.ID = "m1"
	ms := []*Manager{StartManager(t, first)}
	for i := 2; i <= n; i++ {
		oi := o
		oi.ID, oi.Share = fmt.Sprintf("m%d", i), ms[0]
		ms = append(ms, StartManager(t, oi))
	}
	return ms
}
