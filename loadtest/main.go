package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"time"
)

// Scenarios by name.
var Scenarios = map[string]Scenario{
	"saml-jit":             SAMLIdPInitiated(false),
	"saml-returning":       SAMLIdPInitiated(true),
	"saml-sp":              SAMLSPInitiated,
	"oidc-jit":             OIDCJIT(false),
	"oidc-returning":       OIDCJIT(true),
	"oidc-refused":         OIDCRefused,
	"app-broker":           AppBroker,
	"app-broker-form-post": AppBrokerFormPost,
	"token":                Token,
	"refresh":              Refresh,
	"scim-create":          SCIMCreate,
	"scim-sync":            SCIMSync,
}

// Names lists the scenarios (scim-filter included).
func Names() []string {
	var n []string
	for k := range Scenarios {
		n = append(n, k)
	}
	n = append(n, "scim-filter")
	sort.Strings(n)
	return n
}

// Options of one invocation.
type Options struct {
	Scenarios   []string
	Engine      string // sqlite or postgres
	Synchronous string
	Replicas    int
	Binary      string
	PostgresURL string
	N           int
	Concurrency int
	Duration    time.Duration
	Seed        int // users for scim-filter
	CPUProfile  string
	// ToolProfile, when set, is where the tool writes its own CPU profile
	// of each timed window (%s = scenario): what the load costs besides
	// Gatehouse, on the same cores.
	ToolProfile string
	Idle        bool // also measure a restart on the existing database
	IdPAddr     string
	// IdPIssuer, when set, is an upstream test IdP already running
	// (gatehouse-bench -idp-only): Gatehouse's connections point at it and
	// none is started here, so a side-by-side run (scripts/bench-peers.sh)
	// gives every broker the same processes.
	IdPIssuer   string
	IdPClient   string
	IdPSecret   string
	External    *ExternalBroker
	ExternalPID int
	Out         io.Writer
	// ServerLog receives Gatehouse's log (nil: discarded).
	ServerLog io.Writer
}

