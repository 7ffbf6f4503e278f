package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"path"
	"slices"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

const webhookColumns = `id, tenant_id, url, events, enabled, secret, previous_secret, previous_until, created_at, updated_at`

const webhookNotFound = "Webhook not found."

func scanWebhook(sc scanner) (*gatehouse.Webhook, error) {
	var w gatehouse.Webhook
	var events []byte
	var created, updated, until int64
	if err := sc.Scan(&w.ID, &w.TenantID, &w.URL, &events, &w.Enabled, &w.Secret, &w.PreviousSecret, &until, &created, &updated); err != nil {
		return nil, err
	}
	if until != 0 {
		u := fromTS(until)
		w.PreviousUntil = &u
	}
	if err := unmarshalJSON(events, &w.Events); err != nil {
		return nil, err
	}
	w.Events = orEmpty(w.Events)
	w.CreatedAt, w.UpdatedAt = fromTS(created), fromTS(updated)
	return &w, nil
}

func (t *tx) CreateWebhook(ctx context.Context, w *gatehouse.Webhook) error {
	if w.ID == "" {
		w.ID = gatehouse.NewID("whk")
	}
	w.Events = orEmpty(w.Events)
	events, err := jsonArg(w.Events)
	if err != nil {
		return err
	}
	now := t.s.now()
	w.CreatedAt, w.UpdatedAt = now, now
	_, err = t.exec(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		w.ID, w.TenantID, w.URL, events, w.Enabled, w.Secret, w.PreviousSecret, untilArg(w.PreviousUntil), ts(now), ts(now))
	return err
}

// untilArg stores an optional time as 0 when absent.
func untilArg(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return ts(*t)
}

