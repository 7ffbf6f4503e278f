package loadtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Scenario prepares a run (untimed) and returns its timed flow.
type Scenario func(ctx context.Context, e *Env) (Flow, error)

// OIDCJIT: complete logins through an OIDC connection, each creating its
// user just in time: GET /t/{tenant}/login?connection=&login_hint= → the
// upstream's authorize (which answers at once) → Gatehouse's callback
// (code exchange, ES256 ID token check, JIT, session).
func OIDCJIT(returning bool) Scenario {
	return func(ctx context.Context, e *Env) (Flow, error) {
		connID, err := e.CreateOIDCConnection(ctx)
		if err != nil {
			return nil, err
		}
		prefix := "oidc"
		if returning {
			prefix = "oidcr"
		}
		pub := e.URLs[0]
		host := hostOf(pub)
		login := func(ctx context.Context, i int) error {
			b := e.Browser()
			u := pub + "/t/" + e.Tenant + "/login?" + url.Values{"connection": {connID}, "login_hint": {e.Email(prefix, i)}}.Encode()
			_, err := b.Follow(ctx, "GET", u, nil, func(*url.URL) bool { return b.hasSession(host) })
			return err
		}
		if returning {
			if err := Parallel(e.N, e.Concurrency, func(i int) error { return login(ctx, i) }); err != nil {
				return nil, fmt.Errorf("first logins: %w", err)
			}
		}
		return login, nil
	}
}

// OIDCRefused: complete OIDC-connection logins that provisioning refuses
// (just-in-time creation off, no such user): a flood of sign-ins of
// people the tenant does not let in. Each must end on the 403 refusal
// page without a session; Gatehouse records the refusal's audit event and
// the login's one-time keys.
func OIDCRefused(ctx context.Context, e *Env) (Flow, error) {
	jit := jitPolicy()
	jit["enabled"] = false
	connID, err := e.createOIDCConnection(ctx, "Bench OIDC refusing "+e.RunID, jit)
	if err != nil {
		return nil, err
	}
	pub := e.URLs[0]
	host := hostOf(pub)
	return func(ctx context.Context, i int) error {
		b := e.Browser()
		u := pub + "/t/" + e.Tenant + "/login?" + url.Values{"connection": {connID}, "login_hint": {e.Email("oidcx", i)}}.Encode()
		cb, err := b.Follow(ctx, "GET", u, nil, func(u *url.URL) bool { return strings.HasSuffix(u.Path, "/callback") })
		if err != nil {
			return err
		}
		r, err := b.Do(ctx, "GET", cb.String(), nil, nil)
		if err != nil {
			return err
		}
		if r.Status != http.StatusForbidden || b.hasSession(host) {
			return fmt.Errorf("refused login: %d %s (session %v)", r.Status, trimBody(r.Body), b.hasSession(host))
		}
		return nil
	}, nil
}

// oidcClient is an app's view of an OpenID provider.
type oidcClient struct {
	authorize, token string
	clientID, secret string
	redirectURI      string
	scopes           string
	noLoginHint      bool
	// formPost asks for response_mode=form_post: the code comes in a
	// page that posts it to the app (OAuth 2.0 Form Post Response Mode).
	formPost bool
	e        *Env
}

func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// newOIDCClient reads the provider's discovery document.
func newOIDCClient(ctx context.Context, e *Env, issuer, clientID, secret, redirectURI, scopes string) (*oidcClient, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(issuer, "/")+"/.well-known/openid-configuration", nil)
	var d struct {
		Authorize string `json:"authorization_endpoint"`
		Token     string `json:"token_endpoint"`
	}
	if err := doJSON(e.Client(), req, 200, &d); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if scopes == "" {
		scopes = "openid email profile"
	}
	return &oidcClient{authorize: d.Authorize, token: d.Token, clientID: clientID, secret: secret, redirectURI: redirectURI, scopes: scopes, e: e}, nil
}

// tokens is a token endpoint answer.
type tokens struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
}

// code runs an authorize request in browser b until the provider
// redirects to the app with a code.
func (c *oidcClient) code(ctx context.Context, b *Browser, email string) (code, verifier string, err error) {
	verifier, challenge := pkce()
	state := randHex(8)
	q := url.Values{
		"client_id": {c.clientID}, "redirect_uri": {c.redirectURI}, "response_type": {"code"},
		"scope": {c.scopes}, "state": {state}, "nonce": {randHex(8)},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	if email != "" && !c.noLoginHint {
		q.Set("login_hint", email)
	}
	sep := "?"
	if strings.Contains(c.authorize, "?") {
		sep = "&"
	}
	var lq url.Values
	if c.formPost {
		q.Set("response_mode", "form_post")
		if lq, err = b.FollowToPost(ctx, c.authorize+sep+q.Encode(), c.redirectURI); err != nil {
			return "", "", err
		}
	} else {
		loc, err := b.Follow(ctx, "GET", c.authorize+sep+q.Encode(), nil, func(u *url.URL) bool { return isUnder(u, c.redirectURI) })
		if err != nil {
			return "", "", err
		}
		lq = loc.Query()
	}
	if lq.Get("state") != state || lq.Get("code") == "" {
		return "", "", fmt.Errorf("answer to the app without code or with a wrong state (form_post %v)", c.formPost)
	}
	return lq.Get("code"), verifier, nil
}

func (c *oidcClient) exchange(ctx context.Context, form url.Values) (*tokens, error) {
	var t tokens
	if err := PostForm(ctx, c.e.Client(), c.token, form, c.clientID, c.secret, 200, &t); err != nil {
		return nil, err
	}
	if t.AccessToken == "" {
		return nil, fmt.Errorf("token answer without access_token")
	}
	return &t, nil
}

func (c *oidcClient) redeem(ctx context.Context, code, verifier string) (*tokens, error) {
	t, err := c.exchange(ctx, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {c.redirectURI}, "code_verifier": {verifier}})
	if err == nil && t.IDToken == "" {
		err = fmt.Errorf("token answer without id_token")
	}
	return t, err
}

