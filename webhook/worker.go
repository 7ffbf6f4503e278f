package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// Options tunes a Worker. Zero values take the defaults in brackets.
type Options struct {
	Store gatehouse.Store
	// Sealer opens the webhooks' signing secrets (aad = webhook ID).
	Sealer gatehouse.Sealer
	// Client sends the requests; it must enforce the outbound policy
	// (outbound.NewClient). Redirects are never followed.
	Client *http.Client
	Clock  gatehouse.Clock
	Logger *slog.Logger
	// Interval between polls when there was nothing to do [1s].
	Interval time.Duration
	// Lease is how long a claimed delivery is hidden from other replicas
	// while it is being sent; it must exceed Timeout [2m].
	Lease time.Duration
	// Timeout of one request [15s].
	Timeout time.Duration
	// MaxAttempts before a delivery is given up as failed [10].
	MaxAttempts int
	// BaseDelay is the wait after the first failure; it doubles with
	// every attempt up to MaxDelay [30s, 6h], with jitter. With the
	// defaults the last attempt comes 2 to 4 hours after the first.
	BaseDelay, MaxDelay time.Duration
	// Batch is how many events or deliveries one pass takes [50].
	Batch int
	// Retention: finished deliveries and dispatched events older than
	// this are deleted [30 days].
	Retention time.Duration
	// Observe, when set, is told the outcome of every attempt
	// ("delivered", "retry", "failed") for metrics.
	Observe func(outcome string)
}

// Worker moves outbox events to webhook deliveries and sends them.
type Worker struct {
	o         Options
	lastPrune time.Time
}

// New returns a worker; call Run in a goroutine of its own.
func New(o Options) *Worker {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Interval, time.Second)
	def(&o.Timeout, 15*time.Second)
	def(&o.Lease, 2*time.Minute)
	def(&o.BaseDelay, 30*time.Second)
	def(&o.MaxDelay, 6*time.Hour)
	def(&o.Retention, 30*24*time.Hour)
	if o.Lease < 2*o.Timeout {
		o.Lease = 2 * o.Timeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Batch <= 0 {
		o.Batch = 50
	}
	if o.Clock == nil {
		o.Clock = gatehouse.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	// A webhook URL answers for itself: following a redirect would send a
	// signed body to a URL nobody configured.
	c := *o.Client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.Client = &c
	return &Worker{o: o}
}

// Run polls until ctx ends. A pass that found work is followed at once by
// another; errors (database down) are logged and retried next interval.
func (w *Worker) Run(ctx context.Context) {
	for {
		n, err := w.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			w.o.Logger.WarnContext(ctx, "webhook: delivery pass failed", "err", err)
		}
		wait := w.o.Interval
		if n > 0 && err == nil {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// RunOnce dispatches pending outbox events into deliveries, then sends
// the deliveries that are due, and reports how many rows it handled.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	now := w.o.Clock.Now()
	var dispatched int
	err := w.o.Store.Update(ctx, func(tx gatehouse.Tx) error {
		var err error
		// Dispatching is a few inserts per event, no network: a bigger
		// batch drains a bulk import's events sooner.
		dispatched, err = tx.DispatchOutbox(ctx, 10*w.o.Batch, now, eventBody)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("dispatch: %w", err)
	}
	var claimed []*gatehouse.WebhookDelivery
	err = w.o.Store.Update(ctx, func(tx gatehouse.Tx) error {
		var err error
		claimed, err = tx.ClaimWebhookDeliveries(ctx, now, w.o.Lease, w.o.Batch)
		return err
	})
	if err != nil {
		return dispatched, fmt.Errorf("claim: %w", err)
	}
	// One slow endpoint must not hold up the others: the batch is sent
	// concurrently, each request bounded by Timeout.
	var wg sync.WaitGroup
	errs := make([]error, len(claimed))
	hooks := &hookCache{w: w, m: map[string]*hook{}}
	for i, d := range claimed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.deliver(ctx, hooks, d)
		}()
	}
	wg.Wait()
	if now.Sub(w.lastPrune) > time.Hour {
		w.lastPrune = now
		_ = w.o.Store.Update(ctx, func(tx gatehouse.Tx) error {
			_, err := tx.PruneWebhookDeliveries(ctx, now.Add(-w.o.Retention))
			return err
		})
	}
	return dispatched + len(claimed), errors.Join(errs...)
}

// eventBody is the JSON sent for an event (see the package comment).
func eventBody(e *gatehouse.OutboxEvent) ([]byte, error) {
	return json.Marshal(struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		TenantID  string          `json:"tenant_id"`
		CreatedAt time.Time       `json:"created_at"`
		Data      json.RawMessage `json:"data"`
	}{e.ID, e.Type, e.TenantID, e.CreatedAt.UTC(), e.Payload})
}

