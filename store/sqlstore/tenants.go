package sqlstore

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

const tenantColumns = `id, slug, name, support_contact, admin_groups, session_idle, session_absolute, created_at, updated_at`

const tenantNotFound = "Tenant not found."

func scanTenant(sc scanner) (*gatehouse.Tenant, error) {
	var t gatehouse.Tenant
	var adminGroups []byte
	var idle, absolute, created, updated int64
	if err := sc.Scan(&t.ID, &t.Slug, &t.Name, &t.SupportContact, &adminGroups, &idle, &absolute, &created, &updated); err != nil {
		return nil, err
	}
	if err := unmarshalJSON(adminGroups, &t.AdminGroups); err != nil {
		return nil, err
	}
	t.AdminGroups = orEmpty(t.AdminGroups)
	t.SessionIdle, t.SessionAbsolute = time.Duration(idle), time.Duration(absolute)
	t.CreatedAt, t.UpdatedAt = fromTS(created), fromTS(updated)
	return &t, nil
}

// normDomains lower-cases, de-duplicates and sorts a tenant's domains.
func normDomains(in []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, d := range in {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

func (t *tx) CreateTenant(ctx context.Context, te *gatehouse.Tenant) error {
	if te.ID == "" {
		te.ID = gatehouse.NewID("ten")
	}
	now := t.s.now()
	te.CreatedAt, te.UpdatedAt = now, now
	te.Domains = normDomains(te.Domains)
	te.AdminGroups = orEmpty(te.AdminGroups)
	admin, err := jsonArg(te.AdminGroups)
	if err != nil {
		return err
	}
	return t.guard(ctx, func() error {
		if _, err := t.exec(ctx, `INSERT INTO tenants (`+tenantColumns+`, slug_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			te.ID, te.Slug, te.Name, te.SupportContact, admin, int64(te.SessionIdle), int64(te.SessionAbsolute),
			ts(now), ts(now), gatehouse.FoldKey(te.Slug)); err != nil {
			return err
		}
		return t.insertDomains(ctx, te.ID, te.Domains, now)
	})
}

func (t *tx) insertDomains(ctx context.Context, tenantID string, domains []string, now time.Time) error {
	for _, d := range domains {
		if _, err := t.exec(ctx, `INSERT INTO tenant_domains (domain, tenant_id, created_at) VALUES ($1, $2, $3)`,
			d, tenantID, ts(now)); err != nil {
			return err
		}
	}
	return nil
}

// loadDomains fills the Domains of tenants in one query.
func (t *tx) loadDomains(ctx context.Context, tenants ...*gatehouse.Tenant) error {
	if len(tenants) == 0 {
		return nil
	}
	byID := make(map[string]*gatehouse.Tenant, len(tenants))
	args := make([]any, len(tenants))
	for i, te := range tenants {
		te.Domains = []string{}
		byID[te.ID] = te
		args[i] = te.ID
	}
	return t.each(ctx, func(sc scanner) error {
		var d, id string
		if err := sc.Scan(&d, &id); err != nil {
			return err
		}
		byID[id].Domains = append(byID[id].Domains, d)
		return nil
	}, `SELECT domain, tenant_id FROM tenant_domains WHERE tenant_id IN (`+placeholders(1, len(args))+`) ORDER BY domain`, args...)
}

func (t *tx) getTenant(ctx context.Context, query string, arg string) (*gatehouse.Tenant, error) {
	te, err := one(ctx, t, tenantNotFound, scanTenant, query, arg)
	if err != nil {
		return nil, err
	}
	if err := t.loadDomains(ctx, te); err != nil {
		return nil, err
	}
	return te, nil
}

func (t *tx) GetTenant(ctx context.Context, id string) (*gatehouse.Tenant, error) {
	return t.getTenant(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id)
}

func (t *tx) GetTenantBySlug(ctx context.Context, slug string) (*gatehouse.Tenant, error) {
	return t.getTenant(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE slug_key = $1`, gatehouse.FoldKey(slug))
}

func (t *tx) GetTenantByDomain(ctx context.Context, domain string) (*gatehouse.Tenant, error) {
	d := normDomains([]string{domain})
	if len(d) == 0 {
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, tenantNotFound)
	}
	return t.getTenant(ctx, `SELECT `+prefixed("t.", tenantColumns)+` FROM tenants t JOIN tenant_domains d ON d.tenant_id = t.id WHERE d.domain = $1`, d[0])
}

func (t *tx) ListTenants(ctx context.Context, p gatehouse.Page) ([]*gatehouse.Tenant, string, error) {
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(p)
	list, next, err := listPage(ctx, t, scanTenant, limit, func(te *gatehouse.Tenant) string { return te.ID }, `SELECT `+tenantColumns+` FROM tenants WHERE id > $1 ORDER BY id LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	if err := t.loadDomains(ctx, list...); err != nil {
		return nil, "", err
	}
	return list, next, nil
}

func (t *tx) UpdateTenant(ctx context.Context, te *gatehouse.Tenant) error {
	return t.guard(ctx, func() error { return t.updateTenant(ctx, te) })
}

func (t *tx) updateTenant(ctx context.Context, te *gatehouse.Tenant) error {
	t.bumpCatalog()
	now := t.s.now()
	te.Domains = normDomains(te.Domains)
	te.AdminGroups = orEmpty(te.AdminGroups)
	admin, err := jsonArg(te.AdminGroups)
	if err != nil {
		return err
	}
	var created int64
	err = t.get(ctx, tenantNotFound, func(sc scanner) error { return sc.Scan(&created) },
		`UPDATE tenants SET slug = $2, slug_key = $3, name = $4, support_contact = $5, admin_groups = $6,
		 session_idle = $7, session_absolute = $8, updated_at = $9 WHERE id = $1 RETURNING created_at`,
		te.ID, te.Slug, gatehouse.FoldKey(te.Slug), te.Name, te.SupportContact, admin,
		int64(te.SessionIdle), int64(te.SessionAbsolute), ts(now))
	if err != nil {
		return err
	}
	te.CreatedAt, te.UpdatedAt = fromTS(created), now
	// Replace the domain set, keeping rows that stay (and their dates).
	var old []string
	if err := t.each(ctx, func(sc scanner) error {
		var d string
		err := sc.Scan(&d)
		old = append(old, d)
		return err
	}, `SELECT domain FROM tenant_domains WHERE tenant_id = $1`, te.ID); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, d := range te.Domains {
		keep[d] = true
	}
	var add []string
	for _, d := range old {
		if !keep[d] {
			if _, err := t.exec(ctx, `DELETE FROM tenant_domains WHERE tenant_id = $1 AND domain = $2`, te.ID, d); err != nil {
				return err
			}
		}
		delete(keep, d)
	}
	for _, d := range te.Domains {
		if keep[d] {
			add = append(add, d)
		}
	}
	return t.insertDomains(ctx, te.ID, add, now)
}

func (t *tx) DeleteTenant(ctx context.Context, id string) error {
	t.bumpCatalog()
	if err := t.affected(ctx, tenantNotFound, `DELETE FROM tenants WHERE id = $1`, id); err != nil {
		return err
	}
	// Audit and outbox rows carry no foreign key (see the schema); the
	// tenant's go with it. An event appended after this, in the same
	// transaction, records the deletion and stays.
	if _, err := t.exec(ctx, `DELETE FROM audit_events WHERE tenant_id = $1`, id); err != nil {
		return err
	}
	_, err := t.exec(ctx, `DELETE FROM outbox WHERE tenant_id = $1`, id)
	return err
}

// prefixed qualifies each column of a comma-separated list with p ("u.").
func prefixed(p, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}
