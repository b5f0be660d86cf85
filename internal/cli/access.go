package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/redis-manager/redis-manager/api"
)

// The access control commands: users, API tokens and the audit log
// (docs/security.md). Passwords are never flag values: they would be in
// the shell's history and in every process listing.

func newUserCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage console users (admin)",
	}
	cmd.AddCommand(newUserCreateCommand(a), newUserListCommand(a), newUserDeleteCommand(a), newUserSetPasswordCommand(a))
	return cmd
}

// passwordFlags is --password-stdin.
type passwordFlags struct{ stdin bool }

func (p *passwordFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&p.stdin, "password-stdin", false, "read the password from the first line of standard input (default: prompt for it, without echo)")
}

// read gets the password from stdin (--password-stdin) or a prompt on the
// terminal, asked twice.
func (p *passwordFlags) read(a *app, cmd *cobra.Command, name string) (string, error) {
	in := cmd.InOrStdin()
	if p.stdin {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the password from stdin: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("--password-stdin: standard input holds no password")
		}
		return pw, nil
	}
	f, ok := in.(*os.File)
	if !ok || !a.isTerminal(f) {
		return "", errors.New("standard input is not a terminal: pass --password-stdin and write the password to standard input")
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		return string(b), err
	}
	pw, err := ask(fmt.Sprintf("Password for %s: ", name))
	if err != nil {
		return "", err
	}
	again, err := ask("Again: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the passwords differ")
	}
	return pw, nil
}

func newUserCreateCommand(a *app) *cobra.Command {
	var (
		role string
		pw   passwordFlags
	)
	cmd := &cobra.Command{
		Use:   "create NAME --role viewer|operator|admin",
		Short: "Create a console user",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			password, err := pw.read(a, cmd, args[0])
			if err != nil {
				return err
			}
			u, err := c.CreateUser(cmd.Context(), api.CreateUserRequest{Name: args[0], Password: password, Role: role})
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), u)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s created with role %s\n", u.Name, u.Role)
			return nil
		}),
	}
	cmd.Flags().StringVar(&role, "role", "", "viewer, operator or admin")
	_ = cmd.MarkFlagRequired("role")
	pw.add(cmd)
	return cmd
}

func newUserListCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List console users",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(cmd *cobra.Command, _ []string, c *api.Client) error {
			us, err := c.ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			if us == nil {
				us = []api.User{}
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"users": us})
			}
			t := newTable(cmd.OutOrStdout())
			row(t, "NAME", "ROLE", "AGE")
			for _, u := range us {
				row(t, u.Name, u.Role, age(u.CreatedAt, a.now()))
			}
			return t.Flush()
		}),
	}
}

func newUserDeleteCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a console user and end their sessions",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			if err := c.DeleteUser(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"deleted": args[0]})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s deleted\n", args[0])
			return nil
		}),
	}
}

func newUserSetPasswordCommand(a *app) *cobra.Command {
	var pw passwordFlags
	cmd := &cobra.Command{
		Use:   "set-password NAME",
		Short: "Set a user's password",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			password, err := pw.read(a, cmd, args[0])
			if err != nil {
				return err
			}
			u, err := c.UpdateUser(cmd.Context(), args[0], api.UpdateUserRequest{Password: &password})
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), u)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "password of user %s changed\n", u.Name)
			return nil
		}),
	}
	pw.add(cmd)
	return cmd
}

func newTokenCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage API tokens (admin)",
	}
	cmd.AddCommand(newTokenCreateCommand(a), newTokenListCommand(a), newTokenRevokeCommand(a))
	return cmd
}

func newTokenCreateCommand(a *app) *cobra.Command {
	var (
		role string
		days int
	)
	cmd := &cobra.Command{
		Use:   "create NAME --role viewer|operator|admin [--expires-in-days N]",
		Short: "Create an API token; it is printed this once",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			tok, err := c.CreateToken(cmd.Context(), api.CreateTokenRequest{Name: args[0], Role: role, ExpiresInDays: days})
			if err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), tok)
			}
			// The token alone on stdout, so that $(...) captures it; the
			// rest on stderr.
			exp := "never"
			if tok.ExpiresAt != nil {
				exp = tok.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s (role %s, expires %s); it is shown only now:\n", tok.Name, tok.Role, exp)
			fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
			return nil
		}),
	}
	cmd.Flags().StringVar(&role, "role", "", "viewer, operator or admin")
	_ = cmd.MarkFlagRequired("role")
	cmd.Flags().IntVar(&days, "expires-in-days", 0, "the token expires after this many days (default: never)")
	return cmd
}

func newTokenListCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List API tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(cmd *cobra.Command, _ []string, c *api.Client) error {
			ts, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			if ts == nil {
				ts = []api.Token{}
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"tokens": ts})
			}
			t := newTable(cmd.OutOrStdout())
			row(t, "NAME", "ROLE", "AGE", "EXPIRES", "LAST USED")
			now := a.now()
			for _, k := range ts {
				exp, used := "never", "-"
				if k.ExpiresAt != nil {
					exp = k.ExpiresAt.UTC().Format(time.RFC3339)
				}
				if k.LastUsedAt != nil {
					used = age(*k.LastUsedAt, now) + " ago"
				}
				row(t, k.Name, k.Role, age(k.CreatedAt, now), exp, used)
			}
			return t.Flush()
		}),
	}
}

func newTokenRevokeCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an API token and end the sessions signed in with it",
		Args:  cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string, c *api.Client) error {
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"revoked": args[0]})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
			return nil
		}),
	}
}

func newAuditCommand(a *app) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "audit [--limit N]",
		Short: "Show the audit log, newest first (admin)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(cmd *cobra.Command, _ []string, c *api.Client) error {
			es, err := c.Audit(cmd.Context(), limit)
			if err != nil {
				return err
			}
			if es == nil {
				es = []api.AuditEntry{}
			}
			if a.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"entries": es})
			}
			t := newTable(cmd.OutOrStdout())
			row(t, "AT", "PRINCIPAL", "REMOTE", "METHOD", "PATH", "STATUS", "SUMMARY")
			for _, e := range es {
				who := dash(e.Principal)
				if e.Kind != "" {
					who = e.Kind + ":" + e.Principal
				}
				row(t, e.At.UTC().Format(time.RFC3339), who, e.Remote, e.Method, e.Path, e.Status, dash(e.Summary))
			}
			return t.Flush()
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many entries (default: the server's, 100)")
	return cmd
}
