// Package api is Gatehouse's admin JSON API under /api/v1/: tenants, users,
// groups, memberships, connections, apps, tokens, signing keys and the audit
// log. Every request is authenticated first (a bearer token: the operator's
// superuser token or a tenant-scoped API token), then scoped to its tenant,
// then checked against the principal's role. Every write and its audit event
// commit in one store transaction.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/outbound"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// Provisioner approves users waiting as pending (the JIT helper's
// provision.Resolver satisfies it). Approve writes its own audit and outbox
// events in the transaction that activates the user.
type Provisioner interface {
	Approve(ctx context.Context, tenantID, userID string, actor gatehouse.Actor) (*gatehouse.User, error)
}

// Config is what the API needs from the server.
type Config struct {
	Store gatehouse.Store
	// Keyring seals connection secrets (aad = connection ID); package op
	// seals signing keys with it on rotation.
	Keyring *secret.Keyring
	// SuperuserTokenDigest is secret.Digest(GATEHOUSE_ADMIN_TOKEN); empty
	// means no superuser token is accepted.
	SuperuserTokenDigest []byte
	// PublicURL is the external base URL, without a trailing slash.
	PublicURL    string
	Dev          bool
	Logger       *slog.Logger
	Clock        gatehouse.Clock
	ConnectorEnv connector.Env
	// Provisioner approves pending users; nil uses a plain status change.
	Provisioner Provisioner
	// OutboundPolicy checks webhook URLs when they are set (the zero
	// policy: public https only).
	OutboundPolicy outbound.Policy
	// MaxBodyBytes limits request bodies; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

type server struct {
	cfg     Config
	store   gatehouse.Store
	log     *slog.Logger
	clock   gatehouse.Clock
	maxBody int64
	env     connector.Env
	mux     *http.ServeMux
	// via, when set, is added to the details of every audit event (the
	// console's Service: "console").
	via string
}

// Access levels of routes.
type access int

const (
	accessPublic    access = iota // no token (the OpenAPI document)
	accessAny                     // any valid token (whoami)
	accessSuperuser               // the operator only
	accessRead                    // any principal of the tenant in the URL
	accessWrite                   // a superuser or the tenant's admins
)

// route is one entry of the routing table. The table is the single source
// the mux, the auth tests and the OpenAPI test all walk.
type route struct {
	method  string
	path    string // ServeMux pattern path, e.g. /api/v1/tenants/{tenant}
	access  access
	handler func(s *server, w http.ResponseWriter, r *http.Request, c *call) error
}

// call is the per-request context a handler works with.
type call struct {
	p      *principal
	tenant *gatehouse.Tenant // nil on routes without {tenant}
}

// actor is the audit actor of the call.
func (c *call) actor(r *http.Request) gatehouse.Actor {
	return gatehouse.Actor{Type: c.p.actorType(), ID: c.p.id, RequestID: requestID(r)}
}

// Prefix is where the API lives.
const Prefix = "/api/v1"

func routes() []route {
	t := Prefix + "/tenants/{tenant}"
	return []route{
		{"GET", Prefix + "/openapi.json", accessPublic, (*server).openAPI},
		{"GET", Prefix + "/whoami", accessAny, (*server).whoami},

		{"POST", Prefix + "/tenants", accessSuperuser, (*server).createTenant},
		{"GET", Prefix + "/tenants", accessSuperuser, (*server).listTenants},
		{"GET", t, accessRead, (*server).getTenant},
		{"PATCH", t, accessWrite, (*server).updateTenant},
		{"DELETE", t, accessSuperuser, (*server).deleteTenant},

		{"POST", t + "/users", accessWrite, (*server).createUser},
		{"GET", t + "/users", accessRead, (*server).listUsers},
		{"GET", t + "/users/{id}", accessRead, (*server).getUser},
		{"PATCH", t + "/users/{id}", accessWrite, (*server).updateUser},
		{"DELETE", t + "/users/{id}", accessWrite, (*server).deleteUser},
		{"POST", t + "/users/{id}/approve", accessWrite, (*server).approveUser},
		{"POST", t + "/users/import", accessWrite, (*server).importUsers},

		{"POST", t + "/groups", accessWrite, (*server).createGroup},
		{"GET", t + "/groups", accessRead, (*server).listGroups},
		{"GET", t + "/groups/{id}", accessRead, (*server).getGroup},
		{"PATCH", t + "/groups/{id}", accessWrite, (*server).updateGroup},
		{"DELETE", t + "/groups/{id}", accessWrite, (*server).deleteGroup},
		{"GET", t + "/groups/{id}/members", accessRead, (*server).listMembers},
		{"PUT", t + "/groups/{id}/members/{user_id}", accessWrite, (*server).addMember},
		{"DELETE", t + "/groups/{id}/members/{user_id}", accessWrite, (*server).removeMember},

		{"POST", t + "/connections", accessWrite, (*server).createConnection},
		{"GET", t + "/connections", accessRead, (*server).listConnections},
		{"GET", t + "/connections/{id}", accessRead, (*server).getConnection},
		{"PATCH", t + "/connections/{id}", accessWrite, (*server).updateConnection},
		{"DELETE", t + "/connections/{id}", accessWrite, (*server).deleteConnection},

		{"POST", t + "/apps", accessWrite, (*server).createApp},
		{"GET", t + "/apps", accessRead, (*server).listApps},
		{"GET", t + "/apps/{id}", accessRead, (*server).getApp},
		{"PATCH", t + "/apps/{id}", accessWrite, (*server).updateApp},
		{"DELETE", t + "/apps/{id}", accessWrite, (*server).deleteApp},
		{"POST", t + "/apps/{id}/rotate-secret", accessWrite, (*server).rotateAppSecret},

		{"POST", t + "/api-tokens", accessWrite, (*server).createAPIToken},
		{"GET", t + "/api-tokens", accessRead, (*server).listAPITokens},
		{"DELETE", t + "/api-tokens/{id}", accessWrite, (*server).deleteAPIToken},

		{"POST", t + "/scim-tokens", accessWrite, (*server).createSCIMToken},
		{"GET", t + "/scim-tokens", accessRead, (*server).listSCIMTokens},
		{"DELETE", t + "/scim-tokens/{id}", accessWrite, (*server).deleteSCIMToken},

		{"GET", t + "/keys", accessRead, (*server).listKeys},
		{"POST", t + "/keys/rotate", accessWrite, (*server).rotateKeys},

		{"GET", t + "/audit", accessRead, (*server).listAudit},

		{"POST", t + "/webhooks", accessWrite, (*server).createWebhook},
		{"GET", t + "/webhooks", accessRead, (*server).listWebhooks},
		{"GET", t + "/webhooks/{id}", accessRead, (*server).getWebhook},
		{"PATCH", t + "/webhooks/{id}", accessWrite, (*server).updateWebhook},
		{"DELETE", t + "/webhooks/{id}", accessWrite, (*server).deleteWebhook},
		{"POST", t + "/webhooks/{id}/rotate-secret", accessWrite, (*server).rotateWebhookSecret},
		{"GET", t + "/webhooks/{id}/deliveries", accessRead, (*server).listDeliveries},
		{"POST", t + "/webhooks/{id}/deliveries/{delivery}/retry", accessWrite, (*server).retryDelivery},
	}
}

// New returns the API handler. It serves full paths under /api/v1/.
func New(cfg Config) http.Handler {
	s := newServer(cfg)
	s.mux = http.NewServeMux()
	for _, rt := range routes() {
		s.mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	// Everything else under the prefix: authenticated first, then 404 or
	// 405 in the API's error shape.
	s.mux.HandleFunc(Prefix+"/", s.noRoute)
	return s
}

// newServer is the API's state without its routes (Service uses it too).
func newServer(cfg Config) *server {
	s := &server{cfg: cfg, store: cfg.Store, log: cfg.Logger, clock: cfg.Clock, maxBody: cfg.MaxBodyBytes, env: cfg.ConnectorEnv}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.clock == nil {
		s.clock = gatehouse.SystemClock{}
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.env.PublicURL == "" {
		s.env.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	}
	if s.env.Clock == nil {
		s.env.Clock = s.clock
	}
	if s.env.Logger == nil {
		s.env.Logger = s.log
	}
	s.env.Dev = s.env.Dev || cfg.Dev
	return s
}

// ServeHTTP authenticates every request except the public document, then
// routes it.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == Prefix+"/openapi.json" {
		s.mux.ServeHTTP(w, r)
		return
	}
	p, err := s.authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
}

// noRoute answers paths and methods the API does not serve.
func (s *server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != Prefix+"/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: errorDetail{Code: gatehouse.EINVALID,
			Message: "Method " + r.Method + " is not allowed here; allowed: " + strings.Join(allow, ", ") + "."}})
		return
	}
	s.writeError(w, r, gatehouse.Errorf(gatehouse.ENOTFOUND, "No such API route: %s %s.", r.Method, r.URL.Path))
}

// wrap applies the route's tenant scope and role checks, then runs it.
func (s *server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{}
		if rt.access != accessPublic {
			c.p, _ = r.Context().Value(principalKey{}).(*principal)
			if c.p == nil { // unreachable: ServeHTTP authenticated
				s.writeError(w, r, errUnauthorized)
				return
			}
		}
		if err := s.authorize(r, rt, c); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := rt.handler(s, w, r, c); err != nil {
			s.writeError(w, r, err)
		}
	})
}
