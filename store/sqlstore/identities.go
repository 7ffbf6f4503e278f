package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

const identityColumns = `tenant_id, connection_id, subject, user_id, created_at, last_login_at`

const identityNotFound = "Identity not found."

func scanIdentity(sc scanner) (*gatehouse.FederatedIdentity, error) {
	var fi gatehouse.FederatedIdentity
	var created int64
	var last sql.NullInt64
	if err := sc.Scan(&fi.TenantID, &fi.ConnectionID, &fi.Subject, &fi.UserID, &created, &last); err != nil {
		return nil, err
	}
	fi.CreatedAt, fi.LastLoginAt = fromTS(created), nullTime(last)
	return &fi, nil
}

func (t *tx) CreateIdentity(ctx context.Context, fi *gatehouse.FederatedIdentity) error {
	if fi.Subject == "" {
		return gatehouse.FieldError("subject", "An identity needs a subject.")
	}
	// A tombstone takes no new links.
	ok, err := t.exists(ctx, `SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, fi.TenantID, fi.UserID)
	if err != nil {
		return err
	}
	if !ok {
		return gatehouse.Errorf(gatehouse.ENOTFOUND, userNotFound)
	}
	return t.guardStmt(ctx, func() error { return t.insertIdentity(ctx, fi) })
}

// insertIdentity writes a new link (CreateIdentity without its checks).
func (t *tx) insertIdentity(ctx context.Context, fi *gatehouse.FederatedIdentity) error {
	fi.CreatedAt = t.s.now()
	fi.LastLoginAt = normTimePtr(fi.LastLoginAt)
	_, err := t.exec(ctx, `INSERT INTO federated_identities (`+identityColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		fi.TenantID, fi.ConnectionID, fi.Subject, fi.UserID, ts(fi.CreatedAt), tsPtr(fi.LastLoginAt))
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return gatehouse.Errorf(gatehouse.ENOTFOUND, connectionNotFound)
	}
	return err
}

func (t *tx) GetIdentity(ctx context.Context, tenantID, connectionID, subject string) (*gatehouse.FederatedIdentity, error) {
	return one(ctx, t, identityNotFound, scanIdentity, `SELECT `+identityColumns+` FROM federated_identities WHERE connection_id = $2 AND subject = $3 AND tenant_id = $1`,
		tenantID, connectionID, subject)
}

func (t *tx) ListUserIdentities(ctx context.Context, tenantID, userID string) ([]*gatehouse.FederatedIdentity, error) {
	return all(ctx, t, scanIdentity, `SELECT `+identityColumns+` FROM federated_identities WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, connection_id, subject`,
		tenantID, userID)
}

func (t *tx) TouchIdentity(ctx context.Context, tenantID, connectionID, subject string, at time.Time) error {
	return t.affected(ctx, identityNotFound, `UPDATE federated_identities SET last_login_at = $4
		WHERE connection_id = $2 AND subject = $3 AND tenant_id = $1`, tenantID, connectionID, subject, ts(at))
}
