package cli

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/redis-manager/redis-manager/api"
)

func newClusterCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Create, inspect, scale, fail over and delete clusters",
	}
	cmd.AddCommand(
		newClusterCreateCommand(a),
		newClusterListCommand(a),
		newClusterGetCommand(a),
		newClusterDeleteCommand(a),
		newClusterEventsCommand(a),
		newClusterMetricsCommand(a),
		newClusterCredentialsCommand(a),
		newClusterScaleCommand(a),
		newClusterFailoverCommand(a),
		newClusterRotateCommand(a),
		newClusterAutoscalingCommand(a),
	)
	return cmd
}

func newClusterCreateCommand(a *app) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a cluster and wait until it is ready",
		Long: `Create a cluster: shards master/replica groups, each watched by the Sentinels.
Only the flags you give are sent; the server fills in the rest.`,
		Args: cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			req, err := createRequest(cmd.Flags(), args[0])
			if err != nil {
				return err
			}
			created, err := c.CreateCluster(cmd.Context(), req)
			if err != nil {
				return err
			}
			if noWait {
				return a.printStarted(cmd.OutOrStdout(), created.Job, created)
			}
			final, err := a.waitJob(cmd, c, created.Job)
			if err := a.finishJob(cmd, final, err); err != nil || a.json() {
				return err
			}
			// Tell the user how to connect, the next thing they need.
			cl, err := c.GetCluster(cmd.Context(), req.Name)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: cluster created, but reading it back failed: %v\n", err)
				return nil
			}
			return a.printClusterHeader(cmd.OutOrStdout(), cl)
		}),
	}
	addSpecFlags(cmd.Flags(), "extra redis.conf setting KEY=VALUE (repeatable)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the job id and return without waiting")
	return cmd
}

// addSpecFlags adds the spec fields create and scale share; only the flags
// a user gives are sent (see createRequest), so the server's defaults and
// the cluster's current values apply to the rest.
func addSpecFlags(f *pflag.FlagSet, configHelp string) {
	f.Int("shards", 0, "number of master groups")
	f.Int("replicas", 0, "replicas per master")
	f.Int("sentinels", 0, "number of Sentinels, odd (1, 3, 5…; 3 or more to survive the loss of one)")
	f.String("maxmemory", "", "maxmemory of each instance, e.g. 256mb")
	f.String("maxmemory-policy", "", "maxmemory-policy, e.g. allkeys-lru")
	f.String("persistence", "", "none, rdb or aof")
	f.StringArray("config", nil, configHelp)
	f.Int("down-after-ms", 0, "Sentinel down-after-milliseconds")
	f.Int("failover-timeout-ms", 0, "Sentinel failover-timeout")
	f.Int("parallel-syncs", 0, "Sentinel parallel-syncs")
	f.Bool("fast-failover", true, "fail over at once when the master process dies (only when no acknowledged write can be lost)")
	f.Int("min-replicas-to-write", 0, "a master refuses writes with fewer replicas connected (0: off)")
}

// createRequest maps the create flags to a request, sending only the flags
// the user set so that server-side defaults apply to the rest (and an
// explicit --shards 0 reaches the server and is rejected there, not here).
func createRequest(f *pflag.FlagSet, name string) (api.CreateClusterRequest, error) {
	intFlag := func(flag string) *int {
		if !f.Changed(flag) {
			return nil
		}
		v, _ := f.GetInt(flag)
		return &v
	}
	str := func(flag string) string {
		v, _ := f.GetString(flag)
		return v
	}
	req := api.CreateClusterRequest{
		Name:            name,
		Shards:          intFlag("shards"),
		Replicas:        intFlag("replicas"),
		Sentinels:       intFlag("sentinels"),
		Maxmemory:       str("maxmemory"),
		MaxmemoryPolicy: str("maxmemory-policy"),
		Persistence:     str("persistence"),
	}
	pairs, _ := f.GetStringArray("config")
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return req, fmt.Errorf("--config %q: want KEY=VALUE", kv)
		}
		if req.Config == nil {
			req.Config = map[string]string{}
		}
		req.Config[strings.TrimSpace(k)] = v
	}
	s := api.SentinelRequest{
		DownAfterMs:       intFlag("down-after-ms"),
		FailoverTimeoutMs: intFlag("failover-timeout-ms"),
		ParallelSyncs:     intFlag("parallel-syncs"),
	}
	if s != (api.SentinelRequest{}) {
		req.Sentinel = &s
	}
	req.MinReplicasToWrite = intFlag("min-replicas-to-write")
	if f.Changed("fast-failover") {
		v, _ := f.GetBool("fast-failover")
		req.FastFailover = &v
	}
	return req, nil
}

func newClusterListCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List clusters",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(cmd *cobra.Command, _ []string, c *api.Client) error {
			clusters, err := c.ListClusters(cmd.Context())
			if err != nil {
				return err
			}
			if clusters == nil {
				clusters = []api.Cluster{}
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"clusters": clusters})
			}
			t := newTable(cmd.OutOrStdout())
			row(t, "NAME", "PHASE", "SHARDS", "REPLICAS", "SENTINELS", "AGE")
			now := a.now()
			for _, cl := range clusters {
				row(t, cl.Name, dash(cl.Status.Phase), cl.Spec.Shards, cl.Spec.Replicas, cl.Spec.Sentinels, age(cl.CreatedAt, now))
			}
			return t.Flush()
		}),
	}
}

func newClusterGetCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a cluster: spec, observed topology and how to connect",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			cl, err := c.GetCluster(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), cl)
			}
			return a.printCluster(cmd.OutOrStdout(), cl)
		}),
	}
}

func newClusterDeleteCommand(a *app) *cobra.Command {
	var yes, noWait bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a cluster and all its data",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			name := args[0]
			if !yes {
				if err := a.confirmDelete(cmd, name); err != nil {
					return err
				}
			}
			job, err := c.DeleteCluster(cmd.Context(), name)
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
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the job id and return without waiting")
	return cmd
}

// confirmDelete asks for the cluster's name on stdin. Without a terminal
// there is nobody to ask, and reading a script's stdin could consume input
// meant for something else, so it refuses instead.
func (a *app) confirmDelete(cmd *cobra.Command, name string) error {
	in := cmd.InOrStdin()
	if !a.isTerminal(in) {
		return fmt.Errorf("deleting cluster %q needs confirmation, but stdin is not a terminal: pass --yes", name)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "This deletes cluster %q and all its data.\nType the cluster name to confirm: ", name)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("read confirmation: %w", err)
	}
	if got := strings.TrimSpace(line); got != name {
		return fmt.Errorf("confirmation %q does not match %q; cluster not deleted", got, name)
	}
	return nil
}

// printStarted reports a job that was not waited for: its id alone in table
// mode (easy to capture in a script), the API's 202 body with -o json.
func (a *app) printStarted(w io.Writer, job api.Job, body any) error {
	if a.json() {
		return writeJSON(w, body)
	}
	_, err := fmt.Fprintln(w, job.ID)
	return err
}

func newClusterEventsCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "events NAME",
		Short: "List a cluster's events, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			events, err := c.ClusterEvents(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if events == nil {
				events = []api.Event{}
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"events": events})
			}
			t := newTable(cmd.OutOrStdout())
			row(t, "AT", "TYPE", "SHARD", "MESSAGE")
			for _, e := range events {
				shard := "-"
				if e.Shard != nil {
					shard = strconv.Itoa(*e.Shard)
				}
				row(t, timestamp(&e.At), e.Type, shard, dash(e.Message))
			}
			return t.Flush()
		}),
	}
}

func newClusterCredentialsCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "credentials NAME",
		Short: "Show the passwords of a cluster's Redis instances and Sentinels",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			cred, err := c.Credentials(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), cred)
			}
			t := newTable(cmd.OutOrStdout())
			row(t, "Password:", cred.Password)
			row(t, "Sentinel password:", cred.SentinelPassword)
			if cred.PreviousPassword != "" {
				row(t, "Previous password:", cred.PreviousPassword+" (accepted until "+timestamp(cred.PreviousPasswordValidUntil)+")")
				if cred.PreviousSentinelPassword != "" {
					row(t, "Previous Sentinel password:", cred.PreviousSentinelPassword)
				}
			}
			return t.Flush()
		}),
	}
}

