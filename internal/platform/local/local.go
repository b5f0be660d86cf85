package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/redis-manager/redis-manager/internal/platform"
)

// Platform is the local process platform.
type Platform struct {
	root   string
	binary string
	log    *slog.Logger
	events chan platform.InstanceEvent

	mu       sync.Mutex
	watching map[int]bool // pids with an exit watcher
	locks    map[string]*sync.Mutex
}

// New returns a platform keeping instance directories under root and
// starting the redis-server found on PATH (or binary, when not empty).
func New(root, binary string, log *slog.Logger) (*Platform, error) {
	if binary == "" {
		binary = "redis-server"
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create instance root: %w", err)
	}
	// Adoption compares an instance's directory with its process's working
	// directory, which the kernel reports absolute and with symlinks
	// resolved; so must the root be.
	root, err := filepath.Abs(root)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return nil, fmt.Errorf("resolve instance root: %w", err)
	}
	return &Platform{
		root:     root,
		binary:   binary,
		log:      log,
		events:   make(chan platform.InstanceEvent, 1024),
		watching: map[int]bool{},
		locks:    map[string]*sync.Mutex{},
	}, nil
}

// meta is what an instance directory says about itself.
type meta struct {
	Name    string `json:"name"`
	Cluster string `json:"cluster"`
	Kind    string `json:"kind"`
	Host    string `json:"host"`
	Port    int    `json:"port"`
}

func (p *Platform) dir(cluster, name string) string { return filepath.Join(p.root, cluster, name) }

// lock serialises operations on one instance.
func (p *Platform) lock(name string) func() {
	p.mu.Lock()
	l, ok := p.locks[name]
	if !ok {
		l = &sync.Mutex{}
		p.locks[name] = l
	}
	p.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Ensure implements platform.Platform.
func (p *Platform) Ensure(ctx context.Context, s platform.InstanceSpec) (platform.Instance, error) {
	defer p.lock(s.Name)()
	dir := p.dir(s.Cluster, s.Name)
	inst := platform.Instance{Name: s.Name, Cluster: s.Cluster, Kind: s.Kind, Host: s.Host, Port: s.Port, DataDir: dir}
	if pid, ok := runningPid(dir); ok {
		p.watch(s.Cluster, s.Name, pid)
		inst.Pid, inst.Running, inst.Adopted = pid, true, true
		return inst, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return inst, fmt.Errorf("create dir of %s: %w", s.Name, err)
	}
	if err := p.waitPortFree(ctx, dir, s); err != nil {
		if pid, ok := runningPid(dir); ok { // started by a manager killed before recording it
			p.watch(s.Cluster, s.Name, pid)
			inst.Pid, inst.Running, inst.Adopted = pid, true, true
			return inst, nil
		}
		return inst, err
	}
	m, _ := json.Marshal(meta{Name: s.Name, Cluster: s.Cluster, Kind: s.Kind, Host: s.Host, Port: s.Port})
	if err := writeFile(filepath.Join(dir, "instance.json"), m); err != nil {
		return inst, err
	}
	conf := filepath.Join(dir, confName(s.Kind))
	if _, err := os.Stat(conf); err != nil || !s.KeepConfig {
		body, err := s.Config(dir)
		if err != nil {
			return inst, fmt.Errorf("render config of %s: %w", s.Name, err)
		}
		if err := writeFile(conf, []byte(body)); err != nil {
			return inst, err
		}
	}
	pid, err := p.start(ctx, s, dir, conf)
	if err != nil {
		return inst, err
	}
	inst.Pid, inst.Running = pid, true
	return inst, nil
}

func confName(kind string) string {
	if kind == platform.KindSentinel {
		return "sentinel.conf"
	}
	return "redis.conf"
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// waitPortFree waits briefly for the port to be free: a process of ours that
// is just starting may hold it before its pid file exists.
func (p *Platform) waitPortFree(ctx context.Context, dir string, s platform.InstanceSpec) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		l, err := net.Listen("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
		if err == nil {
			l.Close()
			return nil
		}
		if _, ok := runningPid(dir); ok || time.Now().After(deadline) {
			return fmt.Errorf("start %s on %s:%d: %w", s.Name, s.Host, s.Port, platform.ErrPortInUse)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *Platform) start(ctx context.Context, s platform.InstanceSpec, dir, conf string) (int, error) {
	args := []string{conf}
	if s.Kind == platform.KindSentinel {
		args = append(args, "--sentinel")
	}
	out, err := os.OpenFile(filepath.Join(dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("open log of %s: %w", s.Name, err)
	}
	defer out.Close()
	// Not exec.CommandContext: the instance must outlive this request.
	cmd := exec.Command(p.binary, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", s.Name, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	p.mu.Lock()
	p.watching[pid] = true
	p.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		close(exited)
		p.exited(s.Cluster, s.Name, pid)
	}()
	p.log.Info("started instance", "instance", s.Name, "pid", pid, "port", s.Port)

	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		// Ready when it accepts connections and has written its pid file
		// (which is what a restarted manager adopts it by).
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			if got, ok := runningPid(dir); ok && got == pid {
				return pid, nil
			}
		}
		select {
		case <-exited:
			return 0, fmt.Errorf("%s exited at start: %s", s.Name, lastLines(dir, 5))
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s did not accept connections on %s within 15s: %s", s.Name, addr, lastLines(dir, 5))
		}
	}
}

// lastLines returns the last n lines of an instance's logs, for errors.
func lastLines(dir string, n int) string {
	var lines []string
	for _, f := range []string{"stdout.log", "redis.log"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "no log output"
	}
	return strings.Join(lines, " | ")
}

// watch reports the exit of a process that is not our child (adopted after a
// manager restart) through a pidfd.
func (p *Platform) watch(cluster, name string, pid int) {
	p.mu.Lock()
	if p.watching[pid] {
		p.mu.Unlock()
		return
	}
	p.watching[pid] = true
	p.mu.Unlock()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		p.log.Warn("cannot watch adopted instance; its exit will be noticed by polling", "instance", name, "pid", pid, "err", err)
		return
	}
	go func() {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n > 0 {
				break
			}
		}
		p.exited(cluster, name, pid)
	}()
}

