package api

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/op"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// ClientSecretPrefix starts every app client secret (URL-safe base64 after
// it, so it fits client_secret_basic and form posts unescaped).
const ClientSecretPrefix = "gh_cs_"

var grantTypes = []string{"authorization_code", "refresh_token", "client_credentials"}

// maxTTL bounds app token lifetimes (90 days).
const maxTTL = 90 * 24 * 3600

type appJSON struct {
	ID                     string    `json:"id"`
	ClientID               string    `json:"client_id"`
	ClientSecret           string    `json:"client_secret,omitempty"`
	Name                   string    `json:"name"`
	Public                 bool      `json:"public"`
	RedirectURIs           []string  `json:"redirect_uris"`
	PostLogoutRedirectURIs []string  `json:"post_logout_redirect_uris"`
	AllowedConnections     []string  `json:"allowed_connections"`
	AllowedGroups          []string  `json:"allowed_groups"`
	GrantTypes             []string  `json:"grant_types"`
	IDTokenSigningAlg      string    `json:"id_token_signing_alg"`
	BackchannelLogoutURI   string    `json:"backchannel_logout_uri"`
	AccessTokenTTL         int       `json:"access_token_ttl"`
	RefreshTokenTTL        int       `json:"refresh_token_ttl"`
	Issuer                 string    `json:"issuer"`
	CreatedAt              time.Time `json:"created_at"`
	UpdatedAt              time.Time `json:"updated_at"`
}

