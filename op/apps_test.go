package op

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// countingStore counts the provider's reads of an app by client id
// outside a transaction (the read the authorize endpoint's cache saves).
type countingStore struct {
	*sqlstore.Store
	lookups atomic.Int64
}

func (s *countingStore) LookupAppByClientID(ctx context.Context, tenantID, clientID string) (*gatehouse.App, error) {
	s.lookups.Add(1)
	return s.Store.LookupAppByClientID(ctx, tenantID, clientID)
}

// countApps makes the provider read its apps through a countingStore.
func (e *env) countApps() *countingStore {
	cs := &countingStore{Store: e.store}
	e.prov.store = cs
	return cs
}

// authorizeOutcome sends one authorize request for clientID and redirect
// with b's cookies, following no redirect, and names the answer: "login"
// (to the tenant's login), "resume <url>", "code" or "error=<code>" (back
// to redirect), or the status with the page's body.
func (e *env) authorizeOutcome(b *http.Client, clientID, redirect string) string {
	e.t.Helper()
	_, challenge := pkce()
	v := url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"st"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	resp, body := get(e.t, e.noFollowWith(b), e.issuer()+"/authorize?"+v.Encode())
	loc := resp.Header.Get("Location")
	switch {
	case resp.StatusCode == http.StatusFound && strings.Contains(loc, "/t/"+e.tenant.Slug+"/login?"):
		return "login"
	case resp.StatusCode == http.StatusFound && strings.HasPrefix(loc, e.issuer()+"/"+pathResume+"?"):
		return "resume " + loc
	case resp.StatusCode == http.StatusFound && strings.HasPrefix(loc, redirect+"?"):
		u, _ := url.Parse(loc)
		if u.Query().Get("code") != "" {
			return "code"
		}
		return "error=" + u.Query().Get("error")
	}
	return fmt.Sprintf("%d %s %s", resp.StatusCode, loc, strings.TrimSpace(body))
}

// The authorize endpoint reads an app once per replica and appTTL (issue
// #10): a second authorize request for the same client does not read it,
// and any write of the app through this process (the store, as the admin
// API writes it) is seen by the very next one.
func TestAuthorizeAppCache(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		cs := e.countApps()
		const cb, cb2 = "https://wiki.example/cb", "https://wiki.example/cb2"
		unknown := e.authorizeOutcome(e.browser(), "no-such-client", cb)
		if unknown == "login" || unknown == "code" {
			t.Fatalf("an unknown client: %s", unknown)
		}
		cases := []struct {
			name   string
			change func(tx gatehouse.Tx, a *gatehouse.App) error
			// the next authorize request's answer, for cb and cb2
			want, want2 string
		}{
			{"redirect URI removed", func(tx gatehouse.Tx, a *gatehouse.App) error {
				a.RedirectURIs = []string{cb2}
				return tx.UpdateApp(e.ctx, a)
			}, "400", "login"},
			{"secret rotated", func(tx gatehouse.Tx, a *gatehouse.App) error {
				a.SecretHash = secret.Digest(secret.NewToken(""))
				return tx.UpdateApp(e.ctx, a)
			}, "login", ""},
			{"code flow withdrawn", func(tx gatehouse.Tx, a *gatehouse.App) error {
				a.GrantTypes = []string{grantClientCredentials}
				return tx.UpdateApp(e.ctx, a)
			}, "error=unauthorized_client", ""},
			{"made public", func(tx gatehouse.Tx, a *gatehouse.App) error {
				a.Public, a.SecretHash = true, nil
				return tx.UpdateApp(e.ctx, a)
			}, "login", ""},
			{"app deleted", func(tx gatehouse.Tx, a *gatehouse.App) error {
				return tx.DeleteApp(e.ctx, a.TenantID, a.ID)
			}, unknown, ""},
		}
		for _, tc := range cases {
			a, _ := e.app(gatehouse.App{Name: tc.name, RedirectURIs: []string{cb}})
			n := cs.lookups.Load()
			for i := range 3 {
				if got := e.authorizeOutcome(e.browser(), a.ClientID, cb); got != "login" {
					t.Fatalf("%s: authorize %d: %s", tc.name, i, got)
				}
			}
			if got := cs.lookups.Load() - n; got != 1 {
				t.Errorf("%s: 3 authorize requests read the app %d times, want 1", tc.name, got)
			}
			e.update(func(tx gatehouse.Tx) error { return tc.change(tx, a) })
			n = cs.lookups.Load()
			if got := e.authorizeOutcome(e.browser(), a.ClientID, cb); !strings.HasPrefix(got, tc.want) {
				t.Errorf("%s: the next authorize answered %q, want %q", tc.name, got, tc.want)
			}
			if tc.want2 != "" {
				if got := e.authorizeOutcome(e.browser(), a.ClientID, cb2); got != tc.want2 {
					t.Errorf("%s: the next authorize for %s answered %q, want %q", tc.name, cb2, got, tc.want2)
				}
			}
			if got := cs.lookups.Load() - n; got != 1 {
				t.Errorf("%s: the app was read %d times after the change, want 1 (the cache dropped)", tc.name, got)
			}
		}
		// Other endpoints read the app as stored: resume, on every request.
		a, sec := e.app(gatehouse.App{Name: "resume", RedirectURIs: []string{cb}})
		e.signInAs(e.user("ana@acme.test"))
		e.viaResume.Store(true)
		r := e.rp(a, sec)
		e.authorizeOutcome(e.browser(), a.ClientID, cb)
		n := cs.lookups.Load()
		r.login(e.browser())
		if got := cs.lookups.Load() - n; got < 1 {
			t.Errorf("a sign-in through resume read the app %d times outside a transaction, want resume's read", got)
		}
	})
}

