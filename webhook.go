package gatehouse

import (
	"context"
	"time"
)

// Webhook is an HTTPS endpoint of a tenant that receives its provisioning
// events (the outbox), signed with the webhook's secret.
type Webhook struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	URL      string `json:"url"`
	// Events are the event types sent: exact ("user.created"), a prefix
	// ending in ".*" ("group.*"), or "*" for every event.
	Events  []string `json:"events"`
	Enabled bool     `json:"enabled"`
	// Secret is the signing secret, sealed with the root key (aad = the
	// webhook ID): it must be read back to sign. Never serialized.
	Secret []byte `json:"-"`
	// PreviousSecret (sealed like Secret) also signs deliveries until
	// PreviousUntil, after a rotation: receivers switch without a gap.
	PreviousSecret []byte     `json:"-"`
	PreviousUntil  *time.Time `json:"previous_until,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// Webhook delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed" // gave up after the last attempt
)

// WebhookDelivery is one outbox event on its way to one webhook, with the
// outcome of its latest attempt.
type WebhookDelivery struct {
	ID        string `json:"id"`
	TenantID  string `json:"tenant_id"`
	WebhookID string `json:"webhook_id"`
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	// Body is the exact JSON sent on every attempt (signed as is).
	Body          []byte     `json:"-"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	// LastStatus is the HTTP status of the last answer, 0 when none came.
	LastStatus  int        `json:"last_status"`
	LastError   string     `json:"last_error"`
	CreatedAt   time.Time  `json:"created_at"`
	DeliveredAt *time.Time `json:"delivered_at"`
}

// WebhookTx is the part of Tx that stores webhooks and their deliveries.
type WebhookTx interface {
	CreateWebhook(ctx context.Context, w *Webhook) error
	GetWebhook(ctx context.Context, tenantID, id string) (*Webhook, error)
	ListWebhooks(ctx context.Context, tenantID string) ([]*Webhook, error)
	UpdateWebhook(ctx context.Context, w *Webhook) error
	// DeleteWebhook removes the webhook and its deliveries.
	DeleteWebhook(ctx context.Context, tenantID, id string) error
	// ListWebhookDeliveries lists a webhook's deliveries, newest first.
	ListWebhookDeliveries(ctx context.Context, tenantID, webhookID string, p Page) ([]*WebhookDelivery, string, error)
	// DispatchOutbox turns up to limit pending outbox events into one
	// pending delivery per enabled webhook of the event's tenant that
	// subscribes to its type (body makes the JSON sent), then marks the
	// events delivered to the dispatcher. It is idempotent per (webhook,
	// event), so replicas racing on the same events create one delivery.
	DispatchOutbox(ctx context.Context, limit int, now time.Time, body func(*OutboxEvent) ([]byte, error)) (int, error)
	// ClaimWebhookDeliveries takes up to limit pending deliveries due at
	// now (of enabled webhooks), counts an attempt on each and moves
	// their next attempt to now+lease, so no other replica takes them
	// while this one sends. The returned Attempts fences RecordWebhookAttempt.
	ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*WebhookDelivery, error)
	// RecordWebhookAttempt writes the outcome of the attempt d.Attempts
	// (status, last_*, next_attempt_at, delivered_at). It changes nothing
	// and returns EPRECONDITION when the delivery was claimed again since.
	RecordWebhookAttempt(ctx context.Context, d *WebhookDelivery) error
	// RetryWebhookDelivery puts a failed delivery back in the queue, due
	// at once with a fresh attempt budget (after an endpoint's long
	// outage). ENOTFOUND unless it exists in the tenant's webhook and failed.
	RetryWebhookDelivery(ctx context.Context, tenantID, webhookID, id string, now time.Time) (*WebhookDelivery, error)
	// PruneWebhookDeliveries deletes finished deliveries and dispatched
	// outbox events created before before; it returns how many rows went.
	PruneWebhookDeliveries(ctx context.Context, before time.Time) (int, error)
}
