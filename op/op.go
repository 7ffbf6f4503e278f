// Package op makes Gatehouse an OpenID Connect provider for the apps of each
// tenant: discovery, JWKS, authorize (code flow, PKCE S256), token
// (authorization_code, refresh_token with rotation and reuse detection,
// client_credentials), userinfo, introspection (RFC 7662), revocation
// (RFC 7009), RP-initiated logout with back-channel logout, and a
// forward-auth endpoint for reverse proxies.
//
// # Design
//
// The protocol is zitadel/oidc's certified `op` package. One op.Provider
// serves every tenant: the issuer is `{public_url}/t/{slug}`, computed per
// request from the tenant this package resolved from the path, and the
// provider's router sees the request with the `/t/{slug}` prefix stripped
// (its endpoints are relative to the issuer). The tenant and client of
// the request travel in a *reqState in the request context, so
// the storage (storage.go) answers for exactly one tenant: nothing crosses
// tenants, and a token of another tenant is "not found".
//
// zitadel's router is never exposed as such: only the paths in Patterns
// reach it, the grants it offers beyond ours (implicit, JWT bearer, token
// exchange, device code) are refused before it sees them, and the
// discovery document is ours (discovery.go), so it advertises exactly what
// is supported.
//
// The token endpoint's authorization_code and refresh_token grants are
// ours (token.go: one write transaction per grant, ID tokens signed by a
// signer kept per key, jws.go; access tokens sealed in zitadel's format,
// jwe.go); zitadel serves client_credentials and every other endpoint.
//
// Sign-in is not here: an authorize request is validated and sealed
// (sealed.go), not stored, and where the browser's session decides it at
// once (atAuthorize) the browser goes straight to the tenant's login
// (/t/{slug}/login?return_to=<resume>) or back to the app with a code.
// The login answers the request in its own transaction (AnswerLogin,
// answer.go) and sends the browser to the app; whatever it leaves goes to
// the resume endpoint (resume.go), which uses the browser session of
// package session, or sends the browser to the login, and resumes after it.
package op

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/rs/cors"
	zop "github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// Sessions is what the provider needs from the browser session manager
// (*session.Manager implements it).
type Sessions interface {
	// Current returns the browser's valid session at tenantID and its
	// active user, or an error (EUNAUTHORIZED when there is none).
	Current(ctx context.Context, r *http.Request, tenantID string) (*gatehouse.Session, *gatehouse.User, error)
	// End deletes the browser's session and clears its cookie.
	End(ctx context.Context, w http.ResponseWriter, r *http.Request) error
}

// Server defaults; an app may set its own access and refresh token
// lifetimes (App.AccessTokenTTL, App.RefreshTokenTTL).
const (
	DefaultAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	DefaultIDTokenTTL      = time.Hour
	// DefaultKeyRotation: a tenant's signing key older than this is
	// rotated the next time it signs.
	DefaultKeyRotation = 90 * 24 * time.Hour
	// authRequestTTL bounds the time from /authorize to the end of the
	// login; codeTTL the time from the code to its exchange (RFC 6749
	// section 4.1.2 recommends at most 10 minutes).
	authRequestTTL = 30 * time.Minute
	codeTTL        = 2 * time.Minute
)

// Config configures the provider.
type Config struct {
	Store   gatehouse.Store
	Keyring *secret.Keyring
	// PublicURL is the external base URL, without a trailing slash.
	PublicURL string
	Logger    *slog.Logger
	Clock     gatehouse.Clock
	// Dev allows http redirect URIs for public clients.
	Dev      bool
	Sessions Sessions
	// HTTPClient posts back-channel logout tokens to apps; it should
	// enforce the outbound policy (package outbound). Default: a plain
	// client with a 5-second timeout.
	HTTPClient *http.Client
	// Login, when set, serves the tenant's login in place: where the
	// authorize endpoint would redirect the browser to the login (loginURL,
	// a local path and query), it calls Login with that URL instead, and
	// the browser goes straight on to the IdP (or is shown the chooser):
	// one request less per sign-in. web.Server.ServeLogin implements it.
	Login func(w http.ResponseWriter, r *http.Request, loginURL string)
	// Zero values mean the defaults above.
	AccessTokenTTL, RefreshTokenTTL, IDTokenTTL, KeyRotation time.Duration
}

