package sqlstore

import (
	"context"

	"github.com/gatehouse-sso/gatehouse"
)

const appColumns = `id, tenant_id, name, client_id, secret_hash, is_public, redirect_uris, post_logout_redirect_uris,
	allowed_connections, allowed_groups, grant_types, id_token_signing_alg, backchannel_logout_uri,
	access_token_ttl, refresh_token_ttl, created_at, updated_at`

const appNotFound = "App not found."

func scanApp(sc scanner) (*gatehouse.App, error) {
	var a gatehouse.App
	var redirect, postLogout, conns, groups, grants []byte
	var created, updated int64
	if err := sc.Scan(&a.ID, &a.TenantID, &a.Name, &a.ClientID, &a.SecretHash, &a.Public, &redirect, &postLogout,
		&conns, &groups, &grants, &a.IDTokenSigningAlg, &a.BackchannelLogoutURI,
		&a.AccessTokenTTL, &a.RefreshTokenTTL, &created, &updated); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		text []byte
		dst  *[]string
	}{{redirect, &a.RedirectURIs}, {postLogout, &a.PostLogoutRedirectURIs}, {conns, &a.AllowedConnections}, {groups, &a.AllowedGroups}, {grants, &a.GrantTypes}} {
		if err := unmarshalJSON(f.text, f.dst); err != nil {
			return nil, err
		}
		*f.dst = orEmpty(*f.dst)
	}
	a.CreatedAt, a.UpdatedAt = fromTS(created), fromTS(updated)
	return &a, nil
}

// appArgs returns the values of appColumns after tenant_id... up to
// refresh_token_ttl (name through refresh_token_ttl), lists normalized.
func appArgs(a *gatehouse.App) ([]any, error) {
	args := []any{a.Name, a.ClientID, a.SecretHash, a.Public}
	for _, l := range []*[]string{&a.RedirectURIs, &a.PostLogoutRedirectURIs, &a.AllowedConnections, &a.AllowedGroups, &a.GrantTypes} {
		*l = orEmpty(*l)
		j, err := jsonArg(*l)
		if err != nil {
			return nil, err
		}
		args = append(args, j)
	}
	return append(args, a.IDTokenSigningAlg, a.BackchannelLogoutURI, a.AccessTokenTTL, a.RefreshTokenTTL), nil
}

func (t *tx) CreateApp(ctx context.Context, a *gatehouse.App) error {
	t.bumpCatalog()
	if a.ID == "" {
		a.ID = gatehouse.NewID("app")
	}
	if a.ClientID == "" {
		a.ClientID = a.ID
	}
	now := t.s.now()
	a.CreatedAt, a.UpdatedAt = now, now
	vals, err := appArgs(a)
	if err != nil {
		return err
	}
	args := append(append([]any{a.ID, a.TenantID}, vals...), ts(now), ts(now))
	return t.guardStmt(ctx, func() error {
		_, err := t.exec(ctx, `INSERT INTO apps (`+appColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`, args...)
		return err
	})
}

func (t *tx) getApp(ctx context.Context, cond string, args ...any) (*gatehouse.App, error) {
	return one(ctx, t, appNotFound, scanApp, `SELECT `+appColumns+` FROM apps WHERE `+cond, args...)
}

func (t *tx) GetApp(ctx context.Context, tenantID, id string) (*gatehouse.App, error) {
	return t.getApp(ctx, `tenant_id = $1 AND id = $2`, tenantID, id)
}

func (t *tx) GetAppByClientID(ctx context.Context, tenantID, clientID string) (*gatehouse.App, error) {
	return t.getApp(ctx, `tenant_id = $1 AND client_id = $2`, tenantID, clientID)
}

func (t *tx) ListApps(ctx context.Context, tenantID string) ([]*gatehouse.App, error) {
	return all(ctx, t, scanApp, `SELECT `+appColumns+` FROM apps WHERE tenant_id = $1 ORDER BY id`, tenantID)
}

func (t *tx) UpdateApp(ctx context.Context, a *gatehouse.App) error {
	t.bumpCatalog()
	now := t.s.now()
	vals, err := appArgs(a)
	if err != nil {
		return err
	}
	args := append(append([]any{a.TenantID, a.ID}, vals...), ts(now))
	var created int64
	err = t.guardStmt(ctx, func() error {
		return t.get(ctx, appNotFound, func(sc scanner) error { return sc.Scan(&created) },
			`UPDATE apps SET name = $3, client_id = $4, secret_hash = $5, is_public = $6, redirect_uris = $7,
			 post_logout_redirect_uris = $8, allowed_connections = $9, allowed_groups = $10, grant_types = $11,
			 id_token_signing_alg = $12, backchannel_logout_uri = $13, access_token_ttl = $14, refresh_token_ttl = $15,
			 updated_at = $16 WHERE tenant_id = $1 AND id = $2 RETURNING created_at`, args...)
	})
	if err != nil {
		return err
	}
	a.CreatedAt, a.UpdatedAt = fromTS(created), now
	return nil
}

// DeleteApp deletes an app and revokes, in the same transaction, the
// access and refresh tokens issued to it: they must not outlive it,
// whoever deletes it (the console's deletion did not revoke them, and
// userinfo does not read the app, so its access tokens kept working there
// until they expired).
func (t *tx) DeleteApp(ctx context.Context, tenantID, id string) error {
	t.bumpCatalog()
	var clientID string
	err := t.get(ctx, appNotFound, func(sc scanner) error { return sc.Scan(&clientID) },
		`DELETE FROM apps WHERE tenant_id = $1 AND id = $2 RETURNING client_id`, tenantID, id)
	if err != nil {
		return err
	}
	_, err = t.RevokeOPTokens(ctx, tenantID, gatehouse.OPTokenFilter{ClientID: clientID}, t.s.now())
	return err
}
