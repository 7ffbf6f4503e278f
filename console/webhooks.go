package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/api"
)

// Every webhook write goes through the admin API's Service: the same
// validation (the URL against the outbound policy, event patterns, the
// per-tenant limit), the same transaction and audit events.

// webhookEvents are the checkboxes of the webhook form: the outbox event
// types and their patterns. Other patterns go in a text field.
var webhookEvents = []string{"*", "user.*", "group.*",
	"user.created", "user.linked", "user.updated", "user.deactivated", "user.reactivated", "user.deleted",
	"group.created", "group.updated", "group.deleted"}

type webhookRow struct {
	Hook *gatehouse.Webhook
	// Last is the newest delivery, nil when none.
	Last *gatehouse.WebhookDelivery
}

type webhooksData struct {
	Hooks  []webhookRow
	Events []string
}

type webhookData struct {
	Hook   *gatehouse.Webhook
	Events []string
	// Secret is a signing secret just made: shown once.
	Secret string
	// Deliveries of the deliveries page, and the query of its next page.
	Deliveries []*gatehouse.WebhookDelivery
	More       string
}

func webhookPath(k *call, id string) string { return tp(k.t, "/webhooks/"+id) }

func (c *Console) webhooksPage(w http.ResponseWriter, r *http.Request, k *call) error {
	return c.renderWebhooks(w, r, k, &view{Form: url.Values{"event": {"*"}, "enabled": {"on"}}})
}

func (c *Console) renderWebhooks(w http.ResponseWriter, r *http.Request, k *call, v *view) error {
	ctx := r.Context()
	d := &webhooksData{Events: webhookEvents}
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		hooks, err := tx.ListWebhooks(ctx, k.t.ID)
		if err != nil {
			return err
		}
		for _, h := range hooks {
			row := webhookRow{Hook: h}
			last, _, err := tx.ListWebhookDeliveries(ctx, k.t.ID, h.ID, gatehouse.Page{Limit: 1})
			if err != nil {
				return err
			}
			if len(last) > 0 {
				row.Last = last[0]
			}
			d.Hooks = append(d.Hooks, row)
		}
		return nil
	})
	if err != nil {
		return err
	}
	v.D = d
	return c.render(w, r, k, http.StatusOK, "webhooks", "Webhooks", "webhooks", v)
}

// webhookForm reads the webhook form: URL, the ticked events plus any
// other patterns typed, enabled.
func webhookForm(f url.Values) api.WebhookInput {
	u := f.Get("url")
	events := []string{}
	for _, e := range append(f["event"], splitList(f.Get("events_other"))...) {
		if !slices.Contains(events, e) {
			events = append(events, e)
		}
	}
	enabled := f.Get("enabled") != ""
	return api.WebhookInput{URL: &u, Events: &events, Enabled: &enabled}
}

// webhookValues fills the form from a stored webhook.
func webhookValues(h *gatehouse.Webhook) url.Values {
	f := url.Values{"url": {h.URL}}
	var other []string
	for _, e := range h.Events {
		if slices.Contains(webhookEvents, e) {
			f.Add("event", e)
		} else {
			other = append(other, e)
		}
	}
	f.Set("events_other", strings.Join(other, " "))
	if h.Enabled {
		f.Set("enabled", "on")
	}
	return f
}

// webhookCreate makes a webhook and shows its signing secret once, on
// its page after a redirect (a reload neither posts again nor shows it).
func (c *Console) webhookCreate(w http.ResponseWriter, r *http.Request, k *call) error {
	h, sec, err := c.admin.CreateWebhook(r.Context(), k.t.ID, k.p.actor(r), webhookForm(r.PostForm))
	if err != nil {
		v := &view{Form: r.PostForm}
		if err := showError(v, err); err != nil {
			return err
		}
		return c.renderWebhooks(w, r, k, v)
	}
	return c.showOnce(w, r, k, webhookPath(k, h.ID), sec, "created")
}

func (c *Console) loadWebhook(r *http.Request, k *call) (*gatehouse.Webhook, error) {
	return fetch(c, r, k, "webhook", gatehouse.Tx.GetWebhook)
}

func (c *Console) webhookPage(w http.ResponseWriter, r *http.Request, k *call) error {
	h, err := c.loadWebhook(r, k)
	if err != nil {
		return err
	}
	sec := c.takeOnce(w, r, k, webhookPath(k, h.ID))
	return c.renderWebhook(w, r, k, h, &view{Form: webhookValues(h)}, sec)
}

