package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// writeDataset writes n keys of every type to a shard's master, some with
// a TTL, and waits until replicas have them.
func writeDataset(t *testing.T, sh api.ShardStatus, password, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: sh.Master.Address, Password: password, Protocol: 2})
	defer c.Close()
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			k := fmt.Sprintf("%s:%d", prefix, i)
			switch i % 6 {
			case 0:
				p.Set(ctx, k+":s", strings.Repeat("v", i%50)+strconv.Itoa(i), 0)
			case 1:
				p.HSet(ctx, k+":h", "a", i, "b", "x"+strconv.Itoa(i))
			case 2:
				p.RPush(ctx, k+":l", i, i+1, "end")
			case 3:
				p.SAdd(ctx, k+":set", "m1", i, "m3")
			case 4:
				p.ZAdd(ctx, k+":z", redis.Z{Score: float64(i) / 3, Member: "a"}, redis.Z{Score: -1, Member: "b"})
			case 5:
				p.Set(ctx, k+":ttl", i, time.Hour)
			}
		}
		p.Set(ctx, prefix+":big", strings.Repeat("0123456789", 20000), 0)
		return nil
	})
	if err != nil {
		t.Fatalf("write dataset to %s: %v", sh.Master.Name, err)
	}
	if err := c.Do(ctx, "WAIT", len(sh.Replicas), 5000).Err(); err != nil {
		t.Fatal(err)
	}
}

// dataset reads every key of an instance into a canonical form: type,
// value (sorted where Redis does not order), and whether it has a TTL.
func dataset(t *testing.T, address, password string) map[string]string {
	t.Helper()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: address, Password: password, Protocol: 2})
	defer c.Close()
	out := map[string]string{}
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		switch typ {
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "hash":
			var m map[string]string
			m, err = c.HGetAll(ctx, k).Result()
			v = fmt.Sprint(m) // fmt sorts map keys
		case "list":
			v, err = c.LRange(ctx, k, 0, -1).Result()
		case "set":
			var s []string
			s, err = c.SMembers(ctx, k).Result()
			slices.Sort(s)
			v = s
		case "zset":
			v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
		}
		if err != nil {
			t.Fatalf("read %s from %s: %v", k, address, err)
		}
		ttl, _ := c.PTTL(ctx, k).Result()
		out[k] = fmt.Sprintf("%s %v ttl=%v", typ, v, ttl > 0)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameDataset(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d keys, want %d", what, len(got), len(want))
	}
	diff := 0
	for k, v := range want {
		if got[k] != v {
			if diff < 5 {
				t.Errorf("%s: key %s = %q, want %q", what, k, got[k], v)
			}
			diff++
		}
	}
	if diff > 0 {
		t.Errorf("%s: %d keys differ", what, diff)
	}
}

// waitJobEnd waits for a job to end, whatever its outcome.
func waitJobEnd(t *testing.T, m *testenv.Manager, id string, timeout time.Duration) api.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	j, err := m.Client.WaitJob(ctx, id, nil)
	if !j.Done() {
		t.Fatalf("job %s did not end within %s: %+v %v", id, timeout, j, err)
	}
	return j
}

