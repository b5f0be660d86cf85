package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/alerts"
	"github.com/redis-manager/redis-manager/internal/autoscale"
	"github.com/redis-manager/redis-manager/internal/cli"
	"github.com/redis-manager/redis-manager/internal/console"
	"github.com/redis-manager/redis-manager/internal/controller"
	"github.com/redis-manager/redis-manager/internal/instance"
	"github.com/redis-manager/redis-manager/internal/leader"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/platform/kubernetes"
	"github.com/redis-manager/redis-manager/internal/platform/local"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/service"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/stream"
	"github.com/redis-manager/redis-manager/internal/timeseries"
)

// Options are the serve command's settings (API.md "Starting the server").
type Options struct {
	Listen       string
	DataDir      string
	Store        string
	Platform     string
	BackupTarget string
	PortRange    string
	HostRange    string
	// LocalMemoryLimit caps the memory the local platform's instances use
	// together ("" or "0": no cap), for the autoscaler's replica-memory
	// guard rail.
	LocalMemoryLimit string
	RedisServer      string
	// ControlNice is the local platform's nice value of the manager's
	// autogroup (0: unchanged).
	ControlNice int
	LogLevel    string
	// TLSCert and TLSKey, when both are set, make the API serve HTTPS.
	TLSCert, TLSKey string
	// MetricsAuth requires the admin token on GET /metrics too.
	MetricsAuth bool
	// ExternalURL is the console's address as people reach it, for the
	// links in notifications ("": the listen address).
	ExternalURL string
	// ImportRoots are the targets, besides the backup target, that
	// backup import may read under.
	ImportRoots []string
	// MaxConnections bounds the API's open connections (0: half the
	// process's file limit, at most 4096).
	MaxConnections int
	// ObserveConcurrency bounds the instance reads in flight in the
	// control loop's observations; InstanceTimeout bounds each
	// (controller.Config).
	ObserveConcurrency int
	InstanceTimeout    time.Duration
	// ID names this manager among those sharing a store (the leader
	// lease's holder); default <hostname>-<pid>.
	ID string
	// Kubernetes platform settings.
	Kube kubernetes.Options
	// ClusterDNS, when set, is the DNS server (HOST:PORT) the manager
	// resolves every name with: a manager outside the Kubernetes cluster
	// reaches pods by their cluster DNS names through it.
	ClusterDNS string
	// Election chooses the leader election: "store" (default) or
	// "kubernetes" (election.go).
	Election Election
	// AdminTokenFile and EncryptionKeyFile, when set, replace
	// <data-dir>/admin.token and <data-dir>/secret.key: files every
	// replica shares (mounted Secrets); they must exist.
	AdminTokenFile, EncryptionKeyFile string
	// AdminUser and AdminPasswordFile name the first admin user, made at
	// the first start on a store without users (default "admin" with a
	// random password written to <data-dir>/admin.password).
	AdminUser, AdminPasswordFile string
	// SessionIdleTimeout ends a console session not used for this long.
	SessionIdleTimeout time.Duration
}

