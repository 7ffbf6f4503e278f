package api

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// audit appends the audit event of a change inside the change's transaction.
func (s *server) audit(ctx context.Context, tx gatehouse.Tx, tenantID string, a gatehouse.Actor, action, targetType, targetID string, details map[string]any) error {
	if s.via != "" {
		if details == nil {
			details = map[string]any{}
		}
		if _, ok := details["via"]; !ok {
			details["via"] = s.via
		}
	}
	return tx.AppendAudit(ctx, &gatehouse.AuditEvent{
		ID: gatehouse.NewID("aud"), TenantID: tenantID, Time: s.clock.Now().UTC(),
		ActorType: a.Type, ActorID: a.ID, Action: action, TargetType: targetType, TargetID: targetID,
		RequestID: a.RequestID, Details: details,
	})
}

// provisioned appends the outbox event of a user or group change for
// webhook delivery, in the change's transaction. Types and payloads are
// the ones JIT and SCIM write: user.created/updated/deactivated/
// reactivated with {"user":...}, user.deleted with {"user_id"},
// group.created/updated with {"group":...} (plus members_added or
// members_removed), group.deleted with {"group_id"}.
func (s *server) provisioned(ctx context.Context, tx gatehouse.Tx, tenantID, event string, payload map[string]any) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	return tx.AppendOutbox(ctx, &gatehouse.OutboxEvent{ID: gatehouse.NewID("obx"), TenantID: tenantID, Type: event,
		Payload: b, CreatedAt: s.clock.Now().UTC()})
}

// tenantJSON is a tenant as the API shows it.
type tenantJSON struct {
	ID                     string    `json:"id"`
	Slug                   string    `json:"slug"`
	Name                   string    `json:"name"`
	Domains                []string  `json:"domains"`
	SupportContact         string    `json:"support_contact"`
	AdminGroups            []string  `json:"admin_groups"`
	SessionIdleSeconds     int64     `json:"session_idle_seconds"`
	SessionAbsoluteSeconds int64     `json:"session_absolute_seconds"`
	CreatedAt              time.Time `json:"created_at"`
	UpdatedAt              time.Time `json:"updated_at"`
}

