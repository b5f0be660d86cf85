package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/redis-manager/redis-manager/api"
)

func newClusterAutoscalingCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "autoscaling", Short: "Show, set or turn off a cluster's autoscaling policy"}
	cmd.AddCommand(newAutoscalingGetCommand(a), newAutoscalingSetCommand(a), newAutoscalingOffCommand(a))
	return cmd
}

func newAutoscalingGetCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show the policy, the last readings and the newest decisions",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			as, err := c.GetAutoscaling(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), as)
			}
			return printAutoscaling(cmd, as)
		}),
	}
}

func printAutoscaling(cmd *cobra.Command, as api.Autoscaling) error {
	w := cmd.OutOrStdout()
	p := as.Policy
	dur := func(v *int64) string {
		if v == nil {
			return "-"
		}
		return (time.Duration(*v) * time.Millisecond).String()
	}
	t := newTable(w)
	row(t, "POLICY", "")
	if r := p.Replicas; r != nil {
		row(t, "replicas", fmt.Sprintf("%d-%d, %s target %s per replica", r.Min, r.Max, r.Metric, strconv.FormatFloat(r.Target, 'f', -1, 64)))
	} else {
		row(t, "replicas", "off")
	}
	if m := p.Memory; m != nil {
		lower := "never lowered"
		if deref(m.LowPercent) > 0 {
			lower = fmt.Sprintf("lowered below %g %% used, not under %s, headroom %g %%", deref(m.LowPercent), dash(m.Min), deref(m.HeadroomPercent))
		}
		row(t, "memory", fmt.Sprintf("up to %s: +%g %% at %g %% used for %s; %s",
			m.Max, deref(m.StepPercent), deref(m.HighPercent), dur(m.ForMs), lower))
	} else {
		row(t, "memory", "off")
	}
	row(t, "scale-out after / cooldown", dur(p.ScaleOutAfterMs)+" / "+dur(p.ScaleOutCooldownMs))
	row(t, "stabilization / scale-in cooldown", dur(p.StabilizationMs)+" / "+dur(p.ScaleInCooldownMs))
	row(t, "failover window", dur(p.FailoverWindowMs))
	row(t, "dry run", strconv.FormatBool(p.DryRun))
	if r := as.State.Readings; r != nil {
		row(t, "readings at", r.At.UTC().Format(time.RFC3339))
		if r.Metric != "" {
			signal := fmt.Sprintf("%g %s per replica (target %g)", r.Signal, r.Metric, r.Target)
			if st := as.State; st.AboveSince != nil {
				signal += "; above the target since " + st.AboveSince.UTC().Format(time.RFC3339)
			} else if st.BelowSince != nil {
				signal += "; below 75 % of the target since " + st.BelowSince.UTC().Format(time.RFC3339)
			}
			row(t, "signal", signal)
		}
		if r.Unread != "" {
			row(t, "not read", r.Unread)
		}
		for _, s := range r.Shards {
			row(t, fmt.Sprintf("shard %d", s.Shard), fmt.Sprintf("%s %g per replica over %d; master %s memory %s of %s (%g %%)",
				r.Metric, s.Average, len(s.Replicas), dash(s.Master), humanBytes(float64(s.UsedMemoryBytes)), humanBytes(float64(s.MaxmemoryBytes)), s.MemoryPercent))
		}
	}
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = newTable(w)
	row(t, "AT", "DECISION")
	for _, e := range as.Decisions {
		row(t, e.At.UTC().Format(time.RFC3339), e.Message)
	}
	return t.Flush()
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

func newAutoscalingSetCommand(a *app) *cobra.Command {
	var (
		file                                                 string
		min, max                                             int
		metric                                               string
		target                                               float64
		memMax, memMin                                       string
		high, step, low, headroom                            float64
		memFor, outAfter, outCool, inCool, stab, failoverWin time.Duration
		dryRun                                               bool
	)
	cmd := &cobra.Command{
		Use:   "set NAME [--min N --max N --metric cpu|ops|clients --target X] [--memory-max SIZE …] [-f policy.json]",
		Short: "Set the cluster's autoscaling policy (flags left out take the defaults; see docs/autoscaling.md)",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			var p api.AutoscalePolicy
			if file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(b, &p); err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
			}
			f := cmd.Flags()
			if f.Changed("min") || f.Changed("max") || f.Changed("metric") || f.Changed("target") {
				if p.Replicas == nil {
					p.Replicas = &api.AutoscaleReplicas{}
				}
				if f.Changed("min") {
					p.Replicas.Min = min
				}
				if f.Changed("max") {
					p.Replicas.Max = max
				}
				if f.Changed("metric") {
					p.Replicas.Metric = metric
				}
				if f.Changed("target") {
					p.Replicas.Target = target
				}
			}
			if f.Changed("memory-max") {
				if p.Memory == nil {
					p.Memory = &api.AutoscaleMemory{}
				}
				p.Memory.Max = memMax
			}
			pct := map[string]*float64{"memory-high": &high, "memory-step": &step, "memory-low": &low, "memory-headroom": &headroom}
			for name, v := range pct {
				if !f.Changed(name) {
					continue
				}
				if p.Memory == nil {
					return fmt.Errorf("--%s needs --memory-max", name)
				}
				x := *v
				switch name {
				case "memory-high":
					p.Memory.HighPercent = &x
				case "memory-step":
					p.Memory.StepPercent = &x
				case "memory-low":
					p.Memory.LowPercent = &x
				case "memory-headroom":
					p.Memory.HeadroomPercent = &x
				}
			}
			if f.Changed("memory-min") || f.Changed("memory-for") {
				if p.Memory == nil {
					return fmt.Errorf("--memory-min and --memory-for need --memory-max")
				}
				if f.Changed("memory-min") {
					p.Memory.Min = memMin
				}
				if f.Changed("memory-for") {
					p.Memory.ForMs = msOf(memFor)
				}
			}
			for name, d := range map[string]struct {
				v   time.Duration
				dst **int64
			}{
				"scale-out-after": {outAfter, &p.ScaleOutAfterMs}, "scale-out-cooldown": {outCool, &p.ScaleOutCooldownMs},
				"scale-in-cooldown": {inCool, &p.ScaleInCooldownMs}, "stabilization": {stab, &p.StabilizationMs},
				"failover-window": {failoverWin, &p.FailoverWindowMs},
			} {
				if f.Changed(name) {
					*d.dst = msOf(d.v)
				}
			}
			if f.Changed("dry-run") {
				p.DryRun = dryRun
			}
			as, err := c.PutAutoscaling(cmd.Context(), args[0], p)
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), as)
			}
			return printAutoscaling(cmd, as)
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the policy as the API's JSON; flags override its fields")
	f.IntVar(&min, "min", 0, "replicas per shard at least")
	f.IntVar(&max, "max", 0, "replicas per shard at most")
	f.StringVar(&metric, "metric", "", "the replica signal: cpu (percent of a core), ops (per second) or clients")
	f.Float64Var(&target, "target", 0, "the signal's target per replica")
	f.StringVar(&memMax, "memory-max", "", "raise maxmemory up to this size (turns memory autoscaling on)")
	f.StringVar(&memMin, "memory-min", "", "never lower maxmemory below this size")
	f.Float64Var(&high, "memory-high", 0, "raise when used_memory passes this percentage of maxmemory")
	f.Float64Var(&step, "memory-step", 0, "raise (and lower) by this percentage")
	f.Float64Var(&low, "memory-low", 0, "lower when used_memory stays below this percentage (0: never)")
	f.Float64Var(&headroom, "memory-headroom", 0, "a lowered maxmemory keeps this percentage above used_memory")
	f.DurationVar(&memFor, "memory-for", 0, "how long used_memory must stay high")
	f.DurationVar(&outAfter, "scale-out-after", 0, "how long the signal must stay above the target")
	f.DurationVar(&outCool, "scale-out-cooldown", 0, "no scale-out this long after one")
	f.DurationVar(&inCool, "scale-in-cooldown", 0, "no scale-in this long after a change")
	f.DurationVar(&stab, "stabilization", 0, "how long the signal must stay below 75 % of the target before a scale-in")
	f.DurationVar(&failoverWin, "failover-window", 0, "no scaling this long after a failover")
	f.BoolVar(&dryRun, "dry-run", false, "decide and record only")
	return cmd
}

func msOf(d time.Duration) *int64 {
	v := d.Milliseconds()
	return &v
}

func newAutoscalingOffCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "off NAME",
		Short: "Turn the cluster's autoscaling off (its decisions stay in the events)",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			if err := c.DeleteAutoscaling(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "autoscaling of %s is off\n", args[0])
			return nil
		}),
	}
}
