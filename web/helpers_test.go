package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector/mock"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// clock is a settable, goroutine-safe test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is one database with a running web handler (a "replica") and the
// means to start more replicas on the same database.
type env struct {
	t       testing.TB
	store   *sqlstore.Store
	clock   *clock
	keyring *secret.Keyring
	srv     *httptest.Server
	web     *Server
}

func newEnv(t testing.TB, engine string) *env {
	t.Helper()
	mock.Register()
	ctx := context.Background()
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	st, err := sqlstore.Open(ctx, testdb.URL(t, engine), sqlstore.Options{Clock: clk, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := secret.NewKeyring("k1", bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st, clock: clk, keyring: kr}
	e.srv, e.web = e.replica()
	return e
}

// replica starts another web handler on the same database and root key;
// mods adjust its Config.
func (e *env) replica(mods ...func(*Config)) (*httptest.Server, *Server) {
	e.t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	e.t.Cleanup(srv.Close)
	cfg := Config{
		Store: e.store, Keyring: e.keyring, PublicURL: srv.URL, Dev: true, Logger: quietLogger(), Clock: e.clock,
		Resolver: provision.New(e.store, provision.Options{Clock: e.clock, Logger: quietLogger(), RequestID: RequestIDFromContext}),
	}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	h = s
	return srv, s
}

func (e *env) update(fn func(ctx context.Context, tx gatehouse.Tx) error) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.store.Update(ctx, func(tx gatehouse.Tx) error { return fn(ctx, tx) }); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) tenant(slug string, domains ...string) *gatehouse.Tenant {
	t := &gatehouse.Tenant{Slug: slug, Name: strings.ToUpper(slug[:1]) + slug[1:], Domains: domains,
		SupportContact: "it@" + slug + ".example", AdminGroups: []string{"Admins"}}
	e.update(func(ctx context.Context, tx gatehouse.Tx) error { return tx.CreateTenant(ctx, t) })
	return t
}

var mockUsers = []mock.User{
	{Subject: "ana-sub", Email: "ana@acme.com", Name: "Ana Lima"},
	{Subject: "bo-sub", Email: "bo@acme.com"},
	{Subject: "eve-sub", Email: "eve@evil.example"},
	{Subject: "cy-sub", Email: "cy@contractor.io"},
	{Subject: "dee-sub", Email: "dee@globex.com"},
	{Subject: "newbie-sub", Email: "newbie@acme.com", Groups: []string{"staff"}},
}

func (e *env) mockConn(t *gatehouse.Tenant, name string, allowed ...string) *gatehouse.Connection {
	cfg, _ := json.Marshal(mock.Config{Users: mockUsers})
	c := &gatehouse.Connection{TenantID: t.ID, Type: gatehouse.ConnMock, Name: name, Enabled: true,
		Config: cfg, JIT: gatehouse.DefaultJITPolicy()}
	if allowed != nil {
		c.JIT.AllowedDomains = &allowed
	}
	e.update(func(ctx context.Context, tx gatehouse.Tx) error { return tx.CreateConnection(ctx, c) })
	return c
}

func (e *env) user(t *gatehouse.Tenant, email string) *gatehouse.User {
	e.t.Helper()
	var u *gatehouse.User
	e.update(func(ctx context.Context, tx gatehouse.Tx) (err error) {
		u, err = tx.GetUserByEmail(ctx, t.ID, email)
		return err
	})
	return u
}

func (e *env) countUsers(t *gatehouse.Tenant) int {
	var n int
	e.update(func(ctx context.Context, tx gatehouse.Tx) (err error) {
		n, err = tx.CountUsers(ctx, t.ID, gatehouse.UserFilter{})
		return err
	})
	return n
}

// browser is a cookie-keeping client that does not follow redirects by
// itself, so tests see (and can replay) every hop.
type browser struct {
	t      testing.TB
	base   string
	client *http.Client
	jar    *cookiejar.Jar
}

func (e *env) browser(srv ...*httptest.Server) *browser {
	s := e.srv
	if len(srv) > 0 {
		s = srv[0]
	}
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, base: s.URL, jar: jar, client: &http.Client{
		Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type result struct {
	*http.Response
	Body string
	// Via lists the URLs requested, in order.
	Via []string
}

func (b *browser) do(req *http.Request) *result {
	b.t.Helper()
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return &result{Response: res, Body: string(body), Via: []string{req.URL.String()}}
}

func (b *browser) abs(u string) string {
	if strings.HasPrefix(u, "/") {
		return b.base + u
	}
	return u
}

// get requests u once; headers are name, value pairs.
func (b *browser) get(u string, headers ...string) *result {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.abs(u), nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

// post sends a form to u, as a same-origin browser form would.
func (b *browser) post(u string, form url.Values, headers ...string) *result {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.abs(u), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

// follow requests u and follows redirects (at most 10).
func (b *browser) follow(u string) *result {
	b.t.Helper()
	var via []string
	for range 10 {
		r := b.get(u)
		via = append(via, r.Via...)
		loc := r.Header.Get("Location")
		if r.StatusCode/100 != 3 || loc == "" {
			r.Via = via
			return r
		}
		next, err := r.Request.URL.Parse(loc)
		if err != nil {
			b.t.Fatal(err)
		}
		u = next.String()
	}
	b.t.Fatalf("too many redirects from %s", u)
	return nil
}

// cookie returns the browser's cookie named name for path, or nil.
func (b *browser) cookie(path, name string) *http.Cookie {
	u, _ := url.Parse(b.base + path)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func setCookie(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func setsCookiePrefix(res *http.Response, prefix string) bool {
	for _, c := range res.Cookies() {
		if strings.HasPrefix(c.Name, prefix) && c.MaxAge >= 0 && c.Value != "" {
			return true
		}
	}
	return false
}

func loginPath(slug string, q url.Values) string {
	p := "/t/" + slug + "/login"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

func wantStatus(t *testing.T, r *result, status int, contains ...string) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%v: status %d, want %d\n%s", r.Via, r.StatusCode, status, r.Body)
	}
	for _, s := range contains {
		if !strings.Contains(r.Body, s) {
			t.Fatalf("%v: body lacks %q:\n%s", r.Via, s, r.Body)
		}
	}
}

// audit lists the tenant's audit events with action.
func (e *env) audit(t *gatehouse.Tenant, action string) []*gatehouse.AuditEvent {
	var out []*gatehouse.AuditEvent
	e.update(func(ctx context.Context, tx gatehouse.Tx) (err error) {
		out, _, err = tx.ListAudit(ctx, t.ID, gatehouse.AuditFilter{Action: action}, gatehouse.Page{Limit: 1000})
		return err
	})
	return out
}
