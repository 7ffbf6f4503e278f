package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

// confirmation is the content of the page shown before a destructive action.
type confirmation struct {
	Question string
	Detail   string
	Action   string // console path the form posts to
	Button   string
	Cancel   string // console path
}

func (c *Console) confirm(w http.ResponseWriter, r *http.Request, k *call, nav string, d confirmation) error {
	return c.render(w, r, k, http.StatusOK, "confirm", d.Question, nav, &view{D: d})
}

// tp is the console path of a tenant page.
func tp(t *gatehouse.Tenant, rest string) string { return "/t/" + t.Slug + rest }

// operatorHome lists the tenants; with none yet, it says what to do first.
func (c *Console) operatorHome(w http.ResponseWriter, r *http.Request, k *call) error {
	if !k.p.Superuser {
		http.Redirect(w, r, c.home(k.p), http.StatusSeeOther)
		return nil
	}
	return c.tenantsPage(w, r, k)
}

func (c *Console) tenantsPage(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	var ts []*gatehouse.Tenant
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		ts, _, err = tx.ListTenants(ctx, gatehouse.Page{Limit: 1000})
		return err
	})
	if err != nil {
		return err
	}
	return c.render(w, r, k, http.StatusOK, "tenants", "Tenants", "tenants", &view{D: ts})
}

func (c *Console) tenantNew(w http.ResponseWriter, r *http.Request, k *call) error {
	return c.render(w, r, k, http.StatusOK, "tenant_form", "Create a tenant", "tenants", &view{Form: url.Values{}, D: true})
}

func (c *Console) tenantCreate(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	now := c.clock.Now().UTC()
	t := &gatehouse.Tenant{ID: gatehouse.NewID("ten"), CreatedAt: now, UpdatedAt: now}
	err := tenantForm(r.PostForm, t, true, true)
	if err == nil {
		err = c.store.Update(ctx, func(tx gatehouse.Tx) error {
			if err := gatehouse.CheckTenantUnique(ctx, tx, t); err != nil {
				return err
			}
			if err := tx.CreateTenant(ctx, t); err != nil {
				return err
			}
			return c.audit(ctx, tx, r, k, t.ID, "tenant.created", "tenant", t.ID, map[string]any{"slug": t.Slug, "domains": t.Domains})
		})
	}
	if err != nil {
		return c.formError(w, r, k, err, "tenant_form", "Create a tenant", "tenants", &view{Form: r.PostForm, D: true})
	}
	return c.redirect(w, r, tp(t, "/"), "created")
}

// tenantValues fills the tenant form from t.
func tenantValues(t *gatehouse.Tenant) url.Values {
	return url.Values{"slug": {t.Slug}, "name": {t.Name}, "domains": {strings.Join(t.Domains, "\n")},
		"support_contact": {t.SupportContact}, "admin_groups": {strings.Join(t.AdminGroups, "\n")}}
}

func (c *Console) tenantSettings(w http.ResponseWriter, r *http.Request, k *call) error {
	return c.render(w, r, k, http.StatusOK, "tenant_form", "Organization settings", "settings", &view{Form: tenantValues(k.t), D: false})
}

func (c *Console) tenantUpdate(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	var changed *gatehouse.Tenant
	err := c.store.Update(ctx, func(tx gatehouse.Tx) error {
		t, err := tx.GetTenant(ctx, k.t.ID)
		if err != nil {
			return err
		}
		// Only the operator vouches for verified domains (they route logins
		// and widen JIT's default domain policy).
		if err := tenantForm(r.PostForm, t, false, k.p.Superuser); err != nil {
			return err
		}
		if err := gatehouse.CheckTenantUnique(ctx, tx, t); err != nil {
			return err
		}
		t.UpdatedAt = c.clock.Now().UTC()
		if err := tx.UpdateTenant(ctx, t); err != nil {
			return err
		}
		changed = t
		return c.audit(ctx, tx, r, k, t.ID, "tenant.updated", "tenant", t.ID, map[string]any{"changed": []string{"name", "domains", "support_contact", "admin_groups"}})
	})
	if err != nil {
		return c.formError(w, r, k, err, "tenant_form", "Organization settings", "settings", &view{Form: r.PostForm, D: false})
	}
	return c.redirect(w, r, tp(changed, "/settings"), "saved")
}

func (c *Console) tenantDeleteConfirm(w http.ResponseWriter, r *http.Request, k *call) error {
	return c.confirm(w, r, k, "settings", confirmation{
		Question: "Delete the tenant " + k.t.Name + "?",
		Detail:   "Its users, groups, connections, apps, tokens and audit log are deleted for good. Nobody can sign in to " + k.t.Name + " any more.",
		Action:   tp(k.t, "/delete"), Button: "Delete tenant " + k.t.Slug, Cancel: tp(k.t, "/settings")})
}

func (c *Console) tenantDelete(w http.ResponseWriter, r *http.Request, k *call) error {
	if !confirmed(r) {
		return errNeedsConfirm
	}
	ctx := r.Context()
	err := c.store.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.DeleteTenant(ctx, k.t.ID); err != nil {
			return err
		}
		return c.audit(ctx, tx, r, k, k.t.ID, "tenant.deleted", "tenant", k.t.ID, map[string]any{"slug": k.t.Slug})
	})
	if err != nil {
		return err
	}
	c.log.InfoContext(ctx, "tenant deleted in the console", "tenant_id", k.t.ID, "slug", k.t.Slug, "request_id", r.Header.Get("X-Request-Id"))
	return c.redirect(w, r, "/tenants", "deleted")
}
