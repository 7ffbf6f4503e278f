package e2e

// Abuse checks through the whole stack that the packages' own tests do not
// cover: a body limit on every POST surface, HSTS and Secure cookies behind
// TLS, and login return targets that cannot leave the site.

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
	"github.com/gatehouse-sso/gatehouse/internal/servertest"
)

type abuseStack struct {
	inst           *servertest.Instance
	mockID, samlID string
	scimToken      string
}

func newAbuseStack(t *testing.T, env map[string]string) *abuseStack {
	t.Helper()
	inst := servertest.Start(t, servertest.Options{Dev: true, Env: env})
	s := &abuseStack{inst: inst}
	var obj struct{ ID, Token string }
	if code := inst.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme", "domains": []string{"acme.com"}}, nil); code != 201 {
		t.Fatalf("tenant: %d", code)
	}
	if code := inst.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{"type": "mock", "name": "Mock", "enabled": true, "jit": map[string]any{"enabled": true},
		"users": []map[string]any{{"subject": "ana", "email": "ana@acme.com"}}}, &obj); code != 201 {
		t.Fatalf("mock: %d", code)
	}
	s.mockID = obj.ID
	idp := samltest.New("https://idp.example.org")
	if code := inst.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{"type": "saml", "name": "SAML", "enabled": true, "idp_metadata_xml": string(idp.Metadata())}, &obj); code != 201 {
		t.Fatalf("saml: %d", code)
	}
	s.samlID = obj.ID
	if code := inst.API(t, "POST", "/api/v1/tenants/acme/scim-tokens", map[string]any{"name": "idp", "connection_id": s.mockID}, &obj); code != 201 {
		t.Fatalf("scim token: %d", code)
	}
	s.scimToken = obj.Token
	return s
}

// countingReader counts what the transport took from the body: what the
// server read, plus what socket buffers held.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// post sends body and reports the status, how long the answer took and how
// many bytes of the body were sent before it.
func (s *abuseStack) post(t *testing.T, path, contentType, auth string, body []byte) (int, time.Duration, int64) {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(body)}
	req, _ := http.NewRequest("POST", s.inst.URL+path, cr)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Origin", s.inst.URL) // same origin: CSRF protection is not what answers
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	start := time.Now()
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		// The server may close the connection once the limit is passed.
		if strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe") {
			return 413, time.Since(start), cr.n.Load()
		}
		t.Fatalf("POST %s: %v", path, err)
	}
	took, sent := time.Since(start), cr.n.Load()
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, took, sent
}

