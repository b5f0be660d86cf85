// Command backup measures a backup of one redis-server holding at least
// 500 MB of RDB, three ways in the same run and for both transfer forms
// (diskless and disk-based SYNC): the plain tool (`redis-cli --rdb FILE`),
// backup.Run to file://, and backup.Run to an S3-protocol server (gofakes3
// over HTTP on loopback). It prints throughput next to redis-cli's and the
// peak RSS of the backing-up process above its idle RSS.
//
//	go run ./bench/backup -size-mb 600 -runs 3
//
// Each of our backups runs in a child process (this binary with -child),
// so its peak RSS (VmHWM) and CPU time are its own; the S3 server runs in
// another child (-s3-server) and keeps its objects in memory there. The
// runs of each form rotate the order of the methods; the table shows the
// median run.
//
//	go run ./bench/backup -size-mb 150 -pairs 5
//
// -pairs N measures only what the engine is held to: the diskless form
// (what managed instances use) to file://, against `redis-cli --rdb FILE`
// of the same server, in N alternating pairs (ours, then redis-cli); it
// prints every pair and the median of the per-pair ratios (pairs.go).
// -profile-dir DIR adds a CPU profile of each of our backups.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/internal/backup"
)

const (
	bucket      = "bench"
	passwordEnv = "BENCH_REDIS_PASSWORD"
	valueSize   = 1000
)