// NewServeCommand returns `redis-manager serve`. Every flag also reads
// REDIS_MANAGER_<FLAG> from the environment; --data-dir is the root
// command's persistent flag.
func NewServeCommand(version string) *cobra.Command {
	var o Options
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the manager: REST API, control loop and job runner",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.LocalNonPersistentFlags()); err != nil {
				return err
			}
			o.DataDir = cli.DataDir(cmd)
			cmd.SilenceUsage = true
			return Serve(cmd.Context(), o, version)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", "127.0.0.1:7800", `address to serve HTTP on (":0" picks a free port)`)
	f.StringVar(&o.Store, "store", "", "metadata store: sqlite://PATH or mysql://USER:PASS@HOST:PORT/DB (default sqlite://<data-dir>/manager.db)")
	f.StringVar(&o.Platform, "platform", "local", "where instances run: local | kubernetes")
	f.StringVar(&o.BackupTarget, "backup-target", "", "backup target: file://DIR or s3://BUCKET/PREFIX?endpoint=URL&region=R&pathStyle=true (default file://<data-dir>/backups)")
	f.StringVar(&o.PortRange, "port-range", "17000-17999", "local platform: ports for instances, LO-HI")
	f.StringVar(&o.HostRange, "host-range", "", "local platform: one loopback address per instance from this range, e.g. 127.0.1.1-127.0.1.254 (default: every instance on 127.0.0.1)")
	f.IntVar(&o.ControlNice, "local-control-nice", -20, "local platform: the nice value (-20..19) of the manager's own autogroup, so that the API and the control loop get a core before a thousand instances in their own sessions do (Linux autogroups; needs CAP_SYS_NICE to go below 0; 0 leaves it)")
	f.StringVar(&o.LocalMemoryLimit, "local-memory-limit", "", `local platform: the memory all instances may use together (e.g. "8gb"); the autoscaler adds no replica whose sync (the master's used memory plus its copy-on-write) would not fit under it, as under the host's MemAvailable (default: no cap)`)
	f.StringVar(&o.RedisServer, "redis-server", "redis-server", "local platform: the redis-server binary")
	f.StringVar(&o.LogLevel, "log-level", "info", "debug | info | warn | error")
	f.StringVar(&o.TLSCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain); needs --tls-key")
	f.StringVar(&o.TLSKey, "tls-key", "", "the PEM private key of --tls-cert")
	f.StringSliceVar(&o.ImportRoots, "import-root", nil, "a file:// or s3:// target that backup import may read under, besides --backup-target (repeat, or comma-separate)")
	f.StringVar(&o.ExternalURL, "external-url", "", "the console's URL as people reach it, for the cluster links in alert notifications (default: from --listen)")
	f.BoolVar(&o.MetricsAuth, "metrics-auth", false, "require an API token (the admin token or any API token) on GET /metrics (it carries no secret; off by default)")
	f.StringVar(&o.AdminUser, "admin-user", "admin", "the first admin user's name, made at the first start when the store has no user")
	f.StringVar(&o.AdminPasswordFile, "admin-password-file", "", "the first admin user's password, read from this file (default: a random one written to <data-dir>/admin.password, mode 0600)")
	f.DurationVar(&o.SessionIdleTimeout, "session-idle-timeout", DefaultSessionIdleTimeout, "end a console session not used for this long (sessions end after 12h in any case)")
	f.IntVar(&o.MaxConnections, "max-connections", 0, "most API connections held open; idle and slow ones are closed first (default: half the file limit, at most 4096)")
	f.IntVar(&o.ObserveConcurrency, "observe-concurrency", controller.DefaultObserveConcurrency, "most instance reads (INFO, a Sentinel's view) in flight at once in the control loop's observations, over every cluster")
	f.DurationVar(&o.InstanceTimeout, "instance-timeout", controller.DefaultInstanceTimeout, "how long the control loop waits for one instance's INFO (a Sentinel's view) before reporting it down; a slow instance delays only its own cluster's status, by at most this")
	f.StringVar(&o.ID, "id", "", "this manager's id among managers sharing a MySQL store (default <hostname>-<pid>)")
	f.StringVar(&o.Kube.Kubeconfig, "kubeconfig", "", "kubernetes platform: kubeconfig file (default: in-cluster config, then $KUBECONFIG)")
	f.StringVar(&o.Kube.Namespace, "namespace", "", `kubernetes platform: where clusters live (default: the manager's own, or "default")`)
	f.StringVar(&o.Kube.Image, "image", "", "kubernetes platform: image with redis-server and redis-manager")
	f.StringVar(&o.Kube.StorageClass, "storage-class", "", "kubernetes platform: for the PVCs (default: the cluster's default class)")
	f.StringVar(&o.Kube.ClusterDomain, "cluster-domain", "cluster.local", "kubernetes platform: the cluster's DNS domain")
	f.StringVar(&o.Kube.BackupCredentialsSecret, "backup-credentials-secret", "", "kubernetes platform: a Secret of the namespace holding AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_REGION) for the backup, verify and restore pods, given to them with envFrom (default: none, the AWS SDK's default chain in the pod)")
	addElectionFlags(f, &o)
	f.StringVar(&o.AdminTokenFile, "admin-token-file", "", "read the admin token from this file (a mounted Secret shared by every replica) instead of <data-dir>/admin.token; it must exist")
	f.StringVar(&o.EncryptionKeyFile, "encryption-key-file", "", "the store's encryption key (32 raw bytes), shared by every manager of the store, e.g. a mounted Secret (default <data-dir>/secret.key, created on first start); it must exist")
	f.StringVar(&o.ClusterDNS, "cluster-dns", "", "kubernetes platform, manager outside the cluster: resolve names with this DNS server, HOST:PORT (the cluster DNS), and check that each new pod's name resolves (pods are dialed at the address the API server gives them either way)")
	return cmd
}