func (s *server) appOut(t *gatehouse.Tenant, a *gatehouse.App) appJSON {
	return appJSON{ID: a.ID, ClientID: a.ClientID, Name: a.Name, Public: a.Public,
		RedirectURIs: nonNil(a.RedirectURIs), PostLogoutRedirectURIs: nonNil(a.PostLogoutRedirectURIs),
		AllowedConnections: nonNil(a.AllowedConnections), AllowedGroups: nonNil(a.AllowedGroups),
		GrantTypes: nonNil(a.GrantTypes), IDTokenSigningAlg: a.IDTokenSigningAlg, BackchannelLogoutURI: a.BackchannelLogoutURI,
		AccessTokenTTL: a.AccessTokenTTL, RefreshTokenTTL: a.RefreshTokenTTL,
		Issuer: s.env.PublicURL + "/t/" + t.Slug, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

// appInput is the body of POST and PATCH on apps; nil means absent.
type appInput struct {
	Name                   *string   `json:"name"`
	RedirectURIs           *[]string `json:"redirect_uris"`
	PostLogoutRedirectURIs *[]string `json:"post_logout_redirect_uris"`
	AllowedConnections     *[]string `json:"allowed_connections"`
	AllowedGroups          *[]string `json:"allowed_groups"`
	GrantTypes             *[]string `json:"grant_types"`
	IDTokenSigningAlg      *string   `json:"id_token_signing_alg"`
	BackchannelLogoutURI   *string   `json:"backchannel_logout_uri"`
	Public                 *bool     `json:"public"`
	AccessTokenTTL         *int      `json:"access_token_ttl"`
	RefreshTokenTTL        *int      `json:"refresh_token_ttl"`
}

// checkRedirectURI enforces what OAuth 2.0 requires of a registered
// redirect URI (RFC 6749 §3.1.2): absolute and without a fragment. Matching
// at authorize time is exact (RFC 9700 §4.1.3). Schemes that run code in
// the browser are refused outright.
func checkRedirectURI(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || raw != strings.TrimSpace(raw) {
		return gatehouse.FieldError(field, "%q is not an absolute URI.", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return gatehouse.FieldError(field, "%q must not contain a fragment (RFC 6749 §3.1.2).", raw)
	}
	if u.User != nil {
		return gatehouse.FieldError(field, "%q must not contain user information.", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "javascript", "data", "vbscript", "file", "blob":
		return gatehouse.FieldError(field, "%q uses a scheme that cannot be a redirect target.", raw)
	case "http", "https":
		if u.Host == "" {
			return gatehouse.FieldError(field, "%q has no host.", raw)
		}
	}
	if len(raw) > 2000 {
		return gatehouse.FieldError(field, "A URI must be at most 2000 characters.")
	}
	return nil
}

func checkURIs(field string, in []string) ([]string, error) {
	out := []string{}
	for _, u := range in {
		if err := checkRedirectURI(field, u); err != nil {
			return nil, err
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// apply validates in and copies it onto a; references to groups and
// connections are checked against the tenant in tx.
func (in *appInput) apply(ctx context.Context, tx gatehouse.Tx, a *gatehouse.App) error {
	var err error
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if err := checkName("name", n, 200); err != nil {
			return err
		}
		a.Name = n
	}
	if in.Public != nil {
		a.Public = *in.Public
	}
	if in.RedirectURIs != nil {
		if a.RedirectURIs, err = checkURIs("redirect_uris", *in.RedirectURIs); err != nil {
			return err
		}
	}
	if in.PostLogoutRedirectURIs != nil {
		if a.PostLogoutRedirectURIs, err = checkURIs("post_logout_redirect_uris", *in.PostLogoutRedirectURIs); err != nil {
			return err
		}
	}
	if in.BackchannelLogoutURI != nil {
		v := strings.TrimSpace(*in.BackchannelLogoutURI)
		if v != "" {
			// OIDC Back-Channel Logout §2.2: an absolute http(s) URL.
			if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
				return gatehouse.FieldError("backchannel_logout_uri", "backchannel_logout_uri must be an absolute http(s) URL without a fragment.")
			}
		}
		a.BackchannelLogoutURI = v
	}
	if in.IDTokenSigningAlg != nil {
		// The provider (package op) decides what it can sign with.
		if *in.IDTokenSigningAlg == "" || !op.ValidSigningAlg(*in.IDTokenSigningAlg) {
			return gatehouse.FieldError("id_token_signing_alg", "id_token_signing_alg must be RS256 (the default), ES256 or EdDSA.")
		}
		a.IDTokenSigningAlg = *in.IDTokenSigningAlg
	}
	if in.GrantTypes != nil {
		gts := []string{}
		for _, g := range *in.GrantTypes {
			if !slices.Contains(grantTypes, g) {
				return gatehouse.FieldError("grant_types", "Unknown grant type %q; use %s.", g, strings.Join(grantTypes, ", "))
			}
			if !slices.Contains(gts, g) {
				gts = append(gts, g)
			}
		}
		a.GrantTypes = gts
	}
	for _, ttl := range []struct {
		field string
		v     *int
		dst   *int
	}{{"access_token_ttl", in.AccessTokenTTL, &a.AccessTokenTTL}, {"refresh_token_ttl", in.RefreshTokenTTL, &a.RefreshTokenTTL}} {
		if ttl.v == nil {
			continue
		}
		if *ttl.v < 0 || *ttl.v > maxTTL {
			return gatehouse.FieldError(ttl.field, "%s must be from 0 (the server default) to %d seconds.", ttl.field, maxTTL)
		}
		*ttl.dst = *ttl.v
	}
	if in.AllowedGroups != nil {
		names := []string{}
		for _, g := range *in.AllowedGroups {
			grp, err := tx.GetGroupByName(ctx, a.TenantID, strings.TrimSpace(g))
			if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				return gatehouse.FieldError("allowed_groups", "There is no group named %q in this tenant.", g)
			} else if err != nil {
				return err
			}
			if !slices.Contains(names, grp.Name) {
				names = append(names, grp.Name)
			}
		}
		a.AllowedGroups = names
	}
	if in.AllowedConnections != nil {
		ids := []string{}
		for _, id := range *in.AllowedConnections {
			if _, err := tx.GetConnection(ctx, a.TenantID, id); gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				return gatehouse.FieldError("allowed_connections", "There is no connection %q in this tenant.", id)
			} else if err != nil {
				return err
			}
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		a.AllowedConnections = ids
	}
	return checkApp(a)
}

// checkApp applies the rules that span fields.
func checkApp(a *gatehouse.App) error {
	has := func(g string) bool { return slices.Contains(a.GrantTypes, g) }
	switch {
	case len(a.GrantTypes) == 0:
		return gatehouse.FieldError("grant_types", "An app needs at least one grant type.")
	case a.Public && has("client_credentials"):
		// RFC 6749 §4.4: only confidential clients may use client credentials.
		return gatehouse.FieldError("grant_types", "A public app cannot use client_credentials.")
	case has("refresh_token") && !has("authorization_code"):
		return gatehouse.FieldError("grant_types", "refresh_token needs authorization_code.")
	case has("authorization_code") && len(a.RedirectURIs) == 0:
		return gatehouse.FieldError("redirect_uris", "An app that signs users in needs at least one redirect URI.")
	}
	return nil
}

// newClientSecret returns a fresh client secret and its stored digest.
func newClientSecret() (string, []byte) {
	s := secret.NewToken(ClientSecretPrefix)
	return s, secret.Digest(s)
}

func (s *server) createApp(w http.ResponseWriter, r *http.Request, c *call) error {
	var in appInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if in.Name == nil {
		return gatehouse.FieldError("name", "name is required.")
	}
	now := s.clock.Now().UTC()
	id := gatehouse.NewID("app")
	a := &gatehouse.App{ID: id, ClientID: id, TenantID: c.tenant.ID, IDTokenSigningAlg: "RS256",
		GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{},
		PostLogoutRedirectURIs: []string{}, AllowedConnections: []string{}, AllowedGroups: []string{},
		CreatedAt: now, UpdatedAt: now}
	var plain string
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		if err := in.apply(r.Context(), tx, a); err != nil {
			return err
		}
		if err := op.CheckRedirectURIs(a.Public, s.env.Dev, a.RedirectURIs); err != nil {
			return err
		}
		if !a.Public {
			plain, a.SecretHash = newClientSecret()
		}
		if err := tx.CreateApp(r.Context(), a); err != nil {
			return err
		}
		return s.audit(r.Context(), tx, a.TenantID, c.actor(r), "app.created", "app", a.ID, map[string]any{"name": a.Name, "public": a.Public})
	})
	if err != nil {
		return err
	}
	out := s.appOut(c.tenant, a)
	out.ClientSecret = plain
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *server) listApps(w http.ResponseWriter, r *http.Request, c *call) error {
	var as []*gatehouse.App
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		as, err = tx.ListApps(r.Context(), c.tenant.ID)
		return err
	})
	if err != nil {
		return err
	}
	writeList(w, as, func(a *gatehouse.App) appJSON { return s.appOut(c.tenant, a) })
	return nil
}

