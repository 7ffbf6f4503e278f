package sqlstore

import (
	"context"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// Fast paths of the OpenID provider (package op), found by type assertion
// like those of fastpath.go, so gatehouse.Store and gatehouse.Tx are
// unchanged.

// LookupTenantRef is GetTenantBySlug as one statement on the reader pool,
// outside a transaction, and without the tenant's domains (Domains is
// nil): every request to the provider resolves its tenant from the path,
// and the BEGIN/COMMIT of a View plus the domains query were most of the
// cost of that (10 % of a code exchange's CPU). A single SELECT reads one
// consistent snapshot on both engines. No cache: a deleted or renamed
// tenant is gone at the next request.
func (s *Store) LookupTenantRef(ctx context.Context, slug string) (*gatehouse.Tenant, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE slug_key = $1`, gatehouse.FoldKey(slug))
	if err != nil {
		return nil, s.d.mapErr(err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, s.d.mapErr(err)
		}
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "%s", tenantNotFound)
	}
	t, err := scanTenant(rows)
	if err != nil {
		return nil, s.d.mapErr(err)
	}
	return t, s.d.mapErr(rows.Close())
}

// GetUserWithoutGroups is GetUser without the user's group names (Groups
// is nil): a token grant reads its user to check it is still active, and
// needs the groups only for the "groups" scope or an app limited to some
// groups; the membership join was two thirds of the read.
func (t *tx) GetUserWithoutGroups(ctx context.Context, tenantID, id string) (*gatehouse.User, error) {
	return one(ctx, t, userNotFound, scanUser, `SELECT `+userColumns+` FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, tenantID, id)
}

// SpendOPAuthCode is UseOPAuthCode in one statement when the code is
// unspent (UPDATE ... RETURNING, on both engines); only a spent or unknown
// code takes UseOPAuthCode's second read, to tell reuse from nothing.
func (t *tx) SpendOPAuthCode(ctx context.Context, tenantID string, codeHash []byte, at time.Time) (*gatehouse.OPAuthRequest, error) {
	if len(codeHash) > 0 {
		r, err := one(ctx, t, opAuthRequestNotFound, scanOPAuthRequest,
			`UPDATE op_auth_requests SET code_used_at = $3 WHERE tenant_id = $1 AND code_hash = $2 AND code_used_at IS NULL RETURNING `+opAuthRequestColumns,
			tenantID, codeHash, ts(normTime(at)))
		if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return r, err
		}
	}
	return t.UseOPAuthCode(ctx, tenantID, codeHash, at)
}

var _ interface {
	GetUserWithoutGroups(ctx context.Context, tenantID, id string) (*gatehouse.User, error)
	SpendOPAuthCode(ctx context.Context, tenantID string, codeHash []byte, at time.Time) (*gatehouse.OPAuthRequest, error)
} = (*tx)(nil)
