package server_test

// Tenant isolation through the whole wiring, driven by the route tables:
// every admin-API route (read from the published OpenAPI document, which
// api's own tests keep equal to its routing table), every SCIM endpoint and
// every OpenID-provider pattern (op.Patterns). Tenant A ("alpha") owns one
// object of every kind; tenant B ("beta") calls with its own credentials
// and must get 404 (or the protocol's own refusal) and never see A's data.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/op"
)

// marker is in every name, email and display name of tenant A's objects, so
// one case-insensitive search of a body finds any leak.
const marker = "alphamark"

// tenantFixture is one tenant and one object of every kind it owns.
type tenantFixture struct {
	slug                  string
	ids                   map[string]string // route segment ("users", "groups", ...) → object id
	apiToken, scimToken   string
	app                   app
	access, refresh, idt  string // tokens an app of the tenant got for a signed-in user
	kid                   string // the tenant's signing key id
	sessionCookie         []*http.Cookie
	secrets               []string // every secret value of the tenant (must never appear elsewhere)
	redirect, postLogout  string
	userEmail, userName   string
	groupName, connection string
}

func decodeInto(t *testing.T, data []byte, out any) {
	t.Helper()
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

// newTenantFixture creates tenant slug with a user (member of a group), a
// mock connection, an app, an API token, a SCIM token, a webhook and
// signing keys, then signs the user in to the app (code flow, refresh token).
func newTenantFixture(t *testing.T, gh *servertest.Instance, slug, mark string) *tenantFixture {
	t.Helper()
	f := &tenantFixture{slug: slug, ids: map[string]string{},
		userEmail: "ana." + mark + "@" + slug + ".test", userName: "Ana " + mark,
		groupName: "eng-" + mark, redirect: "https://app." + slug + ".test/cb", postLogout: "https://app." + slug + ".test/bye"}
	base := "/api/v1/tenants/" + slug
	must := func(code, want int, what string) {
		t.Helper()
		if code != want {
			t.Fatalf("%s %s: status %d, want %d", slug, what, code, want)
		}
	}
	var obj struct {
		ID           string `json:"id"`
		Token        string `json:"token"`
		Secret       string `json:"secret"`
		ClientSecret string `json:"client_secret"`
	}
	must(gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": slug, "name": "Tenant " + mark, "domains": []string{slug + ".test"}, "support_contact": "it-" + mark + "@" + slug + ".test"}, nil), 201, "tenant")
	must(gh.API(t, "POST", base+"/users", map[string]any{"email": "bob." + mark + "@" + slug + ".test", "display_name": "Bob " + mark}, &obj), 201, "user")
	f.ids["users"] = obj.ID
	must(gh.API(t, "POST", base+"/groups", map[string]any{"name": f.groupName}, &obj), 201, "group")
	f.ids["groups"] = obj.ID
	must(gh.API(t, "PUT", base+"/groups/"+f.ids["groups"]+"/members/"+f.ids["users"], nil, nil), 204, "membership")
	must(gh.API(t, "POST", base+"/connections", map[string]any{
		"type": "mock", "name": "Mock " + mark, "enabled": true, "jit": map[string]any{"enabled": true},
		"users": []map[string]any{{"subject": "sub-" + mark, "email": f.userEmail, "name": f.userName}},
	}, &obj), 201, "connection")
	f.ids["connections"] = obj.ID
	f.connection = obj.ID
	must(gh.API(t, "POST", base+"/apps", map[string]any{
		"name": "App " + mark, "redirect_uris": []string{f.redirect}, "post_logout_redirect_uris": []string{f.postLogout},
		"grant_types": []string{"authorization_code", "refresh_token", "client_credentials"},
	}, &f.app), 201, "app")
	f.ids["apps"] = f.app.ID
	f.secrets = append(f.secrets, f.app.ClientSecret)
	must(gh.API(t, "POST", base+"/api-tokens", map[string]any{"name": "admin " + mark, "role": "tenant_admin"}, &obj), 201, "api token")
	f.ids["api-tokens"], f.apiToken = obj.ID, obj.Token
	must(gh.API(t, "POST", base+"/scim-tokens", map[string]any{"name": "scim " + mark, "connection_id": f.connection}, &obj), 201, "scim token")
	f.ids["scim-tokens"], f.scimToken = obj.ID, obj.Token
	must(gh.API(t, "POST", base+"/webhooks", map[string]any{"url": "https://hooks." + slug + ".test/" + mark, "events": []string{"*"}, "enabled": false}, &obj), 201, "webhook")
	f.ids["webhooks"] = obj.ID
	f.secrets = append(f.secrets, obj.Secret, f.apiToken, f.scimToken)
	must(gh.API(t, "POST", base+"/keys/rotate", nil, nil), 200, "keys")
	var keys struct {
		Items []struct {
			PublicJWK struct {
				Kid string `json:"kid"`
			} `json:"public_jwk"`
		} `json:"items"`
	}
	must(gh.API(t, "GET", base+"/keys", nil, &keys), 200, "list keys")
	if len(keys.Items) == 0 || keys.Items[0].PublicJWK.Kid == "" {
		t.Fatalf("%s: no signing key: %+v", slug, keys)
	}
	f.kid = keys.Items[0].PublicJWK.Kid
	f.signIn(t, gh)
	return f
}

// signIn runs the app's code flow with PKCE for the tenant's mock user and
// keeps the tokens and the browser session cookie.
func (f *tenantFixture) signIn(t *testing.T, gh *servertest.Instance) {
	t.Helper()
	issuer := gh.URL + "/t/" + f.slug
	conf := oauth2.Config{ClientID: f.app.ClientID, ClientSecret: f.app.ClientSecret, RedirectURL: f.redirect,
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   []string{"openid", "email", "profile", "offline_access"}}
	verifier := oauth2.GenerateVerifier()
	browser := servertest.Browser(t)
	var code string
	browser.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), f.redirect) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := browser.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "n0nce-"+f.slug), oauth2.SetAuthURLParam("login_hint", f.userEmail)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code == "" {
		t.Fatalf("%s: no code (status %d)", f.slug, resp.StatusCode)
	}
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("%s: exchange: %v", f.slug, err)
	}
	f.access, f.refresh = tok.AccessToken, tok.RefreshToken
	f.idt, _ = tok.Extra("id_token").(string)
	if f.refresh == "" || f.idt == "" {
		t.Fatalf("%s: token response lacks refresh or id token", f.slug)
	}
	u, _ := url.Parse(gh.URL + "/t/" + f.slug + "/")
	f.sessionCookie = browser.Jar.Cookies(u)
	f.secrets = append(f.secrets, f.access, f.refresh)
}