// hook is a webhook with its opened secrets, loaded once per pass.
type hook struct {
	url    string
	secret []byte
	// previous signs too until previousUntil (a rotation's overlap).
	previous      []byte
	previousUntil time.Time
	err           error
}

type hookCache struct {
	w  *Worker
	mu sync.Mutex
	m  map[string]*hook
}

func (c *hookCache) get(ctx context.Context, tenantID, id string) *hook {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.m[id]; ok {
		return h
	}
	h := &hook{}
	var wh *gatehouse.Webhook
	h.err = c.w.o.Store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		wh, err = tx.GetWebhook(ctx, tenantID, id)
		return err
	})
	if h.err == nil {
		h.url = wh.URL
		h.secret, h.err = c.w.o.Sealer.Open(wh.Secret, []byte(wh.ID))
	}
	if h.err == nil && wh.PreviousUntil != nil && len(wh.PreviousSecret) > 0 {
		h.previousUntil = *wh.PreviousUntil
		h.previous, h.err = c.w.o.Sealer.Open(wh.PreviousSecret, []byte(wh.ID))
	}
	c.m[id] = h
	return h
}

// deliver sends one claimed delivery and records the outcome.
func (w *Worker) deliver(ctx context.Context, hooks *hookCache, d *gatehouse.WebhookDelivery) error {
	h := hooks.get(ctx, d.TenantID, d.WebhookID)
	status, sendErr := 0, h.err
	if sendErr == nil {
		status, sendErr = w.send(ctx, h, d)
	}
	if ctx.Err() != nil {
		// Shutting down: the lease runs out and another pass retries.
		return nil
	}
	now := w.o.Clock.Now()
	d.LastAttemptAt, d.LastStatus, d.LastError = &now, status, ""
	outcome := "delivered"
	switch {
	case sendErr == nil:
		d.Status, d.DeliveredAt, d.NextAttemptAt = gatehouse.DeliveryDelivered, &now, now
	case d.Attempts >= w.o.MaxAttempts:
		outcome = "failed"
		d.Status, d.LastError, d.NextAttemptAt = gatehouse.DeliveryFailed, sendErr.Error(), now
	default:
		outcome = "retry"
		d.LastError, d.NextAttemptAt = sendErr.Error(), now.Add(w.backoff(d.Attempts))
	}
	if w.o.Observe != nil {
		w.o.Observe(outcome)
	}
	rctx := context.WithoutCancel(ctx)
	err := w.o.Store.Update(rctx, func(tx gatehouse.Tx) error { return tx.RecordWebhookAttempt(rctx, d) })
	if gatehouse.IsCode(err, gatehouse.EPRECONDITION) {
		// Our lease ran out and another replica took the delivery over;
		// its outcome wins.
		return nil
	}
	if outcome == "failed" {
		w.o.Logger.WarnContext(ctx, "webhook: delivery failed for good", "delivery_id", d.ID, "webhook_id", d.WebhookID,
			"event_id", d.EventID, "attempts", d.Attempts, "err", d.LastError)
	}
	return err
}

// backoff is the wait after the attempt-th failure: BaseDelay doubled per
// attempt, capped at MaxDelay, with "equal jitter" (a random half), so
// deliveries that failed together (an endpoint's outage) do not all come
// back in the same second.
func (w *Worker) backoff(attempt int) time.Duration {
	d := w.o.BaseDelay
	for i := 1; i < attempt && d < w.o.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, w.o.MaxDelay)
	return d/2 + rand.N(d/2+1)
}

// maxErrorBody is how much of a refusal's body is kept as last_error.
const maxErrorBody = 200

// send POSTs the delivery; any 2xx is success.
func (w *Worker) send(ctx context.Context, h *hook, d *gatehouse.WebhookDelivery) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(d.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Gatehouse-Webhook/1")
	req.Header.Set("Gatehouse-Event", d.EventType)
	req.Header.Set("Gatehouse-Delivery", d.ID)
	now := w.o.Clock.Now()
	sig := Sign(h.secret, now, d.Body)
	if h.previous != nil && now.Before(h.previousUntil) {
		// A second v1 with the previous secret: receivers still on it
		// verify too (Verify accepts any matching v1).
		_, old, _ := strings.Cut(Sign(h.previous, now, d.Body), ",")
		sig += "," + old
	}
	req.Header.Set(SignatureHeader, sig)
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.ToValidUTF8(bytes.TrimSpace(snippet), nil))
	}
	return resp.StatusCode, nil
}
