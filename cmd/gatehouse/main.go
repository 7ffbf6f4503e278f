// Command gatehouse runs the Gatehouse single sign-on service and its
// command-line client. main only turns flags and environment into wiring.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-sso/gatehouse/config"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/server"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

const usage = `Gatehouse: single sign-on with just-in-time provisioning.

Usage:
  gatehouse serve [--config FILE] [flags]   run the server (see README for GATEHOUSE_* variables);
                                   --config applies a gatehouse.yaml at start
  gatehouse migrate [--status]     apply database migrations, or show their state
  gatehouse rotate-root-key [--retire-old]   re-wrap stored secrets under a new root key, while serving
  gatehouse backup FILE            online copy of the SQLite database (PostgreSQL: pg_dump)
  gatehouse restore FILE           put a backup in place in a fresh data directory
  gatehouse version                print the version
  gatehouse tenants|users|groups|tokens|webhooks ...   admin API client (gatehouse help-cli)
  gatehouse apply -f FILE [--dry-run] | export       configuration as code (admin API client;
                                   --database-url instead bootstraps an empty instance)
  gatehouse import users.csv|users.json              bulk users and groups (admin API client)

Run "gatehouse serve -h" for the server's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "migrate":
		return migrate(args[1:], stdout, stderr)
	case "apply":
		if hasFlag(args[1:], "database-url") {
			return bootstrapApply(ctx, args[1:], stdout, stderr)
		}
	case "backup", "restore":
		return backupCmd(ctx, args[1:], stdout, stderr, args[0] == "restore")
	case "rotate-root-key":
		return rotateRootKey(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "gatehouse", buildVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	return runCLI(ctx, args, stdout, stderr)
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	configFile, args := cutFlag(args, "config")
	if configFile == "" {
		configFile = os.Getenv("GATEHOUSE_CONFIG")
	}
	cfg, err := config.Load(args, os.Getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "gatehouse: configuration:", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	server.Version = buildVersion()
	server.TuneGC()
	srv, err := server.New(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse:", err)
		return 1
	}
	// Tracing (when on) is global in the process, so the OpenID provider
	// library's own spans join the request's trace; srv.Close flushes it.
	srv.Tracing().SetGlobal()
	if cfg.RootKey == nil {
		// rotate-root-key edits the key file; pick its changes up.
		defer secret.WatchKeyFile(srv.Keyring(), cfg.RootKeyFile, secret.KeyFilePollInterval, log)()
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse: GATEHOUSE_ADDR %s: %v\n", cfg.Addr, err)
		return 1
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "error", err)
			stop()
		}
	}()
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "gatehouse: GATEHOUSE_METRICS_ADDR %s: %v\n", cfg.MetricsAddr, err)
			return 1
		}
		ms := &http.Server{Handler: srv.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = ms.Serve(mln) }()
		defer ms.Close()
		log.Info("metrics listening", "addr", mln.Addr().String())
	}
	log.Info("listening", "addr", ln.Addr().String(), "public_url", cfg.PublicURL, "version", buildVersion())

	started := time.Now()
	if err := srv.OpenWithRetry(ctx); err != nil {
		log.Info("stopped before the database was ready")
		return 0
	}
	log.Info("ready", "database", srv.Store().Engine(), "startup_ms", time.Since(started).Milliseconds())
	if configFile != "" {
		if err := applyConfig(ctx, cfg, srv, configFile, log); err != nil {
			log.Error("configuration not applied; stopping", "error", err)
			_ = hs.Close()
			_ = srv.Close()
			return 1
		}
	}
	printWelcome(stdout, cfg, srv.NewAdminToken)

	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	_ = hs.Shutdown(sctx)
	_ = srv.Close()
	return 0
}

func printWelcome(w io.Writer, cfg *config.Config, newToken string) {
	fmt.Fprintf(w, "\nGatehouse is running at %s\n", cfg.PublicURL)
	fmt.Fprintf(w, "  console:   %s/console\n", cfg.PublicURL)
	fmt.Fprintf(w, "  admin API: %s/api/v1 (OpenAPI: %s/api/v1/openapi.json)\n", cfg.PublicURL, cfg.PublicURL)
	switch {
	case newToken != "":
		fmt.Fprintf(w, "\nFirst start: your superuser token (shown once, only its digest is stored):\n\n    %s\n\n", newToken)
		fmt.Fprintf(w, "Paste it into the console, or use it with the API and CLI:\n")
		fmt.Fprintf(w, "    export GATEHOUSE_URL=%s GATEHOUSE_TOKEN=%s\n", cfg.PublicURL, newToken)
		fmt.Fprintf(w, "    curl -H \"Authorization: Bearer $GATEHOUSE_TOKEN\" $GATEHOUSE_URL/api/v1/tenants\n\n")
	case cfg.AdminToken != "":
		fmt.Fprintf(w, "  superuser: the token in GATEHOUSE_ADMIN_TOKEN\n\n")
	default:
		fmt.Fprintf(w, "  superuser: the token printed on first start (lost it? delete %s/admin-token.sha256 and restart, or set GATEHOUSE_ADMIN_TOKEN)\n\n", cfg.DataDir)
	}
}

func migrate(args []string, stdout, stderr io.Writer) int {
	status := false
	var rest []string
	for _, a := range args {
		if a == "--status" || a == "-status" {
			status = true
			continue
		}
		rest = append(rest, a)
	}
	cfg, err := config.Load(rest, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse migrate: configuration:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if status {
		states, err := sqlstore.Status(ctx, cfg.DatabaseURL)
		if err != nil {
			fmt.Fprintln(stderr, "gatehouse migrate: database unreachable or unreadable:", err)
			return 1
		}
		printMigrations(stdout, states)
		return 0
	}
	if path, ok := strings.CutPrefix(cfg.DatabaseURL, "sqlite://"); ok {
		// Like serve, migrate creates a new SQLite database's directory.
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			fmt.Fprintln(stderr, "gatehouse migrate: GATEHOUSE_DATA_DIR:", err)
			return 1
		}
	}
	if err := sqlstore.Migrate(ctx, cfg.DatabaseURL); err != nil {
		fmt.Fprintln(stderr, "gatehouse migrate: failed:", err)
		return 1
	}
	fmt.Fprintln(stdout, "migrations applied")
	return 0
}
