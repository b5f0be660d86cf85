// Command backup measures a backup of one redis-server holding at least
// 500 MB of RDB, three ways in the same run and for both transfer forms
// (diskless and disk-based SYNC): the plain tool (`redis-cli --rdb FILE`),
// backup.Run to file://, and backup.Run to an S3-protocol server (gofakes3
// over HTTP on loopback). It prints throughput next to redis-cli's and the
// peak RSS of the backing-up process above its idle RSS.
//
//	go run ./bench/backup -size-mb 600
//
// Each of our backups runs in a child process (this binary with -child),
// so its peak RSS (VmHWM) is its own: the S3 server runs in another child
// (-s3-server) and keeps its objects in memory there, not in ours.
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
	s3server := flag.Bool("s3-server", false, "internal: serve S3 on loopback until stdin closes")
	cpuprofile := flag.String("cpuprofile", "", "internal: write a CPU profile of -child here")
	flag.Parse()
	var err error
	switch {
	case *s3server:
		err = serveS3()
	case *child != "":
		err = runChild(*child, *addr, *hint, *cpuprofile)
	default:
		err = run(*sizeMB, *runs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// measurement is what a child reports.
type measurement struct {
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	IdleRSS  int64   `json:"idleRSS"`  // bytes, before the backup
	PeakRSS  int64   `json:"peakRSS"`  // bytes, VmHWM after it
	CRC64    string  `json:"crc64"`    // of the snapshot
	Keys     int64   `json:"keys"`     // counted in the stream
	Verified bool    `json:"verified"` // CRC64 matched the trailer
}

type row struct {
	form, method string
	m            measurement
	extra        string
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

	s3URL, stopS3, err := startS3Server(self)
	if err != nil {
		return err
	}
	defer stopS3()

	password := randomHex(16)
	rdb, stopRedis, err := startRedis(ctx, filepath.Join(dir, "redis"), password)
	if err != nil {
		return err
	}
	defer stopRedis()
	keys := int64(sizeMB) * 1_000_000 / (valueSize + 30)
	fmt.Printf("loading %d keys of %d bytes (DEBUG POPULATE, rdbcompression no)...\n", keys, valueSize)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	err = rdb.Do(lctx, "DEBUG", "POPULATE", keys, "key", valueSize).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("populate: %w", err)
	}
	mem, _ := rdb.Info(ctx, "memory").Result()
	sizeHint := infoInt(mem, "used_memory")

	var rows []row
	for _, form := range []string{"yes", "no"} {
		if err := rdb.ConfigSet(ctx, "repl-diskless-sync", form).Err(); err != nil {
			return err
		}
		name := map[string]string{"yes": "diskless", "no": "disk"}[form]
		methods := []struct {
			name string
			do   func() (measurement, string, error)
		}{
			{"redis-cli --rdb FILE", func() (measurement, string, error) {
				f := filepath.Join(dir, "redis-cli.rdb")
				defer os.Remove(f)
				return redisCLI(rdb.Options().Addr, password, f)
			}},
			{"backup.Run → file://", func() (measurement, string, error) {
				d := filepath.Join(dir, "file-target")
				defer os.RemoveAll(d)
				m, err := childBackup(self, "file://"+d, rdb.Options().Addr, password, sizeHint)
				return m, verifiedNote(m), err
			}},
			{"backup.Run → s3:// (gofakes3)", func() (measurement, string, error) {
				m, err := childBackup(self, s3URL, rdb.Options().Addr, password, sizeHint)
				if err == nil {
					err = emptyBucket(ctx, s3URL)
				}
				return m, verifiedNote(m), err
			}},
		}
		// Runs rotate the order, so no method always goes first (cold) or
		// right after another one's writeback.
		results := make([][]measurement, len(methods))
		notes := make([]string, len(methods))
		for r := 0; r < runs; r++ {
			for i := range methods {
				k := (i + r) % len(methods)
				m, note, err := methods[k].do()
				if err != nil {
					return fmt.Errorf("%s %s: %w", name, methods[k].name, err)
				}
				fmt.Printf("  %-8s run %d  %-30s %6.2f s\n", name, r+1, methods[k].name, m.Seconds)
				results[k] = append(results[k], m)
				notes[k] = note
			}
		}
		for k, ms := range results {
			rows = append(rows, row{name, methods[k].name, median(ms), notes[k]})
		}
	}
	printTable(rows, keys)
	return nil
}

// median is the run with the median time, with the highest peak RSS of
// all runs.
func median(ms []measurement) measurement {
	sorted := append([]measurement(nil), ms...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Seconds < sorted[j].Seconds })
	m := sorted[len(sorted)/2]
	for _, x := range ms {
		if x.PeakRSS-x.IdleRSS > m.PeakRSS-m.IdleRSS {
			m.PeakRSS, m.IdleRSS = x.PeakRSS, x.IdleRSS
		}
	}
	return m
}

