package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/redis-manager/redis-manager/api"
)

func newClusterMetricsCommand(a *app) *cobra.Command {
	var rng, instance string
	cmd := &cobra.Command{
		Use:   "metrics NAME",
		Short: "Show each instance's figures over a range: latest, average and max of ops/s, memory, clients, keys, hit ratio, lag and CPU",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			m, err := c.Metrics(cmd.Context(), args[0], rng, instance)
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			return metricsTable(cmd.OutOrStdout(), m)
		}),
	}
	cmd.Flags().StringVar(&rng, "range", "1h", "1h | 6h | 24h")
	cmd.Flags().StringVar(&instance, "instance", "", "only this instance")
	return cmd
}

// metricSeries names each series for the table, with how its values read.
var metricSeries = []struct {
	name   string
	get    func(api.MetricSeries) []*float64
	format func(float64) string
}{
	{"ops/s", func(s api.MetricSeries) []*float64 { return s.OpsPerSec }, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	{"memory", func(s api.MetricSeries) []*float64 { return s.UsedMemoryBytes }, humanBytes},
	{"clients", func(s api.MetricSeries) []*float64 { return s.Clients }, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	{"keys", func(s api.MetricSeries) []*float64 { return s.Keys }, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	{"hit ratio", func(s api.MetricSeries) []*float64 { return s.HitRatio }, func(v float64) string { return fmt.Sprintf("%.1f%%", v*100) }},
	{"lag", func(s api.MetricSeries) []*float64 { return s.LagBytes }, humanBytes},
	{"cpu", func(s api.MetricSeries) []*float64 { return s.CPUPercent }, func(v float64) string { return fmt.Sprintf("%.1f%%", v) }},
}

// metricsTable prints, per instance and series, the latest value, the
// average and the maximum over the range ("-" without samples).
func metricsTable(w io.Writer, m api.Metrics) error {
	t := newTable(w)
	row(t, "INSTANCE", "SHARD", "ROLE", "SERIES", "LATEST", "AVG", "MAX")
	for _, in := range m.Instances {
		for _, s := range metricSeries {
			latest, avg, mx, ok := summarize(s.get(in.Series))
			if !ok {
				row(t, in.Name, in.Shard, dash(in.Role), s.name, "-", "-", "-")
				continue
			}
			row(t, in.Name, in.Shard, dash(in.Role), s.name, s.format(latest), s.format(avg), s.format(mx))
		}
	}
	return t.Flush()
}

// summarize returns the newest value, the mean and the maximum of the
// non-null points; ok is false when there is none.
func summarize(points []*float64) (latest, avg, mx float64, ok bool) {
	var sum float64
	n := 0
	for _, p := range points {
		if p == nil {
			continue
		}
		if n == 0 || *p > mx {
			mx = *p
		}
		latest, sum, n = *p, sum+*p, n+1
	}
	if n == 0 {
		return 0, 0, 0, false
	}
	return latest, sum / float64(n), mx, true
}

// humanBytes renders a byte count with a binary unit.
func humanBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", v)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
