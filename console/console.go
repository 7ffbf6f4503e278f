// Package console is Gatehouse's admin web console under /console/: the
// operator (with the superuser token) and tenant admins (signed in through
// their tenant's own SSO) set up tenants, connections, just-in-time
// provisioning, users, groups, SCIM tokens, apps and webhooks, import
// users from a file, and read the audit log.
//
// It is server-rendered (html/template, embedded CSS and a little JS, no
// third-party front-end code). Every write goes through the store in one
// transaction with its audit event, with the same validation as the admin
// API; every form carries a per-session CSRF token on top of
// http.CrossOriginProtection; destructive actions take a POST after a
// confirmation page.
package console

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/api"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/session"
	"github.com/gatehouse-sso/gatehouse/web"
)

// Tester starts a "test connection" login (web.Server satisfies it): the
// console authorizes the admin, then the login runs in web's test mode,
// whose result page shows the claims received and the provisioning
// preview without creating anything.
type Tester interface {
	StartLogin(w http.ResponseWriter, r *http.Request, t *gatehouse.Tenant, c *gatehouse.Connection, opts web.LoginOptions)
}

// Approver activates users waiting for approval (provision.Resolver).
type Approver interface {
	Approve(ctx context.Context, tenantID, userID string, actor gatehouse.Actor) (*gatehouse.User, error)
}

// Config is what the console needs from the server.
type Config struct {
	Store gatehouse.Store
	// Keyring seals the console cookie and connection secrets (aad =
	// connection ID, as the API does).
	Keyring *secret.Keyring
	// PublicURL is the external base URL; https makes cookies Secure.
	PublicURL string
	Logger    *slog.Logger
	Clock     gatehouse.Clock
	Dev       bool
	// SuperuserTokenDigest is secret.Digest of the operator's token; empty
	// disables the operator's sign-in.
	SuperuserTokenDigest []byte
	// Sessions finds the tenant sessions of admins signed in through SSO.
	Sessions *session.Manager
	// Resolver approves pending users (and previews provisioning through
	// the web test page).
	Resolver *provision.Resolver
	// Tester runs "test connection" logins; nil hides the button.
	Tester       Tester
	ConnectorEnv connector.Env
	// Admin runs webhook and import writes through the admin API's code
	// path (api.NewService on the API's Config, via "console"); nil makes
	// one from this Config with the zero outbound policy (public https
	// only).
	Admin *api.Service
}

// Console is the console handler.
type Console struct {
	cfg      Config
	store    gatehouse.Store
	log      *slog.Logger
	clock    gatehouse.Clock
	env      connector.Env
	base     string // path prefix of every console link ("/console" behind the public URL's path)
	rootPath string // the public URL's path ("" at the root)
	secure   bool
	approver Approver
	admin    *api.Service
	csrfKey  []byte
	handler  http.Handler
}

// Prefix is where the console lives.
const Prefix = "/console"

// New returns the console handler serving /console and /console/... .
func New(cfg Config) (http.Handler, error) {
	return NewConsole(cfg)
}

// NewConsole is New returning the concrete type.
func NewConsole(cfg Config) (*Console, error) {
	if cfg.Store == nil || cfg.Keyring == nil {
		return nil, errors.New("console: Store and Keyring are required")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("console: PublicURL must be an absolute http(s) URL")
	}
	c := &Console{cfg: cfg, store: cfg.Store, log: cfg.Logger, clock: cfg.Clock, env: cfg.ConnectorEnv,
		rootPath: strings.TrimRight(u.Path, "/"), secure: u.Scheme == "https",
		csrfKey: cfg.Keyring.DeriveKey("console csrf")}
	c.base = c.rootPath + Prefix
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.clock == nil {
		c.clock = gatehouse.SystemClock{}
	}
	if c.env.PublicURL == "" {
		c.env.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	}
	if c.env.Clock == nil {
		c.env.Clock = c.clock
	}
	if c.env.Logger == nil {
		c.env.Logger = c.log
	}
	c.env.Dev = c.env.Dev || cfg.Dev
	if cfg.Resolver != nil {
		c.approver = cfg.Resolver
	}
	c.admin = cfg.Admin
	if c.admin == nil {
		c.admin = api.NewService(api.Config{Store: cfg.Store, Keyring: cfg.Keyring, PublicURL: cfg.PublicURL, Dev: cfg.Dev,
			Logger: c.log, Clock: c.clock, ConnectorEnv: c.env}, "console")
	}
	c.handler = c.routes()
	return c, nil
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Console pages show tokens and personal data: never cache them.
	w.Header().Set("Cache-Control", "no-store")
	c.handler.ServeHTTP(w, r)
}

// publicURL is the external base URL without a trailing slash.
func (c *Console) publicURL() string { return c.env.PublicURL }

// actor is the audit actor of a console request.
func (p *principal) actor(r *http.Request) gatehouse.Actor {
	a := gatehouse.Actor{Type: "superuser", ID: "superuser", RequestID: r.Header.Get("X-Request-Id")}
	if !p.Superuser {
		a.Type, a.ID = "user", p.UserID
	}
	return a
}

// audit appends the audit event of a change inside its transaction.
func (c *Console) audit(ctx context.Context, tx gatehouse.Tx, r *http.Request, k *call, tenantID, action, targetType, targetID string, details map[string]any) error {
	a := k.p.actor(r)
	if details == nil {
		details = map[string]any{}
	}
	details["via"] = "console"
	return tx.AppendAudit(ctx, &gatehouse.AuditEvent{
		ID: gatehouse.NewID("aud"), TenantID: tenantID, Time: c.clock.Now().UTC(),
		ActorType: a.Type, ActorID: a.ID, Action: action, TargetType: targetType, TargetID: targetID,
		RequestID: a.RequestID, Details: details,
	})
}
