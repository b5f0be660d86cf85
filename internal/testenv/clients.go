package testenv

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel-aware client writers, each with its library's default settings:
// go-redis (NewFailoverClient, in this process), redis-py
// (Sentinel(...).master_for, Debian's python3-redis) and ioredis
// ({sentinels, name}, from npm). Each writes SET + WAIT 1 in a loop with
// keys <prefix>:<n> and records every write a replica acknowledged. Used by
// the end-to-end tests and bench/failover.

// Client names.
const (
	GoRedis = "go-redis"
	RedisPy = "redis-py"
	IORedis = "ioredis"
)

// IORedisVersion is the ioredis release the writers install from npm.
const IORedisVersion = "5.11.1"

//go:embed clients/writer.py
var writerPy []byte

//go:embed clients/writer.js
var writerJS []byte

// Ack is one write acknowledged by a replica (WAIT 1 returned 1 or more).
type Ack struct {
	Key    string
	Issued time.Time // sent (after any earlier failure of the loop)
	At     time.Time // acknowledged
}

// Writer is a running client writer.
type Writer struct {
	Client string
	mu     sync.Mutex
	acks   []Ack
	taken  []Ack // writes the master took that no replica acknowledged in time
	errs   int
	stop   func()
	done   chan struct{}
	stderr *strings.Builder
}

// Acks returns the acknowledged writes so far.
func (w *Writer) Acks() []Ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Ack(nil), w.acks...)
}

// Errors returns how many attempts failed so far.
func (w *Writer) Errors() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errs
}