func (c *Console) renderWebhook(w http.ResponseWriter, r *http.Request, k *call, h *gatehouse.Webhook, v *view, sec string) error {
	v.D = &webhookData{Hook: h, Events: webhookEvents, Secret: sec}
	return c.render(w, r, k, http.StatusOK, "webhook", "Webhook", "webhooks", v)
}

func (c *Console) webhookUpdate(w http.ResponseWriter, r *http.Request, k *call) error {
	h, err := c.admin.UpdateWebhook(r.Context(), k.t.ID, r.PathValue("id"), k.p.actor(r), webhookForm(r.PostForm))
	if err != nil {
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return notFound(err, "webhook", k)
		}
		stored, lerr := c.loadWebhook(r, k)
		if lerr != nil {
			return lerr
		}
		v := &view{Form: r.PostForm}
		if err := showError(v, err); err != nil {
			return err
		}
		return c.renderWebhook(w, r, k, stored, v, "")
	}
	return c.redirect(w, r, webhookPath(k, h.ID), "saved")
}

func (c *Console) webhookRotateConfirm(w http.ResponseWriter, r *http.Request, k *call) error {
	h, err := c.loadWebhook(r, k)
	if err != nil {
		return err
	}
	return c.confirm(w, r, k, "webhooks", confirmation{
		Question: "Rotate the signing secret of " + h.URL + "?",
		Detail: "A new secret is made and shown once. For the next 24 hours every delivery carries two signatures, " +
			"one with the new secret and one with the current one, so the receiver can switch without missing an event; then the current secret stops.",
		Action: webhookPath(k, h.ID) + "/rotate", Button: "Rotate secret", Cancel: webhookPath(k, h.ID)})
}

func (c *Console) webhookRotate(w http.ResponseWriter, r *http.Request, k *call) error {
	if !confirmed(r) {
		return errNeedsConfirm
	}
	h, sec, err := c.admin.RotateWebhookSecret(r.Context(), k.t.ID, r.PathValue("id"), k.p.actor(r), api.DefaultRotationGrace)
	if err != nil {
		return notFound(err, "webhook", k)
	}
	return c.showOnce(w, r, k, webhookPath(k, h.ID), sec, "rotated")
}

func (c *Console) webhookDeleteConfirm(w http.ResponseWriter, r *http.Request, k *call) error {
	h, err := c.loadWebhook(r, k)
	if err != nil {
		return err
	}
	return c.confirm(w, r, k, "webhooks", confirmation{
		Question: "Delete the webhook " + h.URL + "?",
		Detail:   "No more events are sent to it, and its delivery history is deleted with it. Events already queued for it are dropped.",
		Action:   webhookPath(k, h.ID) + "/delete", Button: "Delete webhook", Cancel: webhookPath(k, h.ID)})
}

func (c *Console) webhookDelete(w http.ResponseWriter, r *http.Request, k *call) error {
	if !confirmed(r) {
		return errNeedsConfirm
	}
	if err := c.admin.DeleteWebhook(r.Context(), k.t.ID, r.PathValue("id"), k.p.actor(r)); err != nil {
		return notFound(err, "webhook", k)
	}
	return c.redirect(w, r, tp(k.t, "/webhooks"), "deleted")
}

// deliveriesPage lists a webhook's deliveries, newest first: time, event
// type, status, attempts and the last error, with Retry on failed ones.
func (c *Console) deliveriesPage(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	q := r.URL.Query()
	d := &webhookData{Events: webhookEvents}
	var next string
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		if d.Hook, err = tx.GetWebhook(ctx, k.t.ID, r.PathValue("id")); err != nil {
			return notFound(err, "webhook", k)
		}
		d.Deliveries, next, err = tx.ListWebhookDeliveries(ctx, k.t.ID, d.Hook.ID, gatehouse.Page{Limit: 50, Cursor: q.Get("cursor")})
		return err
	})
	if err != nil {
		return err
	}
	d.More = nextPage(q, next)
	return c.render(w, r, k, http.StatusOK, "deliveries", "Webhook deliveries", "webhooks", &view{D: d})
}

// deliveryRetry puts a failed delivery back in the queue, due at once.
func (c *Console) deliveryRetry(w http.ResponseWriter, r *http.Request, k *call) error {
	id := r.PathValue("id")
	_, err := c.admin.RetryDelivery(r.Context(), k.t.ID, id, r.PathValue("delivery"), k.p.actor(r))
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return gatehouse.Errorf(gatehouse.ENOTFOUND, "There is no failed delivery with this id for this webhook: it may have been retried already.")
	}
	if err != nil {
		return err
	}
	return c.redirect(w, r, webhookPath(k, id)+"/deliveries", "retried")
}