// gatehouseApp registers a confidential app at the bench tenant and
// returns its client, scopes as asked.
func gatehouseApp(ctx context.Context, e *Env, scopes string) (*oidcClient, error) {
	connID, err := e.CreateOIDCConnection(ctx)
	if err != nil {
		return nil, err
	}
	redirect := "http://app.bench.example/callback"
	var app struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Issuer       string `json:"issuer"`
	}
	// One allowed connection: the login goes straight to it.
	err = e.API(ctx, "POST", "/api/v1/tenants/"+e.Tenant+"/apps", map[string]any{
		"name": "Bench app " + randHex(3), "redirect_uris": []string{redirect}, "allowed_connections": []string{connID},
		"grant_types": []string{"authorization_code", "refresh_token"}, "id_token_signing_alg": "ES256",
	}, &app)
	if err != nil {
		return nil, err
	}
	if app.Issuer == "" {
		app.Issuer = e.URLs[0] + "/t/" + e.Tenant
	}
	return newOIDCClient(ctx, e, app.Issuer, app.ClientID, app.ClientSecret, redirect, scopes)
}

// AppBroker: complete brokered sign-ins of an app: authorize at the
// broker → (its login) → the upstream IdP → the broker's callback → the
// app's redirect URI with a code → the code exchanged for tokens. The user
// is new each time (created just in time). Against Gatehouse the tool
// registers the app; with e.External, any OpenID provider that brokers the
// tool's upstream IdP.
func AppBroker(ctx context.Context, e *Env) (Flow, error) { return appBroker(ctx, e, false) }

// AppBrokerFormPost: AppBroker with response_mode=form_post, as
// ASP.NET's OpenID Connect handler asks by default: the code reaches the
// app in a page that posts it.
func AppBrokerFormPost(ctx context.Context, e *Env) (Flow, error) { return appBroker(ctx, e, true) }

func appBroker(ctx context.Context, e *Env, formPost bool) (Flow, error) {
	var c *oidcClient
	var err error
	if x := e.External; x != nil {
		c, err = newOIDCClient(ctx, e, x.Issuer, x.ClientID, x.ClientSecret, x.RedirectURI, x.Scopes)
		if c != nil {
			c.noLoginHint = x.NoLoginHint
		}
	} else {
		c, err = gatehouseApp(ctx, e, "")
	}
	if err != nil {
		return nil, err
	}
	c.formPost = formPost
	return func(ctx context.Context, i int) error {
		b := e.Browser()
		code, verifier, err := c.code(ctx, b, e.Email("app", i))
		if err != nil {
			return err
		}
		_, err = c.redeem(ctx, code, verifier)
		return err
	}, nil
}

// Token: code → token exchanges (ES256 ID tokens). Setup signs one user
// in and runs N authorize requests in that browser session, each ending
// in a code; the timed flows redeem them. Codes live two minutes, so N is
// what can be redeemed in that time.
func Token(ctx context.Context, e *Env) (Flow, error) {
	c, err := gatehouseApp(ctx, e, "")
	if err != nil {
		return nil, err
	}
	type grant struct{ code, verifier string }
	grants := make([]grant, e.N)
	b := e.Browser()
	if _, _, err := c.code(ctx, b, e.Email("tok", 0)); err != nil {
		return nil, err
	}
	t0 := time.Now()
	err = Parallel(e.N, e.Concurrency, func(i int) error {
		// Each worker needs its own cookie map: copy the session.
		bb := e.Browser()
		bb.cookies = cloneCookies(b.cookies)
		code, v, err := c.code(ctx, bb, "")
		grants[i] = grant{code, v}
		return err
	})
	e.logf("made %d codes in %s", e.N, time.Since(t0).Round(time.Millisecond))
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, i int) error {
		_, err := c.redeem(ctx, grants[i].code, grants[i].verifier)
		return err
	}, nil
}

func cloneCookies(m map[string]map[string]string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for h, jar := range m {
		out[h] = map[string]string{}
		for k, v := range jar {
			out[h][k] = v
		}
	}
	return out
}

// Refresh: refresh-token grants with rotation. Setup obtains one refresh
// token per worker slot; each timed flow takes a token from the pool,
// redeems it and puts the new one back.
func Refresh(ctx context.Context, e *Env) (Flow, error) {
	c, err := gatehouseApp(ctx, e, "openid email offline_access")
	if err != nil {
		return nil, err
	}
	pool := make(chan string, 2*e.Concurrency)
	b := e.Browser()
	for i := 0; i < cap(pool); i++ {
		code, v, err := c.code(ctx, b, e.Email("ref", 0))
		if err != nil {
			return nil, err
		}
		t, err := c.redeem(ctx, code, v)
		if err != nil {
			return nil, err
		}
		if t.RefreshToken == "" {
			return nil, fmt.Errorf("no refresh token for scope offline_access")
		}
		pool <- t.RefreshToken
	}
	return func(ctx context.Context, i int) error {
		var rt string
		select {
		case rt = <-pool:
		case <-ctx.Done():
			return ctx.Err()
		}
		t, err := c.exchange(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		if err != nil {
			// A failed exchange may or may not have spent rt; keep
			// the pool full with it and let the next error tell.
			pool <- rt
			return err
		}
		if t.RefreshToken == "" {
			pool <- rt
			return fmt.Errorf("refresh answer without a new refresh token")
		}
		pool <- t.RefreshToken
		return nil
	}, nil
}
