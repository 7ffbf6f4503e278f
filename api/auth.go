package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// APITokenPrefix starts every tenant-scoped API token.
const APITokenPrefix = "gh_api_"

// principal is who an authenticated request acts as.
type principal struct {
	role     string // gatehouse.RoleSuperuser, RoleTenantAdmin, RoleTenantViewer
	tenantID string // "" for the superuser
	id       string // token ID, or "superuser"
	name     string
}

func (p *principal) actorType() string {
	if p.role == gatehouse.RoleSuperuser {
		return "superuser"
	}
	return "api_token"
}

type principalKey struct{}

var errUnauthorized = gatehouse.Errorf(gatehouse.EUNAUTHORIZED,
	"Missing or invalid API token; send it as: Authorization: Bearer <token>.")

// touchInterval limits last_used_at writes to one per token per minute.
const touchInterval = time.Minute

// authenticate reads the bearer token (RFC 6750 §2.1) and finds whose it is.
// It fails closed: anything but a known token is EUNAUTHORIZED.
func (s *server) authenticate(r *http.Request) (*principal, error) {
	token := secret.BearerToken(r.Header.Get("Authorization"))
	if token == "" || len(token) > 512 {
		return nil, errUnauthorized
	}
	// The superuser token is compared by digest in constant time.
	if len(s.cfg.SuperuserTokenDigest) > 0 && secret.Matches(token, s.cfg.SuperuserTokenDigest) {
		return &principal{role: gatehouse.RoleSuperuser, id: "superuser", name: "superuser"}, nil
	}
	if !strings.HasPrefix(token, APITokenPrefix) {
		return nil, errUnauthorized
	}
	// Tokens are stored as SHA-256 digests and looked up by digest: the
	// lookup itself is the comparison, and a database index on a digest
	// leaks nothing useful about the token.
	var tok *gatehouse.APIToken
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		tok, err = tx.GetAPITokenByHash(r.Context(), secret.Digest(token))
		return err
	})
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil, errUnauthorized
	}
	if err != nil {
		return nil, err
	}
	if tok.Role != gatehouse.RoleTenantAdmin && tok.Role != gatehouse.RoleTenantViewer {
		return nil, errUnauthorized
	}
	now := s.clock.Now()
	if tok.LastUsedAt == nil || now.Sub(*tok.LastUsedAt) >= touchInterval {
		// Best effort: a failed touch must not refuse the request.
		ctx := context.WithoutCancel(r.Context())
		if err := s.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.TouchAPIToken(ctx, tok.ID, now) }); err != nil {
			s.log.WarnContext(ctx, "api token: last-used time not recorded", "token_id", tok.ID, "err", err)
		}
	}
	return &principal{role: tok.Role, tenantID: tok.TenantID, id: tok.ID, name: tok.Name}, nil
}

var errTenantNotFound = gatehouse.Errorf(gatehouse.ENOTFOUND, "Tenant not found.")

// authorize resolves the {tenant} of the URL and applies, in order: the
// tenant scope (a token of another tenant sees 404, as if the tenant did not
// exist, so tenants cannot be enumerated), then the route's role.
func (s *server) authorize(r *http.Request, rt route, c *call) error {
	if ref := r.PathValue("tenant"); ref != "" {
		if c.p.tenantID != "" && c.p.tenantID != ref {
			// Cheap refusal before any lookup when the ref is another
			// tenant's id; slugs need the lookup below.
			if strings.HasPrefix(ref, "ten_") {
				return errTenantNotFound
			}
		}
		t, err := s.lookupTenant(r.Context(), ref)
		if err != nil {
			return err
		}
		if c.p.tenantID != "" && c.p.tenantID != t.ID {
			return errTenantNotFound
		}
		c.tenant = t
	}
	switch rt.access {
	case accessSuperuser:
		if c.p.role != gatehouse.RoleSuperuser {
			return gatehouse.Errorf(gatehouse.EFORBIDDEN, "Only the operator's superuser token may do this.")
		}
	case accessWrite:
		if c.p.role != gatehouse.RoleSuperuser && c.p.role != gatehouse.RoleTenantAdmin {
			return gatehouse.Errorf(gatehouse.EFORBIDDEN, "This token has the %s role, which may only read.", c.p.role)
		}
	}
	return nil
}

// whoami tells a client who its token is.
func (s *server) whoami(w http.ResponseWriter, r *http.Request, c *call) error {
	out := map[string]any{"role": c.p.role, "token_id": c.p.id, "name": c.p.name, "tenant_id": nil, "tenant_slug": nil}
	if c.p.tenantID != "" {
		out["tenant_id"] = c.p.tenantID
		if t, err := s.lookupTenant(r.Context(), c.p.tenantID); err == nil {
			out["tenant_slug"] = t.Slug
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// lookupTenant finds a tenant by id or slug; a missing one is the API's
// tenant-not-found error.
func (s *server) lookupTenant(ctx context.Context, ref string) (t *gatehouse.Tenant, err error) {
	err = s.store.View(ctx, func(tx gatehouse.Tx) error {
		t, err = gatehouse.LookupTenant(ctx, tx, ref)
		return err
	})
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil, errTenantNotFound
	}
	return t, err
}