func (s *server) getApp(w http.ResponseWriter, r *http.Request, c *call) error {
	var a *gatehouse.App
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		a, err = tx.GetApp(r.Context(), c.tenant.ID, r.PathValue("id"))
		return notFound(err, "App")
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.appOut(c.tenant, a))
	return nil
}

// changeApp reads the app {id}, lets change modify it, writes it and its
// audit event in one transaction, and answers with it, including the new
// client secret when change made one (shown this once).
func (s *server) changeApp(w http.ResponseWriter, r *http.Request, c *call, action string, change func(tx gatehouse.Tx, a *gatehouse.App) (details map[string]any, newSecret string, err error)) error {
	var a *gatehouse.App
	var plain string
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		if a, err = tx.GetApp(r.Context(), c.tenant.ID, r.PathValue("id")); err != nil {
			return notFound(err, "App")
		}
		var details map[string]any
		if details, plain, err = change(tx, a); err != nil {
			return err
		}
		a.UpdatedAt = s.clock.Now().UTC()
		if err := tx.UpdateApp(r.Context(), a); err != nil {
			return err
		}
		return s.audit(r.Context(), tx, a.TenantID, c.actor(r), action, "app", a.ID, details)
	})
	if err != nil {
		return err
	}
	out := s.appOut(c.tenant, a)
	out.ClientSecret = plain
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) updateApp(w http.ResponseWriter, r *http.Request, c *call) error {
	var in appInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	return s.changeApp(w, r, c, "app.updated", func(tx gatehouse.Tx, a *gatehouse.App) (map[string]any, string, error) {
		wasPublic := a.Public
		if err := in.apply(r.Context(), tx, a); err != nil {
			return nil, "", err
		}
		if err := op.CheckRedirectURIs(a.Public, s.env.Dev, a.RedirectURIs); err != nil {
			return nil, "", err
		}
		plain := ""
		switch {
		case a.Public && !wasPublic:
			a.SecretHash = nil // a public client has no secret
		case !a.Public && wasPublic:
			plain, a.SecretHash = newClientSecret()
		}
		return map[string]any{"name": a.Name}, plain, nil
	})
}

// rotateAppSecret replaces a confidential app's client secret at once; the
// new one is in the answer and never shown again. It needs no body.
func (s *server) rotateAppSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.changeApp(w, r, c, "app.secret_rotated", func(tx gatehouse.Tx, a *gatehouse.App) (map[string]any, string, error) {
		if a.Public {
			return nil, "", gatehouse.Errorf(gatehouse.ECONFLICT, "A public app has no client secret to rotate.")
		}
		plain, hash := newClientSecret()
		a.SecretHash = hash
		return nil, plain, nil
	})
}

func (s *server) deleteApp(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.deleteByID(w, r, c, "app.deleted", "app", "App",
		func(tx gatehouse.Tx, id string) error {
			app, err := tx.GetApp(r.Context(), c.tenant.ID, id)
			if err != nil {
				return err
			}
			// Tokens issued to a deleted app must not outlive it.
			if _, err := tx.RevokeOPTokens(r.Context(), c.tenant.ID, gatehouse.OPTokenFilter{ClientID: app.ClientID}, s.clock.Now().UTC()); err != nil {
				return err
			}
			return tx.DeleteApp(r.Context(), c.tenant.ID, id)
		})
}
