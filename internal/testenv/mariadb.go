package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

const (
	mariadbUser  = "redis_manager"
	startTimeout = 30 * time.Second
	stopTimeout  = 30 * time.Second
)

// Server options for a small, fast, throwaway server. Durability is traded
// for speed (no doublewrite, log flushed once a second): the data dir dies
// with the test binary anyway.
var mariadbTuning = []string{
	"--innodb-buffer-pool-size=32M",
	"--innodb-log-file-size=16M",
	"--innodb-flush-log-at-trx-commit=2",
	"--innodb-doublewrite=0",
	// Native AIO needs io_setup slots the host may not have to spare when
	// several test binaries each run a server.
	"--innodb-use-native-aio=0",
	"--performance-schema=OFF",
	"--character-set-server=utf8mb4",
	"--collation-server=utf8mb4_general_ci",
}

var (
	mainRunning atomic.Bool
	dbSeq       atomic.Int64

	serverMu   sync.Mutex
	server     *mariadbServer
	serverErr  error
	serverDone bool
	// alsoOn are the servers of StartMariaDBAlsoOn, by the extra address.
	alsoOn    = map[string]*mariadbServer{}
	alsoOnErr = map[string]error{}
)

// Main runs the package's tests and then stops the servers they started.
// Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	mainRunning.Store(true)
	code := m.Run()
	CleanupBinary()
	serverMu.Lock()
	all := []*mariadbServer{server}
	for _, s := range alsoOn {
		all = append(all, s)
	}
	server, serverDone, alsoOn = nil, true, nil
	serverMu.Unlock()
	for _, s := range all {
		if s == nil {
			continue
		}
		if err := s.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// StartMariaDB returns the DSN of a new, empty database on a MariaDB server
// run for this test binary: mysql://redis_manager:PASS@127.0.0.1:PORT/DB.
// The user has a real password and all privileges. The server (one per test
// binary, started on first use) listens on a free loopback port and is
// stopped by Main; every call gets its own database, so parallel tests do
// not see each other's rows.
func StartMariaDB(t testing.TB) (dsn string) {
	t.Helper()
	return startMariaDBOn(t, "")
}

// StartMariaDBAlsoOn is StartMariaDB on a server of its own (one per test
// binary and address) that listens on addr as well as on loopback, and
// returns a DSN naming addr: for managers in pods, which reach the host at
// the node's bridge address (10.217.0.1 on the test node). The user may log
// in from anywhere its password is known; nothing listens beyond addr.
func StartMariaDBAlsoOn(t testing.TB, addr string) (dsn string) {
	t.Helper()
	if net.ParseIP(addr) == nil {
		t.Fatalf("StartMariaDBAlsoOn(%q): want an IP address", addr)
	}
	return startMariaDBOn(t, addr)
}

func startMariaDBOn(t testing.TB, also string) (dsn string) {
	t.Helper()
	mariadbd, installDB, missing := findMariaDB()
	if missing != "" {
		if os.Getenv("CI") == "true" || os.Getenv("REDIS_MANAGER_REQUIRE_MARIADB") == "1" {
			t.Fatalf("%s; MariaDB is required here (CI=true or REDIS_MANAGER_REQUIRE_MARIADB=1): install mariadb-server", missing)
		}
		t.Skipf("%s; install mariadb-server to run this test (set REDIS_MANAGER_REQUIRE_MARIADB=1 to make this a failure)", missing)
	}
	if !mainRunning.Load() {
		t.Fatal("testenv.StartMariaDB shares one server per test binary, which must be stopped at exit: add\n\tfunc TestMain(m *testing.M) { testenv.Main(m) }")
	}

	serverMu.Lock()
	var (
		s   *mariadbServer
		err error
	)
	if also == "" {
		if server == nil && serverErr == nil && !serverDone {
			server, serverErr = startMariaDB(mariadbd, installDB)
		}
		s, err = server, serverErr
	} else {
		if alsoOn[also] == nil && alsoOnErr[also] == nil && !serverDone {
			alsoOn[also], alsoOnErr[also] = startMariaDB(mariadbd, installDB, also)
		}
		s, err = alsoOn[also], alsoOnErr[also]
	}
	serverMu.Unlock()
	if err != nil {
		t.Fatalf("start mariadbd: %v", err)
	}
	if s == nil {
		t.Fatal("testenv.StartMariaDB called after testenv.Main stopped the server")
	}

	name := fmt.Sprintf("%s_%d", dbNamePart(t.Name()), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.root.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("create database %s: %v\n%s", name, err, s.logTail())
	}
	// Databases are not dropped: the whole data dir goes when Main stops
	// the server, and a failed test's rows stay inspectable until then.
	host := "127.0.0.1"
	if also != "" {
		host = also
	}
	return fmt.Sprintf("mysql://%s:%s@%s/%s", mariadbUser, s.password, net.JoinHostPort(host, fmt.Sprint(s.port)), name)
}

// dbNamePart makes a test name usable in a database name.
func dbNamePart(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > 40 {
		s = s[len(s)-40:]
	}
	return "t_" + s
}

// findMariaDB looks for mariadbd and mariadb-install-db on PATH and in the
// sbin directories Debian puts them in (often not on a user's PATH).
func findMariaDB() (mariadbd, installDB, missing string) {
	mariadbd = findBinary("mariadbd")
	if mariadbd == "" {
		return "", "", "mariadbd not found on PATH or in /usr/sbin"
	}
	installDB = findBinary("mariadb-install-db", "mysql_install_db")
	if installDB == "" {
		return "", "", "mariadbd found but mariadb-install-db is missing"
	}
	return mariadbd, installDB, ""
}

func findBinary(names ...string) string {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"} {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	return ""
}

// mariadbServer is one running mariadbd.
type mariadbServer struct {
	dir      string // everything: data dir, socket, logs
	socket   string
	errLog   string
	port     int
	also     []string // addresses listened on besides 127.0.0.1
	password string
	root     *sql.DB // root over the unix socket

	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	waitErr error
}

func startMariaDB(mariadbd, installDB string, also ...string) (_ *mariadbServer, err error) {
	// Not t.TempDir: the server outlives the test that starts it, and a unix
	// socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "rm-mariadb-")
	if err != nil {
		return nil, err
	}
	s := &mariadbServer{
		dir:    dir,
		socket: filepath.Join(dir, "mysqld.sock"),
		errLog: filepath.Join(dir, "error.log"),
		also:   also,
	}
	defer func() {
		if err != nil {
			_ = s.stop()
		}
	}()
	datadir := filepath.Join(dir, "data")

	// Root may log in without a password, but only over this server's
	// socket; tests use a user with a password over TCP.
	args := []string{"--no-defaults", "--datadir=" + datadir,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"}
	args = append(args, userArgs()...)
	args = append(args, mariadbTuning...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, installDB, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", installDB, err, lastLines(string(out), 20))
	}

	// The free port is found by binding and releasing it, so another process
	// can take it before mariadbd binds: try again on a new port then.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		err = s.launch(mariadbd, datadir, port)
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(s.logTail(), "already in use") {
			return nil, err
		}
	}

	if err := s.createUser(); err != nil {
		return nil, err
	}
	return s, nil
}

func userArgs() []string {
	// mariadbd refuses to run as root unless told to.
	if os.Geteuid() == 0 {
		return []string{"--user=root"}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch starts mariadbd on port and waits until it accepts TCP connections
// and answers a ping over its socket.
func (s *mariadbServer) launch(mariadbd, datadir string, port int) error {
	// A fresh log per attempt, so its tail is about this attempt.
	_ = os.Remove(s.errLog)
	args := []string{"--no-defaults",
		"--datadir=" + datadir,
		"--socket=" + s.socket,
		"--pid-file=" + filepath.Join(s.dir, "mariadbd.pid"),
		"--log-error=" + s.errLog,
		"--tmpdir=" + s.dir,
		"--port=" + fmt.Sprint(port),
		// MariaDB 10.11 takes a comma-separated list.
		"--bind-address=" + strings.Join(append([]string{"127.0.0.1"}, s.also...), ","),
		"--skip-name-resolve",
		"--max-connections=500",
	}
	args = append(args, userArgs()...)
	args = append(args, mariadbTuning...)
	cmd := exec.Command(mariadbd, args...)
	out, err := os.Create(filepath.Join(s.dir, "mariadbd.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	// If the test binary dies without running Main's cleanup (a panic, a
	// timeout, ^C), the kernel kills the server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	s.cmd, s.port = cmd, port
	s.exited = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child exits, not
		// the process: keep this goroutine on its own thread for the
		// server's whole life. It never unlocks, so the thread ends with
		// the goroutine, after the server has exited.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(s.exited)
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start %s: %w", mariadbd, err)
	}

	root := mysql.NewConfig()
	root.Net, root.Addr, root.User = "unix", s.socket, "root"
	root.Timeout = time.Second
	conn, err := mysql.NewConnector(root)
	if err != nil {
		return err
	}
	if s.root != nil {
		s.root.Close()
	}
	s.root = sql.OpenDB(conn)
	s.root.SetMaxOpenConns(4)

	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("mariadbd exited during startup (%v)\n%s", s.waitErr, s.logTail())
		default:
		}
		lastErr = s.ping(port)
		if lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("mariadbd (pid %d, port %d) not ready after %s: %v\n%s", cmd.Process.Pid, port, startTimeout, lastErr, s.logTail())
			s.kill()
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *mariadbServer) ping(port int) error {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return err
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.root.PingContext(ctx)
}

// createUser makes the user tests connect as, and checks it can log in
// over TCP.
func (s *mariadbServer) createUser() error {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	s.password = hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for _, stmt := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", mariadbUser, s.password),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%'", mariadbUser),
	} {
		if _, err := s.root.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create user %s: %w\n%s", mariadbUser, err, s.logTail())
		}
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr = "tcp", fmt.Sprintf("127.0.0.1:%d", s.port)
	cfg.User, cfg.Passwd = mariadbUser, s.password
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("log in as %s over TCP: %w\n%s", mariadbUser, err, s.logTail())
	}
	return nil
}

