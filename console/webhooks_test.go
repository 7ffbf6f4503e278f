package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/webhook"
)

var secretRE = regexp.MustCompile(`whsec_[A-Za-z0-9_-]+`)

// tenantByslug reads a tenant from the store.
func tenantBySlug(t *testing.T, gh *servertest.Instance, slug string) *gatehouse.Tenant {
	t.Helper()
	var ten *gatehouse.Tenant
	err := gh.Store.View(context.Background(), func(tx gatehouse.Tx) (err error) {
		ten, err = tx.GetTenantBySlug(context.Background(), slug)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ten
}

func webhooksOf(t *testing.T, gh *servertest.Instance, slug string) []*gatehouse.Webhook {
	t.Helper()
	ten := tenantBySlug(t, gh, slug)
	var hooks []*gatehouse.Webhook
	_ = gh.Store.View(context.Background(), func(tx gatehouse.Tx) (err error) {
		hooks, err = tx.ListWebhooks(context.Background(), ten.ID)
		return err
	})
	return hooks
}

// auditOf returns the tenant's audit events of an action, newest first.
func auditOf(t *testing.T, gh *servertest.Instance, slug, action string) []*gatehouse.AuditEvent {
	t.Helper()
	ten := tenantBySlug(t, gh, slug)
	var evs []*gatehouse.AuditEvent
	_ = gh.Store.View(context.Background(), func(tx gatehouse.Tx) (err error) {
		evs, _, err = tx.ListAudit(context.Background(), ten.ID, gatehouse.AuditFilter{Action: action}, gatehouse.Page{Limit: 100})
		return err
	})
	return evs
}

// TestWebhookPages: create (secret shown once after a redirect), inline
// validation against the outbound policy, edit, rotate and delete behind
// confirmations, each with its audit event marked as the console's.
func TestWebhookPages(t *testing.T) {
	gh, c := operator(t)
	setupAcme(t, c)
	list := "/console/t/acme/webhooks"
	want(t, c.get("/console/t/acme/"), http.StatusOK, `href="/console/t/acme/webhooks"`, `href="/console/t/acme/import"`)
	want(t, c.get(list), http.StatusOK, "No webhooks yet", `name="event" value="user.*"`)

	// Refused by the outbound policy and the event rules, shown inline; nothing written.
	a := c.post(list, list, url.Values{"url": {"https://10.1.2.3/hook"}, "event": {"*"}, "enabled": {"on"}})
	want(t, a, http.StatusUnprocessableEntity, `id="e-url"`, "not allowed", `value="https://10.1.2.3/hook"`)
	a = c.post(list, list, url.Values{"url": {"http://hooks.example.com/in"}, "event": {"*"}})
	want(t, a, http.StatusUnprocessableEntity, `id="e-url"`, "https")
	a = c.post(list, list, url.Values{"url": {"https://hooks.example.com/in"}, "events_other": {"User Created!"}})
	want(t, a, http.StatusUnprocessableEntity, `id="e-events"`)
	a = c.post(list, list, url.Values{"url": {"https://hooks.example.com/in"}})
	want(t, a, http.StatusUnprocessableEntity, `id="e-events"`, "at least one")
	if n := len(webhooksOf(t, gh, "acme")); n != 0 {
		t.Fatalf("refused forms wrote %d webhooks", n)
	}

	// Created: the POST redirects; the page shows the secret once.
	a = c.post(list, list, url.Values{"url": {"https://hooks.example.com/in"}, "event": {"user.*", "group.updated"}, "enabled": {"on"}})
	want(t, a, http.StatusSeeOther)
	page := a.location
	hooks := webhooksOf(t, gh, "acme")
	if len(hooks) != 1 || hooks[0].URL != "https://hooks.example.com/in" || strings.Join(hooks[0].Events, ",") != "user.*,group.updated" || !hooks[0].Enabled {
		t.Fatalf("stored webhooks: %+v", hooks)
	}
	h := hooks[0]
	if page != "/console/t/acme/webhooks/"+h.ID+"?m=created" {
		t.Fatalf("redirect to %q", page)
	}
	a = c.get(page)
	want(t, a, http.StatusOK, "shown only once", `id="webhook-secret"`, "Created.")
	sec := secretRE.FindString(a.body)
	if sec == "" {
		t.Fatal("no secret on the page")
	}
	// A second GET (a reload) does not show it, nor does the list.
	for _, p := range []string{page, list} {
		if b := c.get(p).body; strings.Contains(b, sec) || strings.Contains(b, "whsec_") {
			t.Fatalf("%s shows the secret again", p)
		}
	}
	want(t, c.get(list), http.StatusOK, "https://hooks.example.com/in", "<code>user.*</code>", "enabled", "none yet")
	// Two made before either page is opened (two tabs): each page shows its own.
	var pages []string
	for _, u := range []string{"https://a.example.com/in", "https://b.example.com/in"} {
		a := c.post(list, list, url.Values{"url": {u}, "event": {"*"}})
		want(t, a, http.StatusSeeOther)
		pages = append(pages, a.location)
	}
	s1, s2 := secretRE.FindString(c.get(pages[1]).body), secretRE.FindString(c.get(pages[0]).body)
	if s1 == "" || s2 == "" || s1 == s2 {
		t.Fatalf("secrets of two tabs: %q %q", s1, s2)
	}
	for _, p := range pages {
		del := strings.TrimSuffix(p, "?m=created") + "/delete"
		want(t, c.post(del, del, url.Values{"confirm": {"yes"}}), http.StatusSeeOther)
	}
	ev := auditOf(t, gh, "acme", "webhook.created")
	if len(ev) != 3 || ev[2].TargetID != h.ID || ev[0].ActorType != "superuser" || ev[0].Details["via"] != "console" {
		t.Fatalf("webhook.created audit: %+v", ev)
	}

	// Edit: the form shows the stored values; a bad URL is inline; a good edit saves.
	edit := "/console/t/acme/webhooks/" + h.ID
	want(t, c.get(edit), http.StatusOK, `value="https://hooks.example.com/in"`, `value="user.*" checked`, `value="group.updated" checked`)
	want(t, c.post(edit, edit, url.Values{"url": {"ftp://x"}, "event": {"*"}}), http.StatusUnprocessableEntity, `id="e-url"`)
	want(t, c.post(edit, edit, url.Values{"url": {"https://hooks.example.com/v2"}, "event": {"*"}, "events_other": {"user.approved"}}), http.StatusSeeOther)
	h = webhooksOf(t, gh, "acme")[0]
	if h.URL != "https://hooks.example.com/v2" || strings.Join(h.Events, ",") != "*,user.approved" || h.Enabled {
		t.Fatalf("after edit: %+v", h)
	}
	want(t, c.get(edit), http.StatusOK, `value="user.approved"`)
	if ev := auditOf(t, gh, "acme", "webhook.updated"); len(ev) != 1 || ev[0].Details["via"] != "console" {
		t.Fatalf("webhook.updated audit: %+v", ev)
	}

	// Rotate: confirmation first, then the new secret once; the old one
	// keeps signing for the grace period.
	rot := edit + "/rotate"
	want(t, c.get(rot), http.StatusOK, "Rotate the signing secret", `name="confirm" value="yes"`)
	want(t, c.post(rot, rot, url.Values{}), http.StatusBadRequest, "needs a confirmation")
	a = c.post(rot, rot, url.Values{"confirm": {"yes"}})
	want(t, a, http.StatusSeeOther)
	a = c.get(a.location)
	want(t, a, http.StatusOK, "shown only once", "The secret is rotated.", "previous secret also signs until")
	if sec2 := secretRE.FindString(a.body); sec2 == "" || sec2 == sec {
		t.Fatalf("rotated secret %q", sec2)
	}
	if strings.Contains(c.get(edit).body, "whsec_") {
		t.Fatal("the rotated secret is shown again")
	}
	if ev := auditOf(t, gh, "acme", "webhook.secret_rotated"); len(ev) != 1 {
		t.Fatalf("webhook.secret_rotated audit: %d", len(ev))
	}

	// Delete: confirmation, then gone, audited.
	del := edit + "/delete"
	want(t, c.get(del), http.StatusOK, "Delete the webhook https://hooks.example.com/v2?")
	want(t, c.post(del, del, url.Values{}), http.StatusBadRequest)
	if len(webhooksOf(t, gh, "acme")) != 1 {
		t.Fatal("deleted without confirmation")
	}
	want(t, c.post(del, del, url.Values{"confirm": {"yes"}}), http.StatusSeeOther)
	if len(webhooksOf(t, gh, "acme")) != 0 {
		t.Fatal("not deleted")
	}
	if ev := auditOf(t, gh, "acme", "webhook.deleted"); len(ev) != 3 || ev[0].TargetID != h.ID {
		t.Fatalf("webhook.deleted audit: %+v", ev)
	}
	want(t, c.get(edit), http.StatusNotFound)
	want(t, c.get(edit+"/deliveries"), http.StatusNotFound)
}

func TestWebhookCSRFRefused(t *testing.T) {
	gh, c := operator(t)
	setupAcme(t, c)
	form := url.Values{"url": {"https://hooks.example.com/in"}, "event": {"*"}, "enabled": {"on"}}
	want(t, c.do("POST", "/console/t/acme/webhooks", form), http.StatusForbidden, "out of date")
	form.Set("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	want(t, c.do("POST", "/console/t/acme/webhooks", form), http.StatusForbidden)
	form.Set("csrf", c.csrf("/console/t/acme/webhooks"))
	c.header.Set("Sec-Fetch-Site", "cross-site")
	want(t, c.do("POST", "/console/t/acme/webhooks", form), http.StatusForbidden)
	c.header.Del("Sec-Fetch-Site")
	if n := len(webhooksOf(t, gh, "acme")); n != 0 {
		t.Fatalf("a refused form wrote %d webhooks", n)
	}
}

// TestWebhookTenantScope: a tenant admin sees and changes only their own
// tenant's webhooks; another tenant's answer 404 by any path.
func TestWebhookTenantScope(t *testing.T) {
	gh, op := operator(t)
	connID := setupAcme(t, op)
	page := "/console/t/acme/connections/" + connID
	want(t, op.post(page, page+"/jit", url.Values{"jit_enabled": {"on"}, "domains_mode": {"tenant"}, "default_groups": {"Admins"}}), http.StatusSeeOther)
	want(t, op.post("/console/tenants/new", "/console/tenants", url.Values{"slug": {"globex"}, "name": {"Globex"}}), http.StatusSeeOther)
	want(t, op.post("/console/t/globex/webhooks", "/console/t/globex/webhooks", url.Values{"url": {"https://globex.example.com/in"}, "event": {"*"}}), http.StatusSeeOther)
	globexHook := webhooksOf(t, gh, "globex")[0]

	ana := newClient(t, gh.URL, true)
	want(t, ana.get("/console/signin/org?org="+url.QueryEscape("ana@acme.com")), http.StatusOK)
	ana.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	a := ana.post("/console/t/acme/webhooks", "/console/t/acme/webhooks", url.Values{"url": {"https://acme.example.com/in"}, "event": {"user.*"}, "enabled": {"on"}})
	want(t, a, http.StatusSeeOther)
	want(t, ana.get(a.location), http.StatusOK, "whsec_")
	b := ana.get("/console/t/acme/webhooks").body
	if !strings.Contains(b, "acme.example.com") || strings.Contains(b, "globex.example.com") {
		t.Fatalf("ana's webhook list: %.2000s", b)
	}
	if ev := auditOf(t, gh, "acme", "webhook.created"); len(ev) != 1 || ev[0].ActorType != "user" || ev[0].ActorID != findUser(t, gh, "acme", "ana@acme.com").ID {
		t.Fatalf("tenant admin's audit: %+v", ev)
	}
	for _, p := range []string{"/console/t/globex/webhooks", "/console/t/globex/webhooks/" + globexHook.ID,
		"/console/t/acme/webhooks/" + globexHook.ID, "/console/t/acme/webhooks/" + globexHook.ID + "/deliveries",
		"/console/t/acme/webhooks/" + globexHook.ID + "/delete", "/console/t/globex/import"} {
		if a := ana.get(p); a.code != http.StatusNotFound {
			t.Errorf("tenant admin GET %s: %d, want 404", p, a.code)
		}
	}
	csrf := ana.csrf("/console/t/acme/webhooks")
	for _, p := range []string{"/console/t/acme/webhooks/" + globexHook.ID + "/delete", "/console/t/globex/webhooks/" + globexHook.ID + "/delete"} {
		want(t, ana.do("POST", p, url.Values{"confirm": {"yes"}, "csrf": {csrf}}), http.StatusNotFound)
	}
	want(t, ana.do("POST", "/console/t/acme/webhooks/"+globexHook.ID, url.Values{"url": {"https://evil.example.com"}, "event": {"*"}, "csrf": {csrf}}), http.StatusNotFound)
	if h := webhooksOf(t, gh, "globex"); len(h) != 1 || h[0].URL != "https://globex.example.com/in" {
		t.Fatalf("globex's webhook changed: %+v", h)
	}
}

// TestWebhookDeliveries: the deliveries page lists a failed delivery with
// its status, attempts and error; Retry queues it again, and the worker
// then delivers it to the endpoint, which is back.
func TestWebhookDeliveries(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) { webhookDeliveries(t, engine) })
	}
}

