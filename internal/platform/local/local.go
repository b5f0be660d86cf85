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

	"github.com/redis-manager/redis-manager/internal/instance"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/spec"
)

// Platform is the local process platform.
type Platform struct {
	root   string
	binary string
	opts   Options
	log    *slog.Logger
	events chan platform.InstanceEvent

	mu       sync.Mutex
	watching map[int]bool // pids with an exit watcher running
	// listed is what List found running in an instance dir, while an
	// exit watcher runs for its pid (watching): until the process exits,
	// its dir, pid file and meta cannot change (a new meta is only ever
	// written before a new process starts), so List answers from here
	// instead of five reads of files and /proc per instance every round.
	listed    map[string]platform.Instance
	locks     platform.Locks
	reserveMu sync.Mutex // one Reserve at a time, so two never pick the same endpoint

	// onRender, when set (tests), is called at every config rendering.
	onRender func(platform.InstanceSpec)
}

// Options are the local platform's settings.
type Options struct {
	// PortLo and PortHi bound the ports instances get (--port-range).
	PortLo, PortHi int
	// Hosts are the loopback addresses instances get, one per instance
	// (--host-range); empty: every instance on DefaultHost.
	Hosts []string
	// HostRange is how Hosts was given, for messages.
	HostRange string
	// Asker answers the boot decision's questions (default
	// instance.DialAsker).
	Asker instance.Asker
	// Self is the redis-manager binary that runs tasks (RunTask).
	Self string
	// MemoryLimit caps the memory (resident, in bytes) all instances may
	// use together (--local-memory-limit); a new replica's sync must fit
	// under it (ReplicaRoom). 0: only the host's MemAvailable bounds.
	MemoryLimit int64
}

// DefaultHost is where instances listen without a host range.
const DefaultHost = "127.0.0.1"

// New returns a platform keeping instance directories under root and
// starting the redis-server found on PATH (or binary, when not empty).
func New(root, binary string, opts Options, log *slog.Logger) (*Platform, error) {
	if binary == "" {
		binary = "redis-server"
	}
	if opts.PortLo == 0 && opts.PortHi == 0 {
		opts.PortLo, opts.PortHi = 17000, 17999
	}
	if opts.Asker == nil {
		opts.Asker = instance.DialAsker{}
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
		opts:     opts,
		log:      log,
		events:   make(chan platform.InstanceEvent, 1024),
		watching: map[int]bool{},
		listed:   map[string]platform.Instance{},
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
func (p *Platform) lock(name string) func() { return p.locks.Lock(name) }

// handle is the local platform's record of an instance, stored by the
// controller as it is.
type handle struct {
	Pid     int    `json:"pid"`
	DataDir string `json:"dataDir"`
}

func (p *Platform) instance(id platform.ID, kind string, ep platform.Endpoint, pid int, running bool) platform.Instance {
	dir := p.dir(id.Cluster, id.Name)
	h, _ := json.Marshal(handle{Pid: pid, DataDir: dir})
	return platform.Instance{ID: id, Kind: kind, Endpoint: ep, Handle: h, Details: platform.Details{Pid: pid}, Running: running}
}

// Describe implements platform.Platform.
func (p *Platform) Describe(h []byte) platform.Details {
	var hd handle
	if len(h) == 0 || json.Unmarshal(h, &hd) != nil {
		return platform.Details{}
	}
	return platform.Details{Pid: hd.Pid}
}

// Ensure implements platform.Platform.
func (p *Platform) Ensure(ctx context.Context, s platform.InstanceSpec) (platform.Instance, error) {
	defer p.lock(s.ID.Name)()
	dir := p.dir(s.ID.Cluster, s.ID.Name)
	adopt := func(pid int) platform.Instance {
		p.watch(s.ID, pid)
		inst := p.instance(s.ID, s.Kind, s.Endpoint, pid, true)
		inst.Adopted = true
		return inst
	}
	if pid, ok := runningPid(dir); ok {
		return adopt(pid), nil
	}
	inst := p.instance(s.ID, s.Kind, s.Endpoint, 0, false)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return inst, fmt.Errorf("create dir of %s: %w", s.ID.Name, err)
	}
	if err := p.waitPortFree(ctx, dir, s); err != nil {
		if pid, ok := runningPid(dir); ok { // started by a manager killed before recording it
			return adopt(pid), nil
		}
		return inst, err
	}
	m, _ := json.Marshal(meta{Name: s.ID.Name, Cluster: s.ID.Cluster, Kind: s.Kind, Host: s.Endpoint.Host, Port: s.Endpoint.Port})
	if err := writeFile(filepath.Join(dir, "instance.json"), m); err != nil {
		return inst, err
	}
	conf := filepath.Join(dir, confName(s.Kind))
	_, statErr := os.Stat(conf)
	if s.Kind != platform.KindSentinel || statErr != nil {
		body, err := p.render(ctx, s, dir)
		if err != nil {
			return inst, fmt.Errorf("render config of %s: %w", s.ID.Name, err)
		}
		if err := writeFile(conf, []byte(body)); err != nil {
			return inst, err
		}
	}
	pid, err := p.start(ctx, s, dir, conf)
	if err != nil {
		// A manager killed right after it forked an instance leaves a
		// process that binds and writes its pid file only now: ours then
		// lost the port to it. That one is the instance: adopt it.
		if pid, ok := p.lateStarter(ctx, dir); ok {
			p.log.Info("adopting an instance a previous manager started", "instance", s.ID.Name, "pid", pid)
			return adopt(pid), nil
		}
		return inst, err
	}
	return p.instance(s.ID, s.Kind, s.Endpoint, pid, true), nil
}

// lateStarter waits up to two seconds for an instance process of dir that
// another manager started to write its pid file.
func (p *Platform) lateStarter(ctx context.Context, dir string) (int, bool) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		if pid, ok := runningPid(dir); ok {
			return pid, true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// render renders the config of a boot. A redis-server's boot role is
// decided here, right before it starts (instance.Decide), never for an
// instance that is adopted running.
func (p *Platform) render(ctx context.Context, s platform.InstanceSpec, dir string) (string, error) {
	if p.onRender != nil {
		p.onRender(s)
	}
	switch {
	case s.Kind == platform.KindSentinel && s.Sentinel != nil:
		c := *s.Sentinel
		c.Host, c.Port, c.Dir = s.Endpoint.Host, s.Endpoint.Port, dir
		return spec.RenderSentinel(c), nil
	case s.Kind == platform.KindRedis && s.Redis != nil:
		c := *s.Redis
		c.Host, c.Port, c.Dir = s.Endpoint.Host, s.Endpoint.Port, dir
		if s.Boot != nil {
			d := instance.Decide(ctx, *s.Boot, s.Endpoint.String(), p.opts.Asker)
			p.log.Info("boot role decided", "instance", s.ID.Name, "replicaOf", d.ReplicaOf, "sentinelAnswers", d.Answers)
			c.ReplicaOf = d.ReplicaOf
		}
		return spec.RenderRedis(c), nil
	}
	return "", fmt.Errorf("no %s configuration in the spec", s.Kind)
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
		if endpointFree(s.Endpoint) {
			return nil
		}
		if _, ok := runningPid(dir); ok || time.Now().After(deadline) {
			return fmt.Errorf("start %s on %s: %w", s.ID.Name, s.Endpoint, platform.ErrPortInUse)
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
		return 0, fmt.Errorf("open log of %s: %w", s.ID.Name, err)
	}
	defer out.Close()
	// Not exec.CommandContext: the instance must outlive this request.
	cmd := exec.Command(p.binary, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", s.ID.Name, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	p.mu.Lock()
	p.watching[pid] = true
	p.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		close(exited)
		p.exited(s.ID, pid, true) // reaped: certainly dead
	}()
	p.log.Info("started instance", "instance", s.ID.Name, "pid", pid, "address", s.Endpoint.String())

	addr := s.Endpoint.String()
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
			return 0, fmt.Errorf("%s exited at start: %s", s.ID.Name, lastLines(dir, 5))
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s did not accept connections on %s within 15s: %s", s.ID.Name, addr, lastLines(dir, 5))
		}
	}
}

