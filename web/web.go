// Package web serves the browser side of sign-in: the tenant login and
// chooser pages, home-realm discovery, the connections' callbacks and SAML
// endpoints, the landing page and logout. Every refusal is a human page
// that says what happened, whom to ask, and a reference id.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/session"
)

// Config configures the web handler.
type Config struct {
	Store    gatehouse.Store
	Keyring  *secret.Keyring
	Resolver Provisioner
	// PublicURL is the external base URL (https in production).
	PublicURL string
	// Dev enables development-only connection types (the mock).
	Dev    bool
	Logger *slog.Logger
	Clock  gatehouse.Clock
	// ConnectorEnv is passed to connectors; PublicURL, Clock, Logger, Dev
	// and Replay are filled from this Config when empty.
	ConnectorEnv connector.Env
	// Sessions is shared with the OIDC provider and console; built from
	// this Config when nil.
	Sessions *session.Manager
	// OnLogin runs after a session was started, before the redirect. It
	// may return another local path to go to (validated like ReturnTo).
	OnLogin func(ctx context.Context, r *http.Request, ev LoginEvent) (redirect string, err error)
	// OnLoginTx runs inside the login's own transaction (user, link,
	// audit, session), after the session is written there, for a login
	// with a return address. It may write in tx and answer the browser
	// instead of the return address (the OpenID provider: the app's
	// redirect URI with a code it issued in tx, or the form_post page that
	// posts it). An error fails the login: nothing of it is committed.
	OnLoginTx func(ctx context.Context, tx gatehouse.Tx, r *http.Request, ev LoginEvent) (LoginAnswer, error)
	// OnLogout runs after a browser session was ended by sign-out, so the
	// OpenID provider can send back-channel logout to apps.
	OnLogout func(ctx context.Context, sess *gatehouse.Session)
	// CanTest decides who may run a "test connection" login (which shows
	// the claims received and the provisioning preview, and creates
	// nothing). Default: a signed-in tenant admin (a member of one of the
	// tenant's AdminGroups).
	CanTest func(r *http.Request, tenant *gatehouse.Tenant) bool
}

// LoginAnswer is where OnLoginTx sends the browser instead of the login's
// return address: Redirect, an absolute URL, or Page, written once the
// login has committed. Neither: the return address.
type LoginAnswer struct {
	Redirect string
	Page     http.HandlerFunc
}

// LoginEvent describes a finished login, for Config.OnLogin.
type LoginEvent struct {
	Tenant     *gatehouse.Tenant
	Connection *gatehouse.Connection
	User       *gatehouse.User
	Session    *gatehouse.Session
	Identity   *gatehouse.Identity
	// ReturnTo is the flow's validated local path, or "".
	ReturnTo string
}

// Server is the web handler. New returns it as an http.Handler; NewServer
// gives access to StartLogin and Sessions for the console and the OIDC
// provider.
type Server struct {
	store     gatehouse.Store
	keyring   *secret.Keyring
	resolver  Provisioner
	publicURL string
	basePath  string
	dev       bool
	log       *slog.Logger
	clock     gatehouse.Clock
	env       connector.Env
	sessions  *session.Manager
	onLogin   func(context.Context, *http.Request, LoginEvent) (string, error)
	onLoginTx func(context.Context, gatehouse.Tx, *http.Request, LoginEvent) (LoginAnswer, error)
	onLogout  func(context.Context, *gatehouse.Session)
	canTest   func(*http.Request, *gatehouse.Tenant) bool
	handler   http.Handler
	catalog   *catalog

	mu   sync.Mutex
	open map[string]openConnector // connection id → opened connector
}

type openConnector struct {
	updated time.Time
	c       connector.Connector
}