func (t *tx) GetWebhook(ctx context.Context, tenantID, id string) (*gatehouse.Webhook, error) {
	return one(ctx, t, webhookNotFound, scanWebhook,
		`SELECT `+webhookColumns+` FROM webhooks WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

func (t *tx) ListWebhooks(ctx context.Context, tenantID string) ([]*gatehouse.Webhook, error) {
	return all(ctx, t, scanWebhook, `SELECT `+webhookColumns+` FROM webhooks WHERE tenant_id = $1 ORDER BY id`, tenantID)
}

func (t *tx) UpdateWebhook(ctx context.Context, w *gatehouse.Webhook) error {
	w.Events = orEmpty(w.Events)
	events, err := jsonArg(w.Events)
	if err != nil {
		return err
	}
	w.UpdatedAt = t.s.now()
	return t.affected(ctx, webhookNotFound,
		`UPDATE webhooks SET url = $3, events = $4, enabled = $5, secret = $6, previous_secret = $7, previous_until = $8, updated_at = $9
			WHERE tenant_id = $1 AND id = $2`,
		w.TenantID, w.ID, w.URL, events, w.Enabled, w.Secret, w.PreviousSecret, untilArg(w.PreviousUntil), ts(w.UpdatedAt))
}

func (t *tx) DeleteWebhook(ctx context.Context, tenantID, id string) error {
	// Deliveries go with it (ON DELETE CASCADE).
	return t.affected(ctx, webhookNotFound, `DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

const deliveryColumns = `id, tenant_id, webhook_id, event_id, event_type, body, status, attempts,
	next_attempt_at, last_attempt_at, last_status, last_error, created_at, delivered_at`

func scanDelivery(sc scanner) (*gatehouse.WebhookDelivery, error) {
	var d gatehouse.WebhookDelivery
	var body string
	var next, created int64
	var last, delivered sql.NullInt64
	if err := sc.Scan(&d.ID, &d.TenantID, &d.WebhookID, &d.EventID, &d.EventType, &body, &d.Status, &d.Attempts,
		&next, &last, &d.LastStatus, &d.LastError, &created, &delivered); err != nil {
		return nil, err
	}
	d.Body = []byte(body)
	d.NextAttemptAt, d.CreatedAt = fromTS(next), fromTS(created)
	d.LastAttemptAt, d.DeliveredAt = nullTime(last), nullTime(delivered)
	return &d, nil
}

func (t *tx) ListWebhookDeliveries(ctx context.Context, tenantID, webhookID string, p gatehouse.Page) ([]*gatehouse.WebhookDelivery, string, error) {
	before, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(p)
	w := &where{}
	w.add(`tenant_id = ?`, tenantID)
	w.add(`webhook_id = ?`, webhookID)
	if before != "" {
		w.add(`id < ?`, before)
	}
	return listPage(ctx, t, scanDelivery, limit, func(d *gatehouse.WebhookDelivery) string { return d.ID },
		`SELECT `+deliveryColumns+` FROM webhook_deliveries`+w.String()+` ORDER BY id DESC LIMIT `+w.arg(limit+1), w.args...)
}

// subscribed reports whether a webhook's event list selects typ: an exact
// type, a prefix pattern "user.*", or "*".
func subscribed(events []string, typ string) bool {
	return slices.ContainsFunc(events, func(e string) bool {
		ok, _ := path.Match(e, typ)
		return e == typ || e == "*" || ok
	})
}

func (t *tx) DispatchOutbox(ctx context.Context, limit int, now time.Time, body func(*gatehouse.OutboxEvent) ([]byte, error)) (int, error) {
	q := `SELECT ` + outboxColumns + ` FROM outbox WHERE delivered_at IS NULL ORDER BY id LIMIT $1`
	if t.s.d == postgresDialect {
		// Another replica dispatching at the same moment takes other
		// events instead of waiting for these.
		q += ` FOR UPDATE SKIP LOCKED`
	}
	events, err := all(ctx, t, scanOutbox, q, pageLimit(gatehouse.Page{Limit: limit}))
	if err != nil {
		return 0, err
	}
	hooks := map[string][]*gatehouse.Webhook{}
	n := 0
	for _, e := range events {
		list, ok := hooks[e.TenantID]
		if !ok {
			if list, err = t.ListWebhooks(ctx, e.TenantID); err != nil {
				return n, err
			}
			hooks[e.TenantID] = list
		}
		var b []byte
		for _, w := range list {
			if !w.Enabled || !subscribed(w.Events, e.Type) {
				continue
			}
			if b == nil {
				if b, err = body(e); err != nil {
					return n, err
				}
			}
			res, err := t.count(ctx, `INSERT INTO webhook_deliveries (`+deliveryColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, NULL, 0, '', $9, NULL)
				ON CONFLICT (webhook_id, event_id) DO NOTHING`,
				gatehouse.NewID("dlv"), e.TenantID, w.ID, e.ID, e.Type, string(b), gatehouse.DeliveryPending, ts(now), ts(now))
			if err != nil {
				return n, err
			}
			n += int(res)
		}
		if _, err := t.exec(ctx, `UPDATE outbox SET delivered_at = $2 WHERE id = $1 AND delivered_at IS NULL`, e.ID, ts(now)); err != nil {
			return n, err
		}
	}
	return n, nil
}

func scanOutbox(sc scanner) (*gatehouse.OutboxEvent, error) {
	var e gatehouse.OutboxEvent
	var payload string
	var created int64
	var delivered sql.NullInt64
	if err := sc.Scan(&e.ID, &e.TenantID, &e.Type, &payload, &created, &delivered, &e.Attempts); err != nil {
		return nil, err
	}
	e.Payload = json.RawMessage(payload)
	e.CreatedAt, e.DeliveredAt = fromTS(created), nullTime(delivered)
	return &e, nil
}

func (t *tx) ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*gatehouse.WebhookDelivery, error) {
	lock := ""
	if t.s.d == postgresDialect {
		// Rows another replica is claiming right now are skipped, not
		// waited for; the outer WHERE repeats the conditions, which
		// PostgreSQL re-checks on the row version it updates.
		lock = ` FOR UPDATE OF d SKIP LOCKED` // the deliveries, not their webhook
	}
	// On SQLite, Update holds the one write lock (BEGIN IMMEDIATE), so
	// claims from several processes serialize.
	return all(ctx, t, scanDelivery, `UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $2
		WHERE id IN (SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
			WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.enabled
			ORDER BY d.next_attempt_at, d.id LIMIT $3`+lock+`)
		AND status = 'pending' AND next_attempt_at <= $1
		RETURNING `+deliveryColumns, ts(now), ts(now.Add(lease)), pageLimit(gatehouse.Page{Limit: limit}))
}

func (t *tx) RecordWebhookAttempt(ctx context.Context, d *gatehouse.WebhookDelivery) error {
	n, err := t.count(ctx, `UPDATE webhook_deliveries SET status = $3, next_attempt_at = $4, last_attempt_at = $5,
		last_status = $6, last_error = $7, delivered_at = $8 WHERE id = $1 AND attempts = $2 AND status = 'pending'`,
		d.ID, d.Attempts, d.Status, ts(d.NextAttemptAt), tsPtr(d.LastAttemptAt), d.LastStatus, d.LastError, tsPtr(d.DeliveredAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return gatehouse.Errorf(gatehouse.EPRECONDITION, "The delivery was claimed again or finished meanwhile.")
	}
	return nil
}

func (t *tx) RetryWebhookDelivery(ctx context.Context, tenantID, webhookID, id string, now time.Time) (*gatehouse.WebhookDelivery, error) {
	return one(ctx, t, "No failed delivery with this id.", scanDelivery, `UPDATE webhook_deliveries
		SET status = 'pending', attempts = 0, next_attempt_at = $4
		WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3 AND status = 'failed'
		RETURNING `+deliveryColumns, tenantID, webhookID, id, ts(now))
}

func (t *tx) PruneWebhookDeliveries(ctx context.Context, before time.Time) (int, error) {
	a, err := t.count(ctx, `DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1`, ts(before))
	if err != nil {
		return 0, err
	}
	b, err := t.count(ctx, `DELETE FROM outbox WHERE delivered_at IS NOT NULL AND created_at < $1`, ts(before))
	return int(a + b), err
}