// applyEnv sets every flag not given on the command line from
// REDIS_MANAGER_<NAME>, e.g. --port-range from REDIS_MANAGER_PORT_RANGE.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		env := "REDIS_MANAGER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := os.Getenv(env); v != "" && !f.Changed && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
		}
	})
	return err
}

// ParsePortRange parses "LO-HI".
func ParsePortRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || lo < 1024 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("--port-range %q: want LO-HI with 1024 <= LO <= HI <= 65535", s)
	}
	return lo, hi, nil
}

// Serve runs the manager until ctx ends. Instances keep running after it
// returns; the next start re-adopts them.
func Serve(ctx context.Context, o Options, version string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: parseLevel(o.LogLevel)}))
	if err := privateUmask(); err != nil {
		return err
	}
	tlsConfig, err := loadTLS(o.TLSCert, o.TLSKey)
	if err != nil {
		return err
	}
	if o.SessionIdleTimeout < 0 {
		return fmt.Errorf("--session-idle-timeout %s: must be positive", o.SessionIdleTimeout)
	}
	if o.SessionIdleTimeout == 0 {
		o.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if o.MaxConnections < 0 {
		return fmt.Errorf("--max-connections %d: must be 0 (automatic) or more", o.MaxConnections)
	}
	redis.SetLogger(redisLogger{log.With("component", "go-redis")})
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	// It holds the token, the key, the store and every instance's data.
	if fi, err := os.Stat(dataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dataDir, 0o700); err != nil {
			return fmt.Errorf("make data dir private: %w", err)
		}
		log.Warn("data dir was readable by others; changed its mode to 0700", "dataDir", dataDir, "was", fi.Mode().Perm().String())
	}
	lo, hi, err := ParsePortRange(o.PortRange)
	if err != nil {
		return err
	}
	var memLimit int64
	if o.LocalMemoryLimit != "" {
		if memLimit, err = spec.ParseSize(o.LocalMemoryLimit); err != nil || memLimit < 0 {
			return fmt.Errorf("--local-memory-limit %q: want a size such as 8gb", o.LocalMemoryLimit)
		}
	}
	var hosts []string
	if o.HostRange != "" {
		if hosts, err = local.ParseHostRange(o.HostRange); err != nil {
			return err
		}
	}
	if o.Platform != "local" && o.Platform != "kubernetes" {
		return fmt.Errorf("--platform %q: want local or kubernetes", o.Platform)
	}
	if o.ClusterDNS != "" {
		if err := useDNS(o.ClusterDNS); err != nil {
			return err
		}
		o.Kube.CheckDNS = true
	}
	if err := checkBackupTarget(o.BackupTarget); err != nil {
		return err
	}
	if o.Store == "" {
		o.Store = "sqlite://" + filepath.Join(dataDir, "manager.db")
	}
	if o.BackupTarget == "" {
		o.BackupTarget = (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dataDir, "backups"))}).String()
	}
	sqlite := strings.HasPrefix(o.Store, "sqlite://")
	unlock, err := lockDataDir(dataDir, sqlite)
	if err != nil {
		return err
	}
	defer unlock()
	if o.ID == "" {
		o.ID = os.Getenv("POD_NAME") // the downward API, in a pod
	}
	if o.ID == "" {
		host, _ := os.Hostname()
		o.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if err := o.Election.check(o.Platform, sqlite); err != nil {
		return err
	}
	var token string
	if o.AdminTokenFile != "" {
		token, err = readAdminToken(o.AdminTokenFile)
	} else {
		token, err = adminToken(filepath.Join(dataDir, "admin.token"))
	}
	if err != nil {
		return err
	}
	keyFile := filepath.Join(dataDir, "secret.key")
	if o.EncryptionKeyFile != "" {
		if _, err := os.Stat(o.EncryptionKeyFile); err != nil {
			return fmt.Errorf("--encryption-key-file: %w", err)
		}
		keyFile = o.EncryptionKeyFile
	}
	st, err := store.Open(ctx, o.Store, keyFile)
	if err != nil {
		return err
	}
	defer st.Close()
	if strings.HasPrefix(o.Store, "sqlite://") {
		// The database holds encrypted secrets and the job history: only
		// the manager's user reads it.
		_ = os.Chmod(strings.TrimPrefix(o.Store, "sqlite://"), 0o600)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the redis-manager binary for tasks: %w", err)
	}
	// The boot decisions' own pool: the controller closes its pool when
	// it stops, the platform may still boot until then.
	askPool := redisclient.NewPool()
	defer askPool.Close()
	var (
		plat  platform.Platform
		outer leader.Outer
	)
	if o.Platform == "kubernetes" {
		kp, err := kubernetes.New(ctx, o.Kube, log.With("platform", "kubernetes"))
		if err != nil {
			return err
		}
		defer kp.Close()
		log.Info("kubernetes platform", "namespace", kp.Namespace(), "image", o.Kube.Image, "storageClass", o.Kube.StorageClass)
		plat = kp
		if o.Election.Mode == electionKubernetes {
			if outer, err = o.Election.lease(kp.Clientset(), kp.Namespace(), o.ID, log); err != nil {
				return err
			}
		}
	} else {
		if o.ControlNice != 0 {
			if o.ControlNice < -20 || o.ControlNice > 19 {
				return fmt.Errorf("--local-control-nice %d: must be from -20 to 19", o.ControlNice)
			}
			if before, err := local.SetControlPriority(o.ControlNice); err != nil {
				log.Warn("the manager's CPU priority is unchanged: the API and control loop compete with every instance on an equal footing", "err", err)
			} else {
				log.Info("the manager's autogroup priority", "nice", o.ControlNice, "was", before)
			}
		}
		lp, err := local.New(filepath.Join(dataDir, "instances"), o.RedisServer,
			local.Options{PortLo: lo, PortHi: hi, Hosts: hosts, HostRange: o.HostRange, Asker: instance.PoolAsker{Pool: askPool}, Self: self, MemoryLimit: memLimit},
			log.With("platform", "local"))
		if err != nil {
			return err
		}
		plat = lp
	}
	// With SQLite the data dir's lock makes this the only manager of the
	// store, so a lease left by a previous run is taken over at once.
	elector := leader.New(leader.Config{ID: o.ID, Exclusive: sqlite, Outer: outer}, st, log)
	externalURL := o.ExternalURL
	if externalURL == "" {
		externalURL = "http://" + o.Listen
		if tlsConfig != nil {
			externalURL = "https://" + o.Listen
		}
	}
	// Alert notifications go out from a bounded queue of their own, so a
	// slow webhook never holds up the control loop.
	notifier := alerts.NewNotifier(alerts.NotifierConfig{ConsoleURL: externalURL, ID: o.ID}, st, log.With("component", "notify"))
	engine := alerts.NewEngine(st, notifier, log.With("component", "alerts"))
	// The autoscaler's changes go through the service's UpdateCluster,
	// the path of PATCH; the service is made after the controller it
	// wakes, so the engine reaches it through svc once it is set.
	var svc *service.Service
	room, _ := plat.(platform.ReplicaRoom)
	scaler := autoscale.ScalerFunc(func(ctx context.Context, name string, req api.UpdateClusterRequest) (api.Cluster, api.Job, error) {
		return svc.UpdateCluster(ctx, name, req)
	})
	autoscaler := autoscale.NewEngine(st, scaler, room, log.With("component", "autoscale"))
	ctl := controller.New(controller.Config{BackupTarget: o.BackupTarget, ScratchDir: filepath.Join(dataDir, "tmp"), Leader: elector, Alerts: engine, Autoscale: autoscaler,
		ObserveConcurrency: o.ObserveConcurrency, InstanceTimeout: o.InstanceTimeout}, st, plat, log)
	// The API's use cases: they store intent and wake the controller's job
	// runner; every manager serves them, leader or standby.
	svc = service.New(service.Config{BackupTarget: o.BackupTarget, ImportRoots: o.ImportRoots}, st, plat, ctl, ctl, log)

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	maxConns := o.MaxConnections
	if maxConns == 0 {
		maxConns = defaultMaxConnections()
	}
	lim := newConnLimiter(ln, maxConns)
	// GET /api/v1/clusters and /metrics keep what they derive from each
	// cluster until its stored revision changes; the list may show a
	// status up to one observe round old, never an older spec.
	clusters := NewClusterCache(st, controller.DefaultObserveEvery)
	metrics := metricsHandler(st, clusters, elector, lim, ctl.Commands, ctl.Collectors()...)
	if err := firstAdmin(ctx, st, dataDir, o.AdminUser, o.AdminPasswordFile, log); err != nil {
		return err
	}
	// The figures' time series and the live stream follow the store, so
	// every manager serves them, leader or standby.
	series := timeseries.New()
	hub := stream.New(svc, log.With("component", "stream"))
	// The web console reads through the same service the API uses, and
	// the users, tokens and audit log from the store.
	web := console.New(console.Config{Service: svc, Access: console.StoreAccess(st), Alerts: st, Autoscaling: st, Version: version, Log: log.With("component", "console")})
	srv := newHTTPServer(Handler(HandlerConfig{Service: svc, Leadership: elector, Token: token, Version: version, Metrics: metrics,
		MetricsAuth: o.MetricsAuth, Access: st, SessionIdleTimeout: o.SessionIdleTimeout, Console: web, Log: log,
		Series: series, Stream: hub, Alerts: st, Notifier: notifier, Autoscaling: st, Clusters: clusters}), lim)
	srv.RegisterOnShutdown(hub.Close)
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
		srv.TLSConfig = tlsConfig
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go sweepAccess(ctx, st, o.SessionIdleTimeout, time.Minute, log)
	var lister timeseries.Lister = st
	if benchSeries != nil {
		lister = benchSeries(series, lister)
	}
	go series.Run(ctx, lister, log.With("component", "timeseries"))
	go notifier.Run(ctx)
	go clusters.Run(ctx)
	ctlDone := make(chan error, 1)
	ready := make(chan struct{})
	go func() { ctlDone <- ctl.Run(ctx, ready) }()
	select {
	case <-ready:
	case err := <-ctlDone:
		return err
	}
	shutDown := make(chan struct{})
	go func() {
		defer close(shutDown)
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "listening on %s://%s\n", scheme, ln.Addr())
	log.Info("manager started", "id", o.ID, "version", version, "leaderElection", o.Election.Mode, "dataDir", dataDir, "store", redactDSN(o.Store), "portRange", o.PortRange,
		"backupTarget", redactTarget(o.BackupTarget), "maxConnections", maxConns, "tls", o.TLSCert != "")
	if tlsConfig != nil {
		err = srv.ServeTLS(lim, "", "")
	} else {
		err = srv.Serve(lim)
	}
	cancel()
	// Requests in flight may still use the controller's connection pool,
	// which Run closes once it returns: let them finish first.
	<-shutDown
	<-ctlDone
	if errors.Is(err, http.ErrServerClosed) {
		log.Info("manager stopped; instances keep running")
		return nil
	}
	return err
}

