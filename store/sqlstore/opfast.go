package sqlstore

import (
	"context"

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