// New returns the handler serving /t/, /login, /logout and /sso/.
func New(cfg Config) (http.Handler, error) {
	s, err := NewServer(cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// NewServer is New returning the concrete type.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Keyring == nil || cfg.Resolver == nil {
		return nil, errors.New("web: Store, Keyring and Resolver are required")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("web: PublicURL must be an absolute http(s) URL")
	}
	s := &Server{
		store: cfg.Store, keyring: cfg.Keyring, resolver: cfg.Resolver,
		publicURL: strings.TrimRight(cfg.PublicURL, "/"), basePath: strings.TrimRight(u.Path, "/"),
		dev: cfg.Dev, log: cfg.Logger, clock: cfg.Clock, env: cfg.ConnectorEnv,
		sessions: cfg.Sessions, onLogin: cfg.OnLogin, onLoginTx: cfg.OnLoginTx, onLogout: cfg.OnLogout, canTest: cfg.CanTest,
		open: map[string]openConnector{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.clock == nil {
		s.clock = gatehouse.SystemClock{}
	}
	if s.env.PublicURL == "" {
		s.env.PublicURL = s.publicURL
	}
	if s.env.Clock == nil {
		s.env.Clock = s.clock
	}
	if s.env.Logger == nil {
		s.env.Logger = s.log
	}
	if s.env.Replay == nil {
		s.env.Replay = storeReplay{s.store}
	}
	s.env.Replay = deferredReplay{now: s.env.Replay}
	s.catalog = newCatalog(s.store, s.clock)
	s.env.Dev = s.env.Dev || s.dev
	if s.sessions == nil {
		s.sessions, err = session.New(session.Config{Store: cfg.Store, Keyring: cfg.Keyring,
			PublicURL: cfg.PublicURL, Clock: s.clock, Logger: s.log})
		if err != nil {
			return nil, err
		}
	}
	if s.canTest == nil {
		s.canTest = s.tenantAdmin
	}
	s.handler = s.routes()
	return s, nil
}

// Sessions returns the session manager the handler uses.
func (s *Server) Sessions() *session.Manager { return s.sessions }

// ServeHTTP serves the request with its request id in the context, so
// provisioning's audit events carry the reference the page shows (wire
// provision.Options.RequestID to RequestIDFromContext).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := context.WithValue(r.Context(), requestIDKey{}, requestID(r))
	s.handler.ServeHTTP(w, r.WithContext(ctx))
}

type requestIDKey struct{}

// RequestIDFromContext returns the request id of a request served by this
// package's handler, or "".
func RequestIDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /t/{tenant}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, s.basePath+"/t/"+url.PathEscape(r.PathValue("tenant"))+"/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /t/{tenant}/{$}", s.handleLanding)
	mux.HandleFunc("GET /t/{tenant}/login", s.handleTenantLogin)
	mux.HandleFunc("GET /t/{tenant}/logout", s.handleLogoutConfirm)
	mux.HandleFunc("POST /t/{tenant}/logout", s.handleLogout)
	mux.HandleFunc("GET /login", s.handleSharedLogin)
	mux.HandleFunc("GET /logout", s.handleLogoutConfirm)
	mux.HandleFunc("POST /logout", s.handleLogout)
	mux.HandleFunc("GET /sso/{type}/{id}/callback", s.handleCallback)
	mux.HandleFunc("POST /sso/{type}/{id}/callback", s.handleCallback)
	mux.HandleFunc("POST /sso/saml/{id}/acs", s.handleACS)
	mux.HandleFunc("GET /sso/saml/{id}/metadata", s.handleMetadata)
	mux.HandleFunc("GET /sso/saml/{id}/slo", s.handleSLO)
	mux.HandleFunc("POST /sso/saml/{id}/slo", s.handleSLO)
	mux.HandleFunc("GET /sso/assets/{file}", s.handleAsset)
	notFound := func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "There is no page at this address."))
	}
	mux.HandleFunc("/t/", notFound)
	mux.HandleFunc("/sso/", notFound)

	// CSRF: every state-changing form (logout) is refused when a browser
	// says it comes from another origin (Sec-Fetch-Site / Origin). The
	// IdPs' answers are cross-site POSTs by design (SAML HTTP-POST binding,
	// OIDC response_mode=form_post): they are bound to the browser by the
	// flow cookie and state instead, so they bypass this check.
	cop := http.NewCrossOriginProtection()
	cop.AddInsecureBypassPattern("POST /sso/{type}/{id}/callback")
	cop.AddInsecureBypassPattern("POST /sso/saml/{id}/acs")
	cop.AddInsecureBypassPattern("POST /sso/saml/{id}/slo")
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, nil, gatehouse.Errorf(gatehouse.EFORBIDDEN, "This form was sent from another site, so it was refused. Go back and try again."))
	}))
	return cop.Handler(mux)
}

