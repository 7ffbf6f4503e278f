package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

const auditColumns = `id, tenant_id, at, actor_type, actor_id, action, target_type, target_id, request_id, details`

func scanAudit(sc scanner) (*gatehouse.AuditEvent, error) {
	var e gatehouse.AuditEvent
	var at int64
	var details []byte
	if err := sc.Scan(&e.ID, &e.TenantID, &at, &e.ActorType, &e.ActorID, &e.Action, &e.TargetType, &e.TargetID, &e.RequestID, &details); err != nil {
		return nil, err
	}
	if err := unmarshalJSON(details, &e.Details); err != nil {
		return nil, err
	}
	if len(e.Details) == 0 {
		e.Details = nil
	}
	e.Time = fromTS(at)
	return &e, nil
}

func (t *tx) AppendAudit(ctx context.Context, e *gatehouse.AuditEvent) error {
	args, err := t.auditArgs(e)
	if err != nil {
		return err
	}
	return t.execDeferred(ctx, `INSERT INTO audit_events (`+auditColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, args...)
}

// auditArgs checks e, fills its defaults and returns its auditColumns values.
func (t *tx) auditArgs(e *gatehouse.AuditEvent) ([]any, error) {
	if e.Action == "" {
		return nil, gatehouse.FieldError("action", "An audit event needs an action.")
	}
	if e.ID == "" {
		e.ID = gatehouse.NewID("aud")
	}
	if e.Time.IsZero() {
		e.Time = t.s.now()
	}
	e.Time = normTime(e.Time)
	details, err := jsonArg(e.Details)
	if err != nil {
		return nil, err
	}
	if details == "null" {
		details = "{}"
	}
	return []any{e.ID, e.TenantID, ts(e.Time), e.ActorType, e.ActorID, e.Action, e.TargetType, e.TargetID, e.RequestID, details}, nil
}

// ListAudit lists a tenant's events newest first.
func (t *tx) ListAudit(ctx context.Context, tenantID string, f gatehouse.AuditFilter, p gatehouse.Page) ([]*gatehouse.AuditEvent, string, error) {
	before, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(p)
	w := &where{}
	w.add(`tenant_id = ?`, tenantID)
	switch {
	case f.Action == "":
	case strings.HasSuffix(f.Action, "."):
		// A prefix as a range ("user." ≤ action < "user/"): it uses the
		// index and needs no LIKE escaping.
		w.add(`action >= ? AND action < ?`, f.Action, f.Action[:len(f.Action)-1]+"/")
	default:
		w.add(`action = ?`, f.Action)
	}
	if f.TargetID != "" {
		w.add(`target_id = ?`, f.TargetID)
	}
	if f.ActorID != "" {
		w.add(`actor_id = ?`, f.ActorID)
	}
	if !f.Since.IsZero() {
		w.add(`at >= ?`, ts(f.Since))
	}
	if !f.Until.IsZero() {
		w.add(`at < ?`, ts(f.Until))
	}
	if before != "" {
		w.add(`id < ?`, before)
	}
	list, next, err := listPage(ctx, t, scanAudit, limit, func(e *gatehouse.AuditEvent) string { return e.ID }, `SELECT `+auditColumns+` FROM audit_events`+w.String()+` ORDER BY id DESC LIMIT `+w.arg(limit+1), w.args...)
	if err != nil {
		return nil, "", err
	}
	return list, next, nil
}

const outboxColumns = `id, tenant_id, type, payload, created_at, delivered_at, attempts`

func (t *tx) AppendOutbox(ctx context.Context, e *gatehouse.OutboxEvent) error {
	if e.ID == "" {
		e.ID = gatehouse.NewID("obx")
	}
	e.CreatedAt = t.s.now()
	e.DeliveredAt = normTimePtr(e.DeliveredAt)
	payload := string(e.Payload)
	if payload == "" {
		payload = "{}"
		e.Payload = json.RawMessage(payload)
	}
	// The outbox only feeds webhooks: a tenant without an enabled webhook
	// gets no row (four b-tree inserts now and an update when dispatched,
	// on every login and SCIM write, for nothing). A webhook receives the
	// events that happen while it exists and is enabled. The CASTs type
	// the parameters for PostgreSQL, which has no table to infer them from.
	return t.execDeferred(ctx, `INSERT INTO outbox (`+outboxColumns+`)
		SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS TEXT), CAST($5 AS BIGINT), CAST($6 AS BIGINT), CAST($7 AS BIGINT)
		WHERE EXISTS (SELECT 1 FROM webhooks WHERE tenant_id = $2 AND enabled)`,
		e.ID, e.TenantID, e.Type, payload, ts(e.CreatedAt), tsPtr(e.DeliveredAt), e.Attempts)
}

