package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// Forged and invalid SAML responses posted through the whole stack (login
// route, flow cookie, ACS, connector, provisioning, sessions, store) from
// the in-process test IdP: each is refused and writes no user, identity
// link or session. The connector's own table (connector/saml) checks the
// exact refusal cause of each.

type forgedSAML struct {
	t    *testing.T
	inst *servertest.Instance
	idp  *samltest.IdP
	conn map[string]any
}

// startLogin begins a login in a fresh browser and returns the browser,
// the AuthnRequest ID and the RelayState, without following the redirect
// to the (unreachable) IdP.
func (f *forgedSAML) startLogin() (*http.Client, string, string) {
	f.t.Helper()
	b := servertest.Browser(f.t)
	host := f.inst.HTTP.Listener.Addr().String()
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != host {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := b.Get(f.inst.URL + "/t/acme/login?" + url.Values{"connection": {f.conn["id"].(string)}}.Encode())
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, f.idp.SSOURL+"?") {
		f.t.Fatalf("login redirected to %q (status %d)", loc, resp.StatusCode)
	}
	id, acs, relay, err := samltest.ParseRedirect(loc)
	if err != nil || acs != f.conn["acs_url"] {
		f.t.Fatalf("AuthnRequest: %v, ACS %q", err, acs)
	}
	return b, id, relay
}

func (f *forgedSAML) opts(requestID string) samltest.Options {
	return samltest.Options{
		Now: time.Now(), ACS: f.conn["acs_url"].(string), Audience: f.conn["sp_entity_id"].(string),
		InResponseTo: requestID, NameID: "victim-0001",
		Attributes: map[string][]string{"mail": {"victim@acme.test"}, "givenName": {"Vic"}},
	}
}

func (f *forgedSAML) post(b *http.Client, doc []byte, relay string) (int, string) {
	f.t.Helper()
	resp, err := b.PostForm(f.conn["acs_url"].(string), samltest.Form(doc, relay))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	sb.Write(buf[:n])
	return resp.StatusCode, sb.String()
}

func (f *forgedSAML) userCount() int {
	f.t.Helper()
	var out struct {
		Items []e2eUser `json:"items"`
	}
	if st := f.inst.API(f.t, "GET", "/api/v1/tenants/acme/users", nil, &out); st != http.StatusOK {
		f.t.Fatalf("list users: %d", st)
	}
	return len(out.Items)
}

func TestSAMLForgedResponsesEndToEnd(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) { testSAMLForged(t, engine) })
	}
}

