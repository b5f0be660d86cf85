package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/redis-manager/redis-manager/api"
)

func newClusterScaleCommand(a *app) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:   "scale NAME",
		Short: "Change a cluster: shards, replicas, Sentinels, memory, config",
		Long: `Scale a cluster online. Only the flags you give change.
Removing a shard that holds keys, or lowering maxmemory below what the data
uses, needs --force.`,
		Args: cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			req, err := updateRequest(cmd.Flags())
			if err != nil {
				return err
			}
			res, err := c.UpdateCluster(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if noWait {
				return a.printStarted(cmd.OutOrStdout(), res.Job, res)
			}
			final, err := a.waitJob(cmd, c, res.Job)
			return a.finishJob(cmd, final, err)
		}),
	}
	f := cmd.Flags()
	addSpecFlags(f, "redis.conf setting KEY=VALUE (repeatable; replaces the whole user config when given)")
	f.Bool("force", false, "allow changes that drop data")
	f.BoolVar(&noWait, "no-wait", false, "print the job id and return without waiting")
	return cmd
}

// updateRequest maps the scale flags to a request with only the flags given.
func updateRequest(f *pflag.FlagSet) (api.UpdateClusterRequest, error) {
	base, err := createRequest(f, "")
	if err != nil {
		return api.UpdateClusterRequest{}, err
	}
	str := func(flag string) *string {
		if !f.Changed(flag) {
			return nil
		}
		v, _ := f.GetString(flag)
		return &v
	}
	force, _ := f.GetBool("force")
	req := api.UpdateClusterRequest{
		Shards: base.Shards, Replicas: base.Replicas, Sentinels: base.Sentinels,
		Maxmemory: str("maxmemory"), MaxmemoryPolicy: str("maxmemory-policy"), Persistence: str("persistence"),
		Config: base.Config, Sentinel: base.Sentinel, Force: force,
		FastFailover: base.FastFailover, MinReplicasToWrite: base.MinReplicasToWrite,
	}
	if req.Shards == nil && req.Replicas == nil && req.Sentinels == nil && req.Maxmemory == nil && req.MaxmemoryPolicy == nil &&
		req.Persistence == nil && req.Config == nil && req.Sentinel == nil && req.FastFailover == nil && req.MinReplicasToWrite == nil {
		return req, fmt.Errorf("nothing to change: give at least one of --shards, --replicas, --sentinels, --maxmemory, --maxmemory-policy, --persistence, --config, --down-after-ms, --failover-timeout-ms, --parallel-syncs")
	}
	return req, nil
}

func newClusterFailoverCommand(a *app) *cobra.Command {
	var noWait bool
	var shard int
	cmd := &cobra.Command{
		Use:   "failover NAME",
		Short: "Planned failover of one shard through Sentinel (for maintenance)",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			job, err := c.Failover(cmd.Context(), args[0], shard)
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
	cmd.Flags().IntVar(&shard, "shard", 0, "shard index")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the job id and return without waiting")
	return cmd
}
