package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/redis-manager/redis-manager/api"
)

// Defaults and environment variables of the global flags (API.md "CLI").
const (
	DefaultServer  = "http://127.0.0.1:7800"
	DefaultDataDir = "./redis-manager-data"

	EnvServer  = "REDIS_MANAGER_SERVER"
	EnvToken   = "REDIS_MANAGER_TOKEN"
	EnvDataDir = "REDIS_MANAGER_DATA_DIR"
	EnvCA      = "REDIS_MANAGER_CA"

	// TokenFile is the admin token's file name inside the data dir.
	TokenFile = "admin.token"
)

// Global flag names.
const (
	flagServer  = "server"
	flagToken   = "token"
	flagDataDir = "data-dir"
	flagOutput  = "output"
	flagCA      = "ca"
)

// app is what the global flags resolve to, shared by every client command.
type app struct {
	token  string
	output outputFormat

	// Seams for tests: whether a reader/writer is a terminal, and the clock.
	isTerminal func(any) bool
	now        func() time.Time
}

// NewRootCommand returns the redis-manager command tree: the global flags,
// the cluster and job commands, and the extra commands main passes in (serve).
//
// Global persistent flags: --server, --token, --data-dir, -o/--output. The
// defaults of --server and --data-dir already include their environment
// variables, so any subcommand can read them with cmd.Flags().GetString after
// parsing (or, before or outside Execute, with DataDir).
//
// Notes for extra commands (serve):
//   - Read the data dir with DataDir(cmd) (or cmd.Flags().GetString("data-dir"))
//     and do not define --data-dir again. Cobra would accept it (a local flag
//     shadows the inherited one, see Command.LocalFlags and pflag's
//     AddFlagSet, which skips names already present), but then the root flag
//     and its help line are hidden on that command and the two can drift.
//   - Do not use the shorthand -o: pflag panics when an inherited flag's
//     shorthand is redefined.
//   - Return errors from RunE; do not print them. The root prints
//     "error: <message>" (SetErrPrefix) and main only exits with status 1.
//   - Defining a PersistentPreRunE on the command replaces the root's, which
//     only silences the usage text for runtime errors.
func NewRootCommand(version string, extra ...*cobra.Command) *cobra.Command {
	return newRootCommand(version, &app{isTerminal: isTerminal, now: time.Now}, extra...)
}

func newRootCommand(version string, a *app, extra ...*cobra.Command) *cobra.Command {
	a.output = outputTable
	root := &cobra.Command{
		Use:   "redis-manager",
		Short: "Create and operate Redis with Sentinel",
		Long: `redis-manager runs Redis master/replica groups watched by Sentinel and keeps
them healthy. "redis-manager serve" runs the server; every other command is a
client of its REST API.`,
		Version: version,
		// Flag and argument errors keep the usage text; once a command runs,
		// its errors are about the world, and the usage would bury them.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			return nil
		},
	}
	root.SetErrPrefix("error:")

	pf := root.PersistentFlags()
	pf.String(flagServer, envOr(EnvServer, DefaultServer), "server URL (env "+EnvServer+")")
	pf.StringVar(&a.token, flagToken, "", "API token (env "+EnvToken+"; default: the file <data-dir>/"+TokenFile+")")
	pf.String(flagDataDir, envOr(EnvDataDir, DefaultDataDir), "the server's data directory (env "+EnvDataDir+")")
	pf.VarP(&a.output, flagOutput, "o", "output format: table or json")
	pf.String(flagCA, "", "PEM file of the CA that signed an https:// server's certificate (env "+EnvCA+"; default: the system's roots)")

	root.AddCommand(newClusterCommand(a), newJobCommand(a), newBackupCommand(a))
	root.AddCommand(newUserCommand(a), newTokenCommand(a), newAuditCommand(a))
	root.AddCommand(newAlertCommand(a), newNotificationCommand(a))
	root.AddCommand(extra...)
	return root
}

// DataDir returns the data directory for cmd: the --data-dir flag if given,
// else REDIS_MANAGER_DATA_DIR, else the flag's default, else DefaultDataDir.
// It works on any command of the tree, before or after flag parsing.
func DataDir(cmd *cobra.Command) string {
	return flagOrEnv(cmd, flagDataDir, EnvDataDir, DefaultDataDir)
}

// flagOrEnv resolves a flag that falls back to an environment variable,
// reading the environment now rather than when the tree was built.
func flagOrEnv(cmd *cobra.Command, name, env, def string) string {
	f := cmd.Flag(name)
	if f != nil && f.Changed {
		return f.Value.String()
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	if f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	return def
}

// resolveToken finds the API token: --token, else REDIS_MANAGER_TOKEN, else
// <data-dir>/admin.token. A missing file is not an error: the server then
// answers 401 and withToken explains where a token comes from.
func (a *app) resolveToken(cmd *cobra.Command) (string, error) {
	if a.token != "" {
		return a.token, nil
	}
	if t := os.Getenv(EnvToken); t != "" {
		return t, nil
	}
	path := filepath.Join(DataDir(cmd), TokenFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read API token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// withClient adapts a command body that needs an API client to a RunE: it
// builds the client from the global flags and adds a hint to a 401 answer
// when no token was found.
func (a *app) withClient(run func(cmd *cobra.Command, args []string, c *api.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		token, err := a.resolveToken(cmd)
		if err != nil {
			return err
		}
		server := flagOrEnv(cmd, flagServer, EnvServer, DefaultServer)
		client := api.NewClient(server, token)
		if ca := flagOrEnv(cmd, flagCA, EnvCA, ""); ca != "" {
			if err := trustCA(client, ca); err != nil {
				return err
			}
		}
		err = run(cmd, args, client)
		var apiErr *api.Error
		switch {
		case token == "" && errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("%w (no API token found: pass --token, set %s, or point --data-dir at the server's data directory)", err, EnvToken)
		case errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("%w (is the server running at %s? set --server or %s)", err, server, EnvServer)
		}
		return err
	}
}

// json reports whether -o json was asked for.
func (a *app) json() bool { return a.output == outputJSON }

func envOr(env, def string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	return def
}

// trustCA makes c verify the server's certificate against the CA in file
// only (a private CA, or a self-signed certificate).
func trustCA(c *api.Client, file string) error {
	pem, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("--ca %s: no PEM certificate in the file", file)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.HTTPClient.Transport = tr
	return nil
}