// corsOptions: the token endpoints are for any origin (SPAs), but never
// with credentials: no endpoint behind the provider reads cookies from a
// cross-origin script. zitadel's router and our token grants (token.go)
// answer with the same headers.
var corsOptions = cors.Options{
	AllowOriginFunc:  func(string) bool { return true },
	AllowedMethods:   []string{http.MethodGet, http.MethodPost},
	AllowedHeaders:   []string{"Authorization", "Content-Type", "Accept"},
	AllowCredentials: false,
}

// Patterns are the Go 1.22 ServeMux patterns the handler serves; the server
// mounts the handler on each. None collides with the web package's
// /t/{tenant}/login, /t/{tenant}/logout and /t/{tenant}/{$}.
var Patterns = []string{
	"/t/{tenant}/.well-known/openid-configuration",
	"/t/{tenant}/jwks",
	"/t/{tenant}/authorize",
	"/t/{tenant}/authorize/resume",
	"/t/{tenant}/token",
	"/t/{tenant}/userinfo",
	"/t/{tenant}/introspect",
	"/t/{tenant}/revoke",
	"/t/{tenant}/end_session",
	"/t/{tenant}/forward-auth",
}

// Endpoint paths relative to the issuer.
const (
	pathAuthorize = "authorize"
	pathResume    = "authorize/resume"
	pathToken     = "token"
	pathUserinfo  = "userinfo"
	pathIntrospec = "introspect"
	pathRevoke    = "revoke"
	pathEndSess   = "end_session"
	pathJWKS      = "jwks"
)

// Provider is the OpenID provider of every tenant.
type Provider struct {
	cfg      Config
	store    gatehouse.Store
	clock    gatehouse.Clock
	log      *slog.Logger
	base     string // public URL without trailing slash
	basePath string // its path part
	zitadel  *zop.Provider
	// grants serves the token endpoint's code and refresh grants
	// (token.go), with zitadel's CORS headers.
	grants  http.Handler
	storage *storage
	keys    *keyCache
	tenants *tenantCache
	// apps are the authorize endpoint's apps (apps.go).
	apps *appCache
	// sealer writes and reads access tokens, for zitadel too (jwe.go).
	sealer *tokenSealer
	// requests seals authorize requests until they are answered (sealed.go).
	requests *requestSealer
	// zitadelGrants sends the code and refresh grants to zitadel as
	// before token.go, for the differential tests.
	zitadelGrants atomic.Bool
	// resumeAlways sends every authorize request to the resume endpoint,
	// as before atAuthorize, for the differential tests.
	resumeAlways atomic.Bool
	mux          *http.ServeMux
}

// New returns the provider's handler (a *Provider).
func New(cfg Config) (http.Handler, error) { return NewProvider(cfg) }

