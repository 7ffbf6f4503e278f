package gatehouse

import (
	"context"
	"strings"
)

// LookupTenant finds a tenant by ID ("ten_...") or slug, in tx. A missing
// tenant is ENOTFOUND.
func LookupTenant(ctx context.Context, tx Tx, ref string) (*Tenant, error) {
	if strings.HasPrefix(ref, "ten_") {
		return tx.GetTenant(ctx, ref)
	}
	return tx.GetTenantBySlug(ctx, strings.ToLower(ref))
}

// CheckTenantUnique refuses a slug or a domain that another tenant has: a
// domain routes logins (home-realm discovery), so it belongs to one tenant
// only. Errors are ECONFLICT naming the field.
func CheckTenantUnique(ctx context.Context, tx Tx, t *Tenant) error {
	if other, err := tx.GetTenantBySlug(ctx, t.Slug); err == nil && other.ID != t.ID {
		return &Error{Code: ECONFLICT, Field: "slug", Message: "A tenant with slug " + t.Slug + " already exists."}
	} else if err != nil && !IsCode(err, ENOTFOUND) {
		return err
	}
	for _, d := range t.Domains {
		other, err := tx.GetTenantByDomain(ctx, d)
		if IsCode(err, ENOTFOUND) {
			continue
		}
		if err != nil {
			return err
		}
		if other.ID != t.ID {
			return &Error{Code: ECONFLICT, Field: "domains", Message: "The domain " + d + " already belongs to another tenant."}
		}
	}
	return nil
}