func main() {
	sizeMB := flag.Int("size-mb", 600, "RDB size to load, in MB (10^6 bytes)")
	runs := flag.Int("runs", 3, "runs of each method per form; the table shows the median")
	child := flag.String("child", "", "internal: run one backup to this target URL and print its measurements")
	addr := flag.String("addr", "", "internal: redis address for -child")
	hint := flag.Int64("size-hint", 0, "internal: size hint for -child")
	cpuprofile := flag.String("cpuprofile", "", "internal: write a CPU profile of -child here")
	s3server := flag.Bool("s3-server", false, "internal: serve S3 on loopback until stdin closes")
	pairs := flag.Int("pairs", 0, "compare only the diskless form to file:// with redis-cli --rdb, in this many alternating pairs (ours, redis-cli, ours, ...); prints every pair and the medians")
	profileDir := flag.String("profile-dir", "", "with -pairs: write a CPU profile of each of our backups into this directory")
	flag.Parse()
	var err error
	switch {
	case *s3server:
		err = serveS3()
	case *child != "":
		err = runChild(*child, *addr, *hint, *cpuprofile)
	case *pairs > 0:
		err = runPairs(*sizeMB, *pairs, *profileDir)
	default:
		err = run(*sizeMB, *runs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// measurement is one backup; the child fills the first part.
type measurement struct {
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	IdleRSS  int64   `json:"idleRSS"`  // bytes, just before backup.Run
	PeakRSS  int64   `json:"peakRSS"`  // bytes, VmHWM after it
	LastByte float64 `json:"lastByte"` // seconds until the last RDB byte was received and checked
	CRC64    string  `json:"crc64"`
	Keys     int64   `json:"keys"`
	Verified bool    `json:"verified"` // the CRC64 matched the trailer

	CPU       float64 `json:"-"` // user+system seconds of the client process
	MaxRSS    int64   `json:"-"` // rusage maxrss of redis-cli, bytes
	ServerCPU float64 `json:"-"` // seconds the S3 server process spent meanwhile
}

func run(sizeMB, runs int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "redis-manager-bench-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	s3srv, err := startS3Server(self)
	if err != nil {
		return err
	}
	defer s3srv.stop()

	password := randomHex(16)
	rdb, stopRedis, keys, err := startPopulated(ctx, filepath.Join(dir, "redis"), password, sizeMB)
	if err != nil {
		return err
	}
	defer stopRedis()
	addr := rdb.Options().Addr
	mem, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return err
	}
	sizeHint := infoInt(mem, "used_memory") // what the manager would pass

	type method struct {
		name string
		do   func() (measurement, error)
	}
	methods := []method{
		{"redis-cli --rdb FILE", func() (measurement, error) {
			f := filepath.Join(dir, "redis-cli.rdb")
			defer os.Remove(f)
			return redisCLI(addr, password, f)
		}},
		{"redis-cli, then upload", func() (measurement, error) {
			// The plain way to get an RDB into S3: a full local copy first.
			f := filepath.Join(dir, "redis-cli.rdb")
			defer os.Remove(f)
			start := time.Now()
			m, err := redisCLI(addr, password, f)
			if err != nil {
				return m, err
			}
			before := s3srv.cpu()
			if err := upload(ctx, s3srv.url, f, m.Bytes); err != nil {
				return m, err
			}
			m.ServerCPU = s3srv.cpu() - before
			m.Seconds = time.Since(start).Seconds()
			return m, emptyBucket(ctx, s3srv.url)
		}},
		{"backup.Run → file://", func() (measurement, error) {
			d := filepath.Join(dir, "file-target")
			defer os.RemoveAll(d)
			return childBackup(self, "file://"+d, addr, password, sizeHint)
		}},
		{"backup.Run → s3://", func() (measurement, error) {
			before := s3srv.cpu()
			m, err := childBackup(self, s3srv.url, addr, password, sizeHint)
			m.ServerCPU = s3srv.cpu() - before
			if err == nil {
				err = emptyBucket(ctx, s3srv.url)
			}
			return m, err
		}},
	}

	type row struct {
		form, method string
		runs         []measurement
	}
	var rows []row
	for _, form := range []string{"yes", "no"} {
		if err := rdb.ConfigSet(ctx, "repl-diskless-sync", form).Err(); err != nil {
			return err
		}
		name := map[string]string{"yes": "diskless", "no": "disk"}[form]
		results := make([][]measurement, len(methods))
		for r := 0; r < runs; r++ {
			for i := range methods {
				k := (i + r) % len(methods)
				m, err := methods[k].do()
				if err != nil {
					return fmt.Errorf("%s, %s: %w", name, methods[k].name, err)
				}
				fmt.Printf("  %-8s run %d  %-22s %6.2f s\n", name, r+1, methods[k].name, m.Seconds)
				results[k] = append(results[k], m)
			}
		}
		for k, ms := range results {
			rows = append(rows, row{name, methods[k].name, ms})
		}
	}

	fmt.Printf("\nredis-server %s, %d keys, %d CPUs, %d run(s) per method and form\n\n", redisVersion(), keys, runtime.NumCPU(), runs)
	if rows[0].runs[0].Bytes < 500_000_000 {
		fmt.Printf("NOTE: the RDB is under 500 MB; use -size-mb 600 for the real measurement\n\n")
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "form\tmethod\tbytes\tseconds\t(min–max)\tMB/s\t% of redis-cli\tto last byte\tclient CPU s\tpeak RSS above idle\tnotes")
	var base float64
	for _, r := range rows {
		m, lo, hi := median(r.runs)
		rate := float64(m.Bytes) / 1e6 / m.Seconds
		rss, note, toLast := "n/a", "", ""
		switch {
		case r.method == "redis-cli --rdb FILE":
			base = rate
			note = fmt.Sprintf("redis-cli maxrss %.1f MiB", float64(m.MaxRSS)/(1<<20))
		case strings.HasPrefix(r.method, "redis-cli"):
			note = fmt.Sprintf("reference for S3 (local copy, then upload); S3 server CPU %.2f s", m.ServerCPU)
		default:
			rss = fmt.Sprintf("%.1f MiB", float64(peakAboveIdle(r.runs))/(1<<20))
			lastRate := float64(m.Bytes) / 1e6 / m.LastByte
			toLast = fmt.Sprintf("%.2f s, %.1f MB/s (%.0f%%)", m.LastByte, lastRate, 100*lastRate/base)
			note = ""
			if m.ServerCPU > 0 {
				note = fmt.Sprintf("S3 server CPU %.2f s", m.ServerCPU)
			}
			if !m.Verified {
				note += " NOT VERIFIED"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%.2f\t(%.2f–%.2f)\t%.1f\t%.0f%%\t%s\t%.2f\t%s\t%s\n",
			r.form, r.method, m.Bytes, m.Seconds, lo, hi, rate, 100*rate/base, toLast, m.CPU, rss, note)
	}
	w.Flush()
	fmt.Println(`
MB = 10^6 bytes; seconds: the median run, wall clock of the whole backup (for
backup.Run: snapshot, upload, CRC64 and structure check, sidecar). Peak RSS:
VmHWM of the child process that ran backup.Run minus its VmRSS just before,
highest over the runs. Both redis-cli and the file target fsync the file.
"to last byte": when the last RDB byte had been received and checked (the
rest is the target finishing: fsync and rename, or the last parts and
CompleteMultipartUpload, then the sidecar). gofakes3 keeps parts in memory
and copies and MD5-hashes the whole object again in CompleteMultipartUpload:
most of the S3 time after the last byte is that. The
S3 server shares the CPUs with redis-server and the client. "redis-cli, then
upload" is not in the % column's base; it is what a backup to S3 costs the
plain way (a full local copy, then an upload by the same client code).`)
	return nil
}

// median returns the run with the median time and the range of times.
func median(ms []measurement) (m measurement, lo, hi float64) {
	sorted := append([]measurement(nil), ms...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Seconds < sorted[j].Seconds })
	return sorted[len(sorted)/2], sorted[0].Seconds, sorted[len(sorted)-1].Seconds
}

func peakAboveIdle(ms []measurement) int64 {
	var p int64
	for _, m := range ms {
		p = max(p, m.PeakRSS-m.IdleRSS)
	}
	return p
}

// redisCLI times the plain tool; the password goes through the
// environment, as it should for any tool.
func redisCLI(addr, password, file string) (measurement, error) {
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-cli", "-h", host, "-p", port, "--no-auth-warning", "--rdb", file)
	cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+password)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return measurement{}, fmt.Errorf("%w: %s", err, out)
	}
	fi, err := os.Stat(file)
	if err != nil {
		return measurement{}, err
	}
	m := measurement{Bytes: fi.Size(), Seconds: took.Seconds(), CPU: cpuOf(cmd.ProcessState)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.MaxRSS = ru.Maxrss * 1024
	}
	return m, nil
}

