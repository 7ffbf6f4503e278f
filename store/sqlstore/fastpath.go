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

// LookupSCIMToken is GetSCIMTokenByHash as one statement on the reader
// pool, outside a transaction: SCIM authenticates every request with this
// read, and on SQLite the BEGIN/COMMIT of a View around it cost about as
// much as the query (half of the 9–12 % of a SCIM request's CPU that
// authentication took). A single SELECT reads one consistent snapshot on
// both engines, so nothing is lost. There is no cache: every request
// still reads the row, so a deleted (revoked) token fails on the very
// next request, on every replica.
func (s *Store) LookupSCIMToken(ctx context.Context, hash []byte) (*gatehouse.SCIMToken, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+scimTokenColumns+` FROM scim_tokens WHERE hash = $1`, hash)
	if err != nil {
		return nil, s.d.mapErr(err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, s.d.mapErr(err)
		}
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "%s", tokenNotFound)
	}
	tok, err := scanSCIMToken(rows)
	if err != nil {
		return nil, s.d.mapErr(err)
	}
	return tok, s.d.mapErr(rows.Close())
}