// NewProvider is New with the concrete type, for tests and wiring that
// call its methods.
func NewProvider(cfg Config) (*Provider, error) {
	if cfg.Store == nil || cfg.Keyring == nil || cfg.Sessions == nil {
		return nil, errors.New("op: Store, Keyring and Sessions are required")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("op: PublicURL must be an absolute http(s) URL")
	}
	if cfg.Clock == nil {
		cfg.Clock = gatehouse.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if cfg.RefreshTokenTTL <= 0 {
		cfg.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if cfg.IDTokenTTL <= 0 {
		cfg.IDTokenTTL = DefaultIDTokenTTL
	}
	if cfg.KeyRotation <= 0 {
		cfg.KeyRotation = DefaultKeyRotation
	}
	if cfg.IDTokenTTL >= retiredKeyOverlap {
		// A retired key leaves the JWKS after retiredKeyOverlap: ID
		// tokens must expire before it does.
		return nil, errors.New("op: the ID token lifetime must be under 24 hours")
	}
	p := &Provider{
		cfg: cfg, store: cfg.Store, clock: cfg.Clock, log: cfg.Logger,
		base:     strings.TrimRight(cfg.PublicURL, "/"),
		basePath: strings.TrimRight(u.Path, "/"),
	}
	p.keys = newKeyCache(cfg.Store, cfg.Keyring, cfg.Clock, cfg.KeyRotation)
	p.tenants = newTenantCache(cfg.Store, cfg.Clock)
	p.apps = newAppCache(cfg.Store, cfg.Clock)
	p.storage = &storage{p: p}

	var cryptoKey [32]byte
	// Access tokens are the AES-GCM encryption of their id under keys
	// derived from this one per day (jwe.go); every replica derives the
	// same ones from the root key.
	copy(cryptoKey[:], cfg.Keyring.DeriveKey("op token encryption"))
	if p.sealer, err = newTokenSealer(cryptoKey, cfg.Clock, cfg.AccessTokenTTL); err != nil {
		return nil, err
	}
	if p.requests, err = newRequestSealer(cfg.Keyring); err != nil {
		return nil, err
	}
	zcfg := &zop.Config{
		CodeMethodS256:                    true,
		AuthMethodPost:                    true,
		GrantTypeRefreshToken:             true,
		SupportedUILocales:                []language.Tag{language.English},
		SupportedScopes:                   supportedScopes,
		SupportedClaims:                   supportedClaims,
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
	}
	algs := []string{"RS256", "ES256", "EdDSA"}
	opts := []zop.Option{
		zop.WithCustomEndpoints(
			zop.NewEndpoint(pathAuthorize), zop.NewEndpoint(pathToken), zop.NewEndpoint(pathUserinfo),
			zop.NewEndpoint(pathRevoke), zop.NewEndpoint(pathEndSess), zop.NewEndpoint(pathJWKS)),
		zop.WithCustomIntrospectionEndpoint(zop.NewEndpoint(pathIntrospec)),
		zop.WithIDTokenHintVerifierOpts(zop.WithSupportedIDTokenHintSigningAlgorithms(algs...)),
		zop.WithAccessTokenVerifierOpts(zop.WithSupportedAccessTokenSigningAlgorithms(algs...)),
		zop.WithCORSOptions(&corsOptions),
		// zitadel's userinfo, introspection, revocation and
		// client_credentials read and write access tokens with the
		// sealer, not with its own Crypto (which would read only tokens
		// without a kid, and fall back to unauthenticated AES-CFB).
		zop.WithCrypto(p.sealer),
	}
	if u.Scheme == "http" {
		opts = append(opts, zop.WithAllowInsecure())
	}
	zp, err := zop.NewProvider(zcfg, p.storage, func(bool) (zop.IssuerFromRequest, error) {
		return func(r *http.Request) string { return stateFrom(r.Context()).issuer }, nil
	}, opts...)
	if err != nil {
		return nil, err
	}
	p.zitadel = zp
	p.grants = cors.New(corsOptions).Handler(http.HandlerFunc(p.token))

	mux := http.NewServeMux()
	for _, pat := range Patterns {
		mux.Handle(pat, p.tenantHandler(p.route))
	}
	p.mux = mux
	return p, nil
}

// ServeHTTP serves the paths in Patterns.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// OAuth requests are small forms; cap them well below Go's default
	// 10 MiB form limit so a flood of large bodies costs little.
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	}
	p.mux.ServeHTTP(w, r)
}

// MaxRequestBytes bounds every request body the provider reads.
const MaxRequestBytes = 64 << 10

