package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// These tests set environment variables, so they do not run in parallel.

func TestTokenSources(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"--token wins", map[string]string{EnvToken: "from-env"}, []string{"--token", "from-flag", "--data-dir", dir}, "from-flag"},
		{"env before file", map[string]string{EnvToken: "from-env"}, []string{"--data-dir", dir}, "from-env"},
		{"file in --data-dir", nil, []string{"--data-dir", dir}, "from-file"},
		{"file in $" + EnvDataDir, map[string]string{EnvDataDir: dir}, nil, "from-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvToken, "")
			t.Setenv(EnvDataDir, "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			f, srv := newFakeAPI(t, tt.want)
			r := runCLI(t, false, "", append([]string{"cluster", "list", "--server", srv.URL}, tt.args...)...)
			if r.err != nil {
				t.Fatalf("list: %v", r.err)
			}
			if got := f.lastRequest(t, "GET").Auth; got != "Bearer "+tt.want {
				t.Errorf("Authorization = %q, want Bearer %s", got, tt.want)
			}
		})
	}
}

func TestServerFromEnv(t *testing.T) {
	t.Setenv(EnvToken, "secret")
	f, srv := newFakeAPI(t, "secret")
	t.Setenv(EnvServer, srv.URL)
	if r := runCLI(t, false, "", "cluster", "list"); r.err != nil {
		t.Fatal(r.err)
	}
	if f.count("GET") != 1 {
		t.Error("the server of $" + EnvServer + " got no request")
	}
}

func TestMissingTokenHint(t *testing.T) {
	t.Setenv(EnvToken, "")
	t.Setenv(EnvDataDir, "")
	_, srv := newFakeAPI(t, "secret")
	r := runCLI(t, false, "", "cluster", "list", "--server", srv.URL, "--data-dir", t.TempDir())
	if r.err == nil || !strings.Contains(r.err.Error(), "unauthorized") || !strings.Contains(r.err.Error(), "--token") {
		t.Fatalf("err = %v, want the 401 with a hint", r.err)
	}
}

func TestDataDirForExtraCommands(t *testing.T) {
	// The serve command is passed in by main; it reads the root's
	// persistent --data-dir rather than defining its own.
	run := func(t *testing.T, args ...string) (viaHelper, viaFlags string) {
		t.Helper()
		serve := &cobra.Command{Use: "serve", RunE: func(cmd *cobra.Command, _ []string) error {
			viaHelper = DataDir(cmd)
			var err error
			viaFlags, err = cmd.Flags().GetString("data-dir")
			return err
		}}
		root := NewRootCommand("test", serve)
		root.SetArgs(args)
		root.SetOut(new(bytes.Buffer))
		root.SetErr(new(bytes.Buffer))
		if err := root.ExecuteContext(t.Context()); err != nil {
			t.Fatal(err)
		}
		return viaHelper, viaFlags
	}

	t.Setenv(EnvDataDir, "")
	if h, f := run(t, "serve"); h != DefaultDataDir || f != DefaultDataDir {
		t.Errorf("default: DataDir %q, flag %q", h, f)
	}
	if h, f := run(t, "serve", "--data-dir", "/srv/rm"); h != "/srv/rm" || f != "/srv/rm" {
		t.Errorf("flag: DataDir %q, flag %q", h, f)
	}
	t.Setenv(EnvDataDir, "/var/lib/rm")
	if h, f := run(t, "serve"); h != "/var/lib/rm" || f != "/var/lib/rm" {
		t.Errorf("env: DataDir %q, flag %q", h, f)
	}
	if h, f := run(t, "--data-dir", "/srv/rm", "serve"); h != "/srv/rm" || f != "/srv/rm" {
		t.Errorf("flag before the command: DataDir %q, flag %q", h, f)
	}
}

func TestConnectionRefusedHint(t *testing.T) {
	t.Parallel()
	_, srv := newFakeAPI(t, "secret")
	url := srv.URL
	srv.Close()
	r := runCLI(t, false, "", "cluster", "list", "--server", url, "--token", "secret")
	if r.err == nil || !strings.Contains(r.err.Error(), "is the server running at "+url) {
		t.Fatalf("err = %v, want a hint naming the server", r.err)
	}
}