// Main runs the scenarios and prints one line per result.
func Main(ctx context.Context, o Options) ([]*Result, error) {
	log := o.Out
	dir, err := os.MkdirTemp("", "gatehouse-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var idp *IdP
	if o.IdPIssuer != "" {
		idp = &IdP{Issuer: strings.TrimSuffix(o.IdPIssuer, "/"), ClientID: o.IdPClient, ClientSecret: o.IdPSecret}
	} else if o.IdPAddr != "" || o.External == nil {
		// With an external broker and no -idp-addr, the upstream IdP runs
		// elsewhere (gatehouse-bench -idp-only, started before the broker).
		if idp, err = StartIdP(o.IdPAddr, o.IdPClient, o.IdPSecret, "bench.example"); err != nil {
			return nil, err
		}
		defer idp.Close()
	}
	tr := NewTransport(o.Concurrency)
	e := &Env{Transport: tr, IdP: idp, Tenant: "bench", Domain: "bench.example", N: o.N, Concurrency: o.Concurrency,
		Duration: o.Duration, Log: log, External: o.External}
	var pids []int
	var servers []*Server
	defer func() {
		for _, s := range servers {
			s.Stop()
		}
	}()
	if o.External != nil {
		e.URLs = []string{o.External.Issuer}
		if o.ExternalPID > 0 {
			pids = append(pids, o.ExternalPID)
		}
		if idp != nil && o.IdPIssuer == "" {
			fmt.Fprintf(log, "upstream IdP %s (client %s): point the broker's OIDC connector at it\n", idp.Issuer, idp.ClientID)
		}
	} else {
		dbURL, err := NewDatabase(ctx, o.Engine, dir, o.PostgresURL)
		if err != nil {
			return nil, err
		}
		defer DropDatabase(context.Background(), o.PostgresURL, dbURL)
		e.DatabaseURL = dbURL
		so := ServerOptions{Binary: o.Binary, DatabaseURL: dbURL, Synchronous: o.Synchronous, DataDir: dir, Stderr: o.ServerLog}
		for i := 0; i < o.Replicas; i++ {
			if o.CPUProfile != "" {
				so.PprofAddr = FreeAddr()
			}
			if i > 0 {
				so.RootKey = servers[0].Options.RootKey
				// Every replica has the first one's public URL: a login
				// may start on one and finish on another.
				so.Env = map[string]string{"GATEHOUSE_PUBLIC_URL": servers[0].URL}
			}
			s, err := StartServer(ctx, so)
			if err != nil {
				return nil, err
			}
			servers = append(servers, s)
			e.URLs = append(e.URLs, s.URL)
			pids = append(pids, s.PID())
			fmt.Fprintf(log, "gatehouse %d: %s pid %d ready in %s (new database, %s)\n", i, s.URL, s.PID(), s.Ready.Round(time.Millisecond), o.Engine)
		}
	}
	// On PostgreSQL, the database's own CPU per flow too.
	dbc, err := newDBCPU(e.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer dbc.Close()
	var results []*Result
	for _, name := range o.Scenarios {
		sc, ok := Scenarios[name]
		if name == "scim-filter" {
			sc, ok = SCIMFilter(o.Seed), true
		}
		if !ok {
			return results, fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(Names(), ", "))
		}
		e.RunID = randHex(3)
		t0 := time.Now()
		flow, err := sc(ctx, e)
		if err != nil {
			return results, fmt.Errorf("%s: setup: %w", name, err)
		}
		fmt.Fprintf(log, "%s: setup %s\n", name, time.Since(t0).Round(time.Millisecond))
		// One profile per replica (name-r1, name-r2, … when there are
		// several), to set the sum against one replica's.
		prof := make(chan error, len(servers))
		profiles := 0
		for i, s := range servers {
			if s.Options.PprofAddr == "" {
				continue
			}
			label := name
			if len(servers) > 1 {
				label = fmt.Sprintf("%s-r%d", name, i+1)
			}
			profiles++
			go func() { prof <- fetchProfile(s.Options.PprofAddr, o.Duration, o.CPUProfile, label) }()
		}
		if dbc != nil {
			if err := dbc.Start(ctx); err != nil {
				return results, err
			}
		}
		stopToolProfile, err := startToolProfile(o.ToolProfile, name)
		if err != nil {
			return results, err
		}
		res, err := Run(ctx, name, RunConfig{Concurrency: o.Concurrency, N: o.N, Duration: o.Duration, PIDs: pids}, flow)
		stopToolProfile()
		if err != nil {
			return results, err
		}
		if o.External != nil {
			res.Server = "broker"
		}
		if dbc != nil {
			if res.DatabaseCPU, err = dbc.Stop(ctx); err != nil {
				return results, err
			}
		}
		for ; profiles > 0; profiles-- {
			if err := <-prof; err != nil {
				res.Notes = append(res.Notes, "profile: "+err.Error())
			}
		}
		results = append(results, res)
		fmt.Fprintln(log, res.String())
		tr.CloseIdleConnections()
	}
	if o.Idle && len(servers) > 0 {
		r, err := idle(ctx, servers[0], o.Replicas)
		if err != nil {
			return results, err
		}
		servers = servers[:0]
		results = append(results, r)
		fmt.Fprintln(log, r.String())
	}
	return results, nil
}

// idle restarts the first server on its existing database and measures
// time to ready and the RSS after a second of idling.
func idle(ctx context.Context, s *Server, replicas int) (*Result, error) {
	o := s.Options
	s.Stop()
	o.PprofAddr = ""
	if replicas > 1 {
		o.Env = nil
	}
	r2, err := StartServer(ctx, o)
	if err != nil {
		return nil, err
	}
	defer r2.Stop()
	time.Sleep(time.Second)
	st, err := ReadProc(r2.PID())
	if err != nil {
		return nil, err
	}
	return &Result{Scenario: "idle-restart", Elapsed: r2.Ready, RSS: st.RSS,
		Notes: []string{fmt.Sprintf("ready %s after exec on the existing database; idle RSS %.1f MB; CPU to ready %s",
			r2.Ready.Round(time.Millisecond), float64(st.RSS)/(1<<20), st.CPU)}}, nil
}

// fetchProfile saves a CPU profile of Gatehouse (self mode) over the
// timed window.
func fetchProfile(addr string, d time.Duration, file, scenario string) error {
	secs := int(d.Seconds())
	if secs < 1 {
		secs = 1
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("pprof: %d", resp.StatusCode)
	}
	name := strings.ReplaceAll(file, "%s", scenario)
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// startToolProfile profiles this process's CPU into pattern (%s = name)
// until the returned function is called; nothing when pattern is empty.
func startToolProfile(pattern, name string) (func(), error) {
	if pattern == "" {
		return func() {}, nil
	}
	f, err := os.Create(strings.ReplaceAll(pattern, "%s", name))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