// lockDataDir locks <dataDir>/manager.lock for as long as the manager
// runs: exclusively with SQLite (one manager per data dir and database),
// shared with MySQL (managers on one host share the data dir, where the
// local instances live, and the database). The lock dies with the process.
//
// A POSIX record lock (fcntl), not flock: it belongs to this process and is
// not inherited, so a child being forked (an instance starting) when the
// manager is killed cannot keep it from a manager started right after.
func lockDataDir(dataDir string, exclusive bool) (unlock func(), err error) {
	path := filepath.Join(dataDir, "manager.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	lk := syscall.Flock_t{Type: syscall.F_RDLCK, Whence: 0, Start: 0, Len: 0}
	if exclusive {
		lk.Type = syscall.F_WRLCK
	}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		f.Close()
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
			if exclusive {
				return nil, fmt.Errorf("data dir %s is in use by another redis-manager (%s is locked): with the SQLite store only one manager may use a data dir; "+
					"stop the other one, or run several managers on a shared MySQL/MariaDB store (--store mysql://...)", dataDir, path)
			}
			return nil, fmt.Errorf("data dir %s is in use by a redis-manager on the SQLite store (%s is locked exclusively); "+
				"managers sharing a data dir must all use the same MySQL/MariaDB store", dataDir, path)
		}
		return nil, fmt.Errorf("lock data dir %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// redisLogger sends go-redis' own messages (dial retries to an instance
// that is down, which the control loop already reports) to slog at debug.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

// adminToken reads the admin token, creating it (mode 0600) on first start.
func adminToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	t := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	return t, nil
}

// readAdminToken reads an admin token file the manager does not own (a
// mounted Secret): it must exist and hold a token.
func readAdminToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--admin-token-file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if len(t) < 16 {
		return "", fmt.Errorf("--admin-token-file %s: want a token of at least 16 characters", path)
	}
	return t, nil
}