// TestBodyLimitEveryPostSurface posts bodies over the limits (1 MiB for
// JSON and SCIM, 1 MiB of SAMLResponse at the ACS, net/http's 10 MiB cap for
// the OAuth forms) to every POST route and expects a 4xx refusal, or, from
// a route that has no use for a body (sign-out; the console's sign-in reads
// 4 KiB), an answer that left most of the body unread. Never a 5xx.
func TestBodyLimitEveryPostSurface(t *testing.T) {
	s := newAbuseStack(t, nil)
	admin := "Bearer " + servertest.AdminToken
	scim := "Bearer " + s.scimToken
	twoMiB := strings.Repeat("a", 2<<20)
	jsonBig := []byte(`{"name":"` + twoMiB + `"}`)
	scimBig := []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"` + twoMiB + `"}`)
	form := func(k string, n int) []byte { return []byte(url.Values{k: {strings.Repeat("A", n)}}.Encode()) }
	formCT := "application/x-www-form-urlencoded"
	cases := []struct {
		name, path, ct, auth string
		body                 []byte
	}{
		{"API create", "/api/v1/tenants/acme/users", "application/json", admin, jsonBig},
		{"API tenant", "/api/v1/tenants", "application/json", admin, jsonBig},
		{"API connection", "/api/v1/tenants/acme/connections", "application/json", admin, jsonBig},
		{"SCIM create", "/scim/v2/Users", "application/scim+json", scim, scimBig},
		{"SCIM bulk", "/scim/v2/Bulk", "application/scim+json", scim, scimBig},
		{"SCIM search", "/scim/v2/.search", "application/scim+json", scim, scimBig},
		{"SAML ACS", "/sso/saml/" + s.samlID + "/acs", formCT, "", form("SAMLResponse", 2<<20)},
		{"SAML SLO", "/sso/saml/" + s.samlID + "/slo", formCT, "", form("SAMLRequest", 2<<20)},
		{"form_post callback", "/sso/mock/" + s.mockID + "/callback", formCT, "", form("code", 11<<20)},
		{"OAuth token", "/t/acme/token", formCT, "", form("code", 11<<20)},
		{"OAuth introspect", "/t/acme/introspect", formCT, "", form("token", 11<<20)},
		{"OAuth revoke", "/t/acme/revoke", formCT, "", form("token", 11<<20)},
		{"logout", "/t/acme/logout", formCT, "", form("x", 11<<20)},
		{"shared logout", "/logout", formCT, "", form("x", 11<<20)},
		{"console login", "/console/login", formCT, "", form("token", 11<<20)},
	}
	for _, c := range cases {
		status, took, sent := s.post(t, c.path, c.ct, c.auth, c.body)
		t.Logf("%-20s %8d bytes → %d in %s (%d bytes sent)", c.name, len(c.body), status, took.Round(time.Millisecond), sent)
		refused := status >= 400 && status < 500
		unread := status < 500 && sent < int64(len(c.body))*3/4
		if !refused && !unread {
			t.Errorf("%s: %d bytes to %s answered %d after %d bytes were sent, want a 4xx refusal", c.name, len(c.body), c.path, status, sent)
		}
	}
}

// TestHTTPSPublicURLHardening: behind TLS (an https public URL) every
// response carries HSTS, and every cookie is gatehouse_*, Secure and
// HttpOnly.
func TestHTTPSPublicURLHardening(t *testing.T) {
	s := newAbuseStack(t, map[string]string{"GATEHOUSE_PUBLIC_URL": "https://sso.acme.test"})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cookies := 0
	for _, p := range []string{"/healthz", "/login", "/t/acme/login", "/t/acme/login?login_hint=ana%40acme.com",
		"/t/acme/login?connection=" + s.samlID, "/api/v1/openapi.json", "/console/login", "/t/acme/.well-known/openid-configuration", "/nope"} {
		resp, err := client.Get(s.inst.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
			t.Errorf("GET %s: no HSTS (%q)", p, hsts)
		}
		for _, c := range resp.Cookies() {
			cookies++
			if !strings.HasPrefix(c.Name, "gatehouse_") || !c.Secure || !c.HttpOnly {
				t.Errorf("GET %s: cookie %s secure=%v httponly=%v", p, c.Name, c.Secure, c.HttpOnly)
			}
		}
	}
	if cookies == 0 {
		t.Error("no cookie was set: the flow-cookie checks did not run")
	}
}

// TestLoginReturnTargetsStayOnSite: after a login, return_to may only
// lead back into Gatehouse; every off-site form lands on the tenant page.
func TestLoginReturnTargetsStayOnSite(t *testing.T) {
	s := newAbuseStack(t, nil)
	for _, rt := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "\\\\evil.example", "https:evil.example",
		"javascript:alert(1)", "/%2F%2Fevil.example", "http://" + strings.TrimPrefix(s.inst.URL, "http://") + "@evil.example/", " //evil.example", "/t/acme/%0d%0aLocation:%20https://evil.example"} {
		b := servertest.Browser(t)
		var visited []string
		b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			visited = append(visited, req.URL.String())
			if req.URL.Host != strings.TrimPrefix(s.inst.URL, "http://") {
				return http.ErrUseLastResponse
			}
			return nil
		}
		resp, err := b.Get(s.inst.URL + "/t/acme/login?login_hint=ana%40acme.com&return_to=" + url.QueryEscape(rt))
		if err != nil {
			t.Fatalf("return_to %q: %v", rt, err)
		}
		resp.Body.Close()
		for _, v := range visited {
			if u, _ := url.Parse(v); u != nil && u.Host != strings.TrimPrefix(s.inst.URL, "http://") {
				t.Errorf("return_to %q led off-site to %s", rt, v)
			}
		}
		if resp.StatusCode != 200 && resp.StatusCode != 400 {
			t.Errorf("return_to %q: final status %d", rt, resp.StatusCode)
		}
	}
}
