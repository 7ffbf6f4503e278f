package op

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/gatehouse-sso/gatehouse"
	"golang.org/x/oauth2"
)

// countingTransport counts a browser's requests.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// authzObs is what an app and the tenant see of one authorize request.
type authzObs struct {
	Status   int
	Query    []string // members of the app's redirect (code, state, error...)
	Error    string
	Logins   int            // login pages shown
	SignedIn int            // app.signed_in audit events written
	Claims   map[string]any // of the ID token the code redeems for
	hops     int64          // requests the browser made
}

// TestAuthorizeAtOnceMatchesResume runs authorize requests through
// atAuthorize (the login or the app's code decided at the authorize
// endpoint, the login served in place) and AnswerLogin (the code issued
// by the login), and through
// the resume endpoint as before, and compares what
// the app, the user and the audit log see; atAuthorize must take fewer
// requests where it applies, never more.
func TestAuthorizeAtOnceMatchesResume(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test", "Staff")
		e.signInAs(ana)
		a, sec := e.app(gatehouse.App{})
		staffOnly, ssec := e.app(gatehouse.App{Name: "Payroll", AllowedGroups: []string{"Finance"}})
		r, rStaff := e.rp(a, sec), e.rp(staffOnly, ssec)

		signedIn := func() int {
			var n int
			e.update(func(tx gatehouse.Tx) error {
				ev, _, err := tx.ListAudit(e.ctx, e.tenant.ID, gatehouse.AuditFilter{Action: "app.signed_in"}, gatehouse.Page{Limit: 1000})
				n = len(ev)
				return err
			})
			return n
		}
		// run drives a fresh browser (signed in first when session) through
		// one authorize request with opts and redeems the code.
		run := func(rp *rp, session bool, advance time.Duration, opts ...oauth2.AuthCodeOption) authzObs {
			b := e.browser()
			ct := &countingTransport{}
			b.Transport = ct
			if session {
				r.login(b)
			}
			e.clock.Advance(advance)
			logins, audits, hops := e.loginCount(), signedIn(), ct.n.Load()
			verifier, _ := pkce()
			opts = append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n-1")}, opts...)
			resp, _ := get(t, b, rp.cfg.AuthCodeURL("st-1", opts...))
			o := authzObs{Status: resp.StatusCode, hops: ct.n.Load() - hops}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if loc != nil && strings.HasPrefix(loc.String(), rp.cfg.RedirectURL) {
				for k := range loc.Query() {
					o.Query = append(o.Query, k)
				}
				slices.Sort(o.Query)
				o.Error = loc.Query().Get("error")
				if c := loc.Query().Get("code"); c != "" {
					tok, err := rp.cfg.Exchange(e.ctx, c, oauth2.VerifierOption(verifier))
					if err != nil {
						t.Fatalf("exchange: %v", err)
					}
					idt, err := rp.verifier.Verify(e.ctx, tok.Extra("id_token").(string))
					if err != nil {
						t.Fatal(err)
					}
					_ = idt.Claims(&o.Claims)
					for _, k := range []string{"iat", "exp", "at_hash", "c_hash", "auth_time", "sid"} {
						if o.Claims[k] == nil {
							t.Errorf("ID token without %s", k)
						}
						delete(o.Claims, k)
					}
				}
			}
			o.Logins, o.SignedIn = e.loginCount()-logins, signedIn()-audits
			return o
		}
		for _, sc := range []struct {
			name    string
			rp      *rp
			session bool
			advance time.Duration
			opts    []oauth2.AuthCodeOption
			fewer   bool // atAuthorize saves requests here
		}{
			{"no session", r, false, 0, nil, true},
			{"session", r, true, 0, nil, true},
			{"session, prompt=login", r, true, replicaSkew + time.Second, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login")}, true},
			{"session, young enough for max_age", r, true, time.Minute, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "3600")}, true},
			{"session, too old for max_age", r, true, 10 * time.Minute, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "60")}, true},
			{"no session, prompt=none", r, false, 0, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "none")}, false},
			{"session, prompt=none", r, true, 0, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "none")}, true},
			{"session, not in the allowed groups", rStaff, true, 0, nil, false},
			{"session, form_post", r, true, 0, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("response_mode", "form_post")}, true},
		} {
			var got [2]authzObs
			for i, resume := range []bool{false, true} {
				e.prov.resumeAlways.Store(resume)
				e.viaResume.Store(resume)
				e.loginInPlace(!resume)
				got[i] = run(sc.rp, sc.session, sc.advance, sc.opts...)
			}
			e.prov.resumeAlways.Store(false)
			e.viaResume.Store(false)
			e.loginInPlace(false)
			ours, before := got[0], got[1]
			if sc.fewer && ours.hops >= before.hops || ours.hops > before.hops {
				t.Errorf("%s: %d requests, %d through resume", sc.name, ours.hops, before.hops)
			}
			ours.hops, before.hops = 0, 0
			if !reflect.DeepEqual(ours, before) {
				t.Errorf("%s:\n at authorize %+v\n resume       %+v", sc.name, ours, before)
			}
		}
	})
}