// lastLines returns the last n lines of an instance's logs, for errors.
func lastLines(dir string, n int) string {
	return instance.LogTail(n, filepath.Join(dir, "stdout.log"), filepath.Join(dir, "redis.log"))
}

// watch reports the exit of a process that is not our child (adopted after a
// manager restart) through a pidfd.
func (p *Platform) watch(id platform.ID, pid int) {
	p.mu.Lock()
	if p.watching[pid] {
		p.mu.Unlock()
		return
	}
	p.watching[pid] = true
	p.mu.Unlock()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		p.mu.Lock()
		delete(p.watching, pid) // no watcher: List reads its files each time
		p.mu.Unlock()
		p.log.Warn("cannot watch adopted instance; its exit will be noticed by polling", "instance", id.Name, "pid", pid, "err", err)
		return
	}
	go func() {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		certain := false
		for {
			n, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			// A readable pidfd means the process exited; a failed poll
			// only that the watch is lost.
			certain = err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
			if err != nil || n > 0 {
				break
			}
		}
		p.exited(id, pid, certain)
	}()
}

// exited reports a death: certain when the process was reaped or its pidfd
// said so, suspected when the watch failed.
func (p *Platform) exited(id platform.ID, pid int, certain bool) {
	p.mu.Lock()
	delete(p.watching, pid)
	for dir, in := range p.listed {
		if in.Details.Pid == pid {
			delete(p.listed, dir)
		}
	}
	p.mu.Unlock()
	p.log.Info("instance exited", "instance", id.Name, "pid", pid, "certain", certain)
	select {
	case p.events <- platform.InstanceEvent{Type: platform.EventExited, ID: id, Certain: certain, Details: platform.Details{Pid: pid}, At: time.Now().UTC()}:
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

// Recover implements platform.Platform. The instance is found by its
// directory, which its identity names; the handle's pid is not trusted (the
// process may have been restarted, or the pid recycled).
func (p *Platform) Recover(ctx context.Context, id platform.ID, h []byte) (platform.Instance, error) {
	defer p.lock(id.Name)()
	dir := p.dir(id.Cluster, id.Name)
	m, _ := readMeta(dir)
	pid, ok := runningPid(dir)
	if !ok {
		return p.instance(id, m.Kind, platform.Endpoint{Host: m.Host, Port: m.Port}, 0, false), nil
	}
	p.watch(id, pid)
	inst := p.instance(id, m.Kind, platform.Endpoint{Host: m.Host, Port: m.Port}, pid, true)
	inst.Adopted = true
	return inst, nil
}

// Remove implements platform.Platform.
func (p *Platform) Remove(ctx context.Context, id platform.ID) error {
	defer p.lock(id.Name)()
	dir := p.dir(id.Cluster, id.Name)
	if err := p.stop(ctx, dir); err != nil {
		return fmt.Errorf("remove %s: %w", id.Name, err)
	}

	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove data of %s: %w", id.Name, err)
	}
	_ = os.Remove(filepath.Join(p.root, id.Cluster)) // only succeeds once empty
	return nil
}

// Stop kills the instance's process (SIGKILL: its data is about to go, or it
// is being replaced) and waits until it is gone; its data stays.
func (p *Platform) Stop(ctx context.Context, id platform.ID) error {
	defer p.lock(id.Name)()
	return p.stop(ctx, p.dir(id.Cluster, id.Name))
}

func (p *Platform) stop(ctx context.Context, dir string) error {
	pid, ok := runningPid(dir)
	if !ok {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill pid %d: %w", pid, err)
	}
	// The pid was ours when it was killed: wait until it has exited (gone
	// or a zombie), not only until it left its dir, which an exiting
	// process does before it is done.
	for i := 0; isInstanceProcess(pid, dir) || !exited(pid); i++ {
		if i > 500 {
			return fmt.Errorf("pid %d still running 5s after SIGKILL", pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Gone now, though its watcher may not have said so yet.
	p.mu.Lock()
	delete(p.listed, dir)
	p.mu.Unlock()
	return nil
}

// exited tells whether a process is gone or a zombie.
func exited(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X'
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
		if in, ok := p.stillRunning(dir); ok {
			out = append(out, in)
			continue
		}
		m, err := readMeta(dir)
		if err != nil {
			continue
		}
		pid, running := runningPid(dir)
		if !running {
			pid = 0
		}
		in := p.instance(platform.ID{Cluster: m.Cluster, Name: m.Name}, m.Kind, platform.Endpoint{Host: m.Host, Port: m.Port}, pid, running)
		if running {
			p.mu.Lock()
			if p.watching[pid] {
				p.listed[dir] = in
			}
			p.mu.Unlock()
		}
		out = append(out, in)
	}
	return out, nil
}

// stillRunning returns what List last found in dir if its process has
// not exited since (its exit watcher still runs).
func (p *Platform) stillRunning(dir string) (platform.Instance, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	in, ok := p.listed[dir]
	if ok && !p.watching[in.Details.Pid] {
		delete(p.listed, dir)
		ok = false
	}
	return in, ok
}

func readMeta(dir string) (meta, error) {
	var m meta
	b, err := os.ReadFile(filepath.Join(dir, "instance.json"))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	return m, err
}

// Watch implements platform.Platform. There is one stream; call it once.
func (p *Platform) Watch(ctx context.Context) (<-chan platform.InstanceEvent, error) {
	return p.events, nil
}

// Status tells whether an instance runs and its pid, without side effects.
func (p *Platform) Status(id platform.ID) (pid int, running bool) {
	return runningPid(p.dir(id.Cluster, id.Name))
}

// Seed implements platform.Platform: instance.FetchSeed into the
// instance's directory (the `dir` its redis.conf names, with `dbfilename
// dump.rdb`), run as a fetch task (a child process) when the platform has
// a redis-manager binary (Options.Self), else in this process.
func (p *Platform) Seed(ctx context.Context, id platform.ID, src platform.SeedSource) error {
	defer p.lock(id.Name)()
	dir := p.dir(id.Cluster, id.Name)
	if pid, ok := runningPid(dir); ok {
		return fmt.Errorf("seed %s: %w (pid %d)", id.Name, platform.ErrRunning, pid)
	}
	var err error
	if p.opts.Self != "" {
		_, err = p.RunTask(ctx, platform.Task{Kind: platform.TaskFetch, Dir: dir, Seed: src}, func(tp platform.TaskProgress) {
			if src.Progress != nil {
				src.Progress(tp.Bytes)
			}
		})
	} else {
		err = instance.FetchSeed(ctx, dir, src)
	}
	if err != nil {
		return fmt.Errorf("seed %s: %w", id.Name, err)
	}
	return nil
}

// LogTail implements platform.LogReader: the end of the instance's
// redis.log.
func (p *Platform) LogTail(_ context.Context, id platform.ID, limit int) ([]byte, error) {
	f, err := os.Open(filepath.Join(p.dir(id.Cluster, id.Name), "redis.log"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(0, st.Size()-int64(limit))
	buf := make([]byte, st.Size()-off)
	n, err := f.ReadAt(buf, off)
	if err != nil && n < len(buf) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}
