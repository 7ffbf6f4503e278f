package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/mapping"
)

// Common fields of a connection's flat JSON; every other field belongs to
// the protocol and goes to its connector.Type's Configure.
var connCommon = []string{"type", "name", "enabled", "jit", "mapping"}

// connOut is a connection as the API shows it: the protocol's Describe
// output with the common fields over it.
func (s *server) connOut(t *connector.Type, c *gatehouse.Connection) map[string]any {
	out := map[string]any{}
	if t != nil && t.Describe != nil {
		maps.Copy(out, t.Describe(s.env, c))
	}
	// Secrets are write-only; Describe never returns them, and these keys
	// are the API's own.
	maps.Copy(out, map[string]any{"id": c.ID, "type": c.Type, "name": c.Name, "enabled": c.Enabled,
		"jit": jitOut(c.JIT), "mapping": c.Mapping, "created_at": c.CreatedAt, "updated_at": c.UpdatedAt})
	return out
}

// jitOut shows a policy with empty lists rather than nulls, except
// allowed_domains where null means "the tenant's verified domains".
func jitOut(p gatehouse.JITPolicy) gatehouse.JITPolicy {
	p.DefaultGroups = nonNil(p.DefaultGroups)
	if p.GroupSync.Mapping == nil {
		p.GroupSync.Mapping = map[string]string{}
	}
	return p
}

// connInput is a connection request split into the common fields and the
// protocol's.
type connInput struct {
	Type     *string
	Name     *string
	Enabled  *bool
	JIT      json.RawMessage
	Mapping  json.RawMessage
	Protocol map[string]json.RawMessage
}

// decodeConn reads a connection request, decoding the common fields
// strictly and keeping the protocol's raw for Configure.
func (s *server) decodeConn(w http.ResponseWriter, r *http.Request) (*connInput, error) {
	body, err := s.readBody(w, r)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := decodeStrict(body, "", &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, gatehouse.Errorf(gatehouse.EINVALID, "The request body must be a JSON object.")
	}
	in := &connInput{Protocol: map[string]json.RawMessage{}}
	for k, v := range raw {
		var err error
		switch k {
		case "type":
			err = decodeField(k, v, &in.Type)
		case "name":
			err = decodeField(k, v, &in.Name)
		case "enabled":
			err = decodeField(k, v, &in.Enabled)
		case "jit":
			in.JIT = v
		case "mapping":
			in.Mapping = v
		case "id", "tenant_id", "created_at", "updated_at":
			return nil, gatehouse.FieldError(k, "%s is set by the server and cannot be written.", k)
		default:
			in.Protocol[k] = v
		}
		if err != nil {
			return nil, err
		}
	}
	return in, nil
}

// decodeField decodes one field's raw JSON, naming it in errors; null is
// refused (send a value or leave the field out).
func decodeField(field string, v json.RawMessage, dst any) error {
	if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return gatehouse.FieldError(field, "%s must not be null; leave it out instead.", field)
	}
	if err := json.Unmarshal(v, dst); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return gatehouse.FieldError(field, "Field %q must be %s, not %s.", field, jsonKind(typ.Type.Kind().String()), typ.Value)
		}
		return jsonError(err, "")
	}
	return nil
}

// applyPolicy decodes the jit and mapping objects over c's current ones
// (absent keys keep their value) and validates them.
func applyPolicy(ctx context.Context, tx gatehouse.Tx, tenantID string, in *connInput, c *gatehouse.Connection) error {
	if in.JIT != nil {
		p := c.JIT
		if err := decodeStrict(in.JIT, "jit.", &p); err != nil {
			return err
		}
		if err := checkJIT(ctx, tx, tenantID, &p); err != nil {
			return err
		}
		c.JIT = p
	}
	if in.Mapping != nil {
		m := c.Mapping
		if err := decodeStrict(in.Mapping, "mapping.", &m); err != nil {
			return err
		}
		if err := mapping.Validate(m); err != nil {
			return err
		}
		c.Mapping = m
	}
	return nil
}

