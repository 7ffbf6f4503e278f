package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/outbound"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// clock is a settable, goroutine-safe clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// receiver is an httptest endpoint that verifies signatures and records
// the event ids it accepted.
type receiver struct {
	*httptest.Server
	secret  string
	clock   *clock
	mu      sync.Mutex
	seen    map[string]int
	bodies  [][]byte
	fail    atomic.Int32 // answer 500 to this many more requests
	badSigs atomic.Int32
}

func newReceiver(t *testing.T, c *clock) *receiver {
	r := &receiver{seen: map[string]int{}, clock: c}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := Verify([]byte(r.secret), req.Header.Get(SignatureHeader), body, c.Now(), 0); err != nil {
			r.badSigs.Add(1)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.fail.Add(-1) >= 0 {
			http.Error(w, "receiver down", http.StatusInternalServerError)
			return
		}
		var ev struct{ ID string }
		_ = json.Unmarshal(body, &ev)
		r.mu.Lock()
		r.seen[ev.ID]++
		r.bodies = append(r.bodies, body)
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

type fixture struct {
	url     string
	store   *sqlstore.Store
	keyring *secret.Keyring
	clock   *clock
	tenant  *gatehouse.Tenant
	hook    *gatehouse.Webhook
	rcv     *receiver
}

func setup(t *testing.T, engine string, events ...string) *fixture {
	ctx := context.Background()
	f := &fixture{url: testdb.URL(t, engine), clock: &clock{t: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)}}
	f.store = f.open(t)
	key := make([]byte, 32)
	f.keyring, _ = secret.NewKeyring("k1", key)
	f.rcv = newReceiver(t, f.clock)
	f.rcv.secret = NewSecret()
	if len(events) == 0 {
		events = []string{"*"}
	}
	f.tenant = &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
	f.hook = &gatehouse.Webhook{ID: gatehouse.NewID("whk"), URL: f.rcv.URL + "/hook", Events: events, Enabled: true}
	sealed, err := f.keyring.Seal([]byte(f.rcv.secret), []byte(f.hook.ID))
	if err != nil {
		t.Fatal(err)
	}
	f.hook.Secret = sealed
	err = f.store.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateTenant(ctx, f.tenant); err != nil {
			return err
		}
		f.hook.TenantID = f.tenant.ID
		return tx.CreateWebhook(ctx, f.hook)
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) open(t *testing.T) *sqlstore.Store {
	st, err := sqlstore.Open(context.Background(), f.url, sqlstore.Options{Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (f *fixture) worker(st gatehouse.Store, o Options) *Worker {
	o.Store, o.Sealer, o.Clock = st, f.keyring, f.clock
	o.Client = outbound.NewClient(outbound.Policy{AllowLoopback: true, Timeout: 5 * time.Second})
	return New(o)
}

func (f *fixture) emit(t *testing.T, n int, typ string) []string {
	ctx := context.Background()
	var ids []string
	err := f.store.Update(ctx, func(tx gatehouse.Tx) error {
		for i := range n {
			e := &gatehouse.OutboxEvent{TenantID: f.tenant.ID, Type: typ, Payload: json.RawMessage(fmt.Sprintf(`{"user":{"id":"usr_%d"}}`, i))}
			if err := tx.AppendOutbox(ctx, e); err != nil {
				return err
			}
			ids = append(ids, e.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func (f *fixture) deliveries(t *testing.T) []*gatehouse.WebhookDelivery {
	var list []*gatehouse.WebhookDelivery
	err := f.store.View(context.Background(), func(tx gatehouse.Tx) (err error) {
		list, _, err = tx.ListWebhookDeliveries(context.Background(), f.tenant.ID, f.hook.ID, gatehouse.Page{Limit: 1000})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func engines(t *testing.T, fn func(t *testing.T, engine string)) {
	for _, e := range testdb.Engines {
		t.Run(e, func(t *testing.T) { t.Parallel(); fn(t, e) })
	}
}

func TestDeliverySigned(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := setup(t, engine, "user.*")
		ids := f.emit(t, 1, "user.created")
		f.emit(t, 1, "group.created") // not subscribed
		w := f.worker(f.store, Options{})
		if _, err := w.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if f.rcv.badSigs.Load() != 0 || len(f.rcv.bodies) != 1 || f.rcv.seen[ids[0]] != 1 {
			t.Fatalf("bad signatures %d, bodies %d, seen %v", f.rcv.badSigs.Load(), len(f.rcv.bodies), f.rcv.seen)
		}
		var ev struct {
			ID, Type, TenantID string `json:"-"`
			Data               struct {
				User struct{ ID string } `json:"user"`
			} `json:"data"`
		}
		var top map[string]any
		_ = json.Unmarshal(f.rcv.bodies[0], &top)
		_ = json.Unmarshal(f.rcv.bodies[0], &ev)
		if top["type"] != "user.created" || top["tenant_id"] != f.tenant.ID || ev.Data.User.ID != "usr_0" {
			t.Errorf("body %s", f.rcv.bodies[0])
		}
		// A wrong secret, a tampered body and a stale timestamp fail.
		now := f.clock.Now()
		sig := Sign([]byte(f.rcv.secret), now, f.rcv.bodies[0])
		for name, err := range map[string]error{
			"wrong secret": Verify([]byte("whsec_other"), sig, f.rcv.bodies[0], now, 0),
			"tampered":     Verify([]byte(f.rcv.secret), sig, append([]byte(" "), f.rcv.bodies[0]...), now, 0),
			"stale":        Verify([]byte(f.rcv.secret), sig, f.rcv.bodies[0], now.Add(10*time.Minute), 0),
			"malformed":    Verify([]byte(f.rcv.secret), "v1=00", f.rcv.bodies[0], now, 0),
		} {
			if !gatehouse.IsCode(err, gatehouse.EUNAUTHORIZED) {
				t.Errorf("%s: %v", name, err)
			}
		}
		ds := f.deliveries(t)
		if len(ds) != 1 || ds[0].Status != gatehouse.DeliveryDelivered || ds[0].Attempts != 1 || ds[0].LastStatus != 200 {
			t.Fatalf("deliveries %+v", ds)
		}
	})
}

func TestRetryAfter500(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := setup(t, engine)
		ids := f.emit(t, 1, "user.updated")
		f.rcv.fail.Store(1)
		w := f.worker(f.store, Options{BaseDelay: time.Minute})
		ctx := context.Background()
		if _, err := w.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		d := f.deliveries(t)[0]
		if d.Status != gatehouse.DeliveryPending || d.Attempts != 1 || d.LastStatus != 500 || d.LastError == "" {
			t.Fatalf("after a 500: %+v", d)
		}
		if wait := d.NextAttemptAt.Sub(f.clock.Now()); wait < 30*time.Second || wait > time.Minute {
			t.Errorf("next attempt in %v, want 30s..1m (base 1m, jitter)", wait)
		}
		// Not due yet: nothing is sent.
		w.RunOnce(ctx)
		if len(f.rcv.seen) != 0 {
			t.Fatal("retried before the backoff")
		}
		f.clock.add(time.Minute)
		if _, err := w.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		d = f.deliveries(t)[0]
		if d.Status != gatehouse.DeliveryDelivered || d.Attempts != 2 || f.rcv.seen[ids[0]] != 1 {
			t.Fatalf("after the retry: %+v, seen %v", d, f.rcv.seen)
		}
	})
}

func TestGiveUp(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := setup(t, engine)
		f.emit(t, 1, "user.deactivated")
		f.rcv.fail.Store(1000)
		w := f.worker(f.store, Options{MaxAttempts: 3, BaseDelay: time.Second, MaxDelay: time.Second})
		for range 5 {
			if _, err := w.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			f.clock.add(time.Second)
		}
		d := f.deliveries(t)[0]
		if d.Status != gatehouse.DeliveryFailed || d.Attempts != 3 || d.LastStatus != 500 {
			t.Fatalf("%+v", d)
		}
		// The endpoint is back; an admin sends the failed delivery again.
		f.rcv.fail.Store(0)
		ctx := context.Background()
		err := f.store.Update(ctx, func(tx gatehouse.Tx) error {
			_, err := tx.RetryWebhookDelivery(ctx, f.tenant.ID, f.hook.ID, d.ID, f.clock.Now())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if d = f.deliveries(t)[0]; d.Status != gatehouse.DeliveryDelivered || d.Attempts != 1 {
			t.Fatalf("after the retry: %+v", d)
		}
		err = f.store.Update(ctx, func(tx gatehouse.Tx) error {
			_, err := tx.RetryWebhookDelivery(ctx, f.tenant.ID, f.hook.ID, d.ID, f.clock.Now())
			return err
		})
		if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			t.Fatalf("retrying a delivered delivery: %v", err)
		}
	})
}

// TestTwoWorkersNoDoubleDelivery: two workers on two store handles (two
// replicas) drain the same outbox concurrently; each event arrives once.
func TestTwoWorkersNoDoubleDelivery(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := setup(t, engine)
		ids := f.emit(t, 120, "user.created")
		var wg sync.WaitGroup
		for _, st := range []gatehouse.Store{f.store, f.open(t)} {
			w := f.worker(st, Options{Batch: 10})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 100 {
					n, err := w.RunOnce(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					if n == 0 {
						return
					}
				}
			}()
		}
		wg.Wait()
		f.rcv.mu.Lock()
		defer f.rcv.mu.Unlock()
		if len(f.rcv.seen) != len(ids) {
			t.Fatalf("%d events received, want %d", len(f.rcv.seen), len(ids))
		}
		for id, n := range f.rcv.seen {
			if n != 1 {
				t.Errorf("event %s received %d times", id, n)
			}
		}
	})
}

// TestRotationOverlap: after a rotation, deliveries carry signatures with
// both secrets until the overlap ends, then with the new one only.
func TestRotationOverlap(t *testing.T) {
	f := setup(t, "sqlite")
	ctx := context.Background()
	old := f.rcv.secret
	fresh := NewSecret()
	until := f.clock.Now().Add(time.Hour)
	sealed, _ := f.keyring.Seal([]byte(fresh), []byte(f.hook.ID))
	f.hook.PreviousSecret, f.hook.PreviousUntil, f.hook.Secret = f.hook.Secret, &until, sealed
	if err := f.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.UpdateWebhook(ctx, f.hook) }); err != nil {
		t.Fatal(err)
	}
	w := f.worker(f.store, Options{})
	var headers []string
	f.rcv.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		headers = append(headers, r.Header.Get(SignatureHeader))
	})
	f.emit(t, 1, "user.created")
	w.RunOnce(ctx)
	f.clock.add(2 * time.Hour)
	f.emit(t, 1, "user.updated")
	w2 := f.worker(f.store, Options{}) // a new pass reloads the webhook
	w2.RunOnce(ctx)
	if len(headers) != 2 {
		t.Fatalf("%d deliveries", len(headers))
	}
	body := f.deliveries(t)[1].Body // oldest last: the first event
	at := f.clock.Now().Add(-2 * time.Hour)
	for _, sec := range []string{old, fresh} {
		if err := Verify([]byte(sec), headers[0], body, at, 0); err != nil {
			t.Errorf("during the overlap, %s...: %v", sec[:10], err)
		}
	}
	body = f.deliveries(t)[0].Body
	if err := Verify([]byte(fresh), headers[1], body, f.clock.Now(), 0); err != nil {
		t.Errorf("after the overlap, new secret: %v", err)
	}
	if err := Verify([]byte(old), headers[1], body, f.clock.Now(), 0); err == nil {
		t.Error("after the overlap, the old secret still verifies")
	}
}
