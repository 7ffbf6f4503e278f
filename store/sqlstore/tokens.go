package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// API tokens and SCIM tokens: bearer tokens stored as digests, looked up
// by digest across tenants (the token names its tenant).

const apiTokenColumns = `id, tenant_id, name, role, hash, created_at, last_used_at`

const tokenNotFound = "Token not found."

func scanAPIToken(sc scanner) (*gatehouse.APIToken, error) {
	var k gatehouse.APIToken
	var tenant sql.NullString
	var created int64
	var last sql.NullInt64
	if err := sc.Scan(&k.ID, &tenant, &k.Name, &k.Role, &k.Hash, &created, &last); err != nil {
		return nil, err
	}
	k.TenantID = tenant.String
	k.CreatedAt, k.LastUsedAt = fromTS(created), nullTime(last)
	return &k, nil
}

// nullIfEmpty stores "" as NULL (a token not scoped to a tenant).
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (t *tx) CreateAPIToken(ctx context.Context, k *gatehouse.APIToken) error {
	if len(k.Hash) == 0 {
		return gatehouse.FieldError("hash", "A token needs a digest.")
	}
	if k.ID == "" {
		k.ID = gatehouse.NewID("tok")
	}
	k.CreatedAt = t.s.now()
	k.LastUsedAt = normTimePtr(k.LastUsedAt)
	return t.guard(ctx, func() error {
		_, err := t.exec(ctx, `INSERT INTO api_tokens (`+apiTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			k.ID, nullIfEmpty(k.TenantID), k.Name, k.Role, k.Hash, ts(k.CreatedAt), tsPtr(k.LastUsedAt))
		return err
	})
}

func (t *tx) GetAPITokenByHash(ctx context.Context, hash []byte) (*gatehouse.APIToken, error) {
	return one(ctx, t, tokenNotFound, scanAPIToken, `SELECT `+apiTokenColumns+` FROM api_tokens WHERE hash = $1`, hash)
}

func (t *tx) ListAPITokens(ctx context.Context, tenantID string) ([]*gatehouse.APIToken, error) {
	cond := `tenant_id = $1`
	args := []any{tenantID}
	if tenantID == "" {
		cond, args = `tenant_id IS NULL`, nil
	}
	return all(ctx, t, scanAPIToken, `SELECT `+apiTokenColumns+` FROM api_tokens WHERE `+cond+` ORDER BY id`, args...)
}

func (t *tx) DeleteAPIToken(ctx context.Context, tenantID, id string) error {
	if tenantID == "" {
		return t.affected(ctx, tokenNotFound, `DELETE FROM api_tokens WHERE tenant_id IS NULL AND id = $1`, id)
	}
	return t.affected(ctx, tokenNotFound, `DELETE FROM api_tokens WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

func (t *tx) TouchAPIToken(ctx context.Context, id string, at time.Time) error {
	return t.affected(ctx, tokenNotFound, `UPDATE api_tokens SET last_used_at = $2 WHERE id = $1`, id, ts(at))
}

const scimTokenColumns = `id, tenant_id, name, connection_id, hash, created_at, last_used_at`

func scanSCIMToken(sc scanner) (*gatehouse.SCIMToken, error) {
	var k gatehouse.SCIMToken
	var created int64
	var last sql.NullInt64
	if err := sc.Scan(&k.ID, &k.TenantID, &k.Name, &k.ConnectionID, &k.Hash, &created, &last); err != nil {
		return nil, err
	}
	k.CreatedAt, k.LastUsedAt = fromTS(created), nullTime(last)
	return &k, nil
}

func (t *tx) CreateSCIMToken(ctx context.Context, k *gatehouse.SCIMToken) error {
	if len(k.Hash) == 0 {
		return gatehouse.FieldError("hash", "A token needs a digest.")
	}
	if k.ID == "" {
		k.ID = gatehouse.NewID("sct")
	}
	k.CreatedAt = t.s.now()
	k.LastUsedAt = normTimePtr(k.LastUsedAt)
	return t.guard(ctx, func() error {
		_, err := t.exec(ctx, `INSERT INTO scim_tokens (`+scimTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			k.ID, k.TenantID, k.Name, k.ConnectionID, k.Hash, ts(k.CreatedAt), tsPtr(k.LastUsedAt))
		return err
	})
}

func (t *tx) GetSCIMTokenByHash(ctx context.Context, hash []byte) (*gatehouse.SCIMToken, error) {
	return one(ctx, t, tokenNotFound, scanSCIMToken, `SELECT `+scimTokenColumns+` FROM scim_tokens WHERE hash = $1`, hash)
}

func (t *tx) ListSCIMTokens(ctx context.Context, tenantID string) ([]*gatehouse.SCIMToken, error) {
	return all(ctx, t, scanSCIMToken, `SELECT `+scimTokenColumns+` FROM scim_tokens WHERE tenant_id = $1 ORDER BY id`, tenantID)
}

func (t *tx) DeleteSCIMToken(ctx context.Context, tenantID, id string) error {
	// Before the statement: from now on no read of this token is cached
	// (see scimtokens.go for the bound this gives).
	t.s.scimTokens.revoke(id, t.s.clock.Now())
	return t.affected(ctx, tokenNotFound, `DELETE FROM scim_tokens WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

func (t *tx) TouchSCIMToken(ctx context.Context, id string, at time.Time) error {
	at = normTime(at)
	if err := t.affected(ctx, tokenNotFound, `UPDATE scim_tokens SET last_used_at = $2 WHERE id = $1`, id, ts(at)); err != nil {
		return err
	}
	t.s.scimTokens.touched(id, at)
	return nil
}
