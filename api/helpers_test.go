package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

const rootToken = "test-superuser-token-0123456789"

// testType is a trivial connection type for these tests: a required
// "url", a write-only "secret", nothing else.
var registerOnce sync.Once

func registerTestType() {
	registerOnce.Do(func() {
		connector.Register(&connector.Type{
			Name: "apitest",
			Configure: func(ctx context.Context, env connector.Env, c *gatehouse.Connection, oldSecrets json.RawMessage, in map[string]json.RawMessage) (json.RawMessage, json.RawMessage, error) {
				cfg := map[string]string{}
				if c.Config != nil {
					_ = json.Unmarshal(c.Config, &cfg)
				}
				sec := map[string]string{}
				if oldSecrets != nil {
					_ = json.Unmarshal(oldSecrets, &sec)
				}
				for k, v := range in {
					var s string
					if err := json.Unmarshal(v, &s); err != nil {
						return nil, nil, gatehouse.FieldError(k, "%s must be a string.", k)
					}
					switch k {
					case "url":
						cfg["url"] = s
					case "secret":
						sec["secret"] = s
					default:
						return nil, nil, gatehouse.FieldError(k, "Unknown field %q.", k)
					}
				}
				if cfg["url"] == "" {
					return nil, nil, gatehouse.FieldError("url", "url is required.")
				}
				c1, _ := json.Marshal(cfg)
				s1, _ := json.Marshal(sec)
				return c1, s1, nil
			},
			Describe: func(env connector.Env, c *gatehouse.Connection) map[string]any {
				cfg := map[string]string{}
				_ = json.Unmarshal(c.Config, &cfg)
				return map[string]any{"url": cfg["url"], "redirect_uri": env.PublicURL + "/sso/apitest/" + c.ID + "/callback",
					"name": "overridden by the API"}
			},
		})
	})
}

// env is one API over a fresh database.
type env struct {
	t       *testing.T
	store   *sqlstore.Store
	keyring *secret.Keyring
	h       http.Handler
	logs    *bytes.Buffer
	hdr     http.Header
	cfg     Config
}

// withHeader returns e sending one more header.
func (e *env) withHeader(k, v string) *env {
	c := *e
	c.hdr = http.Header{}
	for k2, v2 := range e.hdr {
		c.hdr[k2] = v2
	}
	c.hdr.Set(k, v)
	return &c
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func newEnv(t *testing.T, engine string) *env {
	t.Helper()
	registerTestType()
	st, err := sqlstore.Open(context.Background(), testdb.URL(t, engine), sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newEnvWithStore(t, st, st)
}

func newEnvWithStore(t *testing.T, st gatehouse.Store, sq *sqlstore.Store) *env {
	registerTestType()
	kr, err := secret.NewKeyring("k1", bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	cfg := Config{Store: st, Keyring: kr, SuperuserTokenDigest: secret.Digest(rootToken),
		PublicURL: "https://sso.example.test", Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil))}
	return &env{t: t, store: sq, keyring: kr, h: New(cfg), logs: logs, cfg: cfg}
}

// with returns e serving a handler whose Config edit changed.
func (e *env) with(edit func(*Config)) *env {
	c := *e
	edit(&c.cfg)
	c.h = New(c.cfg)
	return &c
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// resp is one answer.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", r.Status, err, r.Body)
	}
	return m
}

// errCode returns the error code and field of an error answer.
func (r resp) errCode() (code, field string) {
	var b errorBody
	_ = json.Unmarshal(r.Body, &b)
	return b.Error.Code, b.Error.Field
}

// do sends one request; body is marshalled unless it is a string.
func (e *env) do(method, path, token string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("X-Request-Id", "req-test-0001")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range e.hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return resp{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// must sends a request and fails the test unless the status is want.
func (e *env) must(want int, method, path, token string, body any) map[string]any {
	e.t.Helper()
	r := e.do(method, path, token, body)
	if r.Status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	if want == http.StatusNoContent {
		return nil
	}
	return r.obj(e.t)
}

// counts returns the number of audit events and users of a tenant.
func (e *env) counts(tenantID string) (audit, users int) {
	e.t.Helper()
	ctx := context.Background()
	err := e.store.View(ctx, func(tx gatehouse.Tx) error {
		evs, _, err := tx.ListAudit(ctx, tenantID, gatehouse.AuditFilter{}, gatehouse.Page{Limit: 1000})
		if err != nil {
			return err
		}
		audit = len(evs)
		users, err = tx.CountUsers(ctx, tenantID, gatehouse.UserFilter{IncludeDeleted: true})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return audit, users
}

// tenant creates a tenant through the API and returns its id.
func (e *env) tenant(slug string, domains ...string) string {
	e.t.Helper()
	m := e.must(http.StatusCreated, "POST", "/api/v1/tenants", rootToken, map[string]any{"slug": slug, "name": strings.ToUpper(slug), "domains": domains})
	return m["id"].(string)
}

// token creates an API token of role in tenant and returns it.
func (e *env) token(tenant, role string) string {
	e.t.Helper()
	m := e.must(http.StatusCreated, "POST", "/api/v1/tenants/"+tenant+"/api-tokens", rootToken, map[string]any{"name": role, "role": role})
	return m["token"].(string)
}

// forEngine runs f on each engine, in parallel with the other tests (most
// of their time is spent waiting on the database).
func forEngine(t *testing.T, f func(t *testing.T, e *env)) {
	t.Parallel()
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			f(t, newEnv(t, engine))
		})
	}
}