func webhookDeliveries(t *testing.T, engine string) {
	var up atomic.Bool
	var got atomic.Int32
	var sec atomic.Value // the secret the console showed
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		// Signed with the secret the console showed once.
		if s, _ := sec.Load().(string); webhook.Verify([]byte(s), r.Header.Get(webhook.SignatureHeader), body, time.Now(), 0) != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		got.Add(1)
	}))
	defer recv.Close()
	gh, c := operatorOn(t, engine)
	setupAcme(t, c)
	a := c.post("/console/t/acme/webhooks", "/console/t/acme/webhooks", url.Values{"url": {recv.URL + "/in"}, "event": {"*"}, "enabled": {"on"}})
	want(t, a, http.StatusSeeOther)
	sec.Store(secretRE.FindString(c.get(a.location).body))
	h := webhooksOf(t, gh, "acme")[0]
	deliveries := "/console/t/acme/webhooks/" + h.ID + "/deliveries"
	want(t, c.get(deliveries), http.StatusOK, "No deliveries yet")

	// An event, dispatched and given up on (as after the last attempt).
	ctx := context.Background()
	var d *gatehouse.WebhookDelivery
	err := gh.Store.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.AppendOutbox(ctx, &gatehouse.OutboxEvent{ID: gatehouse.NewID("obx"), TenantID: h.TenantID, Type: "user.created",
			Payload: []byte(`{"user":{"id":"usr_x"}}`), CreatedAt: time.Now().UTC()})
	})
	if err == nil {
		err = gh.Store.Update(ctx, func(tx gatehouse.Tx) error {
			_, err := tx.DispatchOutbox(ctx, 100, time.Now().UTC(), func(e *gatehouse.OutboxEvent) ([]byte, error) { return e.Payload, nil })
			return err
		})
	}
	if err == nil {
		// Claimed as of later than any backoff, so the running worker
		// leaves it alone.
		err = gh.Store.Update(ctx, func(tx gatehouse.Tx) error {
			ds, err := tx.ClaimWebhookDeliveries(ctx, time.Now().Add(24*time.Hour), time.Hour, 10)
			if err != nil || len(ds) != 1 {
				t.Fatalf("claim: %v %d", err, len(ds))
			}
			d = ds[0]
			now := time.Now().UTC()
			d.Status, d.LastStatus, d.LastError, d.LastAttemptAt = gatehouse.DeliveryFailed, 503, "HTTP 503: down for maintenance", &now
			return tx.RecordWebhookAttempt(ctx, d)
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	want(t, c.get(deliveries), http.StatusOK, "<code>user.created</code>", ">failed<", "HTTP 503", "down for maintenance", ">Retry<")
	want(t, c.get("/console/t/acme/webhooks"), http.StatusOK, ">failed<")

	// Retry: a CSRF-checked POST that re-queues it, audited.
	retry := deliveries + "/" + d.ID + "/retry"
	want(t, c.do("POST", retry, url.Values{}), http.StatusForbidden)
	up.Store(true)
	a = c.post(deliveries, retry, url.Values{})
	want(t, a, http.StatusSeeOther)
	if a.location != deliveries+"?m=retried" {
		t.Fatalf("retry redirect: %q", a.location)
	}
	want(t, c.get(a.location), http.StatusOK, "queued again")
	if ev := auditOf(t, gh, "acme", "webhook.delivery_retried"); len(ev) != 1 || ev[0].Details["delivery_id"] != d.ID || ev[0].Details["via"] != "console" {
		t.Fatalf("webhook.delivery_retried audit: %+v", ev)
	}
	// A delivery that has not failed (any more) cannot be retried.
	want(t, c.post(deliveries, retry, url.Values{}), http.StatusNotFound, "no failed delivery")
	// The worker sends it again, to the endpoint now up.
	deadline := time.Now().Add(15 * time.Second)
	for got.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got.Load() == 0 {
		t.Fatal("the retried delivery was not sent")
	}
	for time.Now().Before(deadline) && !strings.Contains(c.get(deliveries).body, ">delivered<") {
		time.Sleep(100 * time.Millisecond)
	}
	want(t, c.get(deliveries), http.StatusOK, ">delivered<")
}