func cpuOf(ps *os.ProcessState) float64 { return (ps.UserTime() + ps.SystemTime()).Seconds() }

// childBackup runs one backup.Run in a fresh process and reads its report.
func childBackup(self, target, addr, password string, sizeHint int64, extra ...string) (measurement, error) {
	args := append([]string{"-child", target, "-addr", addr, "-size-hint", strconv.FormatInt(sizeHint, 10)}, extra...)
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), passwordEnv+"="+password,
		"AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench", "AWS_REGION=us-east-1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return measurement{}, err
	}
	var m measurement
	if err := json.Unmarshal(out, &m); err != nil {
		return m, fmt.Errorf("child said %q: %w", out, err)
	}
	m.CPU = cpuOf(cmd.ProcessState)
	return m, nil
}

func runChild(target, addr string, sizeHint int64, cpuprofile string) error {
	ctx := context.Background()
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	t, err := backup.OpenTarget(ctx, target)
	if err != nil {
		return err
	}
	idle, err := procStatus("VmRSS")
	if err != nil {
		return err
	}
	start := time.Now()
	var lastByte time.Duration
	res, err := backup.Run(ctx, addr, os.Getenv(passwordEnv), t, backup.ObjectKey("bench", 0, start), sizeHint,
		func(int64) { lastByte = time.Since(start) }) // the last call comes with the last byte
	took := time.Since(start)
	if err != nil {
		return err
	}
	peak, err := procStatus("VmHWM")
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(measurement{
		Bytes: res.Bytes, Seconds: took.Seconds(), IdleRSS: idle, PeakRSS: peak, LastByte: lastByte.Seconds(),
		CRC64: res.CRC64, Keys: res.Keys, Verified: !res.NoChecksum,
	})
}

