package api

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/outbound"
	"github.com/gatehouse-sso/gatehouse/webhook"
)

// webhookJSON is a webhook as the API shows it; Secret only in the answer
// that created it or rotated it.
type webhookJSON struct {
	ID      string   `json:"id"`
	URL     string   `json:"url"`
	Events  []string `json:"events"`
	Enabled bool     `json:"enabled"`
	Secret  string   `json:"secret,omitempty"`
	// PreviousSecretUntil: after a rotation, deliveries carry a second
	// signature with the previous secret until then.
	PreviousSecretUntil *time.Time `json:"previous_secret_until"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
}

func webhookOut(w *gatehouse.Webhook) webhookJSON {
	return webhookJSON{ID: w.ID, URL: w.URL, Events: nonNil(w.Events), Enabled: w.Enabled,
		PreviousSecretUntil: w.PreviousUntil, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
}

// webhookInput is the body of POST and PATCH on webhooks; nil means absent.
type webhookInput struct {
	URL     *string   `json:"url"`
	Events  *[]string `json:"events"`
	Enabled *bool     `json:"enabled"`
}

// deliveryJSON is one delivery attempt record.
type deliveryJSON struct {
	ID            string     `json:"id"`
	EventID       string     `json:"event_id"`
	EventType     string     `json:"event_type"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	LastStatus    int        `json:"last_status"`
	LastError     string     `json:"last_error"`
	CreatedAt     time.Time  `json:"created_at"`
	DeliveredAt   *time.Time `json:"delivered_at"`
}

func deliveryOut(d *gatehouse.WebhookDelivery) deliveryJSON {
	out := deliveryJSON{ID: d.ID, EventID: d.EventID, EventType: d.EventType, Status: d.Status, Attempts: d.Attempts,
		LastAttemptAt: d.LastAttemptAt, LastStatus: d.LastStatus, LastError: d.LastError, CreatedAt: d.CreatedAt, DeliveredAt: d.DeliveredAt}
	if d.Status == gatehouse.DeliveryPending {
		next := d.NextAttemptAt
		out.NextAttemptAt = &next
	}
	return out
}

// eventPatternRE: "*", an event type ("user.created") or a prefix
// pattern ("group.*").
var eventPatternRE = regexp.MustCompile(`^(\*|[a-z][a-z_]*(\.[a-z][a-z_]*)*(\.\*)?)$`)

// maxWebhooks bounds a tenant's endpoints: every event is sent to each.
const maxWebhooks = 20

func (s *server) applyWebhook(in *webhookInput, w *gatehouse.Webhook) error {
	if in.URL != nil {
		u := strings.TrimSpace(*in.URL)
		if len(u) > 2048 {
			return gatehouse.FieldError("url", "url must be at most 2048 characters.")
		}
		// The same policy the sender dials with: https (plain http only
		// to loopback), no credentials, no address the policy blocks.
		// Host names are checked again when each delivery dials.
		if err := outbound.CheckURL(u, s.cfg.OutboundPolicy); err != nil {
			return &gatehouse.Error{Code: gatehouse.EINVALID, Field: "url", Message: "url is not allowed: " + err.Error() + ".", Err: err}
		}
		w.URL = u
	}
	if in.Events != nil {
		events := []string{}
		for _, e := range *in.Events {
			e = strings.TrimSpace(e)
			if !eventPatternRE.MatchString(e) || len(e) > 100 {
				return gatehouse.FieldError("events", "%q is not an event type (user.created), a pattern (user.*) or *.", e)
			}
			if !slices.Contains(events, e) {
				events = append(events, e)
			}
		}
		if len(events) == 0 {
			return gatehouse.FieldError("events", "events must name at least one event type, pattern or *.")
		}
		w.Events = events
	}
	if in.Enabled != nil {
		w.Enabled = *in.Enabled
	}
	return nil
}

// sealWebhookSecret makes a new signing secret and seals it to the webhook.
func (s *server) sealWebhookSecret(w *gatehouse.Webhook) (string, error) {
	sec := webhook.NewSecret()
	sealed, err := s.cfg.Keyring.Seal([]byte(sec), []byte(w.ID))
	if err != nil {
		return "", err
	}
	w.Secret = sealed
	return sec, nil
}