func newClusterRotateCommand(a *app) *cobra.Command {
	var (
		grace          time.Duration
		finish, noWait bool
	)
	cmd := &cobra.Command{
		Use:   "rotate-credentials NAME",
		Short: "Give the cluster a new password without a restart; the old one stays valid for --grace",
		Long: `Adds a new password next to the old one on every instance, makes the replicas
and Sentinels use it, then switches to it. Clients using the old password keep
working until --grace ends (or until rotate-credentials --finish), when the
old password is removed. No instance restarts. Read the new password with
"cluster credentials NAME".`,
		Args: cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			var (
				job api.Job
				err error
			)
			if finish {
				if cmd.Flags().Changed("grace") {
					return fmt.Errorf("--grace and --finish go separately: --finish removes the old password now")
				}
				job, err = c.FinishRotation(cmd.Context(), args[0])
			} else {
				if grace < 0 {
					return fmt.Errorf("--grace %s: must not be negative", grace)
				}
				ms := grace.Milliseconds()
				job, err = c.RotateCredentials(cmd.Context(), args[0], &ms)
			}
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
	cmd.Flags().DurationVar(&grace, "grace", time.Hour, "how long the old password stays valid after the switch (0: removed at once)")
	cmd.Flags().BoolVar(&finish, "finish", false, "remove the old password of a rotation now")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the job id and return without waiting")
	return cmd
}

// printCluster prints the header block, then the instances and Sentinels.
func (a *app) printCluster(w io.Writer, cl api.Cluster) error {
	if err := a.printClusterHeader(w, cl); err != nil {
		return err
	}
	st := cl.Status
	if len(st.Shards) > 0 {
		fmt.Fprintln(w)
		t := newTable(w)
		row(t, "SHARD", "NAME", "ROLE", "ADDRESS", "UP", "LINK", "LAG", "KEYS")
		for _, sh := range st.Shards {
			if m := sh.Master; m != nil {
				row(t, sh.Index, m.Name, dash(m.Role), dash(m.Address), yesNo(m.Up), "-", "-", m.Keys)
			} else {
				row(t, sh.Index, "(none)", "master", "-", "no", "-", "-", "-")
			}
			for _, r := range sh.Replicas {
				row(t, sh.Index, r.Name, dash(r.Role), dash(r.Address), yesNo(r.Up), dash(r.MasterLinkStatus), r.LagBytes, r.Keys)
			}
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}
	if len(st.Sentinels) > 0 {
		fmt.Fprintln(w)
		t := newTable(w)
		row(t, "NAME", "ADDRESS", "UP", "MONITORS")
		for _, s := range st.Sentinels {
			row(t, s.Name, dash(s.Address), yesNo(s.Up), dash(strings.Join(s.Monitors, ",")))
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// printClusterHeader prints what a user needs at a glance: state and how to
// connect.
func (a *app) printClusterHeader(w io.Writer, cl api.Cluster) error {
	t := newTable(w)
	row(t, "Name:", cl.Name)
	row(t, "Phase:", dash(cl.Status.Phase))
	row(t, "Reason:", dash(cl.Status.Reason))
	row(t, "Spec:", specSummary(cl.Spec))
	if cl.Status.ObservedAt != nil {
		row(t, "Observed:", timestamp(cl.Status.ObservedAt)+" ("+age(*cl.Status.ObservedAt, a.now())+" ago)")
	}
	row(t, "Sentinels:", dash(strings.Join(cl.Connection.Sentinels, ",")))
	row(t, "Master names:", dash(strings.Join(cl.Connection.MasterNames, ",")))
	row(t, "Credentials:", "redis-manager cluster credentials "+cl.Name)
	return t.Flush()
}

func specSummary(s api.ClusterSpec) string {
	parts := []string{
		"shards=" + strconv.Itoa(s.Shards),
		"replicas=" + strconv.Itoa(s.Replicas),
		"sentinels=" + strconv.Itoa(s.Sentinels),
	}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("maxmemory", s.Maxmemory)
	add("maxmemory-policy", s.MaxmemoryPolicy)
	add("persistence", s.Persistence)
	keys := make([]string, 0, len(s.Config))
	for k := range s.Config {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		add(k, s.Config[k])
	}
	return strings.Join(parts, " ")
}
