package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/redis-manager/redis-manager/api"
)

func newBackupCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up shards, restore backups into new clusters, schedule and verify backups",
	}
	cmd.AddCommand(
		newBackupCreateCommand(a),
		newBackupListCommand(a),
		newBackupGetCommand(a),
		newBackupRestoreCommand(a),
		newBackupDeleteCommand(a),
		newBackupVerifyCommand(a),
		newBackupScheduleCommand(a),
		newBackupImportCommand(a),
	)
	return cmd
}

func newBackupCreateCommand(a *app) *cobra.Command {
	var noWait bool
	var shard int
	cmd := &cobra.Command{
		Use:   "create CLUSTER",
		Short: "Back up every shard of a cluster (or one) and wait until stored and verified",
		Long: `Back up a cluster: an RDB snapshot of each shard, read from a replica over the
replication protocol and streamed to the server's --backup-target, checked on
the way (CRC64, structure, key count). Progress shows bytes and rate.`,
		Args: cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			var sp *int
			if cmd.Flags().Changed("shard") {
				sp = &shard
			}
			res, err := c.CreateBackup(cmd.Context(), args[0], sp)
			if err != nil {
				return err
			}
			if noWait {
				return a.printStarted(cmd.OutOrStdout(), res.Job, res)
			}
			final, err := a.waitJob(cmd, c, res.Job)
			err = a.finishJob(cmd, final, err)
			var failed *api.JobFailedError
			if a.json() || (err != nil && !errors.As(err, &failed)) {
				return err
			}
			// The records tell what was stored, or why a shard failed.
			if all, lerr := c.ListBackups(cmd.Context(), args[0]); lerr == nil {
				var mine []api.Backup
				for _, b := range all {
					if b.Job == res.Job.ID {
						mine = append(mine, b)
					}
				}
				fmt.Fprintln(cmd.OutOrStdout())
				if perr := a.printBackups(cmd.OutOrStdout(), mine); perr != nil {
					return perr
				}
			}
			return err
		}),
	}
	cmd.Flags().IntVar(&shard, "shard", 0, "back up only this shard (default: every shard)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the job id and return without waiting")
	return cmd
}

func newBackupListCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list CLUSTER",
		Short: "List a cluster's backups, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			bs, err := c.ListBackups(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if bs == nil {
				bs = []api.Backup{}
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"backups": bs})
			}
			return a.printBackups(cmd.OutOrStdout(), bs)
		}),
	}
}

func (a *app) printBackups(w io.Writer, bs []api.Backup) error {
	t := newTable(w)
	row(t, "ID", "SHARD", "STATE", "SIZE", "KEYS", "VERIFIED", "SOURCE", "AGE")
	now := a.now()
	for _, b := range bs {
		size, keys, verified := "-", "-", "-"
		if b.State == api.StateSucceeded {
			size, keys, verified = byteSize(b.SizeBytes), strconv.FormatInt(b.Keys, 10), yesNo(b.Verified)
		}
		row(t, b.ID, b.Shard, b.State, size, keys, verified, dash(b.SourceInstance), age(b.StartedAt, now))
	}
	return t.Flush()
}

func newBackupGetCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a backup",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			b, err := c.GetBackup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), b)
			}
			return a.printBackup(cmd.OutOrStdout(), b)
		}),
	}
}

func (a *app) printBackup(w io.Writer, b api.Backup) error {
	t := newTable(w)
	row(t, "ID:", b.ID)
	row(t, "Cluster:", b.Cluster)
	row(t, "Shard:", b.Shard)
	row(t, "State:", b.State)
	row(t, "Target:", dash(b.Target))
	if b.State == api.StateSucceeded {
		row(t, "Size:", fmt.Sprintf("%s (%d bytes)", byteSize(b.SizeBytes), b.SizeBytes))
		row(t, "Keys:", b.Keys)
		row(t, "CRC64:", dash(b.CRC64))
		row(t, "Verified:", yesNo(b.Verified))
	}
	row(t, "Source:", dash(b.SourceInstance))
	row(t, "Started:", timestamp(&b.StartedAt))
	row(t, "Finished:", timestamp(b.FinishedAt))
	if b.FinishedAt != nil {
		row(t, "Duration:", duration(time.Duration(b.DurationMs)*time.Millisecond))
	}
	if b.ScheduledFor != nil {
		row(t, "Scheduled for:", timestamp(b.ScheduledFor))
	}
	row(t, "Job:", dash(b.Job))
	if b.Error != "" {
		row(t, "Error:", b.Error)
	}
	return t.Flush()
}

