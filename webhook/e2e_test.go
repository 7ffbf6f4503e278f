package webhook_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/webhook"
)

// TestServerDeliversUserEvents: through the whole server, a webhook made
// with the admin API receives a signed user.created event for a user made
// with the admin API, and the deliveries route shows it.
func TestServerDeliversUserEvents(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			got := make(chan []byte, 10)
			var secret string
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if err := webhook.Verify([]byte(secret), r.Header.Get(webhook.SignatureHeader), body, time.Now(), 0); err != nil {
					http.Error(w, err.Error(), http.StatusUnauthorized)
					return
				}
				got <- body
			}))
			defer rcv.Close()
			gh := servertest.Start(t, servertest.Options{Engine: engine})
			var tenant, hook map[string]any
			if st := gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "domains": []string{"acme.example"}}, &tenant); st != 201 {
				t.Fatalf("tenant: %d", st)
			}
			if st := gh.API(t, "POST", "/api/v1/tenants/acme/webhooks", map[string]any{"url": rcv.URL, "events": []string{"user.*"}}, &hook); st != 201 {
				t.Fatalf("webhook: %d %v", st, hook)
			}
			secret, _ = hook["secret"].(string)
			if len(secret) < 40 {
				t.Fatalf("secret %q", secret)
			}
			var again map[string]any
			gh.API(t, "GET", "/api/v1/tenants/acme/webhooks/"+hook["id"].(string), nil, &again)
			if _, shown := again["secret"]; shown {
				t.Error("the secret is shown after creation")
			}
			if st := gh.API(t, "POST", "/api/v1/tenants/acme/users", map[string]any{"email": "ada@acme.example"}, nil); st != 201 {
				t.Fatalf("user: %d", st)
			}
			select {
			case body := <-got:
				var ev struct {
					Type string
					Data struct{ User struct{ Email string } }
				}
				_ = json.Unmarshal(body, &ev)
				if ev.Type != "user.created" || ev.Data.User.Email != "ada@acme.example" {
					t.Fatalf("event %s", body)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("no delivery within 15s")
			}
			var ds struct{ Items []map[string]any }
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				gh.API(t, "GET", "/api/v1/tenants/acme/webhooks/"+hook["id"].(string)+"/deliveries", nil, &ds)
				if len(ds.Items) == 1 && ds.Items[0]["status"] == "delivered" {
					resp, err := http.Get(gh.URL + "/metrics")
					if err != nil {
						t.Fatal(err)
					}
					m, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if !strings.Contains(string(m), `gatehouse_webhook_deliveries_total{outcome="delivered"} 1`) {
						t.Error("/metrics does not count the delivery")
					}
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Fatalf("deliveries %v", ds.Items)
		})
	}
}

// TestRotateSecretAPI: rotation shows the new secret once and the overlap
// of the previous one; grace_seconds=0 ends it at once.
func TestRotateSecretAPI(t *testing.T) {
	gh := servertest.Start(t, servertest.Options{})
	gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme"}, nil)
	var hook map[string]any
	gh.API(t, "POST", "/api/v1/tenants/acme/webhooks", map[string]any{"url": "https://hooks.example/in"}, &hook)
	p := "/api/v1/tenants/acme/webhooks/" + hook["id"].(string) + "/rotate-secret"
	var rotated map[string]any
	if st := gh.API(t, "POST", p, nil, &rotated); st != 200 || rotated["secret"] == hook["secret"] || rotated["previous_secret_until"] == nil {
		t.Fatalf("rotate: %d %v", st, rotated)
	}
	until, _ := time.Parse(time.RFC3339Nano, rotated["previous_secret_until"].(string))
	if d := time.Until(until); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("overlap ends in %v, want 24h", d)
	}
	if st := gh.API(t, "POST", p+"?grace_seconds=0", nil, &rotated); st != 200 || rotated["previous_secret_until"] != nil {
		t.Fatalf("rotate without overlap: %d %v", st, rotated)
	}
	if st := gh.API(t, "POST", p+"?grace_seconds=-1", nil, nil); st != 400 {
		t.Fatalf("bad grace: %d", st)
	}
}