// ListPendingOutbox lists undelivered events, oldest first.
func (t *tx) ListPendingOutbox(ctx context.Context, limit int) ([]*gatehouse.OutboxEvent, error) {
	list := []*gatehouse.OutboxEvent{}
	err := t.each(ctx, func(sc scanner) error {
		var e gatehouse.OutboxEvent
		var payload string
		var created int64
		var delivered sql.NullInt64
		if err := sc.Scan(&e.ID, &e.TenantID, &e.Type, &payload, &created, &delivered, &e.Attempts); err != nil {
			return err
		}
		e.Payload = json.RawMessage(payload)
		e.CreatedAt, e.DeliveredAt = fromTS(created), nullTime(delivered)
		list = append(list, &e)
		return nil
	}, `SELECT `+outboxColumns+` FROM outbox WHERE delivered_at IS NULL ORDER BY id LIMIT $1`, pageLimit(gatehouse.Page{Limit: limit}))
	return list, err
}

// MarkOutboxDelivered records a delivery (and counts it as an attempt).
func (t *tx) MarkOutboxDelivered(ctx context.Context, id string, at time.Time) error {
	return t.affected(ctx, "Outbox event not found.", `UPDATE outbox SET delivered_at = $2, attempts = attempts + 1 WHERE id = $1`, id, ts(at))
}

// purgeEvery: one UseOnce call in purgeEvery also deletes expired keys,
// so the replay cache stays small without a background job.
const purgeEvery = 256

type purgeTicker struct{ n atomic.Uint64 }

func (p *purgeTicker) due() bool { return p.n.Add(1)%purgeEvery == 0 }

// UseOnce records key as used until expires; ECONFLICT when it is already
// used and not yet expired. An expired key may be used again.
func (t *tx) UseOnce(ctx context.Context, key string, expires time.Time) error {
	if key == "" {
		return gatehouse.FieldError("key", "A one-time key may not be empty.")
	}
	now := t.s.now()
	// The WHERE of DO UPDATE lets an expired row be taken over; a live
	// one is left alone and the statement changes nothing. Concurrent
	// callers serialize on the key: exactly one changes a row.
	n, err := t.count(ctx, `INSERT INTO used_once (key, expires) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE used_once.expires <= $3`,
		key, ts(expires), ts(now))
	if err != nil {
		return err
	}
	if n == 0 {
		return &gatehouse.Error{Code: gatehouse.ECONFLICT, Field: "key", Message: "This request was already used."}
	}
	return t.purgeUsedOnce(ctx, now)
}

// UseOnceIfCurrent is ConnectionVersion's check and UseOnce in one
// statement, the first two of a login's transaction (web's guard): it
// records key as used until expires only when connection connectionID
// belongs to tenantID, is enabled, and it and its tenant were last updated
// at connUpdated and tenantUpdated. It returns false, having written
// nothing, when the key is live or the connection is not so; the caller
// asks ConnectionVersion to tell which (a rare path: a replay, or a
// connection changed during the login).
func (t *tx) UseOnceIfCurrent(ctx context.Context, key string, expires time.Time, tenantID, connectionID string, connUpdated, tenantUpdated time.Time) (bool, error) {
	if key == "" {
		return false, gatehouse.FieldError("key", "A one-time key may not be empty.")
	}
	now := t.s.now()
	// INSERT ... SELECT ... WHERE: SQLite parses the ON CONFLICT that
	// follows a SELECT only when the SELECT has a WHERE clause.
	n, err := t.count(ctx, `INSERT INTO used_once (key, expires)
		SELECT CAST($1 AS TEXT), CAST($2 AS BIGINT) WHERE EXISTS (SELECT 1 FROM connections c JOIN tenants t ON t.id = c.tenant_id
			WHERE c.id = $4 AND c.tenant_id = $5 AND c.enabled AND c.updated_at = $6 AND t.updated_at = $7)
		ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE used_once.expires <= $3`,
		key, ts(expires), ts(now), connectionID, tenantID, ts(connUpdated), ts(tenantUpdated))
	if err != nil || n == 0 {
		return false, err
	}
	return true, t.purgeUsedOnce(ctx, now)
}

// purgeUsedOnce deletes the expired one-time keys, at most once a minute
// per process.
func (t *tx) purgeUsedOnce(ctx context.Context, now time.Time) error {
	if t.s.purge.due() {
		if _, err := t.exec(ctx, `DELETE FROM used_once WHERE expires <= $1`, ts(now)); err != nil {
			return err
		}
	}
	return nil
}