// Another replica's change (this process's generation stands still) is
// seen by the authorize endpoint within appTTL; within it, no code is
// issued from the cached app: where the browser's session answers at the
// authorize endpoint, the app is read again first, and a change that
// refuses the request leaves it to resume's page (as TestAttackSealOutlivesApp).
func TestAuthorizeAppCacheElsewhere(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		cs := e.countApps()
		e.signInAs(e.user("ana@acme.test"))
		other := &gatehouse.Connection{TenantID: e.tenant.ID, Type: gatehouse.ConnMock, Name: "Other", Enabled: true, Config: json.RawMessage(`{}`), JIT: gatehouse.DefaultJITPolicy()}
		e.update(func(tx gatehouse.Tx) error { return tx.CreateConnection(e.ctx, other) })
		var gen atomic.Uint64
		e.prov.apps.gen = gen.Load
		const cb = "https://wiki.example/cb"
		cases := []struct {
			name, set, arg string
			// with a session (the code would be issued at once): the
			// authorize endpoint's answer, and resume's page when it
			// leaves the request to resume; without one (the browser goes
			// to the login, where AnswerLogin reads the app again)
			session   string
			resume    int
			noSession string
		}{
			{"redirect URI removed", "redirect_uris", `["https://wiki.example/new"]`, "resume", http.StatusBadRequest, "login"},
			{"limited to a group", "allowed_groups", `["Admins"]`, "resume", http.StatusForbidden, "login"},
			{"limited to another connection", "allowed_connections", fmt.Sprintf(`[%q]`, other.ID), "login", 0, "login"},
			{"deleted", "", "", "resume", http.StatusBadRequest, "login"},
		}
		for _, tc := range cases {
			a, sec := e.app(gatehouse.App{Name: tc.name, RedirectURIs: []string{cb}})
			b := e.browser()
			e.rp(a, sec).login(b)
			if got := e.authorizeOutcome(b, a.ClientID, cb); got != "code" {
				t.Fatalf("%s: authorize with a session: %s", tc.name, got)
			}
			if got := e.authorizeOutcome(e.browser(), a.ClientID, cb); got != "login" {
				t.Fatalf("%s: authorize without a session: %s", tc.name, got)
			}
			q := `DELETE FROM apps WHERE id = $1`
			args := []any{a.ID}
			if tc.set != "" {
				q, args = `UPDATE apps SET `+tc.set+` = $2 WHERE id = $1`, []any{a.ID, tc.arg}
			}
			if _, err := e.store.DB().ExecContext(e.ctx, q, args...); err != nil {
				t.Fatal(err)
			}
			n := cs.lookups.Load()
			got := e.authorizeOutcome(b, a.ClientID, cb)
			if !strings.HasPrefix(got, tc.session) {
				t.Errorf("%s elsewhere: authorize with a session answered %q, want %s", tc.name, got, tc.session)
			}
			// The validation, from the cache: no read; before the code,
			// the app as stored: one.
			if got := cs.lookups.Load() - n; got != 1 {
				t.Errorf("%s elsewhere: %d reads of the app at authorize, want 1 (before the code)", tc.name, got)
			}
			if next, ok := strings.CutPrefix(got, "resume "); ok {
				resp, _ := get(t, e.noFollowWith(b), next)
				if loc := resp.Header.Get("Location"); resp.StatusCode != tc.resume || strings.HasPrefix(loc, cb) {
					t.Errorf("%s elsewhere: resume answered %d %q, want %d", tc.name, resp.StatusCode, loc, tc.resume)
				}
			}
			if got := e.authorizeOutcome(e.browser(), a.ClientID, cb); got != tc.noSession {
				t.Errorf("%s elsewhere: authorize without a session answered %q, want %s (from the cache)", tc.name, got, tc.noSession)
			}
		}
		// Past appTTL every authorize request reads the app again.
		n := cs.lookups.Load()
		e.clock.Advance(appTTL)
		if got := e.authorizeOutcome(e.browser(), "no-such", cb); got == "login" {
			t.Fatal("an unknown client was sent to the login")
		}
		a, _ := e.app(gatehouse.App{Name: "ttl", RedirectURIs: []string{cb}})
		gen.Add(1) // the app's creation, as CatalogGeneration would count it
		for range 2 {
			e.authorizeOutcome(e.browser(), a.ClientID, cb)
		}
		if _, err := e.store.DB().ExecContext(e.ctx, `UPDATE apps SET redirect_uris = '["https://wiki.example/new"]' WHERE id = $1`, a.ID); err != nil {
			t.Fatal(err)
		}
		if got := e.authorizeOutcome(e.browser(), a.ClientID, cb); got != "login" {
			t.Errorf("within appTTL: %s, want the cached app's answer", got)
		}
		e.clock.Advance(appTTL)
		if got := e.authorizeOutcome(e.browser(), a.ClientID, cb); got == "login" || got == "code" {
			t.Errorf("a redirect URI removed elsewhere still accepted after appTTL: %s", got)
		}
		// unknown (1, never cached), ttl (1), then after appTTL (1)
		if got := cs.lookups.Load() - n; got != 3 {
			t.Errorf("%d reads, want 3", got)
		}
		if appTTL > 5*time.Second {
			t.Errorf("appTTL %v: another replica's change must be seen within seconds", appTTL)
		}
	})
}

