package console

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/op"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// Token prefixes, as the admin API issues them (secret scanners key on them).
const (
	scimTokenPrefix    = "gh_scim_"
	clientSecretPrefix = "gh_cs_"
)

type scimData struct {
	Tokens  []*gatehouse.SCIMToken
	Conns   []*gatehouse.Connection
	BaseURL string
	// New is the token just created: shown on this page only, never again.
	New string
}

func (c *Console) scimPage(w http.ResponseWriter, r *http.Request, k *call) error {
	return c.renderSCIM(w, r, k, &view{Form: url.Values{}}, c.takeOnce(w, r, k, tp(k.t, "/scim")))
}

func (c *Console) renderSCIM(w http.ResponseWriter, r *http.Request, k *call, v *view, created string) error {
	ctx := r.Context()
	d := &scimData{BaseURL: c.publicURL() + "/scim/v2", New: created}
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		if d.Tokens, err = tx.ListSCIMTokens(ctx, k.t.ID); err != nil {
			return err
		}
		d.Conns, err = tx.ListConnections(ctx, k.t.ID)
		return err
	})
	if err != nil {
		return err
	}
	v.D = d
	return c.render(w, r, k, http.StatusOK, "scim", "SCIM provisioning", "scim", v)
}

// scimCreate makes a SCIM token and shows it once (it is stored as a
// digest), on the SCIM page after a redirect: a reload neither posts
// again nor shows it again.
func (c *Console) scimCreate(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	f := r.PostForm
	name, err := textField("name", "The name", f.Get("name"), true, 200)
	token := secret.NewToken(scimTokenPrefix)
	t := &gatehouse.SCIMToken{ID: gatehouse.NewID("sct"), TenantID: k.t.ID, Name: name, ConnectionID: f.Get("connection_id"),
		Hash: secret.Digest(token), CreatedAt: c.clock.Now().UTC()}
	if err == nil {
		err = c.store.Update(ctx, func(tx gatehouse.Tx) error {
			if t.ConnectionID != "" {
				if _, err := tx.GetConnection(ctx, k.t.ID, t.ConnectionID); err != nil {
					return gatehouse.FieldError("connection_id", "Choose one of this tenant's connections.")
				}
			}
			if err := tx.CreateSCIMToken(ctx, t); err != nil {
				return err
			}
			return c.audit(ctx, tx, r, k, k.t.ID, "scim_token.created", "scim_token", t.ID, map[string]any{"name": t.Name})
		})
	}
	if err != nil {
		v := &view{Form: f}
		if err := showError(v, err); err != nil {
			return err
		}
		return c.renderSCIM(w, r, k, v, "")
	}
	return c.showOnce(w, r, k, tp(k.t, "/scim"), token, "created")
}

func (c *Console) scimRevokeConfirm(w http.ResponseWriter, r *http.Request, k *call) error {
	return c.confirm(w, r, k, "scim", confirmation{
		Question: "Revoke this SCIM token?",
		Detail:   "The identity provider using it can no longer create, change or deactivate users here until you give it a new token.",
		Action:   tp(k.t, "/scim/"+r.PathValue("id")+"/revoke"), Button: "Revoke token", Cancel: tp(k.t, "/scim")})
}

func (c *Console) scimRevoke(w http.ResponseWriter, r *http.Request, k *call) error {
	if !confirmed(r) {
		return errNeedsConfirm
	}
	return c.deleteObject(w, r, k, "scim_token", "scim_token.revoked", "/scim", func(ctx context.Context, tx gatehouse.Tx, id string) error {
		return tx.DeleteSCIMToken(ctx, k.t.ID, id)
	})
}

type appsData struct {
	Apps   []*gatehouse.App
	App    *gatehouse.App
	Issuer string
	// Secret is a client secret just made: shown once.
	Secret string
}

func (c *Console) issuer(k *call) string { return c.publicURL() + "/t/" + k.t.Slug }

func (c *Console) appsPage(w http.ResponseWriter, r *http.Request, k *call) error {
	return c.renderApps(w, r, k, &view{Form: url.Values{"alg": {"RS256"}}})
}

func (c *Console) renderApps(w http.ResponseWriter, r *http.Request, k *call, v *view) error {
	ctx := r.Context()
	d := &appsData{Issuer: c.issuer(k)}
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		d.Apps, err = tx.ListApps(ctx, k.t.ID)
		return err
	})
	if err != nil {
		return err
	}
	v.D = d
	return c.render(w, r, k, http.StatusOK, "apps", "Apps", "apps", v)
}