// checkJIT validates a JIT policy: domains well-formed, and every group it
// names exists (an unknown default group would fail every first login).
func checkJIT(ctx context.Context, tx gatehouse.Tx, tenantID string, p *gatehouse.JITPolicy) error {
	if p.AllowedDomains != nil {
		d, err := normalizeDomains("jit.allowed_domains", *p.AllowedDomains)
		if err != nil {
			return err
		}
		p.AllowedDomains = &d
	}
	groups := []string{}
	for _, g := range p.DefaultGroups {
		g = strings.TrimSpace(g)
		if _, err := tx.GetGroupByName(ctx, tenantID, g); gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return gatehouse.FieldError("jit.default_groups", "There is no group named %q in this tenant; create it first.", g)
		} else if err != nil {
			return err
		}
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	p.DefaultGroups = groups
	for idp, g := range p.GroupSync.Mapping {
		if strings.TrimSpace(idp) == "" {
			return gatehouse.FieldError("jit.group_sync.mapping", "IdP group names must not be empty.")
		}
		if _, err := tx.GetGroupByName(ctx, tenantID, g); gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return gatehouse.FieldError("jit.group_sync.mapping", "IdP group %q maps to %q, which is not a group in this tenant.", idp, g)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// lookupType finds a connection type available on this instance.
func (s *server) lookupType(name string) (*connector.Type, error) {
	t, ok := connector.Lookup(name, s.env.Dev)
	if !ok {
		return nil, gatehouse.FieldError("type", "Unknown connection type %q; this server offers: %s.", name, strings.Join(connector.Names(s.env.Dev), ", "))
	}
	return t, nil
}

// configure runs the protocol's Configure over c and seals the secrets it
// returns, bound to the connection id.
func (s *server) configure(ctx context.Context, t *connector.Type, c *gatehouse.Connection, in *connInput) error {
	return connector.ConfigureSealed(ctx, s.env, t, c, s.cfg.Keyring, in.Protocol)
}

func (s *server) createConnection(w http.ResponseWriter, r *http.Request, c *call) error {
	in, err := s.decodeConn(w, r)
	if err != nil {
		return err
	}
	if in.Type == nil {
		return gatehouse.FieldError("type", "type is required; this server offers: %s.", strings.Join(connector.Names(s.env.Dev), ", "))
	}
	t, err := s.lookupType(*in.Type)
	if err != nil {
		return err
	}
	if in.Name == nil {
		return gatehouse.FieldError("name", "name is required.")
	}
	now := s.clock.Now().UTC()
	conn := &gatehouse.Connection{ID: gatehouse.NewID("con"), TenantID: c.tenant.ID, Type: t.Name,
		Enabled: true, JIT: gatehouse.DefaultJITPolicy(), CreatedAt: now, UpdatedAt: now}
	if err := applyConnCommon(in, conn); err != nil {
		return err
	}
	if err := s.configure(r.Context(), t, conn, in); err != nil {
		return err
	}
	err = s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		if err := applyPolicy(r.Context(), tx, conn.TenantID, in, conn); err != nil {
			return err
		}
		if err := tx.CreateConnection(r.Context(), conn); err != nil {
			return err
		}
		return s.audit(r.Context(), tx, conn.TenantID, c.actor(r), "connection.created", "connection", conn.ID,
			map[string]any{"type": conn.Type, "name": conn.Name})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.connOut(t, conn))
	return nil
}

// applyConnCommon copies name and enabled.
func applyConnCommon(in *connInput, c *gatehouse.Connection) error {
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if err := checkName("name", n, 200); err != nil {
			return err
		}
		c.Name = n
	}
	if in.Enabled != nil {
		c.Enabled = *in.Enabled
	}
	return nil
}

func (s *server) listConnections(w http.ResponseWriter, r *http.Request, c *call) error {
	var cs []*gatehouse.Connection
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		cs, err = tx.ListConnections(r.Context(), c.tenant.ID)
		return err
	})
	if err != nil {
		return err
	}
	writeList(w, cs, func(conn *gatehouse.Connection) map[string]any {
		t, _ := connector.Lookup(conn.Type, true)
		return s.connOut(t, conn)
	})
	return nil
}

func (s *server) getConnection(w http.ResponseWriter, r *http.Request, c *call) error {
	var conn *gatehouse.Connection
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		conn, err = tx.GetConnection(r.Context(), c.tenant.ID, r.PathValue("id"))
		return notFound(err, "Connection")
	})
	if err != nil {
		return err
	}
	t, _ := connector.Lookup(conn.Type, true)
	writeJSON(w, http.StatusOK, s.connOut(t, conn))
	return nil
}

func (s *server) updateConnection(w http.ResponseWriter, r *http.Request, c *call) error {
	in, err := s.decodeConn(w, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var conn *gatehouse.Connection
	err = s.store.View(ctx, func(tx gatehouse.Tx) error {
		conn, err = tx.GetConnection(ctx, c.tenant.ID, r.PathValue("id"))
		return notFound(err, "Connection")
	})
	if err != nil {
		return err
	}
	if in.Type != nil && *in.Type != conn.Type {
		return gatehouse.FieldError("type", "A connection's type cannot change; create a new connection instead.")
	}
	t, err := s.lookupType(conn.Type)
	if err != nil {
		return err
	}
	if err := applyConnCommon(in, conn); err != nil {
		return err
	}
	// Protocol fields are re-validated only when some are sent, and outside
	// the write transaction: Configure may fetch metadata over the network.
	if len(in.Protocol) > 0 {
		if err := s.configure(ctx, t, conn, in); err != nil {
			return err
		}
	}
	err = s.store.Update(ctx, func(tx gatehouse.Tx) error {
		cur, err := tx.GetConnection(ctx, c.tenant.ID, conn.ID)
		if err != nil {
			return notFound(err, "Connection")
		}
		if !cur.UpdatedAt.Equal(conn.UpdatedAt) {
			return gatehouse.Errorf(gatehouse.EPRECONDITION, "The connection changed while this request ran; send it again.")
		}
		if err := applyPolicy(ctx, tx, conn.TenantID, in, conn); err != nil {
			return err
		}
		conn.UpdatedAt = s.clock.Now().UTC()
		if err := tx.UpdateConnection(ctx, conn); err != nil {
			return err
		}
		changed := slices.Sorted(maps.Keys(in.Protocol))
		for _, k := range connCommon {
			if present(in, k) {
				changed = append(changed, k)
			}
		}
		return s.audit(ctx, tx, conn.TenantID, c.actor(r), "connection.updated", "connection", conn.ID, map[string]any{"changed": changed})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.connOut(t, conn))
	return nil
}

func present(in *connInput, field string) bool {
	switch field {
	case "type":
		return in.Type != nil
	case "name":
		return in.Name != nil
	case "enabled":
		return in.Enabled != nil
	case "jit":
		return in.JIT != nil
	case "mapping":
		return in.Mapping != nil
	}
	return false
}

// deleteConnection removes the connection with its identity links and the
// sessions started through it (the store does both); users stay.
func (s *server) deleteConnection(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.deleteByID(w, r, c, "connection.deleted", "connection", "Connection",
		func(tx gatehouse.Tx, id string) error { return tx.DeleteConnection(r.Context(), c.tenant.ID, id) })
}