func (s *server) createWebhook(w http.ResponseWriter, r *http.Request, c *call) error {
	var in webhookInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	wh, sec, err := s.newWebhook(r.Context(), c.tenant.ID, c.actor(r), &in)
	if err != nil {
		return err
	}
	out := webhookOut(wh)
	out.Secret = sec
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// newWebhook validates in, creates the webhook with a new signing secret
// and its audit event in one transaction, and returns the secret (shown
// once).
func (s *server) newWebhook(ctx context.Context, tenantID string, actor gatehouse.Actor, in *webhookInput) (*gatehouse.Webhook, string, error) {
	if in.URL == nil {
		return nil, "", gatehouse.FieldError("url", "url is required.")
	}
	if in.Events == nil {
		in.Events = &[]string{"*"}
	}
	wh := &gatehouse.Webhook{ID: gatehouse.NewID("whk"), TenantID: tenantID, Enabled: true}
	if err := s.applyWebhook(in, wh); err != nil {
		return nil, "", err
	}
	sec, err := s.sealWebhookSecret(wh)
	if err != nil {
		return nil, "", err
	}
	err = s.store.Update(ctx, func(tx gatehouse.Tx) error {
		existing, err := tx.ListWebhooks(ctx, tenantID)
		if err != nil {
			return err
		}
		if len(existing) >= maxWebhooks {
			return gatehouse.Errorf(gatehouse.ECONFLICT, "A tenant may have at most %d webhooks.", maxWebhooks)
		}
		if err := tx.CreateWebhook(ctx, wh); err != nil {
			return err
		}
		return s.audit(ctx, tx, tenantID, actor, "webhook.created", "webhook", wh.ID, map[string]any{"url": wh.URL, "events": wh.Events})
	})
	if err != nil {
		return nil, "", err
	}
	return wh, sec, nil
}

func (s *server) listWebhooks(w http.ResponseWriter, r *http.Request, c *call) error {
	var list []*gatehouse.Webhook
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) (err error) {
		list, err = tx.ListWebhooks(r.Context(), c.tenant.ID)
		return err
	})
	if err != nil {
		return err
	}
	writeList(w, list, webhookOut)
	return nil
}

func (s *server) getWebhook(w http.ResponseWriter, r *http.Request, c *call) error {
	var wh *gatehouse.Webhook
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) (err error) {
		wh, err = tx.GetWebhook(r.Context(), c.tenant.ID, r.PathValue("id"))
		return notFound(err, "Webhook")
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, webhookOut(wh))
	return nil
}

// changeWebhook reads the webhook id, lets change modify it and writes
// it back with an audit event, in one transaction.
func (s *server) changeWebhook(ctx context.Context, tenantID, id string, actor gatehouse.Actor, action string, change func(wh *gatehouse.Webhook) (map[string]any, error)) (*gatehouse.Webhook, error) {
	var wh *gatehouse.Webhook
	err := s.store.Update(ctx, func(tx gatehouse.Tx) (err error) {
		if wh, err = tx.GetWebhook(ctx, tenantID, id); err != nil {
			return notFound(err, "Webhook")
		}
		details, err := change(wh)
		if err != nil {
			return err
		}
		if err := tx.UpdateWebhook(ctx, wh); err != nil {
			return err
		}
		return s.audit(ctx, tx, tenantID, actor, action, "webhook", wh.ID, details)
	})
	return wh, err
}

func (s *server) updateWebhook(w http.ResponseWriter, r *http.Request, c *call) error {
	var in webhookInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	wh, err := s.editWebhook(r.Context(), c.tenant.ID, r.PathValue("id"), c.actor(r), &in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, webhookOut(wh))
	return nil
}