func verifiedNote(m measurement) string {
	if !m.Verified {
		return "NOT VERIFIED"
	}
	return fmt.Sprintf("crc64 %s ok, %d keys", m.CRC64, m.Keys)
}

func printTable(rows []row, keys int64) {
	fmt.Printf("\nredis-server %s, %d keys, %d CPUs\n\n", redisVersion(), keys, runtime.NumCPU())
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "form\tmethod\tbytes\tseconds\tMB/s\t% of redis-cli\tpeak RSS above idle\t\tnotes\t")
	var base float64
	for _, r := range rows {
		rate := float64(r.m.Bytes) / 1e6 / r.m.Seconds
		if strings.HasPrefix(r.method, "redis-cli") {
			base = rate
		}
		rss := "-"
		if r.m.PeakRSS > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(max(0, r.m.PeakRSS-r.m.IdleRSS))/(1<<20))
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%.2f\t%.1f\t%.0f%%\t%s\t\t%s\t\n",
			r.form, r.method, r.m.Bytes, r.m.Seconds, rate, 100*rate/base, rss, r.extra)
	}
	w.Flush()
	fmt.Println("\nMB = 10^6 bytes; seconds: median run. RSS: VmHWM of the child process that ran backup.Run minus its")
	fmt.Println("VmRSS just before, highest of the runs. The S3 time includes gofakes3 assembling the parts in memory.")
}

// redisCLI times the plain tool.
func redisCLI(addr, password, file string) (measurement, string, error) {
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-cli", "-h", host, "-p", port, "--no-auth-warning", "--rdb", file)
	cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+password)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return measurement{}, "", fmt.Errorf("%w: %s", err, out)
	}
	fi, err := os.Stat(file)
	if err != nil {
		return measurement{}, "", err
	}
	extra := ""
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		extra = fmt.Sprintf("redis-cli maxrss %.1f MiB", float64(ru.Maxrss)/1024)
	}
	return measurement{Bytes: fi.Size(), Seconds: took.Seconds()}, extra, nil
}

// childBackup runs one backup.Run in a fresh process and reads its report.
func childBackup(self, target, addr, password string, sizeHint int64) (measurement, error) {
	cmd := exec.Command(self, "-child", target, "-addr", addr, "-size-hint", strconv.FormatInt(sizeHint, 10))
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
	return m, nil
}

func runChild(target, addr string, sizeHint int64, cpuprofile string) error {
	ctx := context.Background()
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	t, err := backup.OpenTarget(ctx, target)
	if err != nil {
		return err
	}
	idle, _ := procStatus("VmRSS")
	start := time.Now()
	res, err := backup.Run(ctx, addr, os.Getenv(passwordEnv), t, backup.ObjectKey("bench", 0, start), sizeHint, nil)
	took := time.Since(start)
	if err != nil {
		return err
	}
	peak, _ := procStatus("VmHWM")
	return json.NewEncoder(os.Stdout).Encode(measurement{
		Bytes: res.Bytes, Seconds: took.Seconds(), IdleRSS: idle, PeakRSS: peak,
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

// startS3Server runs this binary with -s3-server and returns the target URL.
func startS3Server(self string) (string, func(), error) {
	cmd := exec.Command(self, "-s3-server")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { stdin.Close(); cmd.Wait() }
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("s3 server: %w", err)
	}
	endpoint := strings.TrimSpace(strings.TrimPrefix(line, "endpoint "))
	return "s3://" + bucket + "/bench?pathStyle=true&region=us-east-1&endpoint=" + endpoint, stop, nil
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
	go func() { io.Copy(io.Discard, os.Stdin); l.Close() }() // the parent went away
	if err := http.Serve(l, gofakes3.New(be).Server()); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
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

// startRedis starts the source instance, configured like a managed one.
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
		if err := c.Ping(ctx).Err(); err == nil {
			return c, stop, nil
		} else if i == 200 {
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
