package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/instance"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// startProc starts a process that the test kills, by pid, when it ends.
func startProc(t *testing.T, dir string, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		out.Close()
	})
	return cmd
}

// waitInfo polls INFO section until ok; on failure it shows the last answer
// and the logs in dirs.
func waitInfo(t *testing.T, c *redis.Client, section string, ok func(string) bool, dirs ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if s, err := c.Info(context.Background(), section).Result(); err == nil {
			if last = s; ok(s) {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var logs strings.Builder
	for _, d := range dirs {
		for _, f := range []string{"stdout.log", "redis.log"} {
			b, _ := os.ReadFile(filepath.Join(d, f))
			fmt.Fprintf(&logs, "--- %s:\n%s\n", filepath.Join(d, f), b)
		}
	}
	t.Fatalf("INFO %s never satisfied the test; last:\n%s\n%s", section, last, logs.String())
	return ""
}

// TestInstanceRun: `redis-manager instance run`, the pod entrypoint,
// decides the boot role from the Sentinels, then becomes redis-server.
// Planned as master but with a Sentinel that names another master, it
// boots as that master's replica (the fence); with no Sentinel answering,
// it boots as planned. Given a seed, it fetches and checks it before the
// first boot: a good one is the data Redis boots with, a corrupt one stops
// it before Redis starts.
func TestInstanceRun(t *testing.T) {
	t.Parallel()
	const pw, spw = "instance-pw", "sentinel-pw"
	lo, _ := testenv.PortRange(t, 6)
	masterPort, sentinelPort, fencedPort, soloPort, seededPort, badPort := lo, lo+1, lo+2, lo+3, lo+4, lo+5
	bin := testenv.Binary(t)
	conf := func(port int) string {
		dir := t.TempDir()
		c := spec.RenderRedis(spec.RedisConfig{Host: "127.0.0.1", Port: port, Dir: dir, Password: pw,
			Spec: api.ClusterSpec{Persistence: "none", MaxmemoryPolicy: "noeviction", Maxmemory: "0"}})
		f := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(f, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	client := func(port int) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), Password: pw, Protocol: 2, DisableIdentity: true})
		t.Cleanup(func() { c.Close() })
		return c
	}

	// A master and a Sentinel that monitors it as "fence-0".
	mconf := conf(masterPort)
	startProc(t, filepath.Dir(mconf), nil, "redis-server", mconf)
	sdir := t.TempDir()
	sconf := spec.RenderSentinel(spec.SentinelConfig{Host: "127.0.0.1", Port: sentinelPort, Dir: sdir, Password: spw}) +
		fmt.Sprintf("sentinel monitor fence-0 127.0.0.1 %d 1\nsentinel auth-pass fence-0 %s\n", masterPort, pw)
	if err := os.WriteFile(filepath.Join(sdir, "sentinel.conf"), []byte(sconf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProc(t, sdir, nil, "redis-server", filepath.Join(sdir, "sentinel.conf"), "--sentinel")
	sc := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(sentinelPort), Password: spw, Protocol: 2, DisableIdentity: true})
	defer sc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if a, err := sc.GetMasterAddrByName(context.Background(), "fence-0").Result(); err == nil && len(a) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Sentinel does not answer for fence-0")
		}
		time.Sleep(20 * time.Millisecond)
	}

	self := "127.0.0.1:" + strconv.Itoa(fencedPort)
	fconf := conf(fencedPort)
	run := startProc(t, filepath.Dir(fconf), []string{instance.EnvSentinelPassword + "=" + spw}, bin, "instance", "run",
		"--config", fconf, "--self", self, "--master-name", "fence-0", "--planned-master", self,
		"--sentinels", "127.0.0.1:"+strconv.Itoa(sentinelPort))
	fenced := client(fencedPort)
	info := waitInfo(t, fenced, "replication", func(s string) bool { return strings.Contains(s, "master_link_status:up") },
		filepath.Dir(mconf), filepath.Dir(fconf), sdir)
	if !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_port:"+strconv.Itoa(masterPort)) {
		t.Errorf("planned master, but the Sentinel names another: INFO replication\n%s", info)
	}
	// It became redis-server itself (exec), so a pod's PID 1 is Redis.
	srv := waitInfo(t, fenced, "server", func(string) bool { return true })
	if !strings.Contains(srv, "process_id:"+strconv.Itoa(run.Process.Pid)+"\r\n") {
		t.Errorf("redis-server is not the process `instance run` started (pid %d):\n%s", run.Process.Pid, srv)
	}
	log, _ := os.ReadFile(filepath.Join(filepath.Dir(fconf), "stdout.log"))
	if !strings.Contains(string(log), "boot role decided") || strings.Contains(string(log), spw) {
		t.Errorf("instance run's log: want the decision, never the password:\n%s", log)
	}

	// No Sentinel answers: the plan decides.
	solo := "127.0.0.1:" + strconv.Itoa(soloPort)
	oconf := conf(soloPort)
	startProc(t, filepath.Dir(oconf), nil, bin, "instance", "run",
		"--config", oconf, "--self", solo, "--master-name", "solo-0", "--planned-master", solo,
		"--sentinels", "127.0.0.1:"+strconv.Itoa(sentinelPort))
	if info := waitInfo(t, client(soloPort), "replication", func(s string) bool { return strings.Contains(s, "role:") }); !strings.Contains(info, "role:master") {
		t.Errorf("planned master, no Sentinel knows the shard: INFO replication\n%s", info)
	}

	// A seed: the master's data saved as an RDB in a file:// target.
	m := client(masterPort)
	for i := range 500 {
		if err := m.Set(context.Background(), fmt.Sprintf("seed:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Save(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	objects := t.TempDir()
	rdb, err := os.ReadFile(filepath.Join(filepath.Dir(mconf), "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), rdb...)
	bad[len(bad)/2] ^= 0xff
	for key, b := range map[string][]byte{"good.rdb": rdb, "bad.rdb": bad} {
		if err := os.WriteFile(filepath.Join(objects, key), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	seeded := func(port int, key string) (dir string, cmd *exec.Cmd) {
		self := "127.0.0.1:" + strconv.Itoa(port)
		c := conf(port)
		dir = filepath.Dir(c)
		return dir, startProc(t, dir, nil, bin, "instance", "run", "--config", c, "--data-dir", dir,
			"--self", self, "--master-name", "seeded-0", "--planned-master", self,
			"--seed-target", "file://"+objects, "--seed-key", key, "--seed-size", strconv.Itoa(len(rdb)))
	}
	gdir, _ := seeded(seededPort, "good.rdb")
	sc2 := client(seededPort)
	waitInfo(t, sc2, "persistence", func(s string) bool { return strings.Contains(s, "loading:0") }, gdir)
	if n, err := sc2.DBSize(context.Background()).Result(); err != nil || n != 500 {
		t.Errorf("the seeded instance holds %d keys (%v), want 500", n, err)
	}
	bdir, bcmd := seeded(badPort, "bad.rdb")
	done := make(chan error, 1)
	go func() { done <- bcmd.Wait() }()
	select {
	case err := <-done:
		out, _ := os.ReadFile(filepath.Join(bdir, "stdout.log"))
		if err == nil || !strings.Contains(string(out), "seed:") || !strings.Contains(string(out), "corrupt") {
			t.Errorf("instance run with a corrupt seed: %v\n%s", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("instance run with a corrupt seed still runs after 10s")
	}
	if entries, _ := os.ReadDir(bdir); len(entries) != 2 { // redis.conf, stdout.log
		t.Errorf("left in the data dir after a refused seed: %v", entries)
	}
}
