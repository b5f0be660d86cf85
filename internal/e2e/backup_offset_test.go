package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestBackupHoldsEveryWriteBeforeIt: a backup asked for right after a
// burst of writes holds every one of them. Tried as a new user would, 2 of
// 8 backups had 0 keys: they came from a replica still ~0.5 s behind the
// master. Eight rounds, each a burst of 20,000 writes then the request at
// once; each backup's key count (counted while the RDB streamed) must be
// every key written so far, its replOffset at least the master's offset
// after the burst; the last is restored and compared value for value.
// (On the 2-core machine this was written on, the replica was behind at
// the request in 1–2 of 8 rounds, but had caught up before the old code
// forked its snapshot, so this test did not fail without the fix; the
// property is what it pins.)
func TestBackupHoldsEveryWriteBeforeIt(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	cl := createReady(t, m, api.CreateClusterRequest{Name: "burst", Replicas: intp(1)})
	ctx := context.Background()
	creds, err := m.Client.Credentials(ctx, "burst")
	if err != nil {
		t.Fatal(err)
	}
	master := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Master.Address, Password: creds.Password})
	defer master.Close()
	value := strings.Repeat("v", 100)
	total := 0
	var last api.Backup
	lagged := 0
	for round := 0; round < 8; round++ {
		pipe := master.Pipeline()
		for i := 0; i < 20000; i++ {
			pipe.Set(ctx, fmt.Sprintf("r%d:%d", round, i), value+strconv.Itoa(i), 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		total += 20000
		info, err := master.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		offset := infoInt(info, "master_repl_offset")
		replica := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Replicas[0].Address, Password: creds.Password})
		rinfo, _ := replica.Info(ctx, "replication").Result()
		replica.Close()
		if infoInt(rinfo, "slave_repl_offset") < offset {
			lagged++
		}
		res, err := m.Client.CreateBackup(ctx, "burst", nil)
		if err != nil {
			t.Fatal(err)
		}
		if j := m.WaitJob(ctx, res.Job.ID); j.State != api.StateSucceeded {
			t.Fatalf("round %d: backup %s: %s", round, j.State, j.Error)
		}
		b, err := m.Client.GetBackup(ctx, res.Backups[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if b.Keys != int64(total) {
			t.Errorf("round %d: backup from %s holds %d keys, %d were acknowledged before the request", round, b.SourceInstance, b.Keys, total)
		}
		if b.ReplOffset < offset {
			t.Errorf("round %d: backup replOffset %v, the master was at %d before the request", round, b.ReplOffset, offset)
		}
		last = b
	}
	t.Logf("the replica was behind the master when the backup was asked for in %d of 8 rounds", lagged)
	rr, err := m.Client.RestoreBackup(ctx, last.ID, api.RestoreRequest{Cluster: "burst-copy", Replicas: intp(0)})
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(ctx, rr.Job.ID)
	cp := m.WaitPhase(ctx, "burst-copy", api.PhaseReady, 30*time.Second)
	cpCreds, _ := m.Client.Credentials(ctx, "burst-copy")
	// Every key of every burst, value for value (pipelined: 160,000 keys).
	cp0 := redis.NewClient(&redis.Options{Addr: cp.Status.Shards[0].Master.Address, Password: cpCreds.Password})
	defer cp0.Close()
	if n, err := cp0.DBSize(ctx).Result(); err != nil || n != int64(total) {
		t.Errorf("restored copy holds %d keys (%v), want %d", n, err, total)
	}
	bad := 0
	for round := 0; round < 8; round++ {
		pipe := cp0.Pipeline()
		cmds := make([]*redis.StringCmd, 20000)
		for i := range cmds {
			cmds[i] = pipe.Get(ctx, fmt.Sprintf("r%d:%d", round, i))
		}
		_, _ = pipe.Exec(ctx)
		for i, c := range cmds {
			if v, err := c.Result(); err != nil || v != value+strconv.Itoa(i) {
				if bad < 5 {
					t.Errorf("restored r%d:%d = %q, %v", round, i, v, err)
				}
				bad++
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d restored values differ", bad)
	}
}

func infoInt(info, field string) int64 {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// TestBackupsInOneSecondKeepBoth: two backups of a shard taken within the
// same second used to get the same object key; the second overwrote the
// first, whose verify then failed on its CRC. Each now has its own object,
// and both verify.
func TestBackupsInOneSecondKeepBoth(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	cl := createReady(t, m, api.CreateClusterRequest{Name: "twice", Replicas: intp(1), Sentinels: intp(1)})
	ctx := context.Background()
	creds, _ := m.Client.Credentials(ctx, "twice")
	master := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Master.Address, Password: creds.Password})
	defer master.Close()
	var ids []string
	var targets []string
	for i := 0; i < 3; i++ {
		if err := master.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		res, err := m.Client.CreateBackup(ctx, "twice", nil)
		if err != nil {
			t.Fatal(err)
		}
		if j := m.WaitJob(ctx, res.Job.ID); j.State != api.StateSucceeded {
			t.Fatalf("backup %d: %s %s", i, j.State, j.Error)
		}
		b, _ := m.Client.GetBackup(ctx, res.Backups[0].ID)
		ids, targets = append(ids, b.ID), append(targets, b.Target)
	}
	if targets[0] == targets[1] || targets[1] == targets[2] || targets[0] == targets[2] {
		t.Fatalf("backups share objects: %q", targets)
	}
	for i, id := range ids {
		vj, err := m.Client.VerifyBackup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j := m.WaitJob(ctx, vj.ID); j.State != api.StateSucceeded {
			t.Errorf("verify of backup %d (%s): %s %s", i, targets[i], j.State, j.Error)
		}
	}
}