// editWebhook applies in (absent fields unchanged) with its audit event.
func (s *server) editWebhook(ctx context.Context, tenantID, id string, actor gatehouse.Actor, in *webhookInput) (*gatehouse.Webhook, error) {
	return s.changeWebhook(ctx, tenantID, id, actor, "webhook.updated", func(wh *gatehouse.Webhook) (map[string]any, error) {
		if err := s.applyWebhook(in, wh); err != nil {
			return nil, err
		}
		return map[string]any{"url": wh.URL, "events": wh.Events, "enabled": wh.Enabled}, nil
	})
}

// defaultRotationGrace is how long the previous secret keeps signing
// after a rotation, unless ?grace_seconds= says otherwise (0: at once).
const defaultRotationGrace = 24 * time.Hour

func (s *server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	grace := defaultRotationGrace
	if v := r.URL.Query().Get("grace_seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 7*24*3600 {
			return gatehouse.FieldError("grace_seconds", "grace_seconds must be an integer from 0 to 604800 (a week).")
		}
		grace = time.Duration(n) * time.Second
	}
	wh, sec, err := s.rotateWebhook(r.Context(), c.tenant.ID, r.PathValue("id"), c.actor(r), grace)
	if err != nil {
		return err
	}
	out := webhookOut(wh)
	out.Secret = sec
	writeJSON(w, http.StatusOK, out)
	return nil
}

// rotateWebhook gives the webhook a new signing secret (returned, shown
// once); the previous one keeps signing for grace.
func (s *server) rotateWebhook(ctx context.Context, tenantID, id string, actor gatehouse.Actor, grace time.Duration) (*gatehouse.Webhook, string, error) {
	var sec string
	wh, err := s.changeWebhook(ctx, tenantID, id, actor, "webhook.secret_rotated", func(wh *gatehouse.Webhook) (_ map[string]any, err error) {
		wh.PreviousSecret, wh.PreviousUntil = nil, nil
		if grace > 0 {
			// Still sealed to this webhook's id: it moves as it is.
			until := s.clock.Now().UTC().Add(grace)
			wh.PreviousSecret, wh.PreviousUntil = wh.Secret, &until
		}
		sec, err = s.sealWebhookSecret(wh)
		return map[string]any{"grace_seconds": int(grace / time.Second)}, err
	})
	return wh, sec, err
}

func (s *server) deleteWebhook(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.deleteByID(w, r, c, "webhook.deleted", "webhook", "Webhook",
		func(tx gatehouse.Tx, id string) error { return tx.DeleteWebhook(r.Context(), c.tenant.ID, id) })
}

func (s *server) listDeliveries(w http.ResponseWriter, r *http.Request, c *call) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	var ds []*gatehouse.WebhookDelivery
	var next string
	err = s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		if _, err := tx.GetWebhook(r.Context(), c.tenant.ID, r.PathValue("id")); err != nil {
			return notFound(err, "Webhook")
		}
		ds, next, err = tx.ListWebhookDeliveries(r.Context(), c.tenant.ID, r.PathValue("id"), p)
		return err
	})
	if err != nil {
		return err
	}
	out := list[deliveryJSON]{Items: make([]deliveryJSON, 0, len(ds)), NextCursor: next}
	for _, d := range ds {
		out.Items = append(out.Items, deliveryOut(d))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// retryDelivery puts a failed delivery back in the queue.
func (s *server) retryDelivery(w http.ResponseWriter, r *http.Request, c *call) error {
	d, err := s.retryWebhookDelivery(r.Context(), c.tenant.ID, r.PathValue("id"), r.PathValue("delivery"), c.actor(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deliveryOut(d))
	return nil
}

// retryWebhookDelivery re-queues a failed delivery with its audit event.
func (s *server) retryWebhookDelivery(ctx context.Context, tenantID, webhookID, deliveryID string, actor gatehouse.Actor) (*gatehouse.WebhookDelivery, error) {
	var d *gatehouse.WebhookDelivery
	err := s.store.Update(ctx, func(tx gatehouse.Tx) (err error) {
		d, err = tx.RetryWebhookDelivery(ctx, tenantID, webhookID, deliveryID, s.clock.Now().UTC())
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, tenantID, actor, "webhook.delivery_retried", "webhook", d.WebhookID,
			map[string]any{"delivery_id": d.ID, "event_id": d.EventID})
	})
	return d, err
}
