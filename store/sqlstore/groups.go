package sqlstore

import (
	"context"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// groupColumns is the column list scanGroup reads (alias g), ending with
// the distinct-member count.
const groupColumns = `g.id, g.tenant_id, g.name, g.external_id, g.source, g.created_at, g.updated_at, g.version,
	(SELECT COUNT(DISTINCT m.user_id) FROM memberships m WHERE m.tenant_id = g.tenant_id AND m.group_id = g.id)`

const groupNotFound = "Group not found."

func scanGroup(sc scanner) (*gatehouse.Group, error) {
	var g gatehouse.Group
	var created, updated int64
	if err := sc.Scan(&g.ID, &g.TenantID, &g.Name, &g.ExternalID, &g.Source, &created, &updated, &g.Version, &g.MemberCount); err != nil {
		return nil, err
	}
	g.CreatedAt, g.UpdatedAt = fromTS(created), fromTS(updated)
	return &g, nil
}

func (t *tx) CreateGroup(ctx context.Context, g *gatehouse.Group) error {
	if g.ID == "" {
		g.ID = gatehouse.NewID("grp")
	}
	if g.Source == "" {
		g.Source = gatehouse.SourceAdmin
	}
	now := t.s.now()
	g.CreatedAt, g.UpdatedAt, g.Version, g.MemberCount = now, now, 1, 0
	g.ExternalID = strings.TrimSpace(g.ExternalID)
	return t.guardStmt(ctx, func() error {
		_, err := t.exec(ctx, `INSERT INTO groups (id, tenant_id, name, name_key, external_id, source, created_at, updated_at, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			g.ID, g.TenantID, g.Name, gatehouse.FoldKey(g.Name), g.ExternalID, g.Source, ts(now), ts(now), g.Version)
		return err
	})
}

func (t *tx) getGroup(ctx context.Context, cond string, args ...any) (*gatehouse.Group, error) {
	return one(ctx, t, groupNotFound, scanGroup, `SELECT `+groupColumns+` FROM groups g WHERE `+cond, args...)
}

func (t *tx) GetGroup(ctx context.Context, tenantID, id string) (*gatehouse.Group, error) {
	return t.getGroup(ctx, `g.tenant_id = $1 AND g.id = $2`, tenantID, id)
}

func (t *tx) GetGroupByName(ctx context.Context, tenantID, name string) (*gatehouse.Group, error) {
	return t.getGroup(ctx, `g.tenant_id = $1 AND g.name_key = $2`, tenantID, gatehouse.FoldKey(name))
}

func (t *tx) ListGroups(ctx context.Context, tenantID string, p gatehouse.Page) ([]*gatehouse.Group, string, error) {
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(p)
	list, next, err := listPage(ctx, t, scanGroup, limit, func(g *gatehouse.Group) string { return g.ID }, `SELECT `+groupColumns+` FROM groups g WHERE g.tenant_id = $1 AND g.id > $2 ORDER BY g.id LIMIT $3`, tenantID, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	return list, next, nil
}

// UpdateGroup writes g when its stored version equals g.Version, then
// increments g.Version; EPRECONDITION otherwise.
func (t *tx) UpdateGroup(ctx context.Context, g *gatehouse.Group) error {
	now := t.s.now()
	g.ExternalID = strings.TrimSpace(g.ExternalID)
	var created int64
	err := t.guardStmt(ctx, func() error {
		return t.get(ctx, groupNotFound, func(sc scanner) error { return sc.Scan(&created) },
			`UPDATE groups SET name = $4, name_key = $5, external_id = $6, source = $7, updated_at = $8, version = version + 1
			 WHERE tenant_id = $1 AND id = $2 AND version = $3 RETURNING created_at`,
			g.TenantID, g.ID, g.Version, g.Name, gatehouse.FoldKey(g.Name), g.ExternalID, g.Source, ts(now))
	})
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return t.versionMismatch(ctx, `SELECT 1 FROM groups WHERE tenant_id = $1 AND id = $2`, g.TenantID, g.ID, groupNotFound)
	}
	if err != nil {
		return err
	}
	g.Version++
	g.CreatedAt, g.UpdatedAt = fromTS(created), now
	return nil
}

func (t *tx) DeleteGroup(ctx context.Context, tenantID, id string) error {
	// Memberships go by ON DELETE CASCADE.
	return t.affected(ctx, groupNotFound, `DELETE FROM groups WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

const membershipColumns = `tenant_id, group_id, user_id, managed_by, created_at`

func scanMembership(sc scanner) (*gatehouse.Membership, error) {
	var m gatehouse.Membership
	var created int64
	if err := sc.Scan(&m.TenantID, &m.GroupID, &m.UserID, &m.ManagedBy, &created); err != nil {
		return nil, err
	}
	m.CreatedAt = fromTS(created)
	return &m, nil
}

func (t *tx) AddMembership(ctx context.Context, m *gatehouse.Membership) error {
	if m.ManagedBy == "" {
		return gatehouse.FieldError("managed_by", "A membership needs a manager.")
	}
	now := t.s.now()
	// The user must be live: a tombstone keeps no memberships.
	ok, err := t.exists(ctx, `SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, m.TenantID, m.UserID)
	if err != nil {
		return err
	}
	if !ok {
		return gatehouse.Errorf(gatehouse.ENOTFOUND, userNotFound)
	}
	return t.guardStmt(ctx, func() error { return t.insertMembership(ctx, m, now) })
}

// insertMembership writes m (AddMembership without its checks).
func (t *tx) insertMembership(ctx context.Context, m *gatehouse.Membership, now time.Time) error {
	var created int64
	// Idempotent: an existing row for the same manager is kept with its
	// original date (the no-op update makes RETURNING see it).
	err := t.get(ctx, groupNotFound, func(sc scanner) error { return sc.Scan(&created) },
		`INSERT INTO memberships (`+membershipColumns+`) VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (tenant_id, group_id, user_id, managed_by) DO UPDATE SET created_at = memberships.created_at
		 RETURNING created_at`, m.TenantID, m.GroupID, m.UserID, m.ManagedBy, ts(now))
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		// The foreign key to groups(tenant_id, id) failed: no such group
		// in this tenant.
		return gatehouse.Errorf(gatehouse.ENOTFOUND, groupNotFound)
	}
	if err != nil {
		return err
	}
	m.CreatedAt = fromTS(created)
	return nil
}

func (t *tx) RemoveMembership(ctx context.Context, tenantID, groupID, userID, managedBy string) error {
	_, err := t.exec(ctx, `DELETE FROM memberships WHERE tenant_id = $1 AND group_id = $2 AND user_id = $3 AND managed_by = $4`,
		tenantID, groupID, userID, managedBy)
	return err
}

func (t *tx) listMemberships(ctx context.Context, query string, args ...any) ([]*gatehouse.Membership, error) {
	return all(ctx, t, scanMembership, query, args...)
}

func (t *tx) ListGroupMembers(ctx context.Context, tenantID, groupID, managedBy string) ([]*gatehouse.Membership, error) {
	if managedBy == "" {
		return t.listMemberships(ctx, `SELECT `+membershipColumns+` FROM memberships WHERE tenant_id = $1 AND group_id = $2
			ORDER BY user_id, managed_by`, tenantID, groupID)
	}
	return t.listMemberships(ctx, `SELECT `+membershipColumns+` FROM memberships WHERE tenant_id = $1 AND group_id = $2 AND managed_by = $3
		ORDER BY user_id`, tenantID, groupID, managedBy)
}

func (t *tx) ListUserMemberships(ctx context.Context, tenantID, userID string) ([]*gatehouse.Membership, error) {
	return t.listMemberships(ctx, `SELECT `+membershipColumns+` FROM memberships WHERE tenant_id = $1 AND user_id = $2
		ORDER BY group_id, managed_by`, tenantID, userID)
}
