package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/redis-manager/redis-manager/api"
)

func newJobCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Inspect jobs, the records of long operations",
	}
	cmd.AddCommand(newJobGetCommand(a), newJobListCommand(a))
	return cmd
}

func newJobGetCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a job and its steps",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			job, err := c.GetJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), job)
			}
			return a.printJob(cmd.OutOrStdout(), job)
		}),
	}
}

func newJobListCommand(a *app) *cobra.Command {
	var cluster string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, of all clusters or of one",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(cmd *cobra.Command, _ []string, c *api.Client) error {
			jobs, err := c.ListJobs(cmd.Context(), cluster)
			if err != nil {
				return err
			}
			if jobs == nil {
				jobs = []api.Job{}
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"jobs": jobs})
			}
			return a.printJobs(cmd.OutOrStdout(), jobs)
		}),
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "only the jobs of this cluster")
	return cmd
}

func (a *app) printJobs(w io.Writer, jobs []api.Job) error {
	t := newTable(w)
	row(t, "ID", "KIND", "CLUSTER", "STATE", "PROGRESS", "AGE", "MESSAGE")
	now := a.now()
	for _, j := range jobs {
		msg := j.Message
		if j.State == api.StateFailed && j.Error != "" {
			msg = j.Error
		}
		row(t, j.ID, j.Kind, j.Cluster, j.State, percent(j.Progress), age(j.CreatedAt, now), dash(msg))
	}
	return t.Flush()
}

func (a *app) printJob(w io.Writer, j api.Job) error {
	t := newTable(w)
	row(t, "ID:", j.ID)
	row(t, "Kind:", j.Kind)
	row(t, "Cluster:", j.Cluster)
	row(t, "State:", j.State)
	row(t, "Progress:", percent(j.Progress))
	row(t, "Message:", dash(j.Message))
	if j.Error != "" {
		row(t, "Error:", j.Error)
	}
	row(t, "Created:", timestamp(&j.CreatedAt))
	row(t, "Started:", timestamp(j.StartedAt))
	row(t, "Finished:", timestamp(j.FinishedAt))
	if j.StartedAt != nil && j.FinishedAt != nil {
		row(t, "Duration:", duration(j.FinishedAt.Sub(*j.StartedAt)))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if len(j.Steps) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t = newTable(w)
	row(t, "STEP", "STATE", "STARTED", "DURATION")
	for _, s := range j.Steps {
		d := "-"
		switch {
		case s.StartedAt != nil && s.FinishedAt != nil:
			d = duration(s.FinishedAt.Sub(*s.StartedAt))
		case s.StartedAt != nil:
			d = duration(a.now().Sub(*s.StartedAt)) + "+"
		}
		row(t, s.Name, dash(s.State), timestamp(s.StartedAt), d)
	}
	return t.Flush()
}

// waitJob follows a job to its end, drawing progress on stderr. A failed job
// returns the client's *api.JobFailedError, which carries the job's error.
func (a *app) waitJob(cmd *cobra.Command, c *api.Client, job api.Job) (api.Job, error) {
	p := &progressLine{
		w:     cmd.ErrOrStderr(),
		tty:   a.isTerminal(cmd.ErrOrStderr()),
		start: a.now(),
		now:   a.now,
	}
	final, err := c.WaitJob(cmd.Context(), job.ID, p.update)
	p.done()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return final, fmt.Errorf("stopped waiting; job %s goes on (follow it with: redis-manager job get %s): %w", job.ID, job.ID, err)
	}
	return final, err
}

// finishJob reports a job that was waited for: the final job as JSON, or one
// summary line. A failed job's error is returned after its JSON is printed,
// so scripts get both the record and a non-zero exit.
func (a *app) finishJob(cmd *cobra.Command, final api.Job, waitErr error) error {
	var failed *api.JobFailedError
	if waitErr != nil && !errors.As(waitErr, &failed) {
		return waitErr
	}
	if a.json() {
		if err := writeJSON(cmd.OutOrStdout(), final); err != nil {
			return err
		}
	} else if failed == nil {
		took := ""
		if final.StartedAt != nil && final.FinishedAt != nil {
			took = " in " + duration(final.FinishedAt.Sub(*final.StartedAt))
		}
		fmt.Fprintf(cmd.OutOrStdout(), "job %s (%s %s) %s%s\n", final.ID, final.Kind, final.Cluster, final.State, took)
	}
	return waitErr
}