func newBackupRestoreCommand(a *app) *cobra.Command {
	var (
		to                   string
		single, noWait       bool
		replicas, sentinels  int
		maxmemory, persisted string
	)
	cmd := &cobra.Command{
		Use:   "restore ID --to NAME",
		Short: "Create a new cluster from a backup and wait until it is ready",
		Long: `Create a new cluster from a backup. By default the whole set the backup belongs
to is restored (the backups one "backup create" took, one per shard): the new
cluster has as many shards, each master boots from its shard's backup and the
replicas sync from it. --single-shard restores only this backup, into a
one-shard cluster. The spec is the source cluster's, with the flags given
replaced. A corrupt or missing object fails the restore before anything
starts; the new cluster is then removed.`,
		Args: cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			if to == "" {
				return fmt.Errorf("--to NAME is required: the name of the new cluster")
			}
			req := api.RestoreRequest{Cluster: to, SingleShard: single}
			f := cmd.Flags()
			if f.Changed("replicas") {
				req.Replicas = &replicas
			}
			if f.Changed("sentinels") {
				req.Sentinels = &sentinels
			}
			if f.Changed("maxmemory") {
				req.Maxmemory = &maxmemory
			}
			if f.Changed("persistence") {
				req.Persistence = &persisted
			}
			res, err := c.RestoreBackup(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if noWait {
				return a.printStarted(cmd.OutOrStdout(), res.Job, res)
			}
			final, err := a.waitJob(cmd, c, res.Job)
			if err := a.finishJob(cmd, final, err); err != nil || a.json() {
				return err
			}
			cl, err := c.GetCluster(cmd.Context(), to)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: cluster restored, but reading it back failed: %v\n", err)
				return nil
			}
			return a.printClusterHeader(cmd.OutOrStdout(), cl)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "name of the new cluster (required)")
	f.BoolVar(&single, "single-shard", false, "restore only this backup, into a one-shard cluster")
	f.IntVar(&replicas, "replicas", 0, "replicas per master (default: the source's)")
	f.IntVar(&sentinels, "sentinels", 0, "number of Sentinels (default: the source's)")
	f.StringVar(&maxmemory, "maxmemory", "", "maxmemory of each instance (default: the source's)")
	f.StringVar(&persisted, "persistence", "", "none, rdb or aof (default: the source's)")
	f.BoolVar(&noWait, "no-wait", false, "print the job id and return without waiting")
	return cmd
}

func newBackupDeleteCommand(a *app) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a backup: its object, its sidecar and its record",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			job, err := c.DeleteBackup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if noWait {
				return a.printStarted(cmd.OutOrStdout(), job, map[string]any{"job": job})
			}
			final, err := a.waitJob(cmd, c, job)
			return a.finishJob(cmd, final, err)
		}),
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the job id and return without waiting")
	return cmd
}

func newBackupVerifyCommand(a *app) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:   "verify ID",
		Short: "Download a backup, check it and load it into a throwaway redis-server",
		Long: `Verify a backup on the server: download the object (checking its CRC64, its
structure and its size against the record), load it into a throwaway
redis-server on a free loopback port, and compare the key count with the
record. A backup that fails is marked verified=no.`,
		Args: cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			job, err := c.VerifyBackup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if noWait {
				return a.printStarted(cmd.OutOrStdout(), job, map[string]any{"job": job})
			}
			final, err := a.waitJob(cmd, c, job)
			if err := a.finishJob(cmd, final, err); err != nil || a.json() {
				return err
			}
			if b, err := c.GetBackup(cmd.Context(), args[0]); err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "backup %s verified: %d keys loaded, as recorded\n", b.ID, b.Keys)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the job id and return without waiting")
	return cmd
}

