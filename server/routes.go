package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/api"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/mock"
	"github.com/gatehouse-sso/gatehouse/connector/oauth2"
	"github.com/gatehouse-sso/gatehouse/connector/oidc"
	"github.com/gatehouse-sso/gatehouse/connector/saml"
	"github.com/gatehouse-sso/gatehouse/console"
	"github.com/gatehouse-sso/gatehouse/op"
	"github.com/gatehouse-sso/gatehouse/outbound"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/ratelimit"
	"github.com/gatehouse-sso/gatehouse/scim"
	"github.com/gatehouse-sso/gatehouse/session"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
	"github.com/gatehouse-sso/gatehouse/web"
	"github.com/gatehouse-sso/gatehouse/webhook"
)

// registerConnectors makes every protocol available. The mock type is
// DevOnly: connector.Lookup hides it unless GATEHOUSE_DEV=1.
func registerConnectors() {
	oidc.Register()
	oauth2.Register()
	saml.Register()
	mock.Register()
}

// replay is the connectors' replay cache: the store's UseOnce, shared by
// every replica.
type replay struct{ store gatehouse.Store }

func (r replay) UseOnce(ctx context.Context, key string, expires time.Time) error {
	return r.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.UseOnce(ctx, key, expires) })
}

// routes builds the application routes on an opened store.
func (s *Server) routes(sqlst *sqlstore.Store) (http.Handler, error) {
	registerConnectors()
	// One span per transaction when tracing is on; sqlst itself otherwise.
	st := s.tracing.Store(sqlst)
	policy := outbound.Policy{Allow: s.cfg.OutboundAllow, AllowLoopback: s.cfg.PublicURLIsLoopback()}
	env := connector.Env{
		PublicURL:  s.cfg.PublicURL,
		HTTPClient: s.tracing.Client(outbound.NewClient(policy)),
		Clock:      s.clock,
		Replay:     replay{st},
		Logger:     s.log,
		Dev:        s.cfg.Dev,
	}
	resolver := provision.New(st, provision.Options{Clock: s.clock, Logger: s.log, RequestID: web.RequestIDFromContext})
	sessions, err := session.New(session.Config{Store: st, Keyring: s.keyring, PublicURL: s.cfg.PublicURL, Clock: s.clock, Logger: s.log})
	if err != nil {
		return nil, err
	}
	// The authorize endpoint serves the login in place (the browser goes
	// from the app straight to the IdP); login is set below.
	var login *web.Server
	provider, err := op.NewProvider(op.Config{
		Store: st, Keyring: s.keyring, PublicURL: s.cfg.PublicURL, Logger: s.log, Clock: s.clock,
		Dev: s.cfg.Dev, Sessions: sessions, HTTPClient: env.HTTPClient,
		Login: func(w http.ResponseWriter, r *http.Request, loginURL string) { login.ServeLogin(w, r, loginURL) },
	})
	if err != nil {
		return nil, err
	}
	login, err = web.NewServer(web.Config{
		Store: st, Keyring: s.keyring, Resolver: s.metrics.InstrumentResolver(resolver), PublicURL: s.cfg.PublicURL, Dev: s.cfg.Dev,
		Logger: s.log, Clock: s.clock, ConnectorEnv: env, Sessions: sessions,
		// Sign-out at Gatehouse signs the user out of apps that asked for
		// back-channel logout (OIDC Back-Channel Logout 1.0).
		OnLogout: provider.SessionEnded,
		// A login that returns to an app's authorize request answers it
		// with a code in the login's own transaction.
		OnLoginTx: func(ctx context.Context, tx gatehouse.Tx, _ *http.Request, ev web.LoginEvent) (web.LoginAnswer, error) {
			next, page, err := provider.AnswerLogin(ctx, tx, ev.Tenant, ev.User, ev.Session, ev.ReturnTo)
			return web.LoginAnswer{Redirect: next, Page: page}, err
		},
	})
	if err != nil {
		return nil, err
	}
	apiCfg := api.Config{
		Store: st, Keyring: s.keyring, SuperuserTokenDigest: s.adminDigest, PublicURL: s.cfg.PublicURL,
		Dev: s.cfg.Dev, Logger: s.log, Clock: s.clock, ConnectorEnv: env, Provisioner: resolver, OutboundPolicy: policy,
	}
	admin := api.New(apiCfg)
	// The console runs "test connection" logins through the login handler.
	var tester console.Tester = login
	cons, err := console.New(console.Config{
		Store: st, Keyring: s.keyring, PublicURL: s.cfg.PublicURL, Logger: s.log, Clock: s.clock, Dev: s.cfg.Dev,
		SuperuserTokenDigest: s.adminDigest, Sessions: sessions, Resolver: resolver, Tester: tester, ConnectorEnv: env,
		Admin: api.NewService(apiCfg, "console"),
	})
	if err != nil {
		return nil, err
	}
	scimHandler := scim.New(scim.Config{Store: st, Clock: s.clock, Logger: s.log, PublicURL: s.cfg.PublicURL})

	perIP := ratelimit.New(s.cfg.RateLimitIP, int(2*s.cfg.RateLimitIP))
	perTenant := ratelimit.New(s.cfg.RateLimitTenant, int(2*s.cfg.RateLimitTenant))
	limited := func(h http.Handler) http.Handler {
		h = perTenant.Middleware(tenantKey, h)
		return perIP.Middleware(func(r *http.Request) string { return clientIP(r, s.cfg.TrustedProxies).String() }, h)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/login", http.StatusFound)
	})
	mux.Handle("/api/v1/", admin)
	mux.Handle("/api/v1", admin)
	mux.Handle("/scim/v2/", limited(scimHandler))
	mux.Handle("/t/", limited(login))
	// The OpenID provider's per-tenant endpoints are more specific than "/t/".
	for _, p := range op.Patterns {
		mux.Handle(p, limited(provider))
	}
	mux.Handle("/sso/", limited(login))
	mux.Handle("/login", limited(login))
	mux.Handle("/logout", login)
	mux.Handle("/console", cons)
	mux.Handle("/console/", cons)
	s.startWebhooks(webhook.New(webhook.Options{Store: st, Sealer: s.keyring, Client: env.HTTPClient, Clock: s.clock, Logger: s.log,
		Observe: webhook.Observer(s.metrics.Registry())}))
	return mux, nil
}

// startWebhooks runs the webhook delivery worker until Close. Every replica
// runs one; they share the work through leases in the database.
func (s *Server) startWebhooks(w *webhook.Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	s.stopWebhooks = func() { cancel(); <-done }
}

// tenantKey is the rate-limit key of a tenant: the tenant in /t/{tenant}/,
// the connection in /sso/{type}/{id}/ (each belongs to one tenant), the
// bearer token for SCIM (the tenant comes from it).
func tenantKey(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/t/"):
		seg, _, _ := strings.Cut(strings.TrimPrefix(p, "/t/"), "/")
		return "t:" + seg
	case strings.HasPrefix(p, "/sso/"):
		parts := strings.SplitN(strings.TrimPrefix(p, "/sso/"), "/", 3)
		if len(parts) >= 2 {
			return "c:" + parts[1]
		}
	case strings.HasPrefix(p, "/scim/"):
		if a := r.Header.Get("Authorization"); a != "" {
			d := sha256.Sum256([]byte(a))
			return "s:" + hex.EncodeToString(d[:8])
		}
	}
	return ""
}