// genCache, which the tenants and the apps use: hits within the
// generation and the time bound, misses never cached, bounded in size.
func TestGenCache(t *testing.T) {
	clock := &fixedClock{t: time.Now()}
	var gen atomic.Uint64
	c := &genCache[string, int]{gen: gen.Load, clock: clock, ttl: time.Second, max: 3, m: map[string]genEntry[int]{}}
	reads := map[string]int{}
	errMissing := gatehouse.Errorf(gatehouse.ENOTFOUND, "missing")
	get := func(key string) (int, bool, error) {
		return c.get(context.Background(), key, func(context.Context) (int, error) {
			reads[key]++
			if key == "missing" {
				return 0, errMissing
			}
			return reads[key], nil
		})
	}
	steps := []struct {
		name string
		do   func()
		key  string
		// the value (the read's number) and whether it was a hit
		want int
		hit  bool
	}{
		{"first read", nil, "a", 1, false},
		{"second read is a hit", nil, "a", 1, true},
		{"just under the bound", func() { clock.Advance(time.Second - time.Nanosecond) }, "a", 1, true},
		{"at the bound", func() { clock.Advance(time.Nanosecond) }, "a", 2, false},
		{"a write in this process", func() { gen.Add(1) }, "a", 3, false},
		{"after it, cached again", nil, "a", 3, true},
		{"a clock that went back", func() { clock.Advance(-time.Minute) }, "a", 4, false},
		{"another key", nil, "b", 1, false},
		{"without a generation", func() { c.gen = nil }, "b", 2, false},
		{"without a generation, again", nil, "b", 3, false},
		{"with it again, as cached before", func() { c.gen = gen.Load }, "b", 1, true},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		v, hit, err := get(s.key)
		if err != nil || v != s.want || hit != s.hit {
			t.Errorf("%s: %d %v %v, want %d %v", s.name, v, hit, err, s.want, s.hit)
		}
	}
	// Misses are not cached: each one reads.
	for range 3 {
		if _, hit, err := get("missing"); hit || !errors.Is(err, errMissing) {
			t.Fatalf("missing: %v %v", hit, err)
		}
	}
	if reads["missing"] != 3 || c.size() != 2 {
		t.Errorf("misses: %d reads, %d entries; want 3 reads, the 2 entries of a and b", reads["missing"], c.size())
	}
	// Bounded: many keys never hold more than max entries.
	for i := range 100 {
		key := fmt.Sprint("k", i)
		if _, _, err := get(key); err != nil {
			t.Fatal(err)
		}
		if c.size() > c.max {
			t.Fatalf("%d entries after %s, max %d", c.size(), key, c.max)
		}
	}
	// An entry already there is replaced in place, without starting afresh.
	n := c.size()
	clock.Advance(time.Second)
	get("k99")
	if c.size() != n {
		t.Errorf("re-reading a cached key changed the size %d → %d", n, c.size())
	}
}

// The provider's app cache is bounded: many apps keep at most
// maxCachedApps entries.
func TestAuthorizeAppCacheBounded(t *testing.T) {
	e := newEnv(t, "sqlite")
	if e.prov.apps.gen == nil || e.prov.apps.max != maxCachedApps || maxCachedApps > 100000 {
		t.Fatalf("the app cache: generation %v, max %d", e.prov.apps.gen != nil, e.prov.apps.max)
	}
	e.prov.apps.max = 3
	for i := range 7 {
		a, _ := e.app(gatehouse.App{Name: fmt.Sprint("app ", i)})
		if got := e.authorizeOutcome(e.browser(), a.ClientID, a.RedirectURIs[0]); got != "login" {
			t.Fatalf("app %d: %s", i, got)
		}
		if n := e.prov.apps.size(); n > 3 {
			t.Fatalf("%d cached apps, max 3", n)
		}
	}
}

// fixedClock stands still unless advanced.
type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time          { return c.t }
func (c *fixedClock) Advance(d time.Duration) { c.t = c.t.Add(d) }