// appCreate registers an OIDC client: a confidential one gets a client
// secret shown once, on the app's page after a redirect.
func (c *Console) appCreate(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	f := r.PostForm
	now := c.clock.Now().UTC()
	id := gatehouse.NewID("app")
	a := &gatehouse.App{ID: id, ClientID: id, TenantID: k.t.ID, Public: f.Get("public") != "", IDTokenSigningAlg: f.Get("alg"),
		GrantTypes: []string{"authorization_code", "refresh_token"}, PostLogoutRedirectURIs: []string{},
		AllowedConnections: []string{}, AllowedGroups: []string{}, CreatedAt: now, UpdatedAt: now}
	var plain string
	name, err := textField("name", "The name", f.Get("name"), true, 200)
	a.Name = name
	if err == nil {
		a.RedirectURIs, err = redirectURIs("redirect_uris", splitList(f.Get("redirect_uris")))
	}
	if err == nil && len(a.RedirectURIs) == 0 {
		err = gatehouse.FieldError("redirect_uris", "An app that signs users in needs at least one redirect URI.")
	}
	if err == nil {
		err = op.CheckRedirectURIs(a.Public, c.env.Dev, a.RedirectURIs)
	}
	if err == nil && (a.IDTokenSigningAlg == "" || !op.ValidSigningAlg(a.IDTokenSigningAlg)) {
		err = gatehouse.FieldError("alg", "Choose RS256 (the default), ES256 or EdDSA.")
	}
	if err == nil {
		if !a.Public {
			plain = secret.NewToken(clientSecretPrefix)
			a.SecretHash = secret.Digest(plain)
		}
		err = c.store.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.CreateApp(ctx, a); err != nil {
				return err
			}
			return c.audit(ctx, tx, r, k, k.t.ID, "app.created", "app", a.ID, map[string]any{"name": a.Name, "public": a.Public})
		})
	}
	if err != nil {
		v := &view{Form: f}
		if err := showError(v, err); err != nil {
			return err
		}
		return c.renderApps(w, r, k, v)
	}
	return c.showOnce(w, r, k, tp(k.t, "/apps/"+a.ID), plain, "created")
}

func (c *Console) loadApp(r *http.Request, k *call) (*gatehouse.App, error) {
	return fetch(c, r, k, "app", gatehouse.Tx.GetApp)
}

func (c *Console) appPage(w http.ResponseWriter, r *http.Request, k *call) error {
	a, err := c.loadApp(r, k)
	if err != nil {
		return err
	}
	return c.renderApp(w, r, k, a, c.takeOnce(w, r, k, tp(k.t, "/apps/"+a.ID)))
}

func (c *Console) renderApp(w http.ResponseWriter, r *http.Request, k *call, a *gatehouse.App, plain string) error {
	return c.render(w, r, k, http.StatusOK, "app", a.Name, "apps", &view{D: &appsData{App: a, Issuer: c.issuer(k), Secret: plain}})
}

func (c *Console) appRotateConfirm(w http.ResponseWriter, r *http.Request, k *call) error {
	a, err := c.loadApp(r, k)
	if err != nil {
		return err
	}
	return c.confirm(w, r, k, "apps", confirmation{
		Question: "Rotate the client secret of " + a.Name + "?",
		Detail:   "The current secret stops working at once: the app cannot sign anyone in until it is configured with the new one.",
		Action:   tp(k.t, "/apps/"+a.ID+"/rotate"), Button: "Rotate secret", Cancel: tp(k.t, "/apps/"+a.ID)})
}

func (c *Console) appRotate(w http.ResponseWriter, r *http.Request, k *call) error {
	if !confirmed(r) {
		return errNeedsConfirm
	}
	ctx := r.Context()
	var a *gatehouse.App
	plain := secret.NewToken(clientSecretPrefix)
	err := c.store.Update(ctx, func(tx gatehouse.Tx) error {
		var err error
		if a, err = tx.GetApp(ctx, k.t.ID, r.PathValue("id")); err != nil {
			return err
		}
		if a.Public {
			return gatehouse.Errorf(gatehouse.ECONFLICT, "A public app has no client secret to rotate.")
		}
		a.SecretHash, a.UpdatedAt = secret.Digest(plain), c.clock.Now().UTC()
		if err := tx.UpdateApp(ctx, a); err != nil {
			return err
		}
		return c.audit(ctx, tx, r, k, k.t.ID, "app.secret_rotated", "app", a.ID, nil)
	})
	if err != nil {
		return err
	}
	return c.showOnce(w, r, k, tp(k.t, "/apps/"+a.ID), plain, "rotated")
}

func (c *Console) appDeleteConfirm(w http.ResponseWriter, r *http.Request, k *call) error {
	a, err := c.loadApp(r, k)
	if err != nil {
		return err
	}
	return c.confirm(w, r, k, "apps", confirmation{
		Question: "Delete the app " + a.Name + "?",
		Detail:   "It can no longer sign anyone in; its tokens stop working.",
		Action:   tp(k.t, "/apps/"+a.ID+"/delete"), Button: "Delete app", Cancel: tp(k.t, "/apps/"+a.ID)})
}

func (c *Console) appDelete(w http.ResponseWriter, r *http.Request, k *call) error {
	if !confirmed(r) {
		return errNeedsConfirm
	}
	return c.deleteObject(w, r, k, "app", "app.deleted", "/apps", func(ctx context.Context, tx gatehouse.Tx, id string) error {
		return tx.DeleteApp(ctx, k.t.ID, id)
	})
}
