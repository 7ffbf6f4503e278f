// Command gatehouse-bench drives real HTTP sign-in, token and SCIM flows
// against Gatehouse (a process of its own, started here) or, for
// app-broker, against any OpenID provider that brokers an upstream IdP,
// and reports flows/s, latency percentiles, errors and the server's own
// CPU time per flow (from /proc/<pid>/stat) and RSS. See
// docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only by "serve -pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-sso/gatehouse/config"
	"github.com/gatehouse-sso/gatehouse/loadtest"
	"github.com/gatehouse-sso/gatehouse/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(serve(ctx, os.Args[2:]))
	}
	os.Exit(bench(ctx, os.Args[1:]))
}

func bench(ctx context.Context, args []string) int {
	// The tool shares the cores with the server it measures: collecting its
	// garbage less often (its heap stays small) leaves more of them to the
	// server. Serve mode keeps Go's default, like the gatehouse binary.
	debug.SetGCPercent(400)
	fs := flag.NewFlagSet("gatehouse-bench", flag.ContinueOnError)
	var o loadtest.Options
	scen := fs.String("scenario", "saml-jit", "comma-separated scenarios: "+strings.Join(loadtest.Names(), ", "))
	fs.StringVar(&o.Engine, "engine", "sqlite", "sqlite or postgres (a fresh database each invocation)")
	fs.StringVar(&o.Synchronous, "sync", "NORMAL", "SQLite synchronous: NORMAL or FULL")
	fs.IntVar(&o.Replicas, "replicas", 1, "Gatehouse processes on one database; each login hops between them")
	fs.StringVar(&o.Binary, "gatehouse", "bin/gatehouse", `the gatehouse binary, or "self" (this tool's serve mode: same server package, pprof for -cpuprofile)`)
	fs.StringVar(&o.PostgresURL, "pg", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL server (a database is created and dropped)")
	fs.IntVar(&o.N, "n", 20000, "at most this many flows per scenario (also what setup prepares)")
	fs.IntVar(&o.Concurrency, "c", 16, "concurrent flows")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "at most this long per scenario")
	fs.IntVar(&o.Seed, "seed", 1000000, "users bulk-inserted for scim-filter")
	fs.StringVar(&o.ToolProfile, "tool-cpuprofile", "", "write this tool's own CPU profile of each window here (%s = scenario)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", `with -gatehouse self: write Gatehouse's CPU profile of each window here (%s = scenario; with replicas, scenario-r1, scenario-r2, …)`)
	fs.BoolVar(&o.Idle, "idle", false, "at the end, restart Gatehouse on the existing database: time to ready, idle RSS")
	fs.StringVar(&o.IdPAddr, "idp-addr", "127.0.0.1:0", `listen address of the upstream test IdP ("" with -issuer: it runs elsewhere, see -idp-only; a host name such as localhost stays in its issuer)`)
	fs.StringVar(&o.IdPIssuer, "idp-issuer", "", "an upstream test IdP already running (see -idp-only): its issuer; Gatehouse's connections point at it and none is started here")
	idpOnly := fs.Bool("idp-only", false, "only run the upstream test IdP at -idp-addr until interrupted (start it before a broker that fetches its discovery at startup)")
	fs.StringVar(&o.IdPClient, "idp-client-id", "gatehouse-bench", "client id the upstream IdP accepts")
	fs.StringVar(&o.IdPSecret, "idp-client-secret", "bench-secret-0123456789", "client secret the upstream IdP accepts")
	var x loadtest.ExternalBroker
	fs.StringVar(&x.Issuer, "issuer", "", "app-broker against another OpenID provider: its issuer (no Gatehouse is started)")
	fs.StringVar(&x.ClientID, "client-id", "", "with -issuer: the app's client id")
	fs.StringVar(&x.ClientSecret, "client-secret", "", "with -issuer: the app's client secret")
	fs.StringVar(&x.RedirectURI, "redirect-uri", "", "with -issuer: the app's registered redirect URI (never fetched)")
	fs.StringVar(&x.Scopes, "scopes", "", `with -issuer: scopes (default "openid email profile")`)
	fs.BoolVar(&x.NoLoginHint, "no-login-hint", false, "with -issuer: send no login_hint; the upstream makes a new user per sign-in")
	fs.IntVar(&o.ExternalPID, "pid", 0, "with -issuer: the broker's pid, for its CPU time and RSS")
	serverLog := fs.Bool("server-log", false, "show Gatehouse's log (level error) on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *idpOnly {
		idp, err := loadtest.StartIdP(o.IdPAddr, o.IdPClient, o.IdPSecret, "bench.example")
		if err != nil {
			fmt.Fprintln(os.Stderr, "gatehouse-bench:", err)
			return 1
		}
		fmt.Printf("upstream IdP %s (client %s, secret %s); interrupt to stop\n", idp.Issuer, idp.ClientID, o.IdPSecret)
		<-ctx.Done()
		idp.Close()
		return 0
	}
	o.Scenarios = strings.Split(*scen, ",")
	if *scen == "all" {
		o.Scenarios = loadtest.Names()
	}
	if x.Issuer != "" {
		if x.ClientID == "" || x.RedirectURI == "" {
			fmt.Fprintln(os.Stderr, "gatehouse-bench: -issuer needs -client-id and -redirect-uri")
			return 2
		}
		o.External = &x
	}
	o.Out = os.Stdout
	if *serverLog {
		o.ServerLog = os.Stderr
	}
	if _, err := loadtest.Main(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse-bench:", err)
		return 1
	}
	return 0
}

// serve runs Gatehouse exactly as cmd/gatehouse serve wires it (the server
// package), plus net/http/pprof on -pprof's address.
func serve(ctx context.Context, args []string) int {
	var pprofAddr string
	if len(args) >= 2 && (args[0] == "-pprof" || args[0] == "--pprof") {
		pprofAddr, args = args[1], args[2:]
	}
	cfg, err := config.Load(args, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse-bench serve:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	server.TuneGC()
	srv, err := server.New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse-bench serve:", err)
		return 1
	}
	if pprofAddr != "" {
		go func() { _ = http.ListenAndServe(pprofAddr, http.DefaultServeMux) }()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse-bench serve:", err)
		return 1
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() { _ = hs.Serve(ln) }()
	if err := srv.OpenWithRetry(ctx); err != nil {
		return 0
	}
	<-ctx.Done()
	_ = hs.Close()
	_ = srv.Close()
	return 0
}
