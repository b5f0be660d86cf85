package instance

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/redisclient"
)

// NewTaskCommand returns `redis-manager task`: one-off work next to the
// data for backups and restores, run by a platform's task runner (local: a
// child process of the manager; Kubernetes: a Job). Each task writes JSON
// lines on stdout (platform.TaskLine): progress, then a result or an error.
func NewTaskCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "task",
		Short:  "One-off work next to the data (run by the manager's task runner)",
		Hidden: true,
	}
	var dir string
	var seed platform.SeedSource
	fetch := &cobra.Command{
		Use:   platform.TaskFetch,
		Short: "Fetch a backup object into DIR/dump.rdb, checking it on the way and against its record",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := json.NewEncoder(cmd.OutOrStdout())
			seed.Progress = func(n int64) { _ = out.Encode(platform.TaskLine{Progress: &platform.TaskProgress{Bytes: n}}) }
			res, err := fetchTask(cmd.Context(), dir, seed)
			return finish(out, res, err)
		},
	}
	fetch.Flags().StringVar(&dir, "dir", "", "scratch directory (required)")
	fetch.Flags().StringVar(&seed.TargetURL, "target", "", "backup target URL (required)")
	fetch.Flags().StringVar(&seed.Key, "key", "", "object key (required)")
	fetch.Flags().Int64Var(&seed.Size, "size", 0, "recorded size (0: unchecked)")
	fetch.Flags().StringVar(&seed.CRC64, "crc64", "", "recorded CRC-64 (empty: unchecked)")
	for _, f := range []string{"dir", "target", "key"} {
		_ = fetch.MarkFlagRequired(f)
	}

	var redisServer string
	var timeout time.Duration
	count := &cobra.Command{
		Use:   platform.TaskCountKeys,
		Short: "Load DIR/dump.rdb into a throwaway redis-server and count its keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := json.NewEncoder(cmd.OutOrStdout())
			keys, err := CountKeys(cmd.Context(), dir, redisServer, timeout, func(p string) {
				_ = out.Encode(platform.TaskLine{Progress: &platform.TaskProgress{Percent: p}})
			})
			return finish(out, platform.TaskResult{Keys: keys}, err)
		},
	}
	count.Flags().StringVar(&dir, "dir", "", "directory holding dump.rdb (required)")
	count.Flags().StringVar(&redisServer, "redis-server", "redis-server", "the redis-server binary")
	count.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long loading may take")
	_ = count.MarkFlagRequired("dir")
	var snap platform.SnapshotSource
	var passwordFile string
	snapshot := &cobra.Command{
		Use:   platform.TaskSnapshot,
		Short: "Stream an instance's RDB to a backup target (the password is read from --password-file, else stdin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := json.NewEncoder(cmd.OutOrStdout())
			if passwordFile != "" {
				// A mounted Secret (Kubernetes): the whole file is the password.
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return finish(out, platform.TaskResult{}, fmt.Errorf("read the source's password: %w", err))
				}
				snap.Password = string(b)
			} else {
				pw, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && pw == "" {
					return finish(out, platform.TaskResult{}, fmt.Errorf("read the source's password from stdin: %w", err))
				}
				snap.Password = strings.TrimSuffix(pw, "\n")
			}
			var last time.Time
			res, err := Snapshot(cmd.Context(), snap, func(n int64) {
				// A line at most every 100 ms: the manager only shows it.
				if now := time.Now(); now.Sub(last) >= 100*time.Millisecond {
					last = now
					_ = out.Encode(platform.TaskLine{Progress: &platform.TaskProgress{Bytes: n}})
				}
			})
			return finish(out, res, err)
		},
	}
	snapshot.Flags().StringVar(&dir, "dir", "", "scratch directory (unused)")
	snapshot.Flags().StringVar(&snap.Addr, "source", "", "instance to read the RDB from, host:port (required)")
	snapshot.Flags().StringVar(&snap.TargetURL, "target", "", "backup target URL (required)")
	snapshot.Flags().StringVar(&snap.Key, "key", "", "object key (required)")
	snapshot.Flags().Int64Var(&snap.SizeHint, "size-hint", 0, "expected size, for the upload's part size")
	snapshot.Flags().StringVar(&passwordFile, "password-file", "", "read the source's password from this file (a mounted Secret) instead of stdin")
	for _, f := range []string{"source", "target", "key"} {
		_ = snapshot.MarkFlagRequired(f)
	}
	cmd.AddCommand(fetch, count, snapshot)
	return cmd
}

