package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/mock"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/provision"
)

type brokenResolver struct{}

func (brokenResolver) Resolve(context.Context, *gatehouse.Tenant, *gatehouse.Connection, *gatehouse.Identity, provision.Mode) (*provision.Result, error) {
	return nil, errors.New("disk on fire: secret-detail")
}

// TestInternalErrorPage: an unexpected failure shows "Internal error" and
// the reference; the cause goes to the log under the same reference only.
func TestInternalErrorPage(t *testing.T) {
	e := newEnv(t, testdb.Engines[0])
	acme := e.tenant("acme", "acme.com")
	e.mockConn(acme, "Acme SSO")
	var logBuf bytes.Buffer
	h, err := New(Config{Store: e.store, Keyring: e.keyring, PublicURL: "http://localhost:8080", Dev: true,
		Logger: slog.New(slog.NewTextHandler(&logBuf, nil)), Clock: e.clock, Resolver: brokenResolver{}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost:8080/t/acme/login?login_hint=ana%40acme.com", nil))
	flow := rec.Result().Cookies()[0]
	req := httptest.NewRequest("GET", rec.Header().Get("Location"), nil)
	req.AddCookie(&http.Cookie{Name: flow.Name, Value: flow.Value})
	req.Header.Set("X-Request-Id", "ref-internal-42")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body := rec.Body.String()
	if rec.Code != 500 || !strings.Contains(body, "Internal error") || !strings.Contains(body, "ref-internal-42") || strings.Contains(body, "secret-detail") {
		t.Fatalf("%d %s", rec.Code, body)
	}
	if !strings.Contains(logBuf.String(), "secret-detail") || !strings.Contains(logBuf.String(), "ref-internal-42") {
		t.Fatalf("log lacks the cause or reference: %s", logBuf.String())
	}
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge >= 0 {
			t.Errorf("error page set cookie %s", c.Name)
		}
	}
}

// TestConnectorOpenedOncePerVersion: discovery and metadata are fetched
// when a connection changes, not on every login.
func TestConnectorOpenedOncePerVersion(t *testing.T) {
	var opens atomic.Int32
	base := mock.Type()
	connector.Register(&connector.Type{Name: "counted", DevOnly: true,
		Open: func(ctx context.Context, env connector.Env, c *gatehouse.Connection, s json.RawMessage) (connector.Connector, error) {
			opens.Add(1)
			return base.Open(ctx, env, c, s)
		}})
	e := newEnv(t, testdb.Engines[0])
	acme := e.tenant("acme", "acme.com")
	c := e.mockConn(acme, "Acme SSO")
	c.Type = "counted"
	for range 3 {
		if _, err := e.web.connector(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if opens.Load() != 1 {
		t.Fatalf("opened %d times", opens.Load())
	}
	c.UpdatedAt = c.UpdatedAt.Add(1)
	if _, err := e.web.connector(context.Background(), c); err != nil || opens.Load() != 2 {
		t.Fatalf("after update: opened %d times, %v", opens.Load(), err)
	}
	// An unregistered (or dev-only on production) type is a clear 404.
	c.Type = "nope"
	c.UpdatedAt = c.UpdatedAt.Add(1)
	if _, err := e.web.connector(context.Background(), c); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		t.Fatalf("unknown type: %v", err)
	}
}

// TestOnLogin: the hook the OIDC provider uses to resume an app's
// authorize request; its target is checked like any return target.
func TestOnLogin(t *testing.T) {
	e := newEnv(t, testdb.Engines[0])
	acme := e.tenant("acme", "acme.com")
	e.mockConn(acme, "Acme SSO")
	for _, tc := range []struct{ hook, want string }{
		{"/t/acme/authorize/resume?req=1", "/t/acme/authorize/resume?req=1"},
		{"//evil.com", "/t/acme/"},
		{"", "/t/acme/?from=app"},
	} {
		var seen LoginEvent
		h, err := New(Config{Store: e.store, Keyring: e.keyring, PublicURL: "http://localhost:8080", Dev: true,
			Logger: quietLogger(), Clock: e.clock,
			Resolver: provision.New(e.store, provision.Options{Clock: e.clock, Logger: quietLogger()}),
			OnLogin: func(ctx context.Context, r *http.Request, ev LoginEvent) (string, error) {
				seen = ev
				return tc.hook, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost:8080/t/acme/login?login_hint=ana%40acme.com&return_to=%2Ft%2Facme%2F%3Ffrom%3Dapp", nil))
		flow := rec.Result().Cookies()[0]
		req := httptest.NewRequest("GET", rec.Header().Get("Location"), nil)
		req.AddCookie(&http.Cookie{Name: flow.Name, Value: flow.Value})
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusFound || rec.Header().Get("Location") != tc.want {
			t.Errorf("hook %q: %d %s", tc.hook, rec.Code, rec.Header().Get("Location"))
		}
		if seen.User == nil || seen.User.Email != "ana@acme.com" || seen.Session == nil || seen.ReturnTo != "/t/acme/?from=app" || seen.Tenant.ID != acme.ID {
			t.Errorf("event %+v", seen)
		}
	}
}