// reqState is the per-request state shared by the handlers and the
// storage: the tenant, its issuer, and the client the request
// authenticated as (it decides the ID token's signing algorithm).
type reqState struct {
	tenant *gatehouse.Tenant
	issuer string
	client *client
	// user is the grant's user as checked in the grant's transaction
	// (newAccessToken), for the ID token's claims of the same request.
	user *gatehouse.User
	// complete, when set, writes the resume step's completion of the
	// authorize request in SaveAuthCode's transaction.
	complete func(tx gatehouse.Tx) error
	// req is the request itself (the authorize step reads its session).
	req *http.Request
	// login is the login URL the authorize request redirects to, to be
	// served in place (Config.Login, inPlaceLogin).
	login string
	// page, when set, is written instead of the authorize request's
	// redirect to pageAt (inPlaceLogin): the form_post page of a code
	// issued at authorize (atAuthorize).
	page   http.HandlerFunc
	pageAt string
	// authorize: the request is the authorize endpoint's, which takes its
	// client from the replica's cache (apps.go).
	authorize bool
}

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	if st == nil {
		// Outside a request (a bug): an empty state fails every lookup.
		return &reqState{tenant: &gatehouse.Tenant{}}
	}
	return st
}

// tenantHandler resolves {tenant} (its slug: the issuer is canonical) and
// puts the request state in the context.
func (p *Provider) tenantHandler(next func(w http.ResponseWriter, r *http.Request, rest string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slug := r.PathValue("tenant")
		t, err := p.tenants.bySlug(r.Context(), slug)
		if err != nil || t.Slug != slug {
			if err != nil && !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				p.log.ErrorContext(r.Context(), "op: load tenant", "err", err)
				http.Error(w, "Internal error.", http.StatusInternalServerError)
				return
			}
			http.NotFound(w, r)
			return
		}
		st := &reqState{tenant: t, issuer: p.issuer(t)}
		ctx := context.WithValue(r.Context(), stateKey{}, st)
		r = r.WithContext(zop.ContextWithIssuer(ctx, st.issuer))
		st.req = r
		prefix := p.basePathOf(r) + "/t/" + slug
		rest := strings.TrimPrefix(r.URL.Path, prefix)
		next(w, r, rest)
	})
}

// basePathOf: the mux matched the path without the public URL's base path
// (the server strips it) or with it; either way the tenant prefix follows.
func (p *Provider) basePathOf(r *http.Request) string {
	if p.basePath != "" && strings.HasPrefix(r.URL.Path, p.basePath+"/t/") {
		return p.basePath
	}
	return ""
}

// issuer is the tenant's issuer identifier.
func (p *Provider) issuer(t *gatehouse.Tenant) string { return p.base + "/t/" + t.Slug }

// allowedGrants are the grant types the token endpoint accepts; zitadel's
// router would offer more (JWT bearer, token exchange, device code).
var allowedGrants = map[string]bool{"authorization_code": true, "refresh_token": true, "client_credentials": true}

