package sqlstore

import (
	"context"
	"database/sql"

	"github.com/gatehouse-sso/gatehouse"
)

const connectionColumns = `id, tenant_id, type, name, enabled, config, secrets, jit, mapping, state, created_at, updated_at`

const connectionNotFound = "Connection not found."

func scanConnection(sc scanner) (*gatehouse.Connection, error) {
	var c gatehouse.Connection
	var config, state sql.NullString
	var jit, mapping []byte
	var created, updated int64
	if err := sc.Scan(&c.ID, &c.TenantID, &c.Type, &c.Name, &c.Enabled, &config, &c.Secrets, &jit, &mapping, &state, &created, &updated); err != nil {
		return nil, err
	}
	if err := unmarshalJSON(jit, &c.JIT); err != nil {
		return nil, err
	}
	if err := unmarshalJSON(mapping, &c.Mapping); err != nil {
		return nil, err
	}
	c.Config, c.State = rawJSON(config), rawJSON(state)
	c.CreatedAt, c.UpdatedAt = fromTS(created), fromTS(updated)
	return &c, nil
}

// connectionArgs are jit and mapping, encoded.
func connectionArgs(c *gatehouse.Connection) (jit, mapping string, err error) {
	if jit, err = jsonArg(c.JIT); err != nil {
		return "", "", err
	}
	mapping, err = jsonArg(c.Mapping)
	return jit, mapping, err
}

func (t *tx) CreateConnection(ctx context.Context, c *gatehouse.Connection) error {
	if c.ID == "" {
		c.ID = gatehouse.NewID("con")
	}
	now := t.s.now()
	c.CreatedAt, c.UpdatedAt = now, now
	jit, mapping, err := connectionArgs(c)
	if err != nil {
		return err
	}
	return t.guardStmt(ctx, func() error {
		_, err := t.exec(ctx, `INSERT INTO connections (`+connectionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			c.ID, c.TenantID, c.Type, c.Name, c.Enabled, rawArg(c.Config), c.Secrets, jit, mapping, rawArg(c.State), ts(now), ts(now))
		return err
	})
}

func (t *tx) getConnection(ctx context.Context, cond string, args ...any) (*gatehouse.Connection, error) {
	return one(ctx, t, connectionNotFound, scanConnection, `SELECT `+connectionColumns+` FROM connections WHERE `+cond, args...)
}

func (t *tx) GetConnection(ctx context.Context, tenantID, id string) (*gatehouse.Connection, error) {
	return t.getConnection(ctx, `tenant_id = $1 AND id = $2`, tenantID, id)
}

func (t *tx) GetConnectionByID(ctx context.Context, id string) (*gatehouse.Connection, error) {
	return t.getConnection(ctx, `id = $1`, id)
}

func (t *tx) ListConnections(ctx context.Context, tenantID string) ([]*gatehouse.Connection, error) {
	return all(ctx, t, scanConnection, `SELECT `+connectionColumns+` FROM connections WHERE tenant_id = $1 ORDER BY id`, tenantID)
}

func (t *tx) UpdateConnection(ctx context.Context, c *gatehouse.Connection) error {
	t.bumpCatalog()
	now := t.s.now()
	jit, mapping, err := connectionArgs(c)
	if err != nil {
		return err
	}
	var created int64
	err = t.guardStmt(ctx, func() error {
		return t.get(ctx, connectionNotFound, func(sc scanner) error { return sc.Scan(&created) },
			`UPDATE connections SET type = $3, name = $4, enabled = $5, config = $6, secrets = $7, jit = $8, mapping = $9,
			 state = $10, updated_at = $11 WHERE tenant_id = $1 AND id = $2 RETURNING created_at`,
			c.TenantID, c.ID, c.Type, c.Name, c.Enabled, rawArg(c.Config), c.Secrets, jit, mapping, rawArg(c.State), ts(now))
	})
	if err != nil {
		return err
	}
	c.CreatedAt, c.UpdatedAt = fromTS(created), now
	return nil
}

// DeleteConnection removes the connection, the identities linked through
// it and the sessions started through it. Users stay: they may sign in
// through another connection or be linked again.
func (t *tx) DeleteConnection(ctx context.Context, tenantID, id string) error {
	t.bumpCatalog()
	if err := t.affected(ctx, connectionNotFound, `DELETE FROM connections WHERE tenant_id = $1 AND id = $2`, tenantID, id); err != nil {
		return err
	}
	// Identities go by ON DELETE CASCADE; sessions carry no foreign key
	// to connections (a session may have none).
	_, err := t.exec(ctx, `DELETE FROM sessions WHERE tenant_id = $1 AND connection_id = $2`, tenantID, id)
	return err
}