// storeReplay is the connectors' replay cache: the store's UseOnce, shared
// by every replica.
type storeReplay struct{ store gatehouse.Store }

func (r storeReplay) UseOnce(ctx context.Context, key string, expires time.Time) error {
	return r.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.UseOnce(ctx, key, expires) })
}

// tenant finds a tenant by slug (or by id, for links built from ids),
// through the catalog: a page or a login start may see a tenant changed
// on another replica up to catalogTTL late (see catalog).
func (s *Server) tenant(ctx context.Context, ref string) (*gatehouse.Tenant, error) {
	t, err := s.catalog.tenantBySlug(ctx, ref)
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) && tenantRefIsID(ref) {
		err = s.store.View(ctx, func(tx gatehouse.Tx) error {
			var err error
			t, err = tx.GetTenant(ctx, ref)
			return err
		})
	}
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "There is no organization named %q here. Check the address.", ref)
	}
	return t, err
}

// connector returns the opened connector of c, opening it once per
// (connection, updated_at): discovery documents and metadata are fetched
// when a connection changes, not on every login.
func (s *Server) connector(ctx context.Context, c *gatehouse.Connection) (connector.Connector, error) {
	s.mu.Lock()
	oc, ok := s.open[c.ID]
	s.mu.Unlock()
	if ok && oc.updated.Equal(c.UpdatedAt) {
		return oc.c, nil
	}
	typ, ok := connector.Lookup(c.Type, s.dev)
	if !ok {
		return nil, &gatehouse.Error{Code: gatehouse.ENOTFOUND, Reason: "connection_type_unavailable",
			Message: "This sign-in method is not available on this server.",
			Err:     errors.New("connection type " + c.Type + " is not registered here")}
	}
	var secrets json.RawMessage
	if len(c.Secrets) > 0 {
		pt, err := s.keyring.Open(c.Secrets, []byte(c.ID))
		if err != nil {
			return nil, err
		}
		secrets = pt
	}
	conn, err := typ.Open(ctx, s.env, c, secrets)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if cur, ok := s.open[c.ID]; !ok || !cur.updated.After(c.UpdatedAt) {
		s.open[c.ID] = openConnector{updated: c.UpdatedAt, c: conn}
	}
	s.mu.Unlock()
	return conn, nil
}

// tenantAdmin is the default CanTest: the browser is signed in at tenant
// as a member of one of its admin groups.
func (s *Server) tenantAdmin(r *http.Request, t *gatehouse.Tenant) bool {
	if len(t.AdminGroups) == 0 {
		return false
	}
	_, u, err := s.sessions.Current(r.Context(), r, t.ID)
	if err != nil {
		return false
	}
	admin := false
	err = s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		ms, err := tx.ListUserMemberships(r.Context(), t.ID, u.ID)
		if err != nil {
			return err
		}
		for _, m := range ms {
			g, err := tx.GetGroup(r.Context(), t.ID, m.GroupID)
			if err != nil {
				continue
			}
			for _, name := range t.AdminGroups {
				if gatehouse.FoldKey(name) == gatehouse.FoldKey(g.Name) {
					admin = true
				}
			}
		}
		return nil
	})
	return err == nil && admin
}

// requestID is the reference shown on error pages: the request id the
// server's middleware set, when it is a plain token, else a new one.
// A new one is remembered on the request so the log, the audit event and
// the page all show the same reference.
func requestID(r *http.Request) string {
	id := r.Header.Get("X-Request-Id")
	ok := id != "" && len(id) <= 64
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			ok = false
		}
	}
	if !ok {
		id = gatehouse.NewID("req")
		r.Header.Set("X-Request-Id", id)
	}
	return id
}