// objectFiles lists the files of a file:// target under dir, relative.
func objectFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// TestBackupRestore backs up a 2-shard cluster with known data to a
// file:// target and to an S3 server, restores each into new clusters and
// compares every key and value; the S3 run also re-imports the bucket into
// a second, empty manager and restores from there.
func TestBackupRestore(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"file", "s3"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var (
				opts   testenv.ManagerOptions
				s3     *testenv.S3
				target string
			)
			if kind == "s3" {
				s3 = testenv.StartS3(t)
				target = s3.URL("e2e")
				opts = testenv.ManagerOptions{Args: []string{"--backup-target", target}, Env: s3.Env()}
			}
			m := testenv.StartManager(t, opts)
			if kind == "file" {
				target = "file://" + filepath.Join(m.DataDir, "backups")
			}
			cl := createReady(t, m, api.CreateClusterRequest{Name: "src", Shards: intp(2), Replicas: intp(1)})
			creds, _ := m.Client.Credentials(ctx, "src")
			want := map[int]map[string]string{}
			for i, sh := range cl.Status.Shards {
				writeDataset(t, sh, creds.Password, fmt.Sprintf("shard%d", i), 300)
				want[i] = dataset(t, sh.Master.Address, creds.Password)
			}

			started := time.Now()
			res, err := m.Client.CreateBackup(ctx, "src", nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Job.Kind != api.JobBackup || len(res.Backups) != 2 {
				t.Fatalf("202 body: %+v", res)
			}
			for _, b := range res.Backups {
				if b.State != api.StateRunning || !strings.HasPrefix(b.ID, "b_") || b.Job != res.Job.ID {
					t.Errorf("record at 202: %+v", b)
				}
			}
			m.WaitJob(ctx, res.Job.ID)
			t.Logf("backup of 2 shards to %s took %s", kind, time.Since(started).Round(time.Millisecond))

			list, err := m.Client.ListBackups(ctx, "src")
			if err != nil || len(list) != 2 {
				t.Fatalf("list: %+v %v", list, err)
			}
			byShard := map[int]api.Backup{}
			for _, b := range list {
				byShard[b.Shard] = b
				replica := cl.Status.Shards[b.Shard].Replicas[0].Name
				prefix := fmt.Sprintf("%s/src/%d/", strings.TrimSuffix(strings.Split(target, "?")[0], "/"), b.Shard)
				if b.State != api.StateSucceeded || !b.Verified || b.Keys != int64(len(want[b.Shard])) || b.SizeBytes < 1000 ||
					len(b.CRC64) != 16 || b.SourceInstance != replica || !strings.HasPrefix(b.Target, prefix) ||
					!strings.HasSuffix(b.Target, ".rdb") || b.FinishedAt == nil || b.Error != "" {
					t.Errorf("backup of shard %d: %+v (want succeeded, verified, %d keys, from %s, under %s)", b.Shard, b, len(want[b.Shard]), replica, prefix)
				}
				if got, err := m.Client.GetBackup(ctx, b.ID); err != nil || fmt.Sprint(got) != fmt.Sprint(b) {
					t.Errorf("GetBackup(%s) = %+v, %v; want the listed record", b.ID, got, err)
				}
			}

			// The objects and sidecars are where the records say.
			var tgt backup.Target
			if kind == "s3" {
				tgt, err = backup.OpenTarget(ctx, target, backup.WithCredentials(s3.AccessKeyID, s3.SecretAccessKey))
			} else {
				tgt, err = backup.OpenTarget(ctx, target)
			}
			if err != nil {
				t.Fatal(err)
			}
			objs, err := tgt.List(ctx, "src/")
			if err != nil || len(objs) != 4 {
				t.Fatalf("objects in the target: %+v %v; want 2 RDBs and 2 sidecars", objs, err)
			}

			// Restore the set: a 2-shard copy with every key and value.
			rr, err := m.Client.RestoreBackup(ctx, list[0].ID, api.RestoreRequest{Cluster: "copy"})
			if err != nil {
				t.Fatal(err)
			}
			if rr.Job.Kind != api.JobRestore || rr.Cluster == nil || rr.Cluster.Name != "copy" || rr.Cluster.Spec.Shards != 2 || rr.Cluster.Spec.Replicas != 1 {
				t.Fatalf("restore 202 body: %+v", rr)
			}
			m.WaitJob(ctx, rr.Job.ID)
			cp := m.WaitPhase(ctx, "copy", api.PhaseReady, 20*time.Second)
			testenv.CheckStatus(t, cp, 2, 1, 3)
			cpCreds, _ := m.Client.Credentials(ctx, "copy")
			for i, sh := range cp.Status.Shards {
				sameDataset(t, fmt.Sprintf("copy shard %d master", i), dataset(t, sh.Master.Address, cpCreds.Password), want[i])
				sameDataset(t, fmt.Sprintf("copy shard %d replica", i), dataset(t, sh.Replicas[0].Address, cpCreds.Password), want[i])
			}
			// A restore never overwrites a cluster.
			if _, err := m.Client.RestoreBackup(ctx, list[0].ID, api.RestoreRequest{Cluster: "copy"}); !isStatus(err, http.StatusConflict) {
				t.Errorf("restore onto an existing cluster: %v, want 409", err)
			}
			if _, err := m.Client.RestoreBackup(ctx, list[0].ID, api.RestoreRequest{Cluster: "src"}); !isStatus(err, http.StatusConflict) {
				t.Errorf("restore onto the source: %v, want 409", err)
			}

			if kind == "file" {
				fileExtras(t, m, byShard, want)
				return
			}

			// With shard 0's backup deleted, the set is incomplete: it is
			// refused, rather than restored with a shard missing.
			dj, err := m.Client.DeleteBackup(ctx, byShard[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			m.WaitJob(ctx, dj.ID)
			if _, err := m.Client.RestoreBackup(ctx, byShard[1].ID, api.RestoreRequest{Cluster: "part"}); !isStatus(err, http.StatusUnprocessableEntity) {
				t.Errorf("restore of an incomplete set: %v, want 422", err)
			}
			// A new manager with an empty store imports the bucket and
			// restores from it, without the source cluster it never knew.
			m2 := testenv.StartManager(t, testenv.ManagerOptions{Ports: 12, Args: []string{"--backup-target", target}, Env: s3.Env()})
			imp, err := m2.Client.ImportBackups(ctx, target)
			if err != nil {
				t.Fatal(err)
			}
			if len(imp.Imported) != 1 || imp.Known != 0 || len(imp.Skipped) != 0 || fmt.Sprint(imp.Imported[0]) != fmt.Sprint(byShard[1]) {
				t.Fatalf("import: %+v\nwant exactly the record of shard 1: %+v", imp, byShard[1])
			}
			if again, err := m2.Client.ImportBackups(ctx, target); err != nil || len(again.Imported) != 0 || again.Known != 1 {
				t.Errorf("second import: %+v %v; want nothing new", again, err)
			}
			rr, err = m2.Client.RestoreBackup(ctx, byShard[1].ID, api.RestoreRequest{Cluster: "again", SingleShard: true, Replicas: intp(0)})
			if err != nil {
				t.Fatal(err)
			}
			m2.WaitJob(ctx, rr.Job.ID)
			ag := m2.WaitPhase(ctx, "again", api.PhaseReady, 20*time.Second)
			agCreds, _ := m2.Client.Credentials(ctx, "again")
			sameDataset(t, "imported and restored shard 1", dataset(t, ag.Status.Shards[0].Master.Address, agCreds.Password), want[1])
		})
	}
}

