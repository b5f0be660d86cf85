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
		Long: `Before the first boot of a restored instance (--seed-key given, no data in
--data-dir yet), fetches the seed from the backup target into
<data-dir>/dump.rdb and checks it (RDB structure and CRC64, the recorded size
and CRC64); a bad seed stops here, before Redis starts.

Asks every Sentinel which address it names master of the shard (1 s each),
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
	f.StringVar(&o.dataDir, "data-dir", "", "the instance's data dir, the config's dir (required with --seed-key)")
	f.StringVar(&o.seed.TargetURL, "seed-target", "", "restore: the backup target, file://DIR or s3://BUCKET/PREFIX?…")
	f.StringVar(&o.seed.Key, "seed-key", "", "restore: the object's key in --seed-target")
	f.Int64Var(&o.seed.Size, "seed-size", 0, "restore: the object's recorded size in bytes (0: unchecked)")
	f.StringVar(&o.seed.CRC64, "seed-crc64", "", "restore: the object's recorded CRC-64 (empty: unchecked)")
	for _, req := range []string{"config", "self", "master-name"} {
		_ = run.MarkFlagRequired(req)
	}
	cmd.AddCommand(run)
	return cmd
}

type runOptions struct {
	redisServer, config, self, masterName, plannedMaster, dataDir string
	sentinels                                                     []string
	seed                                                          platform.SeedSource
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
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	if o.seed.Key != "" {
		if o.dataDir == "" {
			return fmt.Errorf("--seed-key needs --data-dir")
		}
		if HasData(o.dataDir) {
			log.Info("seed skipped: the instance has data of its own", "dataDir", o.dataDir)
		} else {
			if err := FetchSeed(cmd.Context(), o.dataDir, o.seed); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
			log.Info("seeded", "key", o.seed.Key, "bytes", o.seed.Size)
		}
	}
	plan := platform.BootPlan{MasterName: o.masterName, PlannedMaster: o.plannedMaster, Sentinels: o.sentinels,
		SentinelPassword: os.Getenv(EnvSentinelPassword)}
	d := Decide(cmd.Context(), plan, o.self, DialAsker{})
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