// TestAuthorizeGoesStraightToLogin: without a session the authorize
// endpoint sends the browser to the tenant's login at once, and with one it
// answers the app at once (no resume hop).
func TestAuthorizeGoesStraightToLogin(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.signInAs(e.user("ana@acme.test"))
	a, sec := e.app(gatehouse.App{})
	r := e.rp(a, sec)
	noFollow := e.browser()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	verifier, _ := pkce()
	resp, _ := get(t, noFollow, r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Path != "/t/acme/login" ||
		!strings.HasPrefix(loc.Query().Get("return_to"), "/t/acme/authorize/resume?ar=") {
		t.Fatalf("authorize without a session: %d %v", resp.StatusCode, loc)
	}
	// Signed in: the app's redirect URI with a code, from the authorize
	// endpoint itself.
	b := e.browser()
	r.login(b)
	b.CheckRedirect = noFollow.CheckRedirect
	resp, _ = get(t, b, r.cfg.AuthCodeURL("st-2", oauth2.S256ChallengeOption(verifier)))
	loc, _ = url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), a.RedirectURIs[0]+"?") ||
		loc.Query().Get("code") == "" || loc.Query().Get("state") != "st-2" {
		t.Fatalf("authorize with a session: %d %v", resp.StatusCode, loc)
	}
	if _, err := r.cfg.Exchange(e.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
}

// TestTenantCacheBound: a tenant changed in this process is seen at the
// next request; one changed elsewhere (the generation does not move)
// within tenantTTL; without a generation nothing is cached.
func TestTenantCacheBound(t *testing.T) {
	e := newEnv(t, "sqlite")
	if e.prov.tenants.gen == nil {
		t.Fatal("sqlstore offers a generation: the provider should cache tenants")
	}
	disc := func(slug string) int {
		resp, _ := get(t, http.DefaultClient, e.srv.URL+"/t/"+slug+"/.well-known/openid-configuration")
		return resp.StatusCode
	}
	if disc("acme") != 200 {
		t.Fatal("discovery")
	}
	rename := func(slug string) {
		e.update(func(tx gatehouse.Tx) error {
			te, err := tx.GetTenant(e.ctx, e.tenant.ID)
			if err != nil {
				return err
			}
			te.Slug = slug
			return tx.UpdateTenant(e.ctx, te)
		})
	}
	// Here: at once.
	rename("acme2")
	if disc("acme") != 404 || disc("acme2") != 200 {
		t.Fatal("rename in this process not seen at once")
	}
	// Elsewhere: the generation stands still (another replica's write).
	var gen atomic.Uint64
	e.prov.tenants.gen = gen.Load
	if disc("acme2") != 200 {
		t.Fatal("discovery")
	}
	if _, err := e.store.DB().ExecContext(e.ctx, `UPDATE tenants SET slug = 'acme3', slug_key = 'acme3' WHERE id = $1`, e.tenant.ID); err != nil {
		t.Fatal(err)
	}
	if disc("acme2") != 200 {
		t.Fatal("a fresh entry was not served from the cache")
	}
	e.clock.Advance(tenantTTL)
	if disc("acme2") != 404 || disc("acme3") != 200 {
		t.Fatal("a change elsewhere not seen after tenantTTL")
	}
	// Without a generation, every request reads.
	e.prov.tenants.gen = nil
	if _, err := e.store.DB().ExecContext(e.ctx, `UPDATE tenants SET slug = 'acme4', slug_key = 'acme4' WHERE id = $1`, e.tenant.ID); err != nil {
		t.Fatal(err)
	}
	if disc("acme3") != 404 || disc("acme4") != 200 {
		t.Fatal("without a generation the cache served a stale tenant")
	}
}