// route dispatches one tenant's request: our own endpoints here, the
// protocol endpoints to zitadel with the tenant prefix stripped.
func (p *Provider) route(w http.ResponseWriter, r *http.Request, rest string) {
	switch rest {
	case "/.well-known/openid-configuration":
		p.discovery(w, r)
		return
	case "/authorize/resume":
		p.resume(w, r)
		return
	case "/forward-auth":
		p.forwardAuth(w, r)
		return
	case "/end_session":
		p.endSession(w, r)
		return
	case "/authorize":
		// Only the code flow: the response types of the implicit and
		// hybrid flows are refused by the client (ResponseTypes), and a
		// Request Object is not supported.
		stateFrom(r.Context()).authorize = true
		if p.cfg.Login != nil {
			w = &inPlaceLogin{ResponseWriter: w, p: p, r: r}
		}
	case "/token":
		if !postOnly(w, r) {
			return
		}
		if r.Method == http.MethodPost {
			// Token responses, answers and refusals alike, must not be
			// cached (RFC 6749 section 5.1).
			noStore(w)
			g, code, desc := grantTypeOf(r)
			if code != "" {
				writeOAuthError(w, http.StatusBadRequest, code, desc)
				return
			}
			if (g == grantCode || g == grantRefresh) && !p.zitadelGrants.Load() {
				p.grants.ServeHTTP(w, r)
				return
			}
		}
	case "/revoke", "/introspect":
		if !postOnly(w, r) {
			return
		}
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = rest
	r2.URL.RawPath = ""
	switch rest {
	case "/token", "/introspect", "/userinfo":
		// Token responses must not be cached (RFC 6749 section 5.1).
		noStore(w)
	}
	if rest == "/userinfo" {
		w = &bearerErrors{ResponseWriter: w}
	}
	p.zitadel.ServeHTTP(w, r2)
}

// inPlaceLogin serves, where zitadel's authorize handler redirects the
// browser to the login URL the request stored (reqState.login: the
// request is valid and sealed, and the browser must log in), that login
// in place through Config.Login; and where it redirects to the address of
// a request answered at authorize with a form_post page (reqState.page),
// that page. Any other answer passes unchanged.
type inPlaceLogin struct {
	http.ResponseWriter
	p    *Provider
	r    *http.Request
	done bool
}

func (x *inPlaceLogin) WriteHeader(status int) {
	if x.done {
		return
	}
	st := stateFrom(x.r.Context())
	serve := func(h http.HandlerFunc) {
		x.done = true
		x.Header().Del("Location")
		x.Header().Del("Content-Type")
		h(x.ResponseWriter, x.r)
	}
	switch loc := x.Header().Get("Location"); {
	case status != http.StatusFound:
	case st.login != "" && strings.HasSuffix(loc, st.login):
		serve(func(w http.ResponseWriter, r *http.Request) { x.p.cfg.Login(w, r, st.login) })
		return
	case st.page != nil && loc == st.pageAt:
		serve(st.page)
		return
	}
	x.ResponseWriter.WriteHeader(status)
}

func (x *inPlaceLogin) Write(b []byte) (int, error) {
	if x.done {
		// http.Redirect's note about the redirect.
		return len(b), nil
	}
	return x.ResponseWriter.Write(b)
}

// bearerErrors turns zitadel's userinfo refusals into RFC 6750 section 3.1
// answers: 401 with a WWW-Authenticate challenge for a missing, invalid,
// expired or revoked token (zitadel answers 403 for the latter).
type bearerErrors struct {
	http.ResponseWriter
}

func (b *bearerErrors) WriteHeader(status int) {
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		b.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		status = http.StatusUnauthorized
	}
	b.ResponseWriter.WriteHeader(status)
}

// postOnly answers 405 to anything but POST and the CORS preflight
// (OPTIONS, answered by zitadel's CORS handler).
func postOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost || r.Method == http.MethodOptions {
		return true
	}
	w.Header().Set("Allow", http.MethodPost)
	http.Error(w, "Method not allowed.", http.StatusMethodNotAllowed)
	return false
}

// grantTypeOf parses a token request's form and returns its grant type,
// or the OAuth error (RFC 6749 section 5.2) of a request that is not a
// well-formed one, as zitadel's router answered it: invalid_request for a
// body that is no form (or too large), a missing grant_type, or a repeated
// one (section 3.2: parameters must not be repeated; zitadel's own
// client_credentials grant would read the first); unsupported_grant_type
// for a grant not offered.
func grantTypeOf(r *http.Request) (grant, code, desc string) {
	if err := r.ParseForm(); err != nil {
		return "", "invalid_request", "The request body is not a valid form."
	}
	g := r.PostForm["grant_type"]
	switch {
	case len(g) == 0 || g[0] == "":
		return "", "invalid_request", "grant_type missing"
	case len(g) > 1:
		return "", "invalid_request", "The parameter grant_type is repeated."
	case !allowedGrants[g[0]]:
		return "", "unsupported_grant_type", "The grant type is not supported."
	}
	return g[0], "", ""
}

// noStore: no cache may keep the answer (RFC 6749 section 5.1; Pragma for
// HTTP/1.0 caches).
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	noStore(w)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":"` + code + `","error_description":"` + desc + `"}`))
}