func tenantOut(t *gatehouse.Tenant) tenantJSON {
	return tenantJSON{ID: t.ID, Slug: t.Slug, Name: t.Name, Domains: nonNil(t.Domains),
		SupportContact: t.SupportContact, AdminGroups: nonNil(t.AdminGroups),
		SessionIdleSeconds: int64(t.SessionIdle / time.Second), SessionAbsoluteSeconds: int64(t.SessionAbsolute / time.Second),
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

// nonNil makes nil slices marshal as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// tenantInput is the body of POST and PATCH on tenants; nil means absent.
type tenantInput struct {
	Slug                   *string   `json:"slug"`
	Name                   *string   `json:"name"`
	Domains                *[]string `json:"domains"`
	SupportContact         *string   `json:"support_contact"`
	AdminGroups            *[]string `json:"admin_groups"`
	SessionIdleSeconds     *int64    `json:"session_idle_seconds"`
	SessionAbsoluteSeconds *int64    `json:"session_absolute_seconds"`
}

var slugRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// domainLabelRE is one DNS label (RFC 1123 §2.1), lower-case.
var domainLabelRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// normalizeDomain lower-cases and checks an email domain: at least two
// labels, no trailing dot, no IP literal.
func normalizeDomain(d string) (string, bool) {
	d = strings.ToLower(strings.TrimSpace(d))
	if len(d) > 253 || !strings.Contains(d, ".") {
		return "", false
	}
	labels := strings.Split(d, ".")
	for _, l := range labels {
		if !domainLabelRE.MatchString(l) {
			return "", false
		}
	}
	// The top-level label of a real domain is never all digits (RFC 3696 §2),
	// which also keeps IPv4 literals out.
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", false
	}
	return d, true
}

// normalizeDomains checks and de-duplicates a domain list under field.
func normalizeDomains(field string, in []string) ([]string, error) {
	out := []string{}
	for _, d := range in {
		n, ok := normalizeDomain(d)
		if !ok {
			return nil, gatehouse.FieldError(field, "%q is not a valid domain name (like example.com).", d)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// maxSeconds bounds the session lifetimes a tenant may set (a year).
const maxSeconds = 366 * 24 * 3600

// apply validates in and copies it onto t.
func (in *tenantInput) apply(t *gatehouse.Tenant) error {
	if in.Slug != nil {
		if !slugRE.MatchString(*in.Slug) {
			return gatehouse.FieldError("slug", "The slug must be 1 to 63 lower-case letters, digits or hyphens, starting and ending with a letter or digit.")
		}
		t.Slug = *in.Slug
	}
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if err := checkName("name", n, 200); err != nil {
			return err
		}
		t.Name = n
	}
	if in.Domains != nil {
		d, err := normalizeDomains("domains", *in.Domains)
		if err != nil {
			return err
		}
		t.Domains = d
	}
	if in.SupportContact != nil {
		sc := strings.TrimSpace(*in.SupportContact)
		if len(sc) > 500 || hasControl(sc) {
			return gatehouse.FieldError("support_contact", "The support contact must be at most 500 characters of text (an email address, a URL or a sentence).")
		}
		t.SupportContact = sc
	}
	if in.AdminGroups != nil {
		ag := []string{}
		for _, g := range *in.AdminGroups {
			g = strings.TrimSpace(g)
			if err := checkName("admin_groups", g, 256); err != nil {
				return err
			}
			if !slices.Contains(ag, g) {
				ag = append(ag, g)
			}
		}
		t.AdminGroups = ag
	}
	for _, d := range []struct {
		field string
		v     *int64
		dst   *time.Duration
	}{{"session_idle_seconds", in.SessionIdleSeconds, &t.SessionIdle}, {"session_absolute_seconds", in.SessionAbsoluteSeconds, &t.SessionAbsolute}} {
		if d.v == nil {
			continue
		}
		if *d.v < 0 || *d.v > maxSeconds {
			return gatehouse.FieldError(d.field, "%s must be from 0 (the server default) to %d.", d.field, maxSeconds)
		}
		*d.dst = time.Duration(*d.v) * time.Second
	}
	return nil
}

// checkName refuses an empty or over-long name, or one with control
// characters.
func checkName(field, v string, max int) error {
	if v == "" {
		return gatehouse.FieldError(field, "%s must not be empty.", field)
	}
	if len(v) > max || hasControl(v) {
		return gatehouse.FieldError(field, "%s must be at most %d characters, without control characters.", field, max)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}

func (s *server) createTenant(w http.ResponseWriter, r *http.Request, c *call) error {
	var in tenantInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if in.Slug == nil {
		return gatehouse.FieldError("slug", "slug is required.")
	}
	now := s.clock.Now().UTC()
	t := &gatehouse.Tenant{ID: gatehouse.NewID("ten"), Domains: []string{}, AdminGroups: []string{}, CreatedAt: now, UpdatedAt: now}
	if err := in.apply(t); err != nil {
		return err
	}
	if t.Name == "" {
		t.Name = t.Slug
	}
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		if err := gatehouse.CheckTenantUnique(r.Context(), tx, t); err != nil {
			return err
		}
		if err := tx.CreateTenant(r.Context(), t); err != nil {
			return err
		}
		return s.audit(r.Context(), tx, t.ID, c.actor(r), "tenant.created", "tenant", t.ID, map[string]any{"slug": t.Slug, "domains": t.Domains})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, tenantOut(t))
	return nil
}

func (s *server) listTenants(w http.ResponseWriter, r *http.Request, c *call) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	var ts []*gatehouse.Tenant
	var next string
	err = s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		ts, next, err = tx.ListTenants(r.Context(), p)
		return err
	})
	if err != nil {
		return err
	}
	out := list[tenantJSON]{Items: []tenantJSON{}, NextCursor: next}
	for _, t := range ts {
		out.Items = append(out.Items, tenantOut(t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getTenant(w http.ResponseWriter, r *http.Request, c *call) error {
	writeJSON(w, http.StatusOK, tenantOut(c.tenant))
	return nil
}

func (s *server) updateTenant(w http.ResponseWriter, r *http.Request, c *call) error {
	var in tenantInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	var t *gatehouse.Tenant
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		if t, err = tx.GetTenant(r.Context(), c.tenant.ID); err != nil {
			return err
		}
		before := *t
		if err := in.apply(t); err != nil {
			return err
		}
		// Verified domains route logins and widen JIT's default domain
		// policy; Gatehouse has no proof-of-ownership flow, so only the
		// operator vouches for them.
		if !sameSet(before.Domains, t.Domains) && c.p.role != gatehouse.RoleSuperuser {
			return &gatehouse.Error{Code: gatehouse.EFORBIDDEN, Field: "domains", Message: "Only the operator's superuser token may change a tenant's verified domains."}
		}
		if err := gatehouse.CheckTenantUnique(r.Context(), tx, t); err != nil {
			return err
		}
		t.UpdatedAt = s.clock.Now().UTC()
		if err := tx.UpdateTenant(r.Context(), t); err != nil {
			return err
		}
		return s.audit(r.Context(), tx, t.ID, c.actor(r), "tenant.updated", "tenant", t.ID, map[string]any{"changed": changedTenantFields(&in)})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tenantOut(t))
	return nil
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

func changedTenantFields(in *tenantInput) []string {
	var out []string
	for name, set := range map[string]bool{"slug": in.Slug != nil, "name": in.Name != nil, "domains": in.Domains != nil,
		"support_contact": in.SupportContact != nil, "admin_groups": in.AdminGroups != nil,
		"session_idle_seconds": in.SessionIdleSeconds != nil, "session_absolute_seconds": in.SessionAbsoluteSeconds != nil} {
		if set {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func (s *server) deleteTenant(w http.ResponseWriter, r *http.Request, c *call) error {
	t := c.tenant
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		if err := tx.DeleteTenant(r.Context(), t.ID); err != nil {
			return err
		}
		// The tenant's own audit log goes with it; the event is logged for
		// the operator as well.
		return s.audit(r.Context(), tx, t.ID, c.actor(r), "tenant.deleted", "tenant", t.ID, map[string]any{"slug": t.Slug})
	})
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "tenant deleted", "tenant_id", t.ID, "slug", t.Slug, "actor", c.p.id, "request_id", requestID(r))
	writeJSON(w, http.StatusNoContent, nil)
	return nil
}