// kill stops the process at once and waits for it.
func (s *mariadbServer) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// stop shuts the server down (SIGTERM, by its pid), waits for it to exit,
// and removes its directory.
func (s *mariadbServer) stop() error {
	if s.root != nil {
		s.root.Close()
	}
	var err error
	if s.cmd != nil && s.cmd.Process != nil {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(stopTimeout):
				s.kill()
				err = fmt.Errorf("mariadbd (pid %d) still running %s after SIGTERM; killed\n%s", s.cmd.Process.Pid, stopTimeout, s.logTail())
			}
		}
	}
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

// logTail is the end of the server's error log (and of its stdout/stderr,
// where a failure before the log opens lands), for failure messages.
func (s *mariadbServer) logTail() string {
	var b strings.Builder
	for _, f := range []string{s.errLog, filepath.Join(s.dir, "mariadbd.out")} {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) || len(data) == 0 {
			continue
		}
		fmt.Fprintf(&b, "--- last lines of %s ---\n%s\n", f, lastLines(string(data), 20))
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// MariaDB is a throwaway MariaDB server started outside a test (a
// benchmark); Stop shuts it down and removes its files.
type MariaDB struct{ s *mariadbServer }

// StartMariaDBServer starts a MariaDB server for a program that is not a
// test (bench/takeover).
func StartMariaDBServer() (*MariaDB, error) {
	mariadbd, installDB, missing := findMariaDB()
	if missing != "" {
		return nil, errors.New(missing + "; install mariadb-server")
	}
	s, err := startMariaDB(mariadbd, installDB)
	if err != nil {
		return nil, err
	}
	return &MariaDB{s: s}, nil
}

// NewDatabase creates an empty database and returns its DSN.
func (m *MariaDB) NewDatabase(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.s.root.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4"); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return fmt.Sprintf("mysql://%s:%s@127.0.0.1:%d/%s", mariadbUser, m.s.password, m.s.port, name), nil
}

// Stop shuts the server down.
func (m *MariaDB) Stop() error { return m.s.stop() }
