package scim_test

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
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/scim"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

const publicURL = "https://sso.example.test"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one tenant with a SCIM token on a fresh database.
type env struct {
	t      testing.TB
	ctx    context.Context
	store  *sqlstore.Store
	clock  *clock
	h      http.Handler
	tenant *gatehouse.Tenant
	token  string
	tokID  string
}

// engines runs fn once per storage engine.
func engines(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) { fn(t, newEnv(t, engine)) })
	}
}

func newEnv(t testing.TB, engine string) *env {
	t.Helper()
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	st, err := sqlstore.Open(ctx, testdb.URL(t, engine), sqlstore.Options{Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, ctx: ctx, store: st, clock: clk}
	e.h = scim.New(scim.Config{Store: st, Clock: clk, PublicURL: publicURL, Logger: quiet})
	e.tenant, e.token, e.tokID = e.newTenant("acme")
	return e
}

// newTenant creates a tenant and a SCIM token for it.
func (e *env) newTenant(slug string) (*gatehouse.Tenant, string, string) {
	te := &gatehouse.Tenant{Slug: slug, Name: slug}
	tok := secret.NewToken(scim.TokenPrefix)
	st := &gatehouse.SCIMToken{ID: gatehouse.NewID("sct"), Name: "okta"}
	e.update(func(tx gatehouse.Tx) error {
		if err := tx.CreateTenant(e.ctx, te); err != nil {
			return err
		}
		st.TenantID, st.Hash = te.ID, secret.Digest(tok)
		return tx.CreateSCIMToken(e.ctx, st)
	})
	return te, tok, st.ID
}

func (e *env) update(fn func(tx gatehouse.Tx) error) {
	e.t.Helper()
	if err := e.store.Update(e.ctx, fn); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) view(fn func(tx gatehouse.Tx) error) {
	e.t.Helper()
	if err := e.store.View(e.ctx, fn); err != nil {
		e.t.Fatal(err)
	}
}

// resp is a decoded response.
type resp struct {
	status int
	header http.Header
	doc    map[string]any
	raw    string
}

// str digs a string out of the document by a dotted path.
func (r *resp) str(path string) string {
	v, _ := dig(r.doc, path).(string)
	return v
}

func dig(v any, path string) any {
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i := 0
			for _, c := range p {
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// do sends a request with the env's token; headers are name, value pairs.
func (e *env) do(method, path string, body any, headers ...string) *resp {
	return e.doToken(e.token, method, path, body, headers...)
}

func (e *env) doToken(token, method, path string, body any, headers ...string) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
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
	if rd != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	r := &resp{status: w.Code, header: w.Header(), raw: w.Body.String()}
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &r.doc); err != nil {
			e.t.Fatalf("%s %s: response is not JSON: %v\n%s", method, path, err, w.Body.String())
		}
		if ct := w.Header().Get("Content-Type"); ct != scim.ContentType {
			e.t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
	}
	return r
}

// want fails the test unless the status is as expected.
func (r *resp) want(t testing.TB, status int) *resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// wantError checks a SCIM error response.
func (r *resp) wantError(t testing.TB, status int, scimType string) {
	t.Helper()
	r.want(t, status)
	if got := r.str("scimType"); got != scimType {
		t.Errorf("scimType %q, want %q: %s", got, scimType, r.raw)
	}
	if got := r.str("status"); got != itoa(status) {
		t.Errorf("status field %q, want %d", got, status)
	}
	if s, _ := dig(r.doc, "schemas.0").(string); s != "urn:ietf:params:scim:api:messages:2.0:Error" {
		t.Errorf("schemas %v", r.doc["schemas"])
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// createUser POSTs a minimal user and returns its id.
func (e *env) createUser(userName string, extra map[string]any) string {
	e.t.Helper()
	body := map[string]any{"schemas": []string{scim.SchemaUser}, "userName": userName}
	for k, v := range extra {
		body[k] = v
	}
	r := e.do("POST", "/scim/v2/Users", body).want(e.t, http.StatusCreated)
	return r.str("id")
}

func (e *env) getUser(id string) *gatehouse.User {
	e.t.Helper()
	var u *gatehouse.User
	e.view(func(tx gatehouse.Tx) (err error) { u, err = tx.GetUser(e.ctx, e.tenant.ID, id); return err })
	return u
}

// audit lists the tenant's audit actions, oldest first.
func (e *env) audit(prefix string) []*gatehouse.AuditEvent {
	e.t.Helper()
	var list []*gatehouse.AuditEvent
	e.view(func(tx gatehouse.Tx) (err error) {
		list, _, err = tx.ListAudit(e.ctx, e.tenant.ID, gatehouse.AuditFilter{Action: prefix}, gatehouse.Page{Limit: 1000})
		return err
	})
	return list
}

func (e *env) hasAudit(action, targetID string) bool {
	for _, a := range e.audit("scim.") {
		if a.Action == action && a.TargetID == targetID && a.ActorType == "scim" && a.ActorID == e.tokID {
			return true
		}
	}
	return false
}

// usernames lists the userNames of a ListResponse.
func usernames(r *resp) []string {
	var out []string
	list, _ := r.doc["Resources"].([]any)
	for _, it := range list {
		m, _ := it.(map[string]any)
		s, _ := m["userName"].(string)
		out = append(out, s)
	}
	return out
}
