package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// SCIMTokenPrefix starts every SCIM bearer token.
const SCIMTokenPrefix = "gh_scim_"

// tokenJSON is an API or SCIM token as listed; Token is set only in the
// answer to its creation (it is stored as a digest and never shown again).
type tokenJSON struct {
	ID           string     `json:"id"`
	Token        string     `json:"token,omitempty"`
	Name         string     `json:"name"`
	Role         string     `json:"role,omitempty"`
	ConnectionID *string    `json:"connection_id,omitempty"`
	SCIMBaseURL  string     `json:"scim_base_url,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	LastUsedAt   *time.Time `json:"last_used_at"`
}

func apiTokenOut(t *gatehouse.APIToken) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt}
}

func scimTokenOut(t *gatehouse.SCIMToken) tokenJSON {
	cid := t.ConnectionID
	return tokenJSON{ID: t.ID, Name: t.Name, ConnectionID: &cid, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt}
}

type apiTokenInput struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

type scimTokenInput struct {
	Name         string `json:"name"`
	ConnectionID string `json:"connection_id"`
}

func (s *server) createAPIToken(w http.ResponseWriter, r *http.Request, c *call) error {
	var in apiTokenInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	in.Name = strings.TrimSpace(in.Name)
	if err := checkName("name", in.Name, 200); err != nil {
		return err
	}
	// Tokens are tenant-scoped: the superuser role exists only as the
	// operator's bootstrap token.
	if in.Role != gatehouse.RoleTenantAdmin && in.Role != gatehouse.RoleTenantViewer {
		return gatehouse.FieldError("role", "role must be tenant_admin or tenant_viewer.")
	}
	token := secret.NewToken(APITokenPrefix)
	t := &gatehouse.APIToken{ID: gatehouse.NewID("tok"), TenantID: c.tenant.ID, Name: in.Name, Role: in.Role,
		Hash: secret.Digest(token), CreatedAt: s.clock.Now().UTC()}
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		if err := tx.CreateAPIToken(r.Context(), t); err != nil {
			return err
		}
		return s.audit(r.Context(), tx, t.TenantID, c.actor(r), "api_token.created", "api_token", t.ID, map[string]any{"name": t.Name, "role": t.Role})
	})
	if err != nil {
		return err
	}
	out := apiTokenOut(t)
	out.Token = token
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *server) listAPITokens(w http.ResponseWriter, r *http.Request, c *call) error {
	var ts []*gatehouse.APIToken
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		ts, err = tx.ListAPITokens(r.Context(), c.tenant.ID)
		return err
	})
	if err != nil {
		return err
	}
	writeList(w, ts, apiTokenOut)
	return nil
}

// writeList answers an unpaginated list in the paginated shape.
func writeList[T, J any](w http.ResponseWriter, items []T, out func(T) J) {
	l := list[J]{Items: make([]J, 0, len(items))}
	for _, it := range items {
		l.Items = append(l.Items, out(it))
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *server) deleteAPIToken(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.deleteByID(w, r, c, "api_token.revoked", "api_token", "API token",
		func(tx gatehouse.Tx, id string) error { return tx.DeleteAPIToken(r.Context(), c.tenant.ID, id) })
}

func (s *server) deleteSCIMToken(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.deleteByID(w, r, c, "scim_token.revoked", "scim_token", "SCIM token",
		func(tx gatehouse.Tx, id string) error { return tx.DeleteSCIMToken(r.Context(), c.tenant.ID, id) })
}

// deleteByID deletes the object {id} with del and audits it as action:
// the shape of every plain DELETE by id.
func (s *server) deleteByID(w http.ResponseWriter, r *http.Request, c *call, action, targetType, what string, del func(tx gatehouse.Tx, id string) error) error {
	if err := s.deleteAudited(r.Context(), c.tenant.ID, r.PathValue("id"), c.actor(r), action, targetType, what, del); err != nil {
		return err
	}
	writeJSON(w, http.StatusNoContent, nil)
	return nil
}

// deleteAudited deletes the object id with del and audits it as action,
// in one transaction.
func (s *server) deleteAudited(ctx context.Context, tenantID, id string, actor gatehouse.Actor, action, targetType, what string, del func(tx gatehouse.Tx, id string) error) error {
	return s.store.Update(ctx, func(tx gatehouse.Tx) error {
		if err := del(tx, id); err != nil {
			return notFound(err, what)
		}
		return s.audit(ctx, tx, tenantID, actor, action, targetType, id, nil)
	})
}

func (s *server) createSCIMToken(w http.ResponseWriter, r *http.Request, c *call) error {
	var in scimTokenInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	in.Name = strings.TrimSpace(in.Name)
	if err := checkName("name", in.Name, 200); err != nil {
		return err
	}
	token := secret.NewToken(SCIMTokenPrefix)
	t := &gatehouse.SCIMToken{ID: gatehouse.NewID("sct"), TenantID: c.tenant.ID, Name: in.Name,
		ConnectionID: strings.TrimSpace(in.ConnectionID), Hash: secret.Digest(token), CreatedAt: s.clock.Now().UTC()}
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		if t.ConnectionID != "" {
			// The connection of the IdP that pushes: SCIM-created users
			// later signing in through it are linked by externalId.
			if _, err := tx.GetConnection(r.Context(), t.TenantID, t.ConnectionID); gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				return gatehouse.FieldError("connection_id", "No connection %q in this tenant.", t.ConnectionID)
			} else if err != nil {
				return err
			}
		}
		if err := tx.CreateSCIMToken(r.Context(), t); err != nil {
			return err
		}
		return s.audit(r.Context(), tx, t.TenantID, c.actor(r), "scim_token.created", "scim_token", t.ID,
			map[string]any{"name": t.Name, "connection_id": t.ConnectionID})
	})
	if err != nil {
		return err
	}
	out := scimTokenOut(t)
	out.Token = token
	out.SCIMBaseURL = s.env.PublicURL + "/scim/v2"
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *server) listSCIMTokens(w http.ResponseWriter, r *http.Request, c *call) error {
	var ts []*gatehouse.SCIMToken
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		ts, err = tx.ListSCIMTokens(r.Context(), c.tenant.ID)
		return err
	})
	if err != nil {
		return err
	}
	writeList(w, ts, scimTokenOut)
	return nil
}
