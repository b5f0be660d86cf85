package instance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/spec"
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
	f.StringSliceVar(&o.includes, "compose", nil, "write --config from these files (the shard's shared config, its passwords), then the announced name of --self (Kubernetes)")
	f.StringVar(&o.seed.CRC64, "seed-crc64", "", "restore: the object's recorded CRC-64 (empty: unchecked)")
	f.StringVar(&o.seedFile, "seed-file", "", "restore: a JSON seed (target, key, size, crc64), used as the --seed-* flags; a missing file means no seed (Kubernetes: a key of the cluster's ConfigMap named after the pod)")
	f.StringVar(&o.seedError, "seed-error-file", "", "restore: where a failed seed's error goes, as a task protocol line (Kubernetes: the container's termination message)")
	for _, req := range []string{"config", "self", "master-name"} {
		_ = run.MarkFlagRequired(req)
	}
	cmd.AddCommand(run, sentinelCommand(), probeCommand())
	return cmd
}

// sentinelCommand is `instance sentinel`: the entrypoint of a Sentinel pod.
func sentinelCommand() *cobra.Command {
	var config, self, server string
	var files []string
	cmd := &cobra.Command{
		Use:   "sentinel",
		Short: "Write a Sentinel's first config (kept afterwards: Sentinel owns it), then exec redis-server --sentinel",
		Long: `At the first boot, writes --config from the --compose files and the announced
name of --self; afterwards the file is Sentinel's own (its id, its peers, the
masters it monitors), kept as it is, so a restarted Sentinel keeps its
identity. Then execs redis-server --sentinel.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := exec.LookPath(server)
			if err != nil {
				return fmt.Errorf("redis-server: %w", err)
			}
			if err := compose(config, files, platform.KindSentinel, self, true); err != nil {
				return fmt.Errorf("compose config: %w", err)
			}
			return syscall.Exec(bin, []string{bin, config, "--sentinel"}, os.Environ())
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "redis-server", "redis-server", "the redis-server binary")
	f.StringVar(&config, "config", "", "sentinel.conf on the Sentinel's volume (required)")
	f.StringVar(&self, "self", "", "this Sentinel's address, HOST:PORT, as the others name it (required)")
	f.StringSliceVar(&files, "compose", nil, "files the first config is made of")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagRequired("self")
	return cmd
}

// waitSentinelTries bounds how long `instance run` waits (a second a try)
// for a Sentinel to answer before it exits (the kubelet starts it again).
const waitSentinelTries = 60

// loggingAsker asks like DialAsker and logs why a Sentinel gave no answer;
// it notes a Sentinel that answered it does not know the shard (a shard
// being created: the plan holds).
type loggingAsker struct {
	log        *slog.Logger
	mu         sync.Mutex
	noSuchName bool
}

func (a *loggingAsker) MasterAddr(ctx context.Context, sentinel, password, masterName string) (string, error) {
	addr, err := DialAsker{}.MasterAddr(ctx, sentinel, password, masterName)
	if err != nil || addr == "" {
		a.log.Info("Sentinel gave no answer", "sentinel", sentinel, "err", err)
		a.mu.Lock()
		a.noSuchName = a.noSuchName || (err == nil && addr == "") || (err != nil && errors.Is(err, redis.Nil))
		a.mu.Unlock()
	}
	return addr, err
}

func (a *loggingAsker) heardNoSuchMaster() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.noSuchName
}

// EnvProbePassword is the password `instance probe` authenticates with.
const EnvProbePassword = "REDIS_MANAGER_PASSWORD"

// probeCommand is `instance probe`: a readiness probe that fails unless the
// instance answers PING with PONG (not while it loads its dataset). It does
// not fail under a BGSAVE: the fork leaves the main thread serving. The
// password is read from --password-file at every probe (a mounted Secret,
// which follows a password rotation without a restart), else from the
// environment; an instance that refuses every password it is given still
// answers, so it counts as ready: a rotation must not take every pod out of
// its Services.
func probeCommand() *cobra.Command {
	var addr, passwordFile string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Exit 0 when the instance answers PING with PONG",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var passwords []string
			if b, err := os.ReadFile(passwordFile); err == nil && passwordFile != "" {
				passwords = append(passwords, string(b))
			}
			if env := os.Getenv(EnvProbePassword); env != "" && !slices.Contains(passwords, env) {
				passwords = append(passwords, env)
			}
			if len(passwords) == 0 {
				passwords = []string{""}
			}
			var err error
			for _, pw := range passwords {
				if err = ping(ctx, addr, pw, timeout); err == nil || !isAuthError(err) {
					return err
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "probe: %s answers but refuses the passwords given (%v): counted ready\n", addr, err)
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:6379", "the instance, HOST:PORT")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "read the password from this file (else "+EnvProbePassword+")")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for PONG")
	return cmd
}

func ping(ctx context.Context, addr, password string, timeout time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, Protocol: 2,
		DisableIdentity: true, MaxRetries: -1, DialTimeout: timeout})
	defer c.Close()
	return c.Ping(ctx).Err()
}

// isAuthError tells a refused password (the server answers) from anything
// else.
func isAuthError(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "WRONGPASS") || strings.HasPrefix(s, "NOAUTH") || strings.Contains(s, "invalid password")
}

type runOptions struct {
	redisServer, config, self, masterName, plannedMaster, dataDir string
	sentinels, includes                                           []string
	seed                                                          platform.SeedSource
	seedFile, seedError                                           string
}

// compose writes config from the files given, in order, followed by the
// announce lines of kind for self's host: the config a pod boots with,
// made from the shard's ConfigMap and Secret. Written only when missing if
// keep is set (Sentinel owns its file after the first boot).
func compose(config string, files []string, kind, self string, keep bool) error {
	if len(files) == 0 {
		return nil
	}
	if _, err := os.Stat(config); err == nil && keep {
		return nil
	}
	host, _, err := net.SplitHostPort(self)
	if err != nil {
		return fmt.Errorf("--self %q: %w", self, err)
	}
	var b strings.Builder
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		b.Write(body)
		if len(body) > 0 && body[len(body)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	b.WriteString(spec.Announce(kind, host))
	tmp := config + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, config)
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
	// An instance that booted before (its config is on its volume) must
	// hear from a Sentinel before it boots: with no answer it would fall
	// back to the plan, and the plan's master may be the very instance a
	// failover just replaced.
	// (With --compose the config is written at every boot, so one on the
	// volume means a boot before; without, the caller wrote it.)
	_, statErr := os.Stat(o.config)
	bootedBefore := len(o.includes) > 0 && statErr == nil
	if err := compose(o.config, o.includes, platform.KindRedis, o.self, false); err != nil {
		return fmt.Errorf("compose config: %w", err)
	}
	if _, err := os.Stat(o.config); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	if o.seedFile != "" {
		sf, ok, err := ReadSeedFile(o.seedFile)
		if err != nil {
			return o.seedFailed(fmt.Errorf("seed: %w", err))
		}
		if ok {
			o.seed = sf.Source()
		}
	}
	if o.seed.Key != "" {
		if o.dataDir == "" {
			return fmt.Errorf("--seed-key needs --data-dir")
		}
		if HasData(o.dataDir) {
			log.Info("seed skipped: the instance has data of its own", "dataDir", o.dataDir)
		} else {
			if err := FetchSeed(cmd.Context(), o.dataDir, o.seed); err != nil {
				return o.seedFailed(fmt.Errorf("seed: %s: %w", o.seed.Key, err))
			}
			log.Info("seeded", "key", o.seed.Key, "bytes", o.seed.Size)
		}
	}
	plan := platform.BootPlan{MasterName: o.masterName, PlannedMaster: o.plannedMaster, Sentinels: o.sentinels,
		SentinelPassword: os.Getenv(EnvSentinelPassword)}
	asker := &loggingAsker{log: log}
	d := Decide(cmd.Context(), plan, o.self, asker)
	for try := 1; bootedBefore && len(d.Answers) == 0 && len(plan.Sentinels) > 0 && !asker.heardNoSuchMaster(); try++ {
		if try > waitSentinelTries {
			return fmt.Errorf("no Sentinel answered in %d tries: this instance booted before and does not boot without Sentinel's word", waitSentinelTries)
		}
		log.Warn("no Sentinel answered; asking again before booting", "try", try)
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(time.Second):
		}
		d = Decide(cmd.Context(), plan, o.self, asker)
	}
	if bootedBefore && d.ReplicaOf == "" && len(d.Answers) > 0 {
		d = holdMasterBoot(cmd.Context(), plan, o.self, asker, d, log)
	}
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