// doRaw sends one request and returns the status and body.
func doRaw(t *testing.T, method, u string, body []byte, header http.Header, cookies []*http.Cookie) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(data)
}

// noLeak fails when body (or the Location header) shows any of A's data.
func noLeak(t *testing.T, what string, a *tenantFixture, hdr http.Header, body string, allowIDs ...string) {
	t.Helper()
	hay := strings.ToLower(body + " " + hdr.Get("Location"))
	if strings.Contains(hay, marker) {
		t.Errorf("%s: response shows tenant A's data: %.300s", what, body)
	}
	for kind, id := range a.ids {
		if !slices.Contains(allowIDs, id) && strings.Contains(body, id) {
			t.Errorf("%s: response names A's %s %s", what, kind, id)
		}
	}
	for _, s := range append(a.secrets, a.kid, a.app.ClientID) {
		if s != "" && strings.Contains(body, s) {
			t.Errorf("%s: response contains a value of tenant A (%.12s…)", what, s)
		}
	}
	if loc := hdr.Get("Location"); loc != "" && (strings.HasPrefix(loc, a.redirect) || strings.HasPrefix(loc, a.postLogout)) {
		t.Errorf("%s: redirected to A's app: %s", what, loc)
	}
}

// apiRoutes reads the admin API's route table from its OpenAPI document.
func apiRoutes(t *testing.T, gh *servertest.Instance) [][2]string {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if code := gh.API(t, "GET", "/api/v1/openapi.json", nil, &doc); code != 200 {
		t.Fatalf("openapi.json: %d", code)
	}
	var out [][2]string
	for p, ops := range doc.Paths {
		for m := range ops {
			switch m {
			case "get", "post", "put", "patch", "delete":
				out = append(out, [2]string{strings.ToUpper(m), p})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][1]+out[i][0] < out[j][1]+out[j][0] })
	if len(out) < 40 {
		t.Fatalf("only %d API routes in the OpenAPI document", len(out))
	}
	return out
}