// procStatus reads a memory line of /proc/self/status, in bytes.
func procStatus(field string) (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

type s3Server struct {
	cmd   *exec.Cmd
	stdin io.Closer
	url   string
}

// startS3Server runs this binary with -s3-server; it stops when its stdin
// closes, so it cannot outlive the benchmark.
func startS3Server(self string) (*s3Server, error) {
	cmd := exec.Command(self, "-s3-server")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &s3Server{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("s3 server: %w", err)
	}
	endpoint := strings.TrimSpace(strings.TrimPrefix(line, "endpoint "))
	s.url = "s3://" + bucket + "/bench?pathStyle=true&region=us-east-1&endpoint=" + endpoint
	return s, nil
}

func (s *s3Server) stop() { s.stdin.Close(); s.cmd.Wait() }

// cpu is the user+system time of the server so far, from /proc.
func (s *s3Server) cpu() float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

func serveS3() error {
	be := s3mem.New()
	if err := be.CreateBucket(bucket); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("endpoint http://%s\n", l.Addr())
	go func() { io.Copy(io.Discard, os.Stdin); l.Close() }()
	if err := http.Serve(l, gofakes3.New(be).Server()); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// upload puts a local file into the S3 server with the same client code
// as backup.Run.
func upload(ctx context.Context, url, file string, size int64) error {
	t, err := backup.OpenTarget(ctx, url, backup.WithCredentials("bench", "bench"))
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = t.Put(ctx, "plain/"+filepath.Base(file), f, size)
	return err
}

func emptyBucket(ctx context.Context, url string) error {
	t, err := backup.OpenTarget(ctx, url, backup.WithCredentials("bench", "bench"))
	if err != nil {
		return err
	}
	objs, err := t.List(ctx, "")
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := t.Delete(ctx, o.Key); err != nil {
			return err
		}
	}
	return nil
}

// startRedis starts the source instance, configured like a managed one
// (diskless sync without delay) plus what makes the size predictable.
func startRedis(ctx context.Context, dir, password string) (*redis.Client, func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsave \"\"\nappendonly no\nrequirepass %s\n"+
		"repl-diskless-sync yes\nrepl-diskless-sync-delay 0\nrdbcompression no\nenable-debug-command yes\nlogfile %s\n",
		port, dir, password, filepath.Join(dir, "redis.log"))
	if err := os.WriteFile(filepath.Join(dir, "redis.conf"), []byte(conf), 0o600); err != nil {
		return nil, nil, err
	}
	cmd := exec.Command("redis-server", filepath.Join(dir, "redis.conf"))
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Password: password,
		Protocol: 2, DisableIdentity: true, ReadTimeout: 10 * time.Minute})
	stop := func() { c.Close(); cmd.Process.Kill(); cmd.Wait() }
	for i := 0; ; i++ {
		err := c.Ping(ctx).Err()
		if err == nil {
			return c, stop, nil
		}
		if i == 200 {
			stop()
			return nil, nil, fmt.Errorf("redis-server did not start: %w", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func infoInt(info, field string) int64 {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func redisVersion() string {
	out, _ := exec.Command("redis-server", "--version").Output()
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return v
		}
	}
	return "?"
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// startPopulated starts the bench's redis-server and fills it with about
// sizeMB of 1 KB values; it returns the client, the stop function and the
// key count.
func startPopulated(ctx context.Context, dir, password string, sizeMB int) (*redis.Client, func(), int64, error) {
	rdb, stopRedis, err := startRedis(ctx, dir, password)
	if err != nil {
		return nil, nil, 0, err
	}
	keys := int64(sizeMB) * 1_000_000 / (valueSize + 30)
	fmt.Printf("loading %d keys of %d bytes (DEBUG POPULATE, rdbcompression no)...\n", keys, valueSize)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	err = rdb.Do(lctx, "DEBUG", "POPULATE", keys, "key", valueSize).Err()
	cancel()
	if err != nil {
		stopRedis()
		return nil, nil, 0, fmt.Errorf("populate: %w", err)
	}
	return rdb, stopRedis, keys, nil
}