func newBackupScheduleCommand(a *app) *cobra.Command {
	var (
		cronExpr, maxAge string
		retain           int
		remove           bool
	)
	cmd := &cobra.Command{
		Use:   "schedule CLUSTER [--cron EXPR [--retain N] [--max-age DUR]] [--remove]",
		Short: "Show, set or remove a cluster's backup schedule",
		Long: `Show, set or remove a cluster's backup schedule. --cron takes 5 fields
(minute hour day-of-month month day-of-week), 6 with seconds first, or
@hourly/@daily/@weekly/@monthly/@yearly, in UTC. Retention applies to
scheduled backups after each successful run: --retain keeps the newest N per
shard, --max-age removes older ones ("168h", "7d"). Without flags, shows the
schedule.`,
		Args: cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			f := cmd.Flags()
			var (
				s   api.BackupSchedule
				err error
			)
			switch {
			case remove && f.Changed("cron"):
				return fmt.Errorf("--remove and --cron exclude each other")
			case remove:
				s, err = c.DeleteBackupSchedule(cmd.Context(), args[0])
				if err == nil && !a.json() {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "backup schedule of %s removed; its backups stay\n", args[0])
					return err
				}
			case f.Changed("cron"):
				req := api.BackupScheduleRequest{Cron: cronExpr, MaxAge: maxAge}
				if f.Changed("retain") {
					req.Retain = &retain
				}
				s, err = c.PutBackupSchedule(cmd.Context(), args[0], req)
			case f.Changed("retain") || f.Changed("max-age"):
				return fmt.Errorf("--retain and --max-age go with --cron (the schedule is replaced as a whole)")
			default:
				s, err = c.GetBackupSchedule(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), s)
			}
			return a.printSchedule(cmd.OutOrStdout(), s)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&cronExpr, "cron", "", `when to back up, e.g. "0 3 * * *" (UTC)`)
	f.IntVar(&retain, "retain", 0, "keep the newest N scheduled backups per shard (0: all)")
	f.StringVar(&maxAge, "max-age", "", `remove scheduled backups older than this, e.g. "168h" or "7d"`)
	f.BoolVar(&remove, "remove", false, "remove the schedule (its backups stay)")
	return cmd
}

func (a *app) printSchedule(w io.Writer, s api.BackupSchedule) error {
	t := newTable(w)
	row(t, "Cluster:", s.Cluster)
	row(t, "Cron:", s.Cron+" (UTC)")
	retain := "all"
	if s.Retain > 0 {
		retain = fmt.Sprintf("newest %d per shard", s.Retain)
	}
	row(t, "Retain:", retain)
	maxAge := "-"
	if s.MaxAgeMs > 0 {
		maxAge = (time.Duration(s.MaxAgeMs) * time.Millisecond).String()
	}
	row(t, "Max age:", maxAge)
	row(t, "Last slot:", timestamp(s.LastSlot))
	row(t, "Next slot:", timestamp(s.NextSlot))
	return t.Flush()
}

func newBackupImportCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "import URL",
		Short: "Create records for the backups stored in a target (file:// or s3://)",
		Long: `Re-import backups into the server's store from a target's JSON sidecars, e.g.
after the database was lost: every <cluster>/<shard>/<time>.rdb object with a
sidecar gets a record; objects already recorded are left alone. S3
credentials are the server's (its AWS environment).`,
		Args: cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			res, err := c.ImportBackups(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d backup(s); %d already known; %d skipped\n", len(res.Imported), res.Known, len(res.Skipped))
			for _, s := range res.Skipped {
				fmt.Fprintf(cmd.OutOrStdout(), "  skipped %s\n", s)
			}
			if len(res.Imported) > 0 {
				fmt.Fprintln(cmd.OutOrStdout())
				return a.printBackups(cmd.OutOrStdout(), res.Imported)
			}
			return nil
		}),
	}
}

// byteSize renders a size for people: 512 B, 12.3 kB, 45.6 MB, 1.23 GB.
func byteSize(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}