func testSAMLForged(t *testing.T, engine string) {
	inst := servertest.Start(t, servertest.Options{Engine: engine})
	f := &forgedSAML{t: t, inst: inst, idp: samltest.New("https://idp.example.org")}
	if st := inst.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "domains": []string{"acme.test"}}, nil); st != http.StatusCreated {
		t.Fatalf("tenant: %d", st)
	}
	if st := inst.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{
		"type": "saml", "name": "Test IdP", "enabled": true, "idp_metadata_xml": string(f.idp.Metadata()),
		"jit": map[string]any{"enabled": true, "allowed_domains": []string{}},
	}, &f.conn); st != http.StatusCreated {
		t.Fatalf("connection: %d %v", st, f.conn)
	}
	attacker := samltest.NewSigner("Attacker", 2048)
	str := func(s string) *string { return &s }
	resp := func(o samltest.Options) *etree.Document { return f.idp.Response(o) }
	both := func(o samltest.Options) samltest.Options { o.SignResponse, o.SignAssertion = true, true; return o }
	cases := []struct {
		name  string
		forge func(reqID string) []byte
	}{}
	for n := 1; n <= 8; n++ {
		n := n
		cases = append(cases, struct {
			name  string
			forge func(string) []byte
		}{"XSW" + string(rune('0'+n)), func(reqID string) []byte {
			o := f.opts(reqID)
			o.NameID, o.Attributes = "attacker-0001", map[string][]string{"mail": {"attacker@evil.test"}}
			if n <= 2 {
				o.SignResponse = true
			} else {
				o.SignAssertion = true
			}
			return samltest.Bytes(samltest.XSW(n, resp(o), "victim-0001"))
		}})
	}
	cases = append(cases, []struct {
		name  string
		forge func(string) []byte
	}{
		{"comment injection", func(id string) []byte {
			o := both(f.opts(id))
			o.NameID, o.NameIDFormat, o.Attributes = "victim@acme.test.evil.test", samltest.FormatEmail, nil
			return samltest.Bytes(samltest.InjectComment(resp(o), len("victim@acme.test")))
		}},
		{"two assertions", func(id string) []byte {
			o := f.opts(id)
			o.SignAssertion = true
			return samltest.Bytes(samltest.DuplicateAssertion(resp(o), "victim-0001"))
		}},
		{"assertion in Extensions", func(id string) []byte {
			o := f.opts(id)
			o.SignAssertion = true
			return samltest.Bytes(samltest.HideAssertionInExtensions(resp(o), "victim-0001"))
		}},
		{"unsigned", func(id string) []byte { return samltest.Bytes(resp(f.opts(id))) }},
		{"attacker key, certificate in KeyInfo", func(id string) []byte {
			o := both(f.opts(id))
			o.SignWith = attacker
			return samltest.Bytes(resp(o))
		}},
		{"wrong audience", func(id string) []byte {
			o := both(f.opts(id))
			o.Audience = "https://other.test/sp"
			return samltest.Bytes(resp(o))
		}},
		{"wrong recipient", func(id string) []byte {
			o := both(f.opts(id))
			o.Recipient = str("https://other.test/acs")
			return samltest.Bytes(resp(o))
		}},
		{"wrong destination", func(id string) []byte {
			o := both(f.opts(id))
			o.Destination = str("https://other.test/acs")
			return samltest.Bytes(resp(o))
		}},
		{"wrong issuer", func(id string) []byte {
			o := both(f.opts(id))
			o.Issuer = "https://evil.test/idp"
			return samltest.Bytes(resp(o))
		}},
		{"expired", func(id string) []byte {
			o := both(f.opts(id))
			o.Now = time.Now().Add(-10 * time.Minute)
			return samltest.Bytes(resp(o))
		}},
		{"not yet valid", func(id string) []byte {
			o := both(f.opts(id))
			o.Now = time.Now().Add(10 * time.Minute)
			return samltest.Bytes(resp(o))
		}},
		{"InResponseTo from another browser", func(string) []byte {
			_, other, _ := f.startLogin()
			return samltest.Bytes(resp(both(f.opts(other))))
		}},
		{"round-trip-changing XML", func(id string) []byte {
			return []byte(strings.Replace(string(samltest.Bytes(resp(both(f.opts(id))))), "<samlp:Response ", `<samlp:Response :ID="_x" `, 1))
		}},
		{"DOCTYPE", func(id string) []byte {
			return append([]byte(`<!DOCTYPE r [<!ENTITY e "victim">]>`), samltest.Bytes(resp(both(f.opts(id))))...)
		}},
		{"over 1 MiB", func(id string) []byte {
			b := string(samltest.Bytes(resp(both(f.opts(id)))))
			return []byte(strings.Replace(b, "</samlp:Response>", strings.Repeat(" ", 1<<20)+"</samlp:Response>", 1))
		}},
		{"SHA-1", func(id string) []byte { o := both(f.opts(id)); o.SHA1 = true; return samltest.Bytes(resp(o)) }},
		{"transient NameID", func(id string) []byte {
			o := both(f.opts(id))
			o.NameIDFormat = samltest.FormatTransient
			return samltest.Bytes(resp(o))
		}},
	}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.t = t
			b, reqID, relay := f.startLogin()
			status, page := f.post(b, tc.forge(reqID), relay)
			if status < 400 || hasSessionCookie(b, inst.URL) {
				t.Fatalf("accepted: status %d: %s", status, page)
			}
			if n := f.userCount(); n != 0 {
				t.Fatalf("%d users written", n)
			}
		})
	}

	t.Run("a valid response signs in once; its replay is refused", func(t *testing.T) {
		f.t = t
		b, reqID, relay := f.startLogin()
		doc := samltest.Bytes(resp(both(f.opts(reqID))))
		if status, page := f.post(b, doc, relay); status != http.StatusOK || !hasSessionCookie(b, inst.URL) {
			t.Fatalf("status %d: %s", status, page)
		}
		if n := f.userCount(); n != 1 {
			t.Fatalf("%d users", n)
		}
		b2, _, relay2 := f.startLogin()
		if status, _ := f.post(b2, doc, relay2); status < 400 || hasSessionCookie(b2, inst.URL) {
			t.Fatalf("replay accepted: %d", status)
		}
	})
}

// TestSAMLReplayAcrossReplicas: an IdP-initiated response (no request ID
// to bind it) used at one replica is refused at another sharing the
// database: the replay cache is the store's, not process memory.
func TestSAMLReplayAcrossReplicas(t *testing.T) {
	a := servertest.Start(t, servertest.Options{})
	b := servertest.Start(t, servertest.Options{DatabaseURL: a.DatabaseURL, RootKey: a.RootKey,
		Env: map[string]string{"GATEHOUSE_PUBLIC_URL": a.URL}})
	idp := samltest.New("https://idp.example.org")
	if st := a.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme"}, nil); st != http.StatusCreated {
		t.Fatalf("tenant: %d", st)
	}
	var conn map[string]any
	if st := a.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{
		"type": "saml", "name": "Test IdP", "enabled": true, "idp_metadata_xml": string(idp.Metadata()),
		"allow_idp_initiated": true, "jit": map[string]any{"enabled": true, "allowed_domains": []string{}},
	}, &conn); st != http.StatusCreated {
		t.Fatalf("connection: %d %v", st, conn)
	}
	doc := samltest.Bytes(idp.Response(samltest.Options{
		Now: time.Now(), ACS: conn["acs_url"].(string), Audience: conn["sp_entity_id"].(string),
		NameID: "user-1", Attributes: map[string][]string{"mail": {"u1@acme.test"}},
		SignResponse: true, SignAssertion: true,
	}))
	post := func(inst *servertest.Instance) (int, bool) {
		br := servertest.Browser(t)
		resp, err := br.PostForm(inst.URL+"/sso/saml/"+conn["id"].(string)+"/acs", samltest.Form(doc, ""))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, hasSessionCookie(br, inst.URL)
	}
	if st, ok := post(a); st != http.StatusOK || !ok {
		t.Fatalf("first use at replica A: %d session %v", st, ok)
	}
	if st, ok := post(b); st < 400 || ok {
		t.Fatalf("replay at replica B accepted: %d session %v", st, ok)
	}
}
