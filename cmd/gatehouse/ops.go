package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-sso/gatehouse/apiclient"
	"github.com/gatehouse-sso/gatehouse/backup"
	"github.com/gatehouse-sso/gatehouse/config"
	"github.com/gatehouse-sso/gatehouse/declarative"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/server"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// cutFlag removes --name VALUE (or --name=VALUE, one dash too) from args
// and returns its value: flags this command reads before config.Load.
func cutFlag(args []string, name string) (string, []string) {
	var rest []string
	val := ""
	for i := 0; i < len(args); i++ {
		a := strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-")
		switch {
		case a == name && i+1 < len(args) && args[i] != a:
			val = args[i+1]
			i++
		case strings.HasPrefix(a, name+"=") && args[i] != a:
			val = strings.TrimPrefix(a, name+"=")
		default:
			rest = append(rest, args[i])
		}
	}
	return val, rest
}

// applyConfig applies a gatehouse.yaml through the server's own API
// handler (in process, as the superuser) once the database is ready.
func applyConfig(ctx context.Context, cfg *config.Config, srv *server.Server, path string, log *slog.Logger) error {
	token := cfg.AdminToken
	if token == "" {
		token = srv.NewAdminToken
	}
	if token == "" {
		return fmt.Errorf("--config needs the superuser token: set GATEHOUSE_ADMIN_TOKEN")
	}
	n, err := declarative.ApplyFile(ctx, apiclient.InProcess(srv.Handler(), token), path, declarative.Options{}, nil)
	if err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	log.Info("configuration applied", "file", path, "changes", n)
	return nil
}

// backupCmd: gatehouse backup FILE [flags]; restoreCmd: gatehouse restore
// FILE [flags]. The flags and GATEHOUSE_* variables are serve's (they say
// where the database is).
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer, restore bool) int {
	name := "backup"
	if restore {
		name = "restore"
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "usage: gatehouse %s FILE [--data-dir DIR | --database-url URL]\n", name)
		return 2
	}
	file, rest := args[0], args[1:]
	cfg, err := config.Load(rest, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse %s: configuration: %v\n", name, err)
		return 2
	}
	keyNote := "the root key in GATEHOUSE_ROOT_KEY"
	if cfg.RootKey == nil {
		keyNote = "the root key file " + cfg.RootKeyFile
	}
	if restore {
		err = backup.Restore(ctx, file, cfg.DatabaseURL)
	} else {
		err = backup.Backup(ctx, cfg.DatabaseURL, file)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse %s: %v\n", name, err)
		return 1
	}
	if restore {
		fmt.Fprintf(stdout, "Restored %s into %s.\nStart Gatehouse with the root key the backup was made under (%s here), or sealed secrets will not open.\n", file, cfg.DatabaseURL, keyNote)
	} else {
		fmt.Fprintf(stdout, "Backed up %s to %s.\nBack up %s too, kept apart: the backup's secrets are sealed under it.\n", cfg.DatabaseURL, file, keyNote)
	}
	return 0
}

// printMigrations writes `migrate --status` as a table, with a last line
// that says whether anything is pending.
func printMigrations(w io.Writer, states []sqlstore.MigrationState) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tMIGRATION\tSTATE\tAPPLIED AT")
	pending := 0
	for _, s := range states {
		state, at := "applied", s.AppliedAt.UTC().Format(time.RFC3339)
		if !s.Applied {
			state, at = "pending", "-"
			pending++
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Version, s.Name, state, at)
	}
	_ = tw.Flush()
	if pending == 0 {
		fmt.Fprintln(w, "The schema is up to date.")
	} else {
		fmt.Fprintf(w, "%d migration(s) pending: `gatehouse migrate` (or the next start) applies them.\n", pending)
	}
}

// cutBool removes a boolean flag (--name, -name, --name=true|false) and
// reports its value.
func cutBool(args []string, name string) (bool, []string) {
	var rest []string
	val := false
	for _, a := range args {
		b := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		switch {
		case a != b && b == name:
			val = true
		case a != b && strings.HasPrefix(b, name+"="):
			val = strings.TrimPrefix(b, name+"=") == "true"
		default:
			rest = append(rest, a)
		}
	}
	return val, rest
}

// bootstrapApply is `gatehouse apply -f FILE --database-url URL`: it
// applies a gatehouse.yaml to an empty instance without a server running,
// through the API handler in process (as a superuser whose token is made
// for this run and never leaves it). An instance that has tenants is
// refused: change it through its API, where every replica sees the change
// and the audit log names the token.
func bootstrapApply(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	file, args := cutFlag(args, "file")
	if file == "" {
		file, args = cutFlag(args, "f")
	}
	secretsOut, args := cutFlag(args, "secrets-out")
	dry, args := cutBool(args, "dry-run")
	if file == "" {
		fmt.Fprintln(stderr, "usage: gatehouse apply -f FILE --database-url URL [--data-dir DIR] [--dry-run] [--secrets-out FILE]")
		return 2
	}
	cfg, err := config.Load(args, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse apply: configuration:", err)
		return 2
	}
	cfg.AdminToken = secret.NewToken("gh_su_") // in-process only
	log := newLogger(cfg, stderr)
	srv, err := server.New(cfg, log)
	if err == nil {
		err = srv.Open(ctx)
	}
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse apply:", err)
		return 1
	}
	defer srv.Close()
	c := apiclient.InProcess(srv.Handler(), cfg.AdminToken)
	var tenants []any
	if tenants, err = apiclient.List[any](ctx, c, "/api/v1/tenants"); err == nil && len(tenants) > 0 {
		err = fmt.Errorf("this instance already has %d tenant(s): --database-url only bootstraps an empty one; apply through its API (--url, --token)", len(tenants))
	}
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse apply:", err)
		return 1
	}
	decl, err := declarative.ParseFile(file)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse apply:", err)
		return 1
	}
	opts := declarative.Options{}
	if secretsOut != "" && !dry {
		out, err := os.OpenFile(secretsOut, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(stderr, "gatehouse apply:", err)
			return 1
		}
		defer out.Close()
		opts.SecretsOut = out
	}
	plan, err := declarative.NewPlan(ctx, c, decl, opts)
	if err == nil && !dry {
		err = plan.Apply(ctx, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse apply:", err)
		return 1
	}
	if dry {
		fmt.Fprintln(stdout, "Plan (dry run; nothing written):")
		plan.Print(stdout)
		return 0
	}
	fmt.Fprintf(stdout, "Bootstrapped %s with %d change(s).\n", cfg.DatabaseURL, plan.Changes())
	return 0
}

// hasFlag reports whether args set --name (or -name, --name=...).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		b := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a != b && (b == name || strings.HasPrefix(b, name+"=")) {
			return true
		}
	}
	return false
}
