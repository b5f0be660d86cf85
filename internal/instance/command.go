package instance

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/redis-manager/redis-manager/internal/platform"
)

// EnvSentinelPassword carries the Sentinels' password to `instance run`:
// never on the command line, where any local user can read it.
const EnvSentinelPassword = "REDIS_MANAGER_SENTINEL_PASSWORD"

// NewCommand returns `redis-manager instance`, what runs next to one
// redis-server: `instance run` decides the boot role, then becomes
// redis-server (exec). It is the entrypoint of a pod on Kubernetes, where
// the kubelet restarts containers without asking the manager.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "instance",
		Short: "Run next to one redis-server (the pod entrypoint on Kubernetes)",
	}
	var o runOptions
	run := &cobra.Command{
		Use:   "run",
		Short: "Decide the boot role from Sentinel's view, then exec redis-server",
		Long: `Asks every Sentinel which address it names master of the shard (1 s each),
boots as master only when every answering Sentinel names this instance (or,
when none knows the shard, when it is the planned master), and otherwise as a
replica of the address most Sentinels name. Then it execs redis-server with the
config file and the decided replicaof. The Sentinels' password is read from
` + EnvSentinelPassword + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := run.Flags()
	f.StringVar(&o.redisServer, "redis-server", "redis-server", "the redis-server binary")
	f.StringVar(&o.config, "config", "", "redis.conf to boot with, without replicaof (required)")
	f.StringVar(&o.self, "self", "", "this instance's address, HOST:PORT, as Sentinels name it (required)")
	f.StringVar(&o.masterName, "master-name", "", "the shard's Sentinel master name (required)")
	f.StringVar(&o.plannedMaster, "planned-master", "", "HOST:PORT that is master while no Sentinel knows the shard")
	f.StringSliceVar(&o.sentinels, "sentinels", nil, "the cluster's Sentinels, HOST:PORT,…")
	for _, req := range []string{"config", "self", "master-name"} {
		_ = run.MarkFlagRequired(req)
	}
	cmd.AddCommand(run)
	return cmd
}

type runOptions struct {
	redisServer, config, self, masterName, plannedMaster string
	sentinels                                            []string
}

func (o runOptions) run(cmd *cobra.Command) error {
	for _, a := range append([]string{o.self}, o.sentinels...) {
		if _, err := platform.ParseEndpoint(a); err != nil {
			return fmt.Errorf("address %q: want HOST:PORT (IPv6 in brackets): %w", a, err)
		}
	}
	bin, err := exec.LookPath(o.redisServer)
	if err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	if _, err := os.Stat(o.config); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	plan := platform.BootPlan{MasterName: o.masterName, PlannedMaster: o.plannedMaster, Sentinels: o.sentinels,
		SentinelPassword: os.Getenv(EnvSentinelPassword)}
	d := Decide(cmd.Context(), plan, o.self, DialAsker{})
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	log.Info("boot role decided", "self", o.self, "replicaOf", d.ReplicaOf, "sentinelAnswers", d.Answers)
	argv := []string{bin, o.config}
	if d.ReplicaOf != "" {
		host, port, err := net.SplitHostPort(d.ReplicaOf)
		if err != nil {
			return fmt.Errorf("replicaof %q: %w", d.ReplicaOf, err)
		}
		argv = append(argv, "--replicaof", host, port)
	}
	// The password is not passed on: redis-server does not need it.
	env := make([]string, 0, len(os.Environ()))
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, EnvSentinelPassword+"=") {
			env = append(env, e)
		}
	}
	if err := syscall.Exec(bin, argv, env); err != nil {
		return fmt.Errorf("exec %s: %w", bin, err)
	}
	return nil
}