// FirstWriteAfter waits up to timeout for the first write sent after t
// that a master took, acknowledged by a replica or not, and returns how long
// after t it was taken.
func (w *Writer) FirstWriteAfter(t time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		var first time.Time
		for _, list := range [][]Ack{w.acks, w.taken} {
			for _, a := range list {
				if a.Issued.After(t) && (first.IsZero() || a.At.Before(first)) {
					first = a.At
					break
				}
			}
		}
		w.mu.Unlock()
		if !first.IsZero() {
			return first.Sub(t), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: no write sent after %s taken within %s (%d errors)%s", w.Client, t.Format("15:04:05.000"), timeout, w.Errors(), w.stderrTail())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FirstAckAfter waits up to timeout for the first write sent after t that
// was acknowledged, and returns how long after t it was acknowledged.
func (w *Writer) FirstAckAfter(t time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		for _, a := range w.acks {
			if a.Issued.After(t) {
				w.mu.Unlock()
				return a.At.Sub(t), nil
			}
		}
		w.mu.Unlock()
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: no write sent after %s acknowledged within %s (%d errors)%s", w.Client, t.Format("15:04:05.000"), timeout, w.Errors(), w.stderrTail())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *Writer) stderrTail() string {
	if w.stderr == nil {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.TrimSpace(w.stderr.String())
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	if s == "" {
		return ""
	}
	return "; stderr: " + s
}

// Stop ends the writer and returns every acknowledged write.
func (w *Writer) Stop() []Ack {
	w.stop()
	<-w.done
	return w.Acks()
}

func (w *Writer) add(a Ack) {
	w.mu.Lock()
	w.acks = append(w.acks, a)
	w.mu.Unlock()
}

// WriterConfig says whom a writer writes to.
type WriterConfig struct {
	Sentinels        []string
	MasterName       string
	Password         string
	SentinelPassword string
	Prefix           string
	// Dialer, when set, is how the go-redis writer connects (to the
	// Sentinels and to the master): a Kubernetes test resolves the pods'
	// cluster DNS names through the cluster's DNS server.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Runtimes finds what the clients outside Go need.
type Runtimes struct {
	Python      string // a python3 that imports redis (Debian's python3-redis)
	Node        string // node
	NodeModules string // a node_modules holding ioredis
}

// FindPython returns a python3 with the redis package, preferring Debian's
// /usr/bin/python3 (python3-redis), or why none was found.
func FindPython() (string, error) {
	cands := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	for _, p := range cands {
		if err := exec.Command(p, "-c", "import redis.sentinel").Run(); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no python3 with the redis package (apt-get install python3-redis)")
}

// NodeCacheDir is where ioredis is installed: $REDIS_MANAGER_NODE_CACHE,
// else $XDG_CACHE_HOME/redis-manager/node, else ~/.cache/redis-manager/node.
func NodeCacheDir() string {
	if d := os.Getenv("REDIS_MANAGER_NODE_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "redis-manager", "node")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "redis-manager", "node")
}

// ErrNoRuntime is returned when a client's runtime is not installed.
var ErrNoRuntime = errors.New("runtime missing")

var ioredisMu sync.Mutex

// EnsureIORedis installs ioredis IORedisVersion from npm into
// NodeCacheDir once, and returns node and the node_modules directory. It
// returns an error wrapping ErrNoRuntime when node or npm is missing.
func EnsureIORedis() (node, modules string, err error) {
	node, err = exec.LookPath("node")
	if err != nil {
		return "", "", fmt.Errorf("node not found (apt-get install nodejs npm): %w", ErrNoRuntime)
	}
	dir := NodeCacheDir()
	modules = filepath.Join(dir, "node_modules")
	ioredisMu.Lock()
	defer ioredisMu.Unlock()
	if b, err := os.ReadFile(filepath.Join(modules, "ioredis", "package.json")); err == nil && strings.Contains(string(b), `"version": "`+IORedisVersion+`"`) {
		return node, modules, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", "", fmt.Errorf("npm not found (apt-get install npm): %w", ErrNoRuntime)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "--no-save", "ioredis@"+IORedisVersion).CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("npm install ioredis@%s into %s: %v: %s", IORedisVersion, dir, err, out)
	}
	return node, modules, nil
}

// StartWriter starts a writer of the client (GoRedis, RedisPy, IORedis).
// rt names the runtimes of the latter two (FindPython, EnsureIORedis).
func StartWriter(client string, cfg WriterConfig, rt Runtimes) (*Writer, error) {
	switch client {
	case GoRedis:
		return startGoWriter(cfg), nil
	case RedisPy:
		if rt.Python == "" {
			return nil, fmt.Errorf("redis-py: %w", ErrNoRuntime)
		}
		return startScript(client, rt.Python, "writer.py", writerPy, nil, cfg)
	case IORedis:
		if rt.Node == "" {
			return nil, fmt.Errorf("ioredis: %w", ErrNoRuntime)
		}
		return startScript(client, rt.Node, "writer.js", writerJS, []string{"NODE_PATH=" + rt.NodeModules}, cfg)
	}
	return nil, fmt.Errorf("unknown client %q", client)
}

func startScript(client, interp, name string, body []byte, env []string, cfg WriterConfig) (*Writer, error) {
	dir, err := os.MkdirTemp("", "writer-")
	if err != nil {
		return nil, err
	}
	script := filepath.Join(dir, name)
	if err := os.WriteFile(script, body, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(interp, script, strings.Join(cfg.Sentinels, ","), cfg.MasterName, cfg.Password, cfg.SentinelPassword, cfg.Prefix)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w := &Writer{Client: client, done: make(chan struct{}), stderr: &strings.Builder{}}
	cmd.Stderr = lockedWriter{w: w}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 4 && f[0] == "A" {
				issued, _ := strconv.ParseInt(f[2], 10, 64)
				at, _ := strconv.ParseInt(f[3], 10, 64)
				w.add(Ack{Key: f[1], Issued: time.Unix(0, issued), At: time.Unix(0, at)})
			} else if len(f) == 4 && f[0] == "S" {
				issued, _ := strconv.ParseInt(f[2], 10, 64)
				at, _ := strconv.ParseInt(f[3], 10, 64)
				w.mu.Lock()
				w.taken = append(w.taken, Ack{Key: f[1], Issued: time.Unix(0, issued), At: time.Unix(0, at)})
				w.mu.Unlock()
			} else if len(f) > 0 && f[0] == "E" {
				w.mu.Lock()
				w.errs++
				w.mu.Unlock()
			}
		}
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}()
	w.stop = func() { _ = cmd.Process.Kill() }
	return w, nil
}

type lockedWriter struct{ w *Writer }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	if l.w.stderr.Len() < 1<<20 {
		l.w.stderr.Write(p)
	}
	return len(p), nil
}

// startGoWriter writes through go-redis' FailoverClient with its default
// settings (Protocol 2 only: the managed instances speak RESP2 to it the
// same way as to the others).
func startGoWriter(cfg WriterConfig) *Writer {
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: cfg.MasterName, SentinelAddrs: cfg.Sentinels, Password: cfg.Password,
		SentinelPassword: cfg.SentinelPassword, Protocol: 2, Dialer: cfg.Dialer,
	})
	w := &Writer{Client: GoRedis, done: make(chan struct{})}
	stop := make(chan struct{})
	var once sync.Once
	w.stop = func() { once.Do(func() { close(stop) }) }
	go func() {
		defer close(w.done)
		defer c.Close()
		ctx := context.Background()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := cfg.Prefix + ":" + strconv.Itoa(i)
			issued := time.Now()
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, i, 0)
				p.Do(ctx, "WAIT", 1, 500)
				return nil
			})
			if err == nil {
				if n, _ := cmds[1].(*redis.Cmd).Int(); n >= 1 {
					w.add(Ack{Key: key, Issued: issued, At: time.Now()})
				} else {
					w.mu.Lock()
					w.taken = append(w.taken, Ack{Key: key, Issued: issued, At: time.Now()})
					w.mu.Unlock()
				}
				continue
			}
			w.mu.Lock()
			w.errs++
			w.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return w
}

// MissingAcks reads every acknowledged write from one instance and returns
// how many are missing, and the first one found with another value than
// the writer's ("" when none): a writer's value is the number its key ends
// with.
func MissingAcks(ctx context.Context, rc *redis.Client, acks []Ack) (missing int, wrong string, err error) {
	for i := 0; i < len(acks); i += 1000 {
		batch := acks[i:min(i+1000, len(acks))]
		// Each command carries its own error (redis.Nil for a missing key).
		cmds, _ := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, ack := range batch {
				p.Get(ctx, ack.Key)
			}
			return nil
		})
		for j, c := range cmds {
			v, err := c.(*redis.StringCmd).Result()
			want := batch[j].Key[strings.LastIndexByte(batch[j].Key, ':')+1:]
			switch {
			case errors.Is(err, redis.Nil):
				missing++
			case err != nil:
				return 0, "", fmt.Errorf("GET %s: %w", batch[j].Key, err)
			case v != want && wrong == "":
				wrong = fmt.Sprintf("%s = %q, want %q", batch[j].Key, v, want)
			}
		}
	}
	return missing, wrong, nil
}
