package sqlstore

import (
	"context"

	"github.com/gatehouse-sso/gatehouse"
)

// Fast paths for the sign-in hot path (PERF). Each is an optional method
// that callers find by type assertion, so gatehouse.Tx is unchanged.

// groupRefColumns are groupColumns without the member count: a sign-in
// that adds the user to a default group, or names the user's groups, needs
// only ids and names, and counting the members of "Everyone" on every login
// is linear in the tenant's size (a million-user tenant paid for a million
// index entries per login). MemberCount is left 0.
const groupRefColumns = `g.id, g.tenant_id, g.name, g.external_id, g.source, g.created_at, g.updated_at, g.version, 0`

// GetGroupRef is GetGroup without the member count.
func (t *tx) GetGroupRef(ctx context.Context, tenantID, id string) (*gatehouse.Group, error) {
	return one(ctx, t, groupNotFound, scanGroup, `SELECT `+groupRefColumns+` FROM groups g WHERE g.tenant_id = $1 AND g.id = $2`,
		tenantID, id)
}

// GetGroupRefByName is GetGroupByName without the member count.
func (t *tx) GetGroupRefByName(ctx context.Context, tenantID, name string) (*gatehouse.Group, error) {
	return one(ctx, t, groupNotFound, scanGroup, `SELECT `+groupRefColumns+` FROM groups g WHERE g.tenant_id = $1 AND g.name_key = $2`,
		tenantID, gatehouse.FoldKey(name))
}
