package oidc

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/oidc/oidctest"
	"github.com/gatehouse-sso/gatehouse/outbound"
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// FuzzVerifyIDToken feeds arbitrary ID tokens to the verifier: it must
// never panic, and whatever it accepts must be the provider's own token
// for the expected nonce (mutations may not forge another identity).
func FuzzVerifyIDToken(f *testing.F) {
	clk := fixedClock{time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)}
	idp := oidctest.New(clk, "client-1", "fuzz-secret-0123456789abcdefghijklmnop")
	defer idp.Close()
	env := connector.Env{PublicURL: "https://gatehouse.test", Clock: clk,
		HTTPClient: outbound.NewClient(outbound.Policy{AllowLoopback: true})}
	typ := Type()
	c := &gatehouse.Connection{ID: "con_f", TenantID: "ten_f"}
	cfg, sec, err := typ.Configure(context.Background(), env, c, nil, oidctest.Fields(map[string]any{
		"issuer": idp.Issuer, "client_id": "client-1", "client_secret": "fuzz-secret-0123456789abcdefghijklmnop",
		"allowed_algs": []string{"RS256", "ES256", "HS256"}}))
	if err != nil {
		f.Fatal(err)
	}
	c.Config = cfg
	cn, err := typ.Open(context.Background(), env, c, sec)
	if err != nil {
		f.Fatal(err)
	}
	k := cn.(*conn)
	md, err := k.metadata(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	// Seeds: the ID tokens of real logins, normal and forged.
	seed := func(forge oidctest.Forge) string {
		idp.SetNext(forge)
		flow := &connector.Flow{}
		act, err := k.Begin(context.Background(), flow)
		if err != nil {
			f.Fatal(err)
		}
		if !strings.Contains(act.RedirectURL, "nonce=") {
			f.Fatal("no nonce")
		}
		cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := cl.Get(act.RedirectURL)
		if err != nil {
			f.Fatal(err)
		}
		resp.Body.Close()
		r := httptest.NewRequest("GET", resp.Header.Get("Location"), nil)
		tok, err := k.exchange(context.Background(), md, r.URL.Query().Get("code"), flow.PKCEVerifier)
		if err != nil {
			f.Fatal(err)
		}
		return tok.IDToken
	}
	// The seeds carry a fixed nonce so the valid one verifies in the target.
	fixedNonce := func(c map[string]any) { c["nonce"] = "fuzz-nonce" }
	for _, fg := range []oidctest.Forge{{Claims: fixedNonce}, {Claims: fixedNonce, Alg: "HS256-secret"},
		{Claims: fixedNonce, Alg: "none"}, {Claims: fixedNonce, Alg: "HS256-pubkey"}, {Claims: fixedNonce, TamperSignature: true},
		{Claims: func(c map[string]any) { fixedNonce(c); c["aud"] = []string{"client-1", "x"} }}} {
		f.Add(seed(fg))
	}
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJSUzI1NiJ9..")
	f.Fuzz(func(t *testing.T, raw string) {
		idt, claims, err := k.verify(context.Background(), md, raw, "fuzz-nonce")
		if err != nil {
			if gatehouse.ErrorCode(err) != gatehouse.EFORBIDDEN {
				t.Fatalf("error with code %q: %v", gatehouse.ErrorCode(err), err)
			}
			return
		}
		b, _ := json.Marshal(claims)
		if idt.Subject != "user-1" || idt.Nonce != "fuzz-nonce" || !strings.Contains(string(b), `"aud":"client-1"`) {
			t.Fatalf("accepted a token that is not the provider's: %s", b)
		}
	})
}
