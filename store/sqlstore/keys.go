package sqlstore

import (
	"context"
	"database/sql"

	"github.com/gatehouse-sso/gatehouse"
)

const signingKeyColumns = `id, tenant_id, alg, private_key, public_jwk, created_at, retired_at, not_after`

const signingKeyNotFound = "Signing key not found."

func scanSigningKey(sc scanner) (*gatehouse.SigningKey, error) {
	var k gatehouse.SigningKey
	var jwk []byte
	var created int64
	var retired, notAfter sql.NullInt64
	if err := sc.Scan(&k.ID, &k.TenantID, &k.Alg, &k.Private, &jwk, &created, &retired, &notAfter); err != nil {
		return nil, err
	}
	k.PublicJWK = jwk
	k.CreatedAt, k.RetiredAt, k.NotAfter = fromTS(created), nullTime(retired), nullTime(notAfter)
	return &k, nil
}

func (t *tx) CreateSigningKey(ctx context.Context, k *gatehouse.SigningKey) error {
	if k.ID == "" {
		k.ID = gatehouse.NewID("key")
	}
	k.CreatedAt = t.s.now()
	k.RetiredAt, k.NotAfter = normTimePtr(k.RetiredAt), normTimePtr(k.NotAfter)
	return t.guardStmt(ctx, func() error {
		_, err := t.exec(ctx, `INSERT INTO signing_keys (`+signingKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			k.ID, k.TenantID, k.Alg, k.Private, string(k.PublicJWK), ts(k.CreatedAt), tsPtr(k.RetiredAt), tsPtr(k.NotAfter))
		return err
	})
}

// ListSigningKeys lists a tenant's keys, oldest first.
func (t *tx) ListSigningKeys(ctx context.Context, tenantID string) ([]*gatehouse.SigningKey, error) {
	return all(ctx, t, scanSigningKey, `SELECT `+signingKeyColumns+` FROM signing_keys WHERE tenant_id = $1 ORDER BY id`, tenantID)
}

// UpdateSigningKey writes a key's retirement and expiry (its material
// never changes: a new key gets a new ID).
func (t *tx) UpdateSigningKey(ctx context.Context, k *gatehouse.SigningKey) error {
	k.RetiredAt, k.NotAfter = normTimePtr(k.RetiredAt), normTimePtr(k.NotAfter)
	return t.affected(ctx, signingKeyNotFound, `UPDATE signing_keys SET retired_at = $3, not_after = $4 WHERE tenant_id = $1 AND id = $2`,
		k.TenantID, k.ID, tsPtr(k.RetiredAt), tsPtr(k.NotAfter))
}
