package controller

import (
	"context"
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

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/catalog"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// VerifyBackup stores a job that downloads a backup (checking its CRC64
// and structure against the record) and loads it into a throwaway
// redis-server, comparing the key count with the record.
func (c *Controller) VerifyBackup(ctx context.Context, id string) (api.Job, error) {
	b, err := c.getBackup(ctx, id)
	if err != nil {
		return api.Job{}, err
	}
	if b.State != api.StateSucceeded {
		return api.Job{}, &spec.FieldError{Kind: spec.Unprocessable, Field: "",
			Message: fmt.Sprintf("backup %s is %s; only a succeeded backup has an object to verify", id, b.State)}
	}
	job := newJob(api.JobBackupVerify, b.Cluster, time.Now().UTC())
	job.Params, _ = json.Marshal(backupRefParams{Backup: id})
	if err := c.createJob(ctx, job); err != nil {
		return api.Job{}, err
	}
	c.Kick()
	return job.Job, nil
}

// errVerify marks a verification that refuted the backup (as opposed to a
// target that could not be reached).
var errVerify = errors.New("verification failed")

// verifySteps is the plan of a backup-verify job.
func verifySteps() []step {
	return []step{
		{"download", func(ctx context.Context, r *jobRun) error {
			b, err := r.c.verifyTarget(ctx, r)
			if err != nil {
				return err
			}
			_, err = r.c.downloadForVerify(ctx, r, b)
			return r.c.verifyOutcome(ctx, b, err)
		}},
		{"load", func(ctx context.Context, r *jobRun) error {
			b, err := r.c.verifyTarget(ctx, r)
			if err != nil {
				return err
			}
			dir := r.c.scratchDir(r.job.ID)
			defer os.RemoveAll(dir)
			if _, err := os.Stat(filepath.Join(dir, "verified")); err != nil {
				// Resumed after a restart that lost the download.
				if _, err := r.c.downloadForVerify(ctx, r, b); err != nil {
					return r.c.verifyOutcome(ctx, b, err)
				}
			}
			keys, err := r.c.loadKeyCount(ctx, r, dir)
			if err == nil && keys != b.Keys {
				err = fmt.Errorf("%w: redis-server loaded %d keys, the record says %d", errVerify, keys, b.Keys)
			}
			if err := r.c.verifyOutcome(ctx, b, err); err != nil {
				return err
			}
			shard := b.Shard
			r.c.event(ctx, b.Cluster, &shard, "backup-verified", fmt.Sprintf("backup %s loaded into a throwaway redis-server: %d keys, as recorded", b.ID, keys),
				map[string]any{"backup": b.ID, "keys": keys})
			return nil
		}},
	}
}

func (c *Controller) verifyTarget(ctx context.Context, r *jobRun) (store.Backup, error) {
	var p backupRefParams
	if err := json.Unmarshal(r.job.Params, &p); err != nil {
		return store.Backup{}, fmt.Errorf("read job parameters: %w", err)
	}
	return c.getBackup(ctx, p.Backup)
}

// verifyOutcome records a verification that refuted the backup: verified
// turns false, with a backup-verify-failed event. Other errors (a target
// out of reach) say nothing about the backup and only fail the job.
func (c *Controller) verifyOutcome(ctx context.Context, b store.Backup, err error) error {
	if err == nil || !(errors.Is(err, backup.ErrCorrupt) || errors.Is(err, backup.ErrNotFound) || errors.Is(err, errVerify)) {
		return err
	}
	b.Verified = false
	if perr := c.putBackup(ctx, b); perr != nil {
		c.log.Error("record failed verification", "backup", b.ID, "err", perr)
	}
	shard := b.Shard
	c.event(ctx, b.Cluster, &shard, "backup-verify-failed", fmt.Sprintf("backup %s failed verification: %v", b.ID, err),
		map[string]any{"backup": b.ID, "error": err.Error()})
	return err
}

func (c *Controller) scratchDir(jobID string) string {
	root := c.cfg.ScratchDir
	if root == "" {
		root = os.TempDir()
	}
	return filepath.Join(root, "verify-"+jobID)
}

// downloadForVerify copies the object into the job's scratch dir as
// dump.rdb, checking it on the way and against the record.
func (c *Controller) downloadForVerify(ctx context.Context, r *jobRun, b store.Backup) (backup.Result, error) {
	dir := c.scratchDir(r.job.ID)
	if err := os.RemoveAll(dir); err != nil {
		return backup.Result{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return backup.Result{}, err
	}
	t, err := backup.OpenTarget(ctx, b.TargetURL)
	if err != nil {
		return backup.Result{}, err
	}
	rc, err := t.Get(ctx, b.ObjectKey)
	if err != nil {
		return backup.Result{}, err
	}
	defer rc.Close()
	f, err := os.OpenFile(filepath.Join(dir, "dump.rdb"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return backup.Result{}, err
	}
	defer f.Close()
	start := time.Now()
	src := &countingReader{r: rc, report: func(n int64) {
		r.progress(ctx, min(float64(n)/float64(max(b.SizeBytes, 1)), 1),
			fmt.Sprintf("downloading %s: %s of %s at %s", b.ID, formatBytes(n), formatBytes(b.SizeBytes), formatRate(n, time.Since(start))))
	}}
	res, err := backup.VerifyCopy(f, src)
	if err == nil {
		err = catalog.MatchRecord(res, b)
	}
	if err != nil {
		return res, fmt.Errorf("backup %s (%s): %w", b.ID, b.Target, err)
	}
	if err := f.Close(); err != nil {
		return res, err
	}
	return res, os.WriteFile(filepath.Join(dir, "verified"), nil, 0o600)
}

// loadKeyCount boots a throwaway redis-server on dir/dump.rdb (loopback,
// a free port, a random password, nothing saved), waits until it has
// loaded the file and returns its key count. It boots as a replica of an
// address nobody listens on: a master would drop the keys whose TTL ran
// out since the snapshot, a replica loads every key the file holds.
func (c *Controller) loadKeyCount(ctx context.Context, r *jobRun, dir string) (int64, error) {
	port, err := freeLoopbackPort()
	if err != nil {
		return 0, err
	}
	password := randomSecret()
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
	cmd := exec.Command(c.cfg.RedisServer, confPath)
	cmd.Dir = dir
	// Dies with the manager, and never outlives the job.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", c.cfg.RedisServer, err)
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
	var keys int64
	err = poll(ctx, c.cfg.StepTimeout, 20*time.Millisecond, func() (bool, string, error) {
		select {
		case <-exited:
			return false, "", fmt.Errorf("%w: redis-server refused the file: %s", errVerify, logTail(filepath.Join(dir, "redis.log"), 3))
		default:
		}
		info, err := redisclient.GetInfo(ctx, conn, "persistence", "keyspace")
		if err != nil {
			return false, err.Error(), nil
		}
		if info["loading"] == "1" {
			r.progress(ctx, 0.5, fmt.Sprintf("loading into a throwaway redis-server: %s%%", info["loading_loaded_perc"]))
			return false, "loading", nil
		}
		keys = info.Keys()
		return true, "", nil
	})
	return keys, err
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the last n non-empty lines of a file, joined.
func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
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

// cleanVerify removes a failed verify job's scratch files.
func cleanVerify(_ context.Context, r *jobRun) {
	_ = os.RemoveAll(r.c.scratchDir(r.job.ID))
}
