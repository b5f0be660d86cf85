package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// backupRows is the table `backup list` must print for the backups the
// server sent.
func backupRows(bs []api.Backup, now time.Time) string {
	rows := []string{"ID\tSHARD\tSTATE\tSIZE\tKEYS\tVERIFIED\tSOURCE\tAGE"}
	for _, b := range bs {
		size, keys, verified := "-", "-", "-"
		if b.State == api.StateSucceeded {
			size, keys, verified = byteSize(b.SizeBytes), fmt.Sprint(b.Keys), yesNo(b.Verified)
		}
		rows = append(rows, fmt.Sprintf("%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s", b.ID, b.Shard, b.State, size, keys, verified, dash(b.SourceInstance), age(b.StartedAt, now)))
	}
	return table(rows...)
}

// TestBackupCommands runs backup create, list, schedule and restore on a
// real 2-shard cluster holding data, backed up to the manager's default
// file:// target.
func TestBackupCommands(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{Ports: 30})
	cl := s.create(t, api.CreateClusterRequest{Name: "orders", Shards: ptr(2), Replicas: ptr(1), Sentinels: ptr(1)})
	creds, _ := s.Client.Credentials(t.Context(), "orders")
	for i, sh := range cl.Status.Shards {
		c := redis.NewClient(&redis.Options{Addr: sh.Master.Address, Password: creds.Password, Protocol: 2})
		for k := 0; k < 100*(i+1); k++ {
			c.Set(context.Background(), fmt.Sprintf("k%d", k), "v", 0)
		}
		c.Do(context.Background(), "WAIT", 1, 5000)
		c.Close()
	}
	sflags := []string{"--server", s.URL, "--token", s.Token}
	var shard0 string

	t.Run("create sends shard only when given", func(t *testing.T) {
		r := runCLI(t, false, "", append([]string{"backup", "create", "orders", "--no-wait"}, sflags...)...)
		post := s.lastRequest(t, "POST", "/api/v1/clusters/orders/backups")
		accepted := decode[api.BackupsJob](t, post.Response)
		if r.err != nil || r.stdout != accepted.Job.ID+"\n" || len(accepted.Backups) != 2 {
			t.Fatalf("create --no-wait: %q %v; server answered %s", r.stdout, r.err, post.Response)
		}
		if got := string(post.Body); got != "{}" {
			t.Errorf("body without --shard: %s, want {}", got)
		}
		// Listed while it may still run, then once done: the table is what
		// the server sent, row for row.
		for _, when := range []string{"started", "done"} {
			if when == "done" {
				s.WaitJob(t.Context(), accepted.Job.ID)
			}
			now := accepted.Backups[0].StartedAt.Add(90 * time.Second)
			r = runCLIAt(t, now, false, "", append([]string{"backup", "list", "orders"}, sflags...)...)
			bs := decode[struct{ Backups []api.Backup }](t, s.lastRequest(t, "GET", "/api/v1/clusters/orders/backups").Response).Backups
			if want := backupRows(bs, now); r.err != nil || r.stdout != want {
				t.Errorf("%s: table (err %v):\n%s\nwant:\n%s", when, r.err, r.stdout, want)
			}
			if when == "done" {
				for _, b := range bs {
					if b.State != api.StateSucceeded || b.Keys != int64(100*(b.Shard+1)) {
						t.Errorf("backup %+v", b)
					}
				}
				if !strings.Contains(r.stdout, "  succeeded  ") || !strings.Contains(r.stdout, "  yes  ") || !strings.Contains(r.stdout, "  100  ") || !strings.Contains(r.stdout, "  200  ") {
					t.Errorf("table of succeeded backups:\n%s", r.stdout)
				}
			}
		}

		r = runCLI(t, false, "", append([]string{"backup", "create", "orders", "--shard", "0", "--no-wait"}, sflags...)...)
		post = s.lastRequest(t, "POST", "/api/v1/clusters/orders/backups")
		if got := string(post.Body); r.err != nil || got != `{"shard":0}` {
			t.Errorf("body with --shard 0: %s (err %v)", got, r.err)
		}
		accepted = decode[api.BackupsJob](t, post.Response)
		if len(accepted.Backups) == 1 {
			shard0 = accepted.Backups[0].ID
		}
		if len(accepted.Backups) != 1 || accepted.Backups[0].Shard != 0 || r.stdout != accepted.Job.ID+"\n" {
			t.Errorf("--shard 0: stdout %q, server answered %s", r.stdout, post.Response)
		}
		s.WaitJob(t.Context(), accepted.Job.ID)
	})

	t.Run("schedule flags", func(t *testing.T) {
		r := runCLI(t, false, "", append([]string{"backup", "schedule", "orders", "--cron", "0 3 * * *", "--retain", "7", "--max-age", "7d"}, sflags...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		put := s.lastRequest(t, "PUT", "/api/v1/clusters/orders/backup-schedule")
		if got := string(put.Body); got != `{"cron":"0 3 * * *","retain":7,"maxAge":"7d"}` {
			t.Errorf("body: %s", got)
		}
		sched := decode[api.BackupSchedule](t, put.Response)
		if sched.NextSlot == nil || sched.MaxAgeMs != 7*24*3600*1000 || sched.Retain != 7 {
			t.Fatalf("server answered %s", put.Response)
		}
		want := table("Cluster:\torders", "Cron:\t0 3 * * * (UTC)", "Retain:\tnewest 7 per shard", "Max age:\t168h0m0s",
			"Last slot:\t-", "Next slot:\t"+sched.NextSlot.UTC().Format(time.RFC3339))
		if r.stdout != want {
			t.Errorf("output:\n%s\nwant:\n%s", r.stdout, want)
		}
		n := s.count("PUT")
		r = runCLI(t, false, "", append([]string{"backup", "schedule", "orders", "--retain", "3"}, sflags...)...)
		if r.err == nil || !strings.Contains(r.err.Error(), "--cron") || s.count("PUT") != n {
			t.Errorf("--retain without --cron: %v", r.err)
		}
	})

	t.Run("restore flags", func(t *testing.T) {
		if shard0 == "" {
			t.Skip("no backup of shard 0 from the first subtest")
		}
		n := s.count("POST")
		r := runCLI(t, false, "", append([]string{"backup", "restore", shard0}, sflags...)...)
		if r.err == nil || !strings.Contains(r.err.Error(), "--to") || s.count("POST") != n {
			t.Errorf("restore without --to: %v", r.err)
		}
		r = runCLI(t, false, "", append([]string{"backup", "restore", shard0, "--to", "copy", "--single-shard", "--replicas", "0", "--no-wait"}, sflags...)...)
		post := s.lastRequest(t, "POST", "/api/v1/backups/"+shard0+"/restore")
		accepted := decode[api.ClusterJob](t, post.Response)
		if r.err != nil || post.Status != 202 || r.stdout != accepted.Job.ID+"\n" || accepted.Job.Kind != api.JobRestore {
			t.Fatalf("restore --no-wait: %q %v; server answered %d %s", r.stdout, r.err, post.Status, post.Response)
		}
		if got := string(post.Body); got != `{"cluster":"copy","singleShard":true,"replicas":0}` {
			t.Errorf("body: %s", got)
		}
		s.WaitJob(t.Context(), accepted.Job.ID)
		cp, err := s.Client.GetCluster(t.Context(), "copy")
		if err != nil || cp.Spec.Shards != 1 || cp.Spec.Replicas != 0 {
			t.Errorf("restored cluster %+v %v", cp.Spec, err)
		}
	})
}