// Snapshot streams the RDB of src.Addr to its target (backup.Run): the
// snapshot task, in whatever process runs it.
func Snapshot(ctx context.Context, src platform.SnapshotSource, progress func(int64)) (platform.TaskResult, error) {
	t, err := backup.OpenTarget(ctx, src.TargetURL)
	if err != nil {
		return platform.TaskResult{}, err
	}
	res, err := backup.Run(ctx, src.Addr, src.Password, t, src.Key, src.SizeHint, progress)
	if err != nil {
		return platform.TaskResult{}, err
	}
	return platform.TaskResult{Bytes: res.Bytes, CRC64: res.CRC64, Keys: res.Keys, NoChecksum: res.NoChecksum,
		RDBVersion: res.RDBVersion, RedisVersion: res.RedisVersion, KeysCounted: res.KeysCounted,
		Object: res.Object, DurationMs: res.Duration.Milliseconds()}, nil
}

func fetchTask(ctx context.Context, dir string, seed platform.SeedSource) (platform.TaskResult, error) {
	if err := FetchSeed(ctx, dir, seed); err != nil {
		return platform.TaskResult{}, err
	}
	st, err := os.Stat(filepath.Join(dir, "dump.rdb"))
	if err != nil {
		return platform.TaskResult{}, err
	}
	return platform.TaskResult{Bytes: st.Size(), CRC64: seed.CRC64}, nil
}

// finish writes the task's last line; an error also makes the process
// exit non-zero (the root command prints it on stderr).
func finish(out *json.Encoder, res platform.TaskResult, err error) error {
	if err != nil {
		te := TaskErrorOf(err)
		_ = out.Encode(platform.TaskLine{Error: &te})
		return err
	}
	return out.Encode(platform.TaskLine{Result: &res})
}

// TaskErrorOf classifies an error for the task protocol.
func TaskErrorOf(err error) platform.TaskError {
	te := platform.TaskError{Message: err.Error()}
	switch {
	case errors.Is(err, backup.ErrCorrupt):
		te.Kind = platform.TaskErrCorrupt
	case errors.Is(err, backup.ErrNotFound):
		te.Kind = platform.TaskErrNotFound
	case errors.Is(err, platform.ErrRefuted):
		te.Kind = platform.TaskErrRefuted
	}
	return te
}

// TaskErr turns a task's reported error back into an error that wraps what
// its kind names.
func TaskErr(te platform.TaskError) error {
	var kind error
	switch te.Kind {
	case platform.TaskErrCorrupt:
		kind = backup.ErrCorrupt
	case platform.TaskErrNotFound:
		kind = backup.ErrNotFound
	case platform.TaskErrRefuted:
		kind = platform.ErrRefuted
	default:
		return errors.New(te.Message)
	}
	return &taskError{msg: te.Message, kind: kind}
}

type taskError struct {
	msg  string
	kind error
}

func (e *taskError) Error() string { return e.msg }
func (e *taskError) Unwrap() error { return e.kind }

// CountKeys boots a throwaway redis-server on dir/dump.rdb (loopback, a
// free port, a random password, nothing saved), waits until it has loaded
// the file and returns its key count. It boots as a replica of an address
// nobody listens on: a master would drop the keys whose TTL ran out since
// the snapshot, a replica loads every key the file holds. A file
// redis-server refuses is ErrRefuted.
func CountKeys(ctx context.Context, dir, redisServer string, timeout time.Duration, progress func(percent string)) (int64, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	pw := make([]byte, 32)
	_, _ = rand.Read(pw)
	password := hex.EncodeToString(pw)
	conf := strings.Join([]string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"dir " + strconv.Quote(dir),
		"dbfilename dump.rdb",
		"logfile " + strconv.Quote(filepath.Join(dir, "redis.log")),
		"requirepass " + strconv.Quote(password),
		`save ""`,
		"appendonly no",
		"replicaof 127.0.0.1 1",
		"replica-read-only yes",
	}, "\n") + "\n"
	confPath := filepath.Join(dir, "verify.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return 0, err
	}
	cmd := exec.Command(redisServer, confPath)
	cmd.Dir = dir
	// Dies with the task, and never outlives it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", redisServer, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	conn := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Password: password,
		Protocol: 2, DisableIdentity: true, DialTimeout: time.Second, MaxRetries: -1})
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	why := "not started"
	for {
		select {
		case <-exited:
			return 0, fmt.Errorf("%w: redis-server refused the file: %s", platform.ErrRefuted, LogTail(3, filepath.Join(dir, "redis.log")))
		default:
		}
		info, err := redisclient.GetInfo(ctx, conn, "persistence", "keyspace")
		switch {
		case err != nil:
			why = err.Error()
		case info["loading"] == "1":
			why = "loading"
			if progress != nil {
				progress(info["loading_loaded_perc"])
			}
		default:
			return info.Keys(), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("timed out after %s: %s", timeout, why)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// LogTail returns the last n non-empty lines of the files, in order,
// joined with " | " ("no log output" when there is none): a process's last
// words for an error message.
func LogTail(n int, paths ...string) string {
	var lines []string
	for _, path := range paths {
		b, _ := os.ReadFile(path)
		for _, l := range strings.Split(string(b), "\n") {
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
