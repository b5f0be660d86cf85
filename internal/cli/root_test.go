package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// These tests set environment variables, so they do not run in parallel.

func TestTokenSources(t *testing.T) {
	s := startServer(t, testenv.ManagerOptions{})
	real := s.Token
	tests := []struct {
		name    string
		fileTok string
		env     map[string]string
		args    func(dir string) []string
	}{
		{"--token wins", "wrong-file", map[string]string{EnvToken: "wrong-env"}, func(dir string) []string { return []string{"--token", real, "--data-dir", dir} }},
		{"env before file", "wrong-file", map[string]string{EnvToken: real}, func(dir string) []string { return []string{"--data-dir", dir} }},
		{"file in --data-dir", real, nil, func(dir string) []string { return []string{"--data-dir", dir} }},
		{"file in $" + EnvDataDir, real, map[string]string{EnvDataDir: "DIR"}, func(string) []string { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte(tt.fileTok+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv(EnvToken, "")
			t.Setenv(EnvDataDir, "")
			for k, v := range tt.env {
				t.Setenv(k, strings.ReplaceAll(v, "DIR", dir))
			}
			r := runCLI(t, false, "", append([]string{"cluster", "list", "--server", s.URL}, tt.args(dir)...)...)
			if r.err != nil {
				t.Fatalf("list: %v", r.err)
			}
			last := s.lastRequest(t, "GET")
			if last.Auth != "Bearer "+real || last.Status != 200 {
				t.Errorf("Authorization = %q (answer %d), want Bearer <the server's token>", last.Auth, last.Status)
			}
		})
	}
}

func TestServerFromEnv(t *testing.T) {
	s := startServer(t, testenv.ManagerOptions{})
	t.Setenv(EnvToken, s.Token)
	t.Setenv(EnvServer, s.URL)
	r := runCLI(t, false, "", "cluster", "list")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if s.count("GET") != 1 || r.stdout != "NAME  PHASE  SHARDS  REPLICAS  SENTINELS  AGE\n" {
		t.Errorf("the server of $"+EnvServer+" got %d requests; stdout %q", s.count("GET"), r.stdout)
	}
}

func TestMissingTokenHint(t *testing.T) {
	t.Setenv(EnvToken, "")
	t.Setenv(EnvDataDir, "")
	s := startServer(t, testenv.ManagerOptions{})
	r := runCLI(t, false, "", "cluster", "list", "--server", s.URL, "--data-dir", t.TempDir())
	if r.err == nil || !strings.Contains(r.err.Error(), "unauthorized") || !strings.Contains(r.err.Error(), "--token") {
		t.Fatalf("err = %v, want the 401 with a hint", r.err)
	}
	if last := s.lastRequest(t, "GET"); last.Status != 401 {
		t.Errorf("the server answered %d, want 401", last.Status)
	}
	var apiErr *api.Error
	if !errors.As(r.err, &apiErr) || apiErr.StatusCode != 401 {
		t.Errorf("err = %#v, want the server's 401", r.err)
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
	s := startServer(t, testenv.ManagerOptions{})
	url := s.Manager.URL
	s.Stop()
	r := runCLI(t, false, "", "cluster", "list", "--server", url, "--token", s.Token)
	if r.err == nil || !strings.Contains(r.err.Error(), "is the server running at "+url) {
		t.Fatalf("err = %v, want a hint naming the server", r.err)
	}
}