var pathParam = regexp.MustCompile(`\{[a-z_]+\}`)

// fill substitutes the path parameters of an API route: {tenant} with
// slug, {id} with owner's object of the route's kind, {user_id} with
// owner's user.
func fill(route, slug string, owner *tenantFixture) string {
	parts := strings.Split(route, "/")
	for i, p := range parts {
		switch p {
		case "{tenant}":
			parts[i] = slug
		case "{id}":
			parts[i] = owner.ids[parts[i-1]]
		case "{user_id}":
			parts[i] = owner.ids["users"]
		}
	}
	return strings.Join(parts, "/")
}

func TestTenantIsolationRouteTable(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) { testTenantIsolation(t, engine) })
	}
}

func testTenantIsolation(t *testing.T, engine string) {
	gh := servertest.Start(t, servertest.Options{Engine: engine, Dev: true})
	a := newTenantFixture(t, gh, "alpha", marker)
	b := newTenantFixture(t, gh, "beta", "betamark")
	bearer := func(tok string) http.Header {
		return http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}
	}
	// A valid body per kind, so the answer comes from the lookup and not
	// from validation (unknown fields are refused).
	bodies := map[string]string{
		"users": `{"display_name":"x"}`, "groups": `{"name":"x"}`, "apps": `{"name":"x"}`, "connections": `{"name":"x"}`,
		"webhooks": `{"enabled":false}`, "api-tokens": `{"name":"x","role":"tenant_admin"}`, "scim-tokens": `{"name":"x"}`, "": `{"name":"x"}`,
	}
	bodyFor := func(method, route string) []byte {
		if method != "POST" && method != "PATCH" {
			return nil
		}
		kind, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(route, "/api/v1/tenants/{tenant}"), "/"), "/")
		if b, ok := bodies[kind]; ok {
			return []byte(b)
		}
		return []byte(`{}`)
	}

	t.Run("admin API", func(t *testing.T) {
		checked := 0
		for _, rt := range apiRoutes(t, gh) {
			method, route := rt[0], rt[1]
			body := bodyFor(method, route)
			if !strings.Contains(route, "{tenant}") {
				continue // the public document, whoami and the superuser's tenant list
			}
			notFound := func(u, what string) {
				status, hdr, resp := doRaw(t, method, gh.URL+u, body, bearer(b.apiToken), nil)
				if status != http.StatusNotFound {
					t.Errorf("%s %s (%s) with B's token: %d, want 404: %.200s", method, u, what, status, resp)
				}
				noLeak(t, method+" "+u, a, hdr, resp, pathIDs(u)...)
				checked++
			}
			// B's token on A's tenant: the tenant does not exist for B.
			notFound(fill(route, a.slug, a), "A's tenant")
			// B's token on B's tenant naming A's objects: not found in B.
			if pathParam.MatchString(strings.Replace(route, "{tenant}", "", 1)) {
				notFound(fill(route, b.slug, a), "A's ids in B")
			} else if method == "GET" {
				// B's own lists hold nothing of A.
				u := fill(route, b.slug, b)
				status, hdr, resp := doRaw(t, method, gh.URL+u, nil, bearer(b.apiToken), nil)
				if status != http.StatusOK {
					t.Errorf("%s %s: %d", method, u, status)
				}
				noLeak(t, method+" "+u, a, hdr, resp)
				checked++
			}
		}
		// A membership in B's group of A's user, through a route of B's own.
		u := "/api/v1/tenants/beta/groups/" + b.ids["groups"] + "/members/" + a.ids["users"]
		if status, _, resp := doRaw(t, "PUT", gh.URL+u, nil, bearer(b.apiToken), nil); status != http.StatusNotFound {
			t.Errorf("PUT %s: %d %s", u, status, resp)
		}
		t.Logf("%d admin-API calls as tenant B", checked)
	})

	t.Run("SCIM", func(t *testing.T) {
		scimHdr := http.Header{"Authorization": {"Bearer " + b.scimToken}, "Content-Type": {"application/scim+json"}}
		user := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x@beta.test","emails":[{"value":"x@beta.test","primary":true}],"active":true}`
		group := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"x"}`
		patch := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`
		gpatch := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"` + a.ids["users"] + `"}]}]}`
		aUser, aGroup := "/scim/v2/Users/"+a.ids["users"], "/scim/v2/Groups/"+a.ids["groups"]
		cases := []struct {
			method, path, body string
			want               int
		}{
			{"GET", aUser, "", 404},
			{"PUT", aUser, user, 404},
			{"PATCH", aUser, patch, 404},
			{"DELETE", aUser, "", 404},
			{"GET", aGroup, "", 404},
			{"PUT", aGroup, group, 404},
			{"PATCH", aGroup, patch, 404},
			{"DELETE", aGroup, "", 404},
			{"GET", "/scim/v2/Users", "", 200},
			{"GET", "/scim/v2/Users?filter=" + url.QueryEscape(`userName co "`+marker+`"`), "", 200},
			{"GET", "/scim/v2/Users?filter=" + url.QueryEscape(`id eq "`+a.ids["users"]+`"`), "", 200},
			{"GET", "/scim/v2/Groups", "", 200},
			{"GET", "/scim/v2/Groups?filter=" + url.QueryEscape(`displayName eq "`+a.groupName+`"`), "", 200},
			{"POST", "/scim/v2/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"emails co \"` + marker + `\""}`, 200},
			{"POST", "/scim/v2/Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}`, 200},
			{"GET", "/scim/v2/ServiceProviderConfig", "", 200},
			{"GET", "/scim/v2/ResourceTypes", "", 200},
			{"GET", "/scim/v2/Schemas", "", 200},
		}
		for _, c := range cases {
			var rb []byte
			if c.body != "" {
				rb = []byte(c.body)
			}
			status, hdr, resp := doRaw(t, c.method, gh.URL+c.path, rb, scimHdr, nil)
			if status != c.want {
				t.Errorf("SCIM %s %s with B's token: %d, want %d: %.200s", c.method, c.path, status, c.want, resp)
			}
			noLeak(t, "SCIM "+c.method+" "+c.path, a, hdr, resp, pathIDs(c.path)...)
		}
		// B's own group may not take in A's user.
		status, _, resp := doRaw(t, "PATCH", gh.URL+"/scim/v2/Groups/"+b.ids["groups"], []byte(gpatch), scimHdr, nil)
		if status < 400 {
			t.Errorf("SCIM: A's user added to B's group: %d %s", status, resp)
		}
		// Bulk: every operation on A's objects is not found.
		bulk := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[` +
			`{"method":"PATCH","path":"/Users/` + a.ids["users"] + `","data":` + patch + `},` +
			`{"method":"DELETE","path":"/Groups/` + a.ids["groups"] + `"},` +
			`{"method":"PUT","path":"/Users/` + a.ids["users"] + `","data":` + user + `}]}`
		status, hdr, resp := doRaw(t, "POST", gh.URL+"/scim/v2/Bulk", []byte(bulk), scimHdr, nil)
		noLeak(t, "SCIM Bulk", a, hdr, resp, a.ids["users"], a.ids["groups"])
		var br struct {
			Operations []struct {
				Status string `json:"status"`
			} `json:"Operations"`
		}
		decodeInto(t, []byte(resp), &br)
		if status != 200 || len(br.Operations) != 3 {
			t.Fatalf("SCIM Bulk: %d %s", status, resp)
		}
		for i, op := range br.Operations {
			if op.Status != "404" {
				t.Errorf("SCIM Bulk operation %d on A's object: status %s", i, op.Status)
			}
		}
		// A's tenant token on A's objects still works (the calls above
		// changed nothing).
		status, _, resp = doRaw(t, "GET", gh.URL+aUser, nil, http.Header{"Authorization": {"Bearer " + a.scimToken}}, nil)
		if status != 200 || !strings.Contains(strings.ToLower(resp), marker) {
			t.Errorf("A's user through A's own token: %d %.200s", status, resp)
		}
	})

	t.Run("OpenID provider", func(t *testing.T) {
		form := func(v url.Values, user, pass string) (http.Header, []byte) {
			h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
			if user != "" {
				r, _ := http.NewRequest("POST", "/", nil)
				r.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
				h.Set("Authorization", r.Header.Get("Authorization"))
			}
			return h, []byte(v.Encode())
		}
		bIss := gh.URL + "/t/beta"
		covered := map[string]bool{}
		type opCase struct {
			pattern, method, path string
			header                http.Header
			body                  []byte
			cookies               []*http.Cookie
			check                 func(status int, hdr http.Header, body string) bool
		}
		refusal := func(status int, _ http.Header, _ string) bool {
			return status == 400 || status == 401 || status == 403 || status == 404
		}
		var cases []opCase
		add := func(pattern, method, path string, hdr http.Header, body []byte, cookies []*http.Cookie, check func(int, http.Header, string) bool) {
			cases = append(cases, opCase{pattern, method, path, hdr, body, cookies, check})
		}
		// Discovery and keys of B name nothing of A.
		add("/t/{tenant}/.well-known/openid-configuration", "GET", "/.well-known/openid-configuration", nil, nil, nil, func(s int, _ http.Header, _ string) bool { return s == 200 })
		add("/t/{tenant}/jwks", "GET", "/jwks", nil, nil, nil, func(s int, _ http.Header, _ string) bool { return s == 200 })
		// A's client at B's authorize: an error, never a redirect to A's app.
		add("/t/{tenant}/authorize", "GET", "/authorize?"+url.Values{"client_id": {a.app.ClientID}, "redirect_uri": {a.redirect}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"}, "code_challenge": {"x" + strings.Repeat("a", 42)}, "code_challenge_method": {"S256"}}.Encode(), nil, nil, a.sessionCookie, refusal)
		add("/t/{tenant}/authorize/resume", "GET", "/authorize/resume?id=whatever", nil, nil, a.sessionCookie, refusal)
		// A's client credentials and A's refresh token at B's token endpoint.
		h, bd := form(url.Values{"grant_type": {"client_credentials"}}, a.app.ClientID, a.app.ClientSecret)
		add("/t/{tenant}/token", "POST", "/token", h, bd, nil, func(s int, _ http.Header, body string) bool {
			return s == 401 && strings.Contains(body, "invalid_client")
		})
		h, bd = form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.refresh}}, b.app.ClientID, b.app.ClientSecret)
		add("/t/{tenant}/token", "POST", "/token", h, bd, nil, func(s int, _ http.Header, body string) bool {
			return s == 400 && strings.Contains(body, "invalid_grant")
		})
		// A's access token at B's userinfo.
		add("/t/{tenant}/userinfo", "GET", "/userinfo", http.Header{"Authorization": {"Bearer " + a.access}}, nil, nil, func(s int, _ http.Header, _ string) bool { return s == 401 })
		// B's client introspecting A's token: inactive; A's client at B: 401.
		h, bd = form(url.Values{"token": {a.access}}, b.app.ClientID, b.app.ClientSecret)
		add("/t/{tenant}/introspect", "POST", "/introspect", h, bd, nil, func(s int, _ http.Header, body string) bool {
			return s == 200 && strings.Contains(strings.ReplaceAll(body, " ", ""), `"active":false`)
		})
		h, bd = form(url.Values{"token": {a.access}}, a.app.ClientID, a.app.ClientSecret)
		add("/t/{tenant}/introspect", "POST", "/introspect", h, bd, nil, func(s int, _ http.Header, body string) bool { return s == 401 })
		// B's client revoking A's refresh token: RFC 7009 §2.2 answers 200
		// either way; the token must still work at A afterwards (checked below).
		h, bd = form(url.Values{"token": {a.refresh}, "token_type_hint": {"refresh_token"}}, b.app.ClientID, b.app.ClientSecret)
		add("/t/{tenant}/revoke", "POST", "/revoke", h, bd, nil, func(s int, _ http.Header, _ string) bool { return s == 200 || s == 400 })
		h, bd = form(url.Values{"token": {a.access}}, b.app.ClientID, b.app.ClientSecret)
		add("/t/{tenant}/revoke", "POST", "/revoke", h, bd, nil, func(s int, _ http.Header, _ string) bool { return s == 200 || s == 400 })
		// A's ID token as a hint and A's post-logout URI at B.
		add("/t/{tenant}/end_session", "GET", "/end_session?"+url.Values{"id_token_hint": {a.idt}, "post_logout_redirect_uri": {a.postLogout}, "client_id": {a.app.ClientID}}.Encode(), nil, nil, nil, refusal)
		// A's browser session at B's forward-auth: not signed in there.
		add("/t/{tenant}/forward-auth", "GET", "/forward-auth", http.Header{"X-Forwarded-Host": {"app.beta.test"}, "X-Forwarded-Uri": {"/"}, "X-Forwarded-Proto": {"https"}}, nil, a.sessionCookie, func(s int, _ http.Header, _ string) bool { return s != 200 })

		for _, c := range cases {
			covered[c.pattern] = true
			status, hdr, resp := doRaw(t, c.method, bIss+c.path, c.body, c.header, c.cookies)
			if !c.check(status, hdr, resp) {
				t.Errorf("OP %s %s as B with A's credentials: %d %.300s", c.method, c.path, status, resp)
			}
			noLeak(t, "OP "+c.method+" "+c.path, a, hdr, resp)
		}
		for _, p := range op.Patterns {
			if !covered[p] {
				t.Errorf("op.Patterns has %s, which this test does not call: add a case", p)
			}
		}
		// A's tokens still work at A: B's calls revoked nothing.
		status, _, resp := doRaw(t, "GET", gh.URL+"/t/alpha/userinfo", nil, http.Header{"Authorization": {"Bearer " + a.access}}, nil)
		if status != 200 || !strings.Contains(resp, a.userEmail) {
			t.Errorf("A's access token at A after B's calls: %d %s", status, resp)
		}
		h, bd = form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.refresh}}, a.app.ClientID, a.app.ClientSecret)
		if status, _, resp := doRaw(t, "POST", gh.URL+"/t/alpha/token", bd, h, nil); status != 200 {
			t.Errorf("A's refresh token at A after B's calls: %d %s", status, resp)
		}
	})

	// Nothing of A changed: its objects are all there.
	for kind, id := range a.ids {
		if kind == "api-tokens" || kind == "scim-tokens" {
			continue // no GET by id; their use above proves them alive
		}
		if code := gh.API(t, "GET", "/api/v1/tenants/alpha/"+kind+"/"+id, nil, nil); code != 200 {
			t.Errorf("A's %s %s after B's calls: %d", kind, id, code)
		}
	}
	var members struct {
		Items []json.RawMessage `json:"items"`
	}
	gh.API(t, "GET", "/api/v1/tenants/alpha/groups/"+a.ids["groups"]+"/members", nil, &members)
	if len(members.Items) != 1 {
		t.Errorf("A's group members after B's calls: %d", len(members.Items))
	}
}

// pathIDs returns the object ids in a path: a 404 may name what the
// caller itself sent.
func pathIDs(p string) []string {
	var out []string
	for _, seg := range strings.Split(p, "/") {
		if i := strings.IndexByte(seg, '_'); i > 0 && i <= 4 {
			out = append(out, seg)
		}
	}
	return out
}