// fileExtras: a single-shard restore, verify, the CLI table, delete.
func fileExtras(t *testing.T, m *testenv.Manager, byShard map[int]api.Backup, want map[int]map[string]string) {
	ctx := context.Background()
	// One shard, into a cluster with AOF persistence: Redis ignores a
	// dump.rdb when appendonly is on and no AOF exists, so the master must
	// boot from the RDB first and turn AOF on after.
	rr, err := m.Client.RestoreBackup(ctx, byShard[1].ID, api.RestoreRequest{Cluster: "one", SingleShard: true, Persistence: strp("aof")})
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(ctx, rr.Job.ID)
	one := m.WaitPhase(ctx, "one", api.PhaseReady, 20*time.Second)
	testenv.CheckStatus(t, one, 1, 1, 3)
	if one.Spec.Persistence != "aof" {
		t.Errorf("persistence %q, want aof", one.Spec.Persistence)
	}
	oneCreds, _ := m.Client.Credentials(ctx, "one")
	sameDataset(t, "single-shard restore", dataset(t, one.Status.Shards[0].Master.Address, oneCreds.Password), want[1])
	for _, in := range []api.InstanceStatus{*one.Status.Shards[0].Master, one.Status.Shards[0].Replicas[0]} {
		c := redis.NewClient(&redis.Options{Addr: in.Address, Password: oneCreds.Password, Protocol: 2})
		v, err := c.ConfigGet(ctx, "appendonly").Result()
		save, _ := c.ConfigGet(ctx, "save").Result()
		c.Close()
		if err != nil || v["appendonly"] != "yes" || save["save"] != "" {
			t.Errorf("%s: appendonly %v, save %v, %v; want AOF on, RDB saves off", in.Name, v, save, err)
		}
	}
	conf, _ := os.ReadFile(filepath.Join(m.DataDir, "instances", "one", one.Status.Shards[0].Master.Name, "redis.conf"))
	if !strings.Contains(string(conf), "appendonly yes") {
		t.Errorf("the restored master's redis.conf does not keep AOF on for its next boot:\n%s", conf)
	}

	vj, err := m.Client.VerifyBackup(ctx, byShard[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if vj.Kind != api.JobBackupVerify {
		t.Errorf("verify job kind %q", vj.Kind)
	}
	m.WaitJob(ctx, vj.ID)
	waitEvent(t, m, "src", "backup-verified", time.Now().Add(-time.Minute), 5*time.Second)

	// The CLI's table.
	out, err := exec.Command(m.Bin, "backup", "list", "src", "--server", m.URL, "--token", m.Token).CombinedOutput()
	if err != nil {
		t.Fatalf("backup list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID SHARD STATE SIZE KEYS VERIFIED SOURCE AGE" ||
		!strings.Contains(lines[1], "succeeded") || !strings.Contains(lines[1], " yes ") {
		t.Errorf("backup list:\n%s", out)
	}

	dj, err := m.Client.DeleteBackup(ctx, byShard[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(ctx, dj.ID)
	if _, err := m.Client.GetBackup(ctx, byShard[0].ID); !api.IsNotFound(err) {
		t.Errorf("GetBackup after delete: %v, want 404", err)
	}
	u, _ := url.Parse(byShard[0].Target)
	if _, err := os.Stat(u.Path); !os.IsNotExist(err) {
		t.Errorf("object after delete: %v", err)
	}
	if _, err := os.Stat(strings.TrimSuffix(u.Path, ".rdb") + ".json"); !os.IsNotExist(err) {
		t.Errorf("sidecar after delete: %v", err)
	}
}

func isStatus(err error, status int) bool {
	var e *api.Error
	return errors.As(err, &e) && e.StatusCode == status
}

// slowS3 is an S3 server (gofakes3) that takes uploads at a limited rate,
// so a snapshot stays on the wire long enough to lose its source.
func slowS3(t *testing.T, bytesPerSecond float64) *testenv.S3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("backups"); err != nil {
		t.Fatal(err)
	}
	s3 := gofakes3.New(backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			r.Body = &slowReader{r: r.Body, rate: bytesPerSecond, start: time.Now()}
		}
		s3.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &testenv.S3{Endpoint: srv.URL, Bucket: "backups", Region: "us-east-1", AccessKeyID: "k", SecretAccessKey: "s"}
}

type slowReader struct {
	r     io.ReadCloser
	rate  float64
	start time.Time
	n     int64
}

func (s *slowReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p[:min(len(p), 32<<10)])
	s.n += int64(n)
	if d := time.Duration(float64(s.n)/s.rate*float64(time.Second)) - time.Since(s.start); d > 0 {
		time.Sleep(d)
	}
	return n, err
}

func (s *slowReader) Close() error { return s.r.Close() }

// waitSource waits until a backup job's message names its source.
func waitSource(t *testing.T, m *testenv.Manager, jobID string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		j, err := m.Client.GetJob(context.Background(), jobID)
		if err == nil {
			if _, rest, ok := strings.Cut(j.Message, " from "); ok {
				return strings.TrimSuffix(strings.Fields(rest)[0], ":")
			}
			if j.Done() {
				t.Fatalf("job %s ended before it was seen streaming: %+v", jobID, j)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s never named its source", jobID)
	return ""
}

// TestBackupDuringFailureAndWrites takes backups while a writer runs, one
// during a planned failover and one whose source replica is killed in the
// middle of the transfer (the upload is throttled so the snapshot is still
// on the wire): the first retries and succeeds or fails cleanly, the second
// must retry on another instance and succeed.
func TestBackupDuringFailureAndWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s3 := slowS3(t, 12<<20)
	target := s3.URL("slow")
	m := testenv.StartManager(t, testenv.ManagerOptions{Args: []string{"--backup-target", target}, Env: s3.Env()})
	cl := createReady(t, m, api.CreateClusterRequest{Name: "busy", Replicas: intp(2)})
	creds, _ := m.Client.Credentials(ctx, "busy")

	// 32 MB that does not compress: more than the upload's three 5 MiB
	// buffers, so the source stays connected while the upload crawls.
	mc := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Master.Address, Password: creds.Password, Protocol: 2})
	defer mc.Close()
	const bigKeys = 512
	rnd := rand.New(rand.NewChaCha8([32]byte{1}))
	val := make([]byte, 64<<10)
	_, err := mc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range bigKeys {
			for j := range val {
				val[j] = byte(rnd.Uint32())
			}
			p.Set(ctx, fmt.Sprintf("big:%d", i), string(val), 0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.Do(ctx, "WAIT", 2, 10000).Err(); err != nil {
		t.Fatal(err)
	}
	w := startWriterWait(t, cl, creds, 0, "w", 1)
	time.Sleep(300 * time.Millisecond)

	t.Run("failover", func(t *testing.T) {
		res, err := m.Client.CreateBackup(ctx, "busy", nil)
		if err != nil {
			t.Fatal(err)
		}
		src := waitSource(t, m, res.Job.ID)
		// A backup does not hold the cluster: the failover starts at once.
		fj, err := m.Client.Failover(ctx, "busy", 0)
		if err != nil {
			t.Fatalf("failover during a backup: %v", err)
		}
		if fj := waitJobEnd(t, m, fj.ID, time.Minute); fj.State != api.StateSucceeded {
			t.Errorf("failover job: %+v", fj)
		}
		bj := waitJobEnd(t, m, res.Job.ID, 2*time.Minute)
		b, err := m.Client.GetBackup(ctx, res.Backups[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		n, failed := attemptsOf(t, m, b.ID)
		t.Logf("backup during failover (first source %s): job %s, record %s from %s, error %q; %d attempt(s), failed: %v",
			src, bj.State, b.State, b.SourceInstance, b.Error, n, failed)
		checkOutcome(t, m, s3, target, bj, b, bigKeys)
	})

	t.Run("source killed", func(t *testing.T) {
		cl := m.WaitPhase(ctx, "busy", api.PhaseReady, 30*time.Second)
		res, err := m.Client.CreateBackup(ctx, "busy", intp(0))
		if err != nil {
			t.Fatal(err)
		}
		src := waitSource(t, m, res.Job.ID)
		var pid int
		for _, r := range cl.Status.Shards[0].Replicas {
			if r.Name == src {
				pid = r.Pid
			}
		}
		if pid == 0 {
			t.Fatalf("source %s is not a replica of %+v", src, cl.Status.Shards[0])
		}
		kill9(t, pid)
		bj := waitJobEnd(t, m, res.Job.ID, 2*time.Minute)
		b, _ := m.Client.GetBackup(ctx, res.Backups[0].ID)
		if bj.State != api.StateSucceeded || b.SourceInstance == src {
			t.Fatalf("backup after its source %s was killed: job %+v\nrecord %+v", src, bj, b)
		}
		if n, failed := attemptsOf(t, m, b.ID); n < 2 {
			t.Errorf("backup %s took %d attempt(s), want a second one", b.ID, n)
		} else {
			t.Logf("retried after: %v", failed)
		}
		checkOutcome(t, m, s3, target, bj, b, bigKeys)
	})

	t.Run("manager killed", func(t *testing.T) {
		m.WaitPhase(ctx, "busy", api.PhaseReady, 30*time.Second)
		before, _ := m.Client.ListBackups(ctx, "busy")
		res, err := m.Client.CreateBackup(ctx, "busy", nil)
		if err != nil {
			t.Fatal(err)
		}
		waitSource(t, m, res.Job.ID)
		m.Kill()
		m.Restart()
		// The job resumes and runs the interrupted attempt again; the
		// upload the kill cut off never became an object.
		bj := waitJobEnd(t, m, res.Job.ID, 2*time.Minute)
		b, _ := m.Client.GetBackup(ctx, res.Backups[0].ID)
		if bj.State != api.StateSucceeded {
			t.Fatalf("backup resumed after a manager kill: job %+v\nrecord %+v", bj, b)
		}
		checkOutcome(t, m, s3, target, bj, b, bigKeys)
		log, _ := os.ReadFile(filepath.Join(m.DataDir, "manager.log"))
		if !strings.Contains(string(log), `msg="resuming job after restart" job=`+res.Job.ID) {
			t.Errorf("the manager did not resume job %s", res.Job.ID)
		}
		if recs, _ := m.Client.ListBackups(ctx, "busy"); len(recs) != len(before)+1 {
			t.Errorf("%d records after one more backup, want %d: a resumed job keeps its record", len(recs), len(before)+1)
		}
	})

	// The failover, the killed replica and the killed manager lost no
	// write the writer had acknowledged, and writes went on after them.
	m.WaitPhase(ctx, "busy", api.PhaseReady, 30*time.Second)
	fault := time.Now()
	w.waitResumed(t, fault, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	acked, _ := w.Stop()
	checkNoLoss(t, m, "busy", creds, lossCheck{Shard: 0, Writes: acked, Min: 100, Fault: fault, MinAfter: 10, Replicas: 2})
}

// attemptsOf reads how many attempts a backup took, and the failed ones,
// from its backup-succeeded event.
func attemptsOf(t *testing.T, m *testenv.Manager, id string) (int, any) {
	t.Helper()
	evs, _ := m.Client.ClusterEvents(context.Background(), "busy")
	for _, e := range evs {
		if e.Type == "backup-succeeded" && e.Details["backup"] == id {
			n, _ := e.Details["attempts"].(float64)
			return int(n), e.Details["failedAttempts"]
		}
	}
	return 0, nil
}

// checkOutcome asserts a backup ended cleanly: succeeded with a verified
// object holding at least minKeys keys, or failed with an error and no
// object left behind.
func checkOutcome(t *testing.T, m *testenv.Manager, s3 *testenv.S3, target string, j api.Job, b api.Backup, minKeys int64) {
	t.Helper()
	ctx := context.Background()
	tgt, err := backup.OpenTarget(ctx, target, backup.WithCredentials(s3.AccessKeyID, s3.SecretAccessKey))
	if err != nil {
		t.Fatal(err)
	}
	switch j.State {
	case api.StateSucceeded:
		if b.State != api.StateSucceeded || !b.Verified || b.Keys < minKeys {
			t.Fatalf("record of a succeeded job: %+v", b)
		}
		rc, err := tgt.Get(ctx, strings.TrimPrefix(b.Target, "s3://"+s3.Bucket+"/slow/"))
		if err != nil {
			t.Fatal(err)
		}
		res, err := backup.VerifyReader(rc)
		rc.Close()
		if err != nil || res.CRC64 != b.CRC64 || res.Keys != b.Keys {
			t.Fatalf("stored object: %+v %v; record %+v", res, err, b)
		}
	case api.StateFailed:
		if b.State != api.StateFailed || b.Error == "" || !strings.Contains(j.Error, "attempt") {
			t.Fatalf("failed job %+v, record %+v", j, b)
		}
	}
	// Every object in the bucket belongs to a succeeded record: a failed
	// attempt leaves nothing.
	recs, _ := m.Client.ListBackups(ctx, "busy")
	stored := map[string]bool{}
	for _, r := range recs {
		if r.State == api.StateSucceeded {
			stored[r.Target] = true
		}
	}
	objs, _ := tgt.List(ctx, "busy/")
	for _, o := range objs {
		if u := "s3://" + s3.Bucket + "/slow/" + o.Key; strings.HasSuffix(o.Key, ".rdb") && !stored[u] {
			t.Errorf("object without a succeeded record: %s", u)
		}
	}
}

// TestBackupCorruptObject flips one byte of a stored object: verify and
// restore refuse it, and the refused restore leaves nothing behind; a
// missing object fails a restore as clearly.
func TestBackupCorruptObject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := testenv.StartManager(t, testenv.ManagerOptions{Ports: 20})
	cl := createReady(t, m, api.CreateClusterRequest{Name: "cor", Replicas: intp(1)})
	creds, _ := m.Client.Credentials(ctx, "cor")
	writeDataset(t, cl.Status.Shards[0], creds.Password, "c", 200)
	res, err := m.Client.CreateBackup(ctx, "cor", nil)
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(ctx, res.Job.ID)
	b, _ := m.Client.GetBackup(ctx, res.Backups[0].ID)
	u, _ := url.Parse(b.Target)
	data, err := os.ReadFile(u.Path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x20
	if err := os.WriteFile(u.Path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	vj, err := m.Client.VerifyBackup(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j := waitJobEnd(t, m, vj.ID, time.Minute); j.State != api.StateFailed || !strings.Contains(j.Error, "corrupt rdb") {
		t.Errorf("verify of a corrupt object: %+v", j)
	}
	if got, _ := m.Client.GetBackup(ctx, b.ID); got.Verified {
		t.Error("a backup that failed verification is still marked verified")
	}
	if entries, _ := os.ReadDir(filepath.Join(m.DataDir, "tmp")); len(entries) != 0 {
		t.Errorf("verify left scratch files: %v", entries)
	}

	restoreFails := func(name, reason string) {
		t.Helper()
		rr, err := m.Client.RestoreBackup(ctx, b.ID, api.RestoreRequest{Cluster: name})
		if err != nil {
			t.Fatal(err)
		}
		j := waitJobEnd(t, m, rr.Job.ID, time.Minute)
		if j.State != api.StateFailed || !strings.Contains(j.Error, reason) || !strings.Contains(j.Error, "fetch-backups") {
			t.Errorf("restore of a bad object: %+v, want failed in fetch-backups saying %q", j, reason)
		}
		t.Logf("restore refused: %s", j.Error)
		if _, err := m.Client.GetCluster(ctx, name); !api.IsNotFound(err) {
			t.Errorf("cluster %s after a refused restore: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(m.DataDir, "instances", name)); !os.IsNotExist(err) {
			t.Errorf("instance data of %s left: %v", name, err)
		}
		waitEvent(t, m, name, "restore-failed", time.Now().Add(-time.Minute), 5*time.Second)
	}
	restoreFails("fromcorrupt", "corrupt rdb")
	if err := os.Remove(u.Path); err != nil {
		t.Fatal(err)
	}
	restoreFails("frommissing", "not found")
	// The source is untouched by all of it.
	m.WaitPhase(ctx, "cor", api.PhaseReady, 10*time.Second)
	if n := len(testenv.InstancePids(m.DataDir)); n != 5 {
		t.Errorf("%d instance processes, want the source's 5", n)
	}
}

// scheduledSlots returns, per slot, how many scheduled backups of shard 0
// succeeded, from the events (records may have been pruned since).
func scheduledSlots(t *testing.T, m *testenv.Manager, cluster string) map[string]int {
	t.Helper()
	evs, err := m.Client.ClusterEvents(context.Background(), cluster)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range evs {
		if e.Type == "backup-succeeded" && e.Shard != nil && *e.Shard == 0 {
			if s, ok := e.Details["scheduledFor"].(string); ok {
				out[s]++
			}
		}
	}
	return out
}

func waitSlots(t *testing.T, m *testenv.Manager, cluster string, n int, timeout time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := scheduledSlots(t, m, cluster)
		if len(s) >= n {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d scheduled slots after %s, want %d: %v", len(s), timeout, n, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitNoBackupJob(t *testing.T, m *testenv.Manager, cluster string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		jobs, _ := m.Client.ListJobs(context.Background(), cluster)
		busy := false
		for _, j := range jobs {
			busy = busy || (j.Kind == api.JobBackup && !j.Done())
		}
		if !busy {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("backup jobs still running after 30s")
}

// TestBackupSchedule: a schedule with seconds fires every slot once,
// retention prunes objects, sidecars and records, and a manager killed
// around a slot and started after the next one runs that missed slot once
// and never a slot twice.
func TestBackupSchedule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := testenv.StartManager(t, testenv.ManagerOptions{Ports: 12})
	createReady(t, m, api.CreateClusterRequest{Name: "sch", Replicas: intp(1)})
	dir := filepath.Join(m.DataDir, "backups")

	s, err := m.Client.PutBackupSchedule(ctx, "sch", api.BackupScheduleRequest{Cron: "* * * * * *", Retain: intp(2)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Cron != "* * * * * *" || s.Retain != 2 || s.NextSlot == nil || s.LastSlot != nil {
		t.Errorf("PUT answer: %+v", s)
	}
	waitSlots(t, m, "sch", 4, 15*time.Second)
	// Stop firing but keep the retention for a run still in flight.
	if _, err := m.Client.PutBackupSchedule(ctx, "sch", api.BackupScheduleRequest{Cron: "0 0 1 1 *", Retain: intp(2)}); err != nil {
		t.Fatal(err)
	}
	waitNoBackupJob(t, m, "sch")
	slots := scheduledSlots(t, m, "sch")
	for slot, n := range slots {
		if n != 1 {
			t.Errorf("slot %s ran %d times", slot, n)
		}
	}
	list, _ := m.Client.ListBackups(ctx, "sch")
	if len(list) != 2 {
		t.Errorf("after retention: %d records, want 2: %+v", len(list), list)
	}
	files := objectFiles(t, dir)
	if len(files) != 4 {
		t.Errorf("after retention: files %v, want 2 RDBs and their sidecars", files)
	}
	for _, b := range list {
		if b.ScheduledFor == nil || b.State != api.StateSucceeded {
			t.Errorf("kept backup %+v", b)
		}
	}
	waitEvent(t, m, "sch", "backup-pruned", time.Now().Add(-time.Minute), time.Second)

	// Restart: kill the manager just after slot S1 fired, start it again
	// after slot S2 passed; S2 runs at start, S3 on time, each once.
	put, err := m.Client.PutBackupSchedule(ctx, "sch", api.BackupScheduleRequest{Cron: "*/4 * * * * *"})
	if err != nil {
		t.Fatal(err)
	}
	before := len(scheduledSlots(t, m, "sch"))
	var s1 time.Time
	deadline := time.Now().Add(10 * time.Second)
	for s1.IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("the */4 schedule did not fire within 10s")
		}
		sc, _ := m.Client.GetBackupSchedule(ctx, "sch")
		if sc.LastSlot != nil && sc.LastSlot.After(put.UpdatedAt) {
			s1 = *sc.LastSlot
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.Kill()
	s2, s3 := s1.Add(4*time.Second), s1.Add(8*time.Second)
	time.Sleep(time.Until(s2.Add(300 * time.Millisecond)))
	m.Restart()
	got := waitSlots(t, m, "sch", before+3, 15*time.Second)
	for _, slot := range []time.Time{s1, s2, s3} {
		if n := got[slot.UTC().Format(time.RFC3339)]; n != 1 {
			t.Errorf("slot %s ran %d times, want once: %v", slot.Format(time.RFC3339), n, got)
		}
	}
	for slot, n := range got {
		if n != 1 {
			t.Errorf("slot %s ran %d times", slot, n)
		}
	}
	if _, err := m.Client.DeleteBackupSchedule(ctx, "sch"); err != nil {
		t.Fatal(err)
	}
	waitNoBackupJob(t, m, "sch")
}

// TestBackupBadInput: unknown ids and clusters, invalid schedules and
// shards, an unreachable S3 endpoint (the job fails within a bounded time
// with the error, the cluster untouched) and a bucket that does not exist.
func TestBackupBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s3 := testenv.StartS3(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	unreachable := "s3://backups/x?endpoint=http://" + closed + "&pathStyle=true&region=us-east-1"
	// The real S3 server is an --import-root: imports may read there.
	m := testenv.StartManager(t, testenv.ManagerOptions{Ports: 12, Args: []string{"--backup-target", unreachable,
		"--import-root", "s3://any/?endpoint=" + s3.Endpoint}, Env: s3.Env()})
	createReady(t, m, api.CreateClusterRequest{Name: "bad", Replicas: intp(1)})

	type tc struct {
		name, method, path, body string
		status                   int
		field                    string
	}
	for _, c := range []tc{
		{"get unknown backup", "GET", "/api/v1/backups/b_nope", "", 404, ""},
		{"delete unknown backup", "DELETE", "/api/v1/backups/b_nope", "", 404, ""},
		{"restore unknown backup", "POST", "/api/v1/backups/b_nope/restore", `{"cluster":"x"}`, 404, ""},
		{"verify unknown backup", "POST", "/api/v1/backups/b_nope/verify", "", 404, ""},
		{"backup unknown cluster", "POST", "/api/v1/clusters/nope/backups", `{}`, 404, ""},
		{"list unknown cluster", "GET", "/api/v1/clusters/nope/backups", "", 404, ""},
		{"schedule unknown cluster", "PUT", "/api/v1/clusters/nope/backup-schedule", `{"cron":"0 3 * * *"}`, 404, ""},
		{"no schedule", "GET", "/api/v1/clusters/bad/backup-schedule", "", 404, ""},
		{"invalid cron", "PUT", "/api/v1/clusters/bad/backup-schedule", `{"cron":"every day"}`, 400, "cron"},
		{"cron out of range", "PUT", "/api/v1/clusters/bad/backup-schedule", `{"cron":"0 25 * * *"}`, 400, "cron"},
		{"no cron", "PUT", "/api/v1/clusters/bad/backup-schedule", `{"retain":3}`, 400, "cron"},
		{"@every", "PUT", "/api/v1/clusters/bad/backup-schedule", `{"cron":"@every 1h"}`, 400, "cron"},
		{"negative retain", "PUT", "/api/v1/clusters/bad/backup-schedule", `{"cron":"0 3 * * *","retain":-1}`, 400, "retain"},
		{"bad maxAge", "PUT", "/api/v1/clusters/bad/backup-schedule", `{"cron":"0 3 * * *","maxAge":"soon"}`, 400, "maxAge"},
		{"unknown field", "PUT", "/api/v1/clusters/bad/backup-schedule", `{"cron":"0 3 * * *","keep":3}`, 400, "keep"},
		{"shard out of range", "POST", "/api/v1/clusters/bad/backups", `{"shard":1}`, 422, "shard"},
		{"import without target", "POST", "/api/v1/backups/import", `{}`, 400, "target"},
	} {
		status, body := m.Call(t, c.method, c.path, m.Token, c.body)
		if status != c.status || body.Error.Field != c.field {
			t.Errorf("%s: %d %+v, want %d on field %q", c.name, status, body.Error, c.status, c.field)
		}
	}
	if status, _ := m.Call(t, "GET", "/api/v1/backups/b_nope", "", ""); status != 401 {
		t.Errorf("backup without token: %d, want 401", status)
	}

	// A bucket that does not exist on a real S3 server: import says so.
	status, body := m.Call(t, "POST", "/api/v1/backups/import", m.Token,
		fmt.Sprintf(`{"target":%q}`, "s3://nosuchbucket/p?endpoint="+s3.Endpoint+"&pathStyle=true&region=us-east-1"))
	if status != 422 || !strings.Contains(body.Error.Message, "nosuchbucket") || !strings.Contains(body.Error.Message, "404") {
		t.Errorf("import from a missing bucket: %d %+v", status, body.Error)
	}

	// The unreachable endpoint: the job fails soon, saying why, and the
	// cluster is untouched.
	started := time.Now()
	res, err := m.Client.CreateBackup(ctx, "bad", nil)
	if err != nil {
		t.Fatal(err)
	}
	j := waitJobEnd(t, m, res.Job.ID, 30*time.Second)
	took := time.Since(started)
	if j.State != api.StateFailed || !strings.Contains(j.Error, closed) || !strings.Contains(j.Error, "connection refused") {
		t.Errorf("backup to an unreachable endpoint: %+v", j)
	}
	if took > 15*time.Second {
		t.Errorf("the failure took %s, want well under the 10s bucket check plus slack", took)
	}
	t.Logf("unreachable S3 failed the job in %s: %s", took.Round(time.Millisecond), j.Error)
	b, _ := m.Client.GetBackup(ctx, res.Backups[0].ID)
	if b.State != api.StateFailed || !strings.Contains(b.Error, "connection refused") || b.Target != "" {
		t.Errorf("record: %+v", b)
	}
	waitEvent(t, m, "bad", "backup-failed", started, 5*time.Second)
	cl := m.WaitPhase(ctx, "bad", api.PhaseReady, 10*time.Second)
	testenv.CheckStatus(t, cl, 1, 1, 3)
	// A failed backup cannot be restored or verified.
	for p, body := range map[string]string{"/restore": `{"cluster":"x"}`, "/verify": ""} {
		if status, _ := m.Call(t, "POST", "/api/v1/backups/"+b.ID+p, m.Token, body); status != 422 {
			t.Errorf("POST %s of a failed backup: %d, want 422", p, status)
		}
	}
}
