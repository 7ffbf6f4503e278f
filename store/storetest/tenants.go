package storetest

import (
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

func testTenants(t *testing.T, s gatehouse.Store) {
	te := &gatehouse.Tenant{Slug: "Acme", Name: "Acme Inc.", Domains: []string{"Acme.com", "acme.io", "acme.com"},
		SupportContact: "it@acme.com", AdminGroups: []string{"IT"}, SessionIdle: time.Hour, SessionAbsolute: 12 * time.Hour}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateTenant(ctx, te) })
	if te.ID == "" || te.CreatedAt.IsZero() {
		t.Fatalf("CreateTenant did not fill ID and CreatedAt: %+v", te)
	}
	check(t, "normalized domains", []string{"acme.com", "acme.io"}, te.Domains)
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetTenant(ctx, te.ID)
		if err != nil {
			return err
		}
		check(t, "GetTenant", te, got)
		got, err = tx.GetTenantBySlug(ctx, "ACME")
		if err != nil {
			return err
		}
		check(t, "GetTenantBySlug", te, got)
		got, err = tx.GetTenantByDomain(ctx, "acme.io")
		if err != nil {
			return err
		}
		check(t, "GetTenantByDomain", te, got)
		_, err = tx.GetTenantByDomain(ctx, "other.com")
		wantCode(t, "GetTenantByDomain(unknown)", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetTenant(ctx, "ten_missing")
		wantCode(t, "GetTenant(missing)", err, gatehouse.ENOTFOUND, "")
		list, next, err := tx.ListTenants(ctx, gatehouse.Page{})
		if err != nil {
			return err
		}
		check(t, "ListTenants", []*gatehouse.Tenant{te}, list)
		if next != "" {
			t.Errorf("ListTenants: cursor %q on the only page", next)
		}
		return nil
	})

	te.Name, te.Domains, te.AdminGroups = "Acme Corp", []string{"acme.io", "acme.org"}, nil
	update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateTenant(ctx, te) })
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetTenant(ctx, te.ID)
		if err != nil {
			return err
		}
		check(t, "after UpdateTenant", te, got)
		_, err = tx.GetTenantByDomain(ctx, "acme.com")
		wantCode(t, "dropped domain", err, gatehouse.ENOTFOUND, "")
		return nil
	})
	err := tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.UpdateTenant(ctx, &gatehouse.Tenant{ID: "ten_missing", Slug: "x", Name: "x"})
	})
	wantCode(t, "UpdateTenant(missing)", err, gatehouse.ENOTFOUND, "")

	update(t, s, func(tx gatehouse.Tx) error { return tx.DeleteTenant(ctx, te.ID) })
	view(t, s, func(tx gatehouse.Tx) error {
		_, err := tx.GetTenant(ctx, te.ID)
		wantCode(t, "GetTenant(deleted)", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetTenantByDomain(ctx, "acme.io")
		wantCode(t, "domain of deleted tenant", err, gatehouse.ENOTFOUND, "")
		return nil
	})
	err = tryUpdate(s, func(tx gatehouse.Tx) error { return tx.DeleteTenant(ctx, te.ID) })
	wantCode(t, "DeleteTenant twice", err, gatehouse.ENOTFOUND, "")
	// The deleted tenant's domain is free again.
	newTenant(t, s, "acme2", "acme.io")
}

func testTenantUniqueness(t *testing.T, s gatehouse.Store) {
	a := newTenant(t, s, "acme", "acme.com")
	err := tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.CreateTenant(ctx, &gatehouse.Tenant{Slug: "ACME", Name: "Other"})
	})
	wantCode(t, "slug in another case", err, gatehouse.ECONFLICT, "slug")

	// A verified domain belongs to at most one tenant.
	err = tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.CreateTenant(ctx, &gatehouse.Tenant{Slug: "globex", Name: "Globex", Domains: []string{"globex.com", "ACME.com"}})
	})
	wantCode(t, "domain of another tenant on create", err, gatehouse.ECONFLICT, "domain")
	view(t, s, func(tx gatehouse.Tx) error {
		// Nothing of the refused tenant was written.
		_, err := tx.GetTenantBySlug(ctx, "globex")
		wantCode(t, "refused tenant", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetTenantByDomain(ctx, "globex.com")
		wantCode(t, "refused tenant's domain", err, gatehouse.ENOTFOUND, "")
		return nil
	})
	b := newTenant(t, s, "globex", "globex.com")
	b.Domains = append(b.Domains, "acme.com")
	err = tryUpdate(s, func(tx gatehouse.Tx) error { return tx.UpdateTenant(ctx, b) })
	wantCode(t, "domain of another tenant on update", err, gatehouse.ECONFLICT, "domain")
	b.Slug = "Acme"
	b.Domains = []string{"globex.com"}
	err = tryUpdate(s, func(tx gatehouse.Tx) error { return tx.UpdateTenant(ctx, b) })
	wantCode(t, "slug taken on update", err, gatehouse.ECONFLICT, "slug")
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetTenantByDomain(ctx, "acme.com")
		if err != nil {
			return err
		}
		if got.ID != a.ID {
			t.Errorf("acme.com moved to %s", got.ID)
		}
		return nil
	})
}