// checkBackupTarget validates the --backup-target URL's form.
func checkBackupTarget(target string) error {
	if target == "" {
		return nil
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "file" && u.Scheme != "s3") {
		return fmt.Errorf("--backup-target %q: want file://DIR or s3://BUCKET/PREFIX", target)
	}
	if u.Scheme == "file" && (u.Host != "" || !filepath.IsAbs(u.Path)) {
		return fmt.Errorf("--backup-target %q: a file target needs an absolute path, e.g. file:///var/backups/redis", target)
	}
	return nil
}

// redactTarget drops user info from a backup target URL for logs (the
// engine refuses credentials in the URL; this keeps a pasted one out of
// the log all the same).
func redactTarget(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		return "(unparsable)"
	}
	u.User = nil
	return u.String()
}

// redactDSN hides the password of a mysql:// DSN for logs.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	return u.String()
}

// privateUmask makes everything the manager and the instances it starts
// write private to its user: redis-server and Sentinel create dump.rdb,
// appendonly files and the rewritten sentinel.conf (which holds passwords)
// with mode 0666 minus the umask, and SQLite creates its -wal and -shm files
// the same way. Children inherit the umask.
func privateUmask() error {
	syscall.Umask(0o077)
	if got := syscall.Umask(0o077); got != 0o077 {
		return fmt.Errorf("umask is %#o after setting 077; refusing to write secrets", got)
	}
	return nil
}

// loadTLS reads --tls-cert and --tls-key; nil when neither is given.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// useDNS makes every name lookup of the process go to the DNS server at
// addr (files such as /etc/hosts first, as always): the cluster DNS, for a
// manager outside the cluster that reaches pods by name.
func useDNS(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("--cluster-dns %q: want HOST:PORT: %w", addr, err)
	}
	var d net.Dialer
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	return nil
}