func (p *Platform) exited(cluster, name string, pid int) {
	p.mu.Lock()
	delete(p.watching, pid)
	p.mu.Unlock()
	p.log.Info("instance exited", "instance", name, "pid", pid)
	select {
	case p.events <- platform.InstanceEvent{Type: platform.EventExited, Name: name, Cluster: cluster, Pid: pid, At: time.Now().UTC()}:
	default: // the control loop also polls; never block an exit watcher
	}
}

// runningPid reads the instance's pid file and tells whether that pid is a
// live process working in dir.
func runningPid(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "redis.pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, isInstanceProcess(pid, dir)
}

func isInstanceProcess(pid int, dir string) bool {
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil || filepath.Clean(cwd) != filepath.Clean(dir) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3, after the parenthesised command name, is the state; Z is a
	// zombie waiting to be reaped.
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}

// Recover implements platform.Platform.
func (p *Platform) Recover(ctx context.Context, cluster, name string) (platform.Instance, error) {
	defer p.lock(name)()
	dir := p.dir(cluster, name)
	inst := platform.Instance{Name: name, Cluster: cluster, DataDir: dir}
	if pid, ok := runningPid(dir); ok {
		p.watch(cluster, name, pid)
		inst.Pid, inst.Running, inst.Adopted = pid, true, true
	}
	return inst, nil
}

// Remove implements platform.Platform.
func (p *Platform) Remove(ctx context.Context, cluster, name string) error {
	defer p.lock(name)()
	dir := p.dir(cluster, name)
	if err := p.stop(ctx, dir); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove data of %s: %w", name, err)
	}
	_ = os.Remove(filepath.Join(p.root, cluster)) // only succeeds once empty
	return nil
}

// Stop kills the instance's process (SIGKILL: its data is about to go, or it
// is being replaced) and waits until it is gone; its data stays.
func (p *Platform) Stop(ctx context.Context, cluster, name string) error {
	defer p.lock(name)()
	return p.stop(ctx, p.dir(cluster, name))
}

func (p *Platform) stop(ctx context.Context, dir string) error {
	pid, ok := runningPid(dir)
	if !ok {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill pid %d: %w", pid, err)
	}
	for i := 0; isInstanceProcess(pid, dir); i++ {
		if i > 500 {
			return fmt.Errorf("pid %d still running 5s after SIGKILL", pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// List implements platform.Platform.
func (p *Platform) List(ctx context.Context, cluster string) ([]platform.Instance, error) {
	entries, err := os.ReadDir(filepath.Join(p.root, cluster))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list instances of %s: %w", cluster, err)
	}
	var out []platform.Instance
	for _, e := range entries {
		dir := filepath.Join(p.root, cluster, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "instance.json"))
		if err != nil {
			continue
		}
		var m meta
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		pid, running := runningPid(dir)
		out = append(out, platform.Instance{Name: m.Name, Cluster: m.Cluster, Kind: m.Kind, Host: m.Host, Port: m.Port,
			Pid: pid, DataDir: dir, Running: running})
	}
	return out, nil
}

// Watch implements platform.Platform. There is one stream; call it once.
func (p *Platform) Watch(ctx context.Context) (<-chan platform.InstanceEvent, error) {
	return p.events, nil
}

// Status tells whether an instance runs and its pid, without side effects.
func (p *Platform) Status(cluster, name string) (pid int, running bool) {
	return runningPid(p.dir(cluster, name))
}

// Seed implements platform.Platform: it writes dump.rdb into the instance's
// directory (the `dir` its redis.conf names, with `dbfilename dump.rdb`),
// through a temporary file renamed into place once r has ended and the
// data is synced.
func (p *Platform) Seed(ctx context.Context, cluster, name string, r io.Reader) (err error) {
	defer p.lock(name)()
	dir := p.dir(cluster, name)
	if pid, ok := runningPid(dir); ok {
		return fmt.Errorf("seed %s: %w (pid %d)", name, platform.ErrRunning, pid)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("seed %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, ".dump.rdb.seed-*")
	if err != nil {
		return fmt.Errorf("seed %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// A plain writer, so the copy uses a 1 MiB buffer rather than
	// File.ReadFrom's 32 KiB one.
	if _, err := io.CopyBuffer(struct{ io.Writer }{tmp}, ctxReader{ctx, r}, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("seed %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("seed %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("seed %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, "dump.rdb")); err != nil {
		return fmt.Errorf("seed %s: %w", name, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// ctxReader stops a copy when ctx ends, for readers that do not watch it.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
