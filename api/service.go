package api

import (
	"context"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// Service runs the admin API's webhook and import writes in-process for
// another front end (the console): the same validation, limits,
// transactions, audit and outbox events as the HTTP handlers, which call
// the same methods. Authorization is the caller's: the tenant is trusted.
type Service struct{ s *server }

// NewService returns a Service on cfg (the API's own Config); via, when
// set, is recorded in the details of every audit event it writes
// ("console").
func NewService(cfg Config, via string) *Service {
	s := newServer(cfg)
	s.via = via
	return &Service{s: s}
}

// The request and answer types the Service shares with the HTTP API.
type (
	// WebhookInput: nil fields are absent (unchanged on edit).
	WebhookInput = webhookInput
	// ImportRow is one user of a bulk import (importer.Row converts to it).
	ImportRow = importRow
	// ImportResult counts an import; Errors lists invalid rows.
	ImportResult   = importResult
	ImportRowError = importRowError
)

// DefaultRotationGrace is how long a rotated webhook secret keeps signing.
const DefaultRotationGrace = defaultRotationGrace

// MaxImportRows bounds one import (one transaction).
const MaxImportRows = maxImportRows

// CreateWebhook creates a webhook (Enabled defaults to true, Events to
// "*") and returns its signing secret, to show once.
func (v *Service) CreateWebhook(ctx context.Context, tenantID string, actor gatehouse.Actor, in WebhookInput) (*gatehouse.Webhook, string, error) {
	return v.s.newWebhook(ctx, tenantID, actor, &in)
}

// UpdateWebhook changes the fields in sets.
func (v *Service) UpdateWebhook(ctx context.Context, tenantID, id string, actor gatehouse.Actor, in WebhookInput) (*gatehouse.Webhook, error) {
	return v.s.editWebhook(ctx, tenantID, id, actor, &in)
}

// RotateWebhookSecret replaces the signing secret (returned, shown once);
// the previous one also signs for grace.
func (v *Service) RotateWebhookSecret(ctx context.Context, tenantID, id string, actor gatehouse.Actor, grace time.Duration) (*gatehouse.Webhook, string, error) {
	return v.s.rotateWebhook(ctx, tenantID, id, actor, grace)
}

// DeleteWebhook removes a webhook and its deliveries.
func (v *Service) DeleteWebhook(ctx context.Context, tenantID, id string, actor gatehouse.Actor) error {
	return v.s.deleteAudited(ctx, tenantID, id, actor, "webhook.deleted", "webhook", "Webhook",
		func(tx gatehouse.Tx, id string) error { return tx.DeleteWebhook(ctx, tenantID, id) })
}

// RetryDelivery puts a failed delivery back in the queue.
func (v *Service) RetryDelivery(ctx context.Context, tenantID, webhookID, deliveryID string, actor gatehouse.Actor) (*gatehouse.WebhookDelivery, error) {
	return v.s.retryWebhookDelivery(ctx, tenantID, webhookID, deliveryID, actor)
}

// Import validates every row, then (unless dryRun) creates and updates
// the users in one transaction. With invalid rows it returns
// ErrRowsInvalid and the result lists them; nothing is written.
func (v *Service) Import(ctx context.Context, tenantID string, actor gatehouse.Actor, rows []ImportRow, dryRun bool) (*ImportResult, error) {
	return v.s.runImport(ctx, tenantID, actor, rows, dryRun)
}
