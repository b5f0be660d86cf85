package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis-manager/redis-manager/internal/instance"
	"github.com/redis-manager/redis-manager/internal/platform"
)

// RunTask implements platform.TaskRunner: the task runs as a child process
// of the manager (`redis-manager task …`, Options.Self), in its own process
// group, killed with the manager and when ctx ends. Its JSON lines are read
// as they come.
func (p *Platform) RunTask(ctx context.Context, t platform.Task, progress func(platform.TaskProgress)) (platform.TaskResult, error) {
	if p.opts.Self == "" {
		return platform.TaskResult{}, fmt.Errorf("task %s: no redis-manager binary to run tasks with", t.Kind)
	}
	args := []string{"task", t.Kind, "--dir", t.Dir}
	switch t.Kind {
	case platform.TaskFetch:
		args = append(args, "--target", t.Seed.TargetURL, "--key", t.Seed.Key,
			"--size", strconv.FormatInt(t.Seed.Size, 10), "--crc64", t.Seed.CRC64)
	case platform.TaskCountKeys:
		args = append(args, "--redis-server", p.binary)
	case platform.TaskSnapshot:
		args = append(args, "--source", t.Snapshot.Addr, "--target", t.Snapshot.TargetURL, "--key", t.Snapshot.Key,
			"--size-hint", strconv.FormatInt(t.Snapshot.SizeHint, 10))
	default:
		return platform.TaskResult{}, fmt.Errorf("task %q: unknown kind", t.Kind)
	}
	cmd := exec.CommandContext(ctx, p.opts.Self, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Cancelled: let it clean up (abort a multipart upload, remove a
	// partial file) before it is killed.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if t.Kind == platform.TaskSnapshot {
		// The password goes in on stdin: a command line is public.
		cmd.Stdin = strings.NewReader(t.Snapshot.Password + "\n")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return platform.TaskResult{}, err
	}
	if err := cmd.Start(); err != nil {
		return platform.TaskResult{}, fmt.Errorf("task %s: %w", t.Kind, err)
	}
	var res *platform.TaskResult
	var terr *platform.TaskError
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var line platform.TaskLine
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch {
		case line.Progress != nil && progress != nil:
			progress(*line.Progress)
		case line.Result != nil:
			res = line.Result
		case line.Error != nil:
			terr = line.Error
		}
	}
	werr := cmd.Wait()
	switch {
	case terr != nil:
		return platform.TaskResult{}, instance.TaskErr(*terr)
	case ctx.Err() != nil:
		return platform.TaskResult{}, ctx.Err()
	case werr != nil || res == nil:
		return platform.TaskResult{}, fmt.Errorf("task %s: %v: %s", t.Kind, werr, strings.TrimSpace(stderr.String()))
	}
	return *res, nil
}
