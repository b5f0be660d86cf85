package cli

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/redis-manager/redis-manager/api"
)

func newAlertCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "alert", Short: "Alerts, alert rules and silences"}
	cmd.AddCommand(newAlertListCommand(a), newAlertRulesCommand(a), newAlertSilenceCommand(a))
	return cmd
}

func newAlertListCommand(a *app) *cobra.Command {
	var cluster, state string
	cmd := &cobra.Command{
		Use:   "list [--cluster NAME] [--state pending|firing|resolved]",
		Short: "List alerts",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(cmd *cobra.Command, _ []string, c *api.Client) error {
			as, err := c.ListAlerts(cmd.Context(), state, cluster)
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), api.AlertList{Alerts: as})
			}
			t := newTable(cmd.OutOrStdout())
			row(t, "RULE", "CLUSTER", "SHARD", "INSTANCE", "STATE", "SINCE", "SEVERITY", "MESSAGE")
			for _, x := range as {
				shard := "-"
				if x.Shard != nil {
					shard = strconv.Itoa(*x.Shard)
				}
				state := x.State
				if x.Silenced {
					state += " (silenced)"
				}
				row(t, x.Rule, x.Cluster, shard, dash(x.Instance), state, x.Since.UTC().Format(time.RFC3339), x.Severity, x.Message)
			}
			return t.Flush()
		}),
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "only this cluster's alerts")
	cmd.Flags().StringVar(&state, "state", "", "only alerts in this state")
	return cmd
}

func newAlertRulesCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rules NAME",
		Short: "Show the cluster's alert rules: enabled, threshold and for, defaults with its overrides",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			rules, err := c.GetAlertRules(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), rules)
			}
			names := make([]string, 0, len(rules))
			for n := range rules {
				names = append(names, n)
			}
			sort.Strings(names)
			t := newTable(cmd.OutOrStdout())
			row(t, "RULE", "ENABLED", "THRESHOLD", "FOR")
			for _, n := range names {
				r := rules[n]
				th := "-"
				if r.Threshold != nil {
					th = strconv.FormatFloat(*r.Threshold, 'f', -1, 64)
				}
				enabled, forMs := false, int64(0)
				if r.Enabled != nil {
					enabled = *r.Enabled
				}
				if r.ForMs != nil {
					forMs = *r.ForMs
				}
				row(t, n, enabled, th, (time.Duration(forMs) * time.Millisecond).String())
			}
			return t.Flush()
		}),
	}
}

func newAlertSilenceCommand(a *app) *cobra.Command {
	var req api.CreateSilenceRequest
	var duration time.Duration
	cmd := &cobra.Command{
		Use:   "silence --duration 2h --comment WHY [--cluster NAME] [--rule RULE] [--instance NAME] | silence list | silence delete ID",
		Short: "Silence notifications of matching alerts for a while (they still change state)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(cmd *cobra.Command, _ []string, c *api.Client) error {
			if duration <= 0 {
				return errors.New("--duration is required, e.g. --duration 2h")
			}
			req.DurationMs = duration.Milliseconds()
			s, err := c.CreateSilence(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), s)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "silence %s until %s\n", s.ID, s.EndsAt.UTC().Format(time.RFC3339))
			return err
		}),
	}
	cmd.Flags().DurationVar(&duration, "duration", 0, "how long, e.g. 30m or 2h")
	cmd.Flags().StringVar(&req.Comment, "comment", "", "why (required)")
	cmd.Flags().StringVar(&req.Cluster, "cluster", "", "only this cluster (default: all)")
	cmd.Flags().StringVar(&req.Rule, "rule", "", "only this rule (default: all)")
	cmd.Flags().StringVar(&req.Instance, "instance", "", "only this instance (default: all)")
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the silences in force",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(cmd *cobra.Command, _ []string, c *api.Client) error {
			ss, err := c.ListSilences(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), api.SilenceList{Silences: ss})
			}
			t := newTable(cmd.OutOrStdout())
			row(t, "ID", "CLUSTER", "RULE", "INSTANCE", "ENDS", "BY", "COMMENT")
			for _, s := range ss {
				row(t, s.ID, dash(s.Cluster), dash(s.Rule), dash(s.Instance), s.EndsAt.UTC().Format(time.RFC3339), dash(s.CreatedBy), s.Comment)
			}
			return t.Flush()
		}),
	}, &cobra.Command{
		Use:   "delete ID",
		Short: "End a silence",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			if err := c.DeleteSilence(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "silence %s ended\n", args[0])
			return err
		}),
	})
	return cmd
}

func newNotificationCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "notification", Short: "Alert notifications: webhooks and their deliveries"}
	cmd.AddCommand(&cobra.Command{
		Use:   "test NAME",
		Short: "Send a test notification to the webhook NAME and show the result (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			d, err := c.TestNotification(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), d)
			}
			if !d.OK {
				return fmt.Errorf("webhook %s: %d attempts failed: %s", d.Webhook, d.Attempts, d.Error)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "webhook %s answered %d in %d ms\n", d.Webhook, d.StatusCode, d.DurationMs)
			return err
		}),
	}, &cobra.Command{
		Use:   "deliveries",
		Short: "List the latest deliveries, newest first",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(cmd *cobra.Command, _ []string, c *api.Client) error {
			ds, err := c.ListDeliveries(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), api.DeliveryList{Deliveries: ds})
			}
			t := newTable(cmd.OutOrStdout())
			row(t, "AT", "WEBHOOK", "RULE", "CLUSTER", "INSTANCE", "STATE", "OK", "ATTEMPTS", "ERROR")
			for _, d := range ds {
				row(t, d.At.UTC().Format(time.RFC3339), d.Webhook, d.Rule, dash(d.Cluster), dash(d.Instance), d.State, d.OK, d.Attempts, dash(d.Error))
			}
			return t.Flush()
		}),
	})
	return cmd
}
