package saml

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
)

const publicURL = "https://sso.example.com"

// fakeClock is a settable gatehouse.Clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// memReplay behaves like the store's UseOnce: ECONFLICT on a second use of
// a key that has not expired.
type memReplay struct {
	mu    sync.Mutex
	clock gatehouse.Clock
	seen  map[string]time.Time
}

func newMemReplay(clock gatehouse.Clock) *memReplay {
	return &memReplay{clock: clock, seen: map[string]time.Time{}}
}

func (m *memReplay) UseOnce(_ context.Context, key string, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if exp, ok := m.seen[key]; ok && m.clock.Now().Before(exp) {
		return gatehouse.Errorf(gatehouse.ECONFLICT, "already used")
	}
	m.seen[key] = expires
	return nil
}

// spSecrets are generated once per test binary: RSA key generation is slow.
var (
	spSecretsOnce sync.Once
	spSecrets     json.RawMessage
)

type fixture struct {
	t      testing.TB
	idp    *samltest.IdP
	clock  *fakeClock
	replay *memReplay
	env    connector.Env
	conn   *gatehouse.Connection
	c      connector.Connector
	flow   *connector.Flow
}

func (f *fixture) acs() string      { return publicURL + "/sso/saml/" + f.conn.ID + "/acs" }
func (f *fixture) entityID() string { return publicURL + "/sso/saml/" + f.conn.ID + "/metadata" }

// newFixture configures a connection to a test IdP from its metadata XML
// (plus extra fields) and opens it.
func newFixture(t testing.TB, extra map[string]any) *fixture {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)}
	f := &fixture{t: t, idp: samltest.New("https://idp.example.org"), clock: clock, replay: newMemReplay(clock)}
	f.env = connector.Env{PublicURL: publicURL, Clock: clock, Replay: f.replay}
	f.conn = &gatehouse.Connection{ID: "con_test1", TenantID: "ten_1", Type: gatehouse.ConnSAML}
	in := map[string]any{"idp_metadata_xml": string(f.idp.Metadata())}
	for k, v := range extra {
		in[k] = v
	}
	f.configure(in)
	f.flow = &connector.Flow{ID: "flw_1", TenantID: "ten_1", ConnectionID: f.conn.ID}
	if _, err := f.c.Begin(context.Background(), f.flow); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) configure(in map[string]any) {
	f.t.Helper()
	spSecretsOnce.Do(func() {
		_, s, err := Type().Configure(context.Background(), f.env, nil, nil, map[string]json.RawMessage{"idp_metadata_xml": mustJSON(string(f.idp.Metadata()))})
		if err != nil {
			panic(err)
		}
		spSecrets = s
	})
	raw := map[string]json.RawMessage{}
	for k, v := range in {
		raw[k] = mustJSON(v)
	}
	cfg, sec, err := Type().Configure(context.Background(), f.env, f.conn, spSecrets, raw)
	if err != nil {
		f.t.Fatalf("Configure: %v", err)
	}
	f.conn.Config = cfg
	f.c, err = Type().Open(context.Background(), f.env, f.conn, sec)
	if err != nil {
		f.t.Fatalf("Open: %v", err)
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// opts are the options of a valid response to the fixture's flow.
func (f *fixture) opts() samltest.Options {
	return samltest.Options{
		Now:          f.clock.Now(),
		ACS:          f.acs(),
		Audience:     f.entityID(),
		InResponseTo: f.flow.RequestID,
		NameID:       "00u1ana",
		SessionIndex: "_sess1",
		Attributes: map[string][]string{
			"email":     {"ana@acme.com"},
			"givenName": {"Ana"},
			"sn":        {"Lima"},
			"groups":    {"eng", "admins"},
		},
	}
}

func post(doc []byte, relayState string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, publicURL+"/sso/saml/con_test1/acs", strings.NewReader(samltest.Form(doc, relayState).Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func (f *fixture) finish(doc []byte) (*gatehouse.Identity, error) {
	return f.c.Finish(context.Background(), f.flow, post(doc, f.flow.State))
}

// responseWith returns an unsigned Response for o holding the assertion a
// (built and signed by the caller) instead of the IdP's own.
func (f *fixture) responseWith(a *etree.Element, o samltest.Options) *etree.Document {
	d := f.idp.Response(samltest.Options{Now: o.Now, ACS: o.ACS, Audience: o.Audience, InResponseTo: o.InResponseTo, NameID: "x"})
	root := d.Root()
	for _, ch := range root.ChildElements() {
		if ch.Tag == "Assertion" {
			root.RemoveChild(ch)
		}
	}
	root.AddChild(a)
	return d
}

func signedBoth(o samltest.Options) samltest.Options {
	o.SignResponse, o.SignAssertion = true, true
	return o
}

func TestHappyPaths(t *testing.T) {
	f := newFixture(t, nil)
	sp := f.c.(*Connector)
	encCert := sp.encryption[0].cert
	cases := []struct {
		name string
		mod  func(o *samltest.Options)
	}{
		{"signed response", func(o *samltest.Options) { o.SignResponse = true }},
		{"signed assertion", func(o *samltest.Options) { o.SignAssertion = true }},
		{"both signed", func(o *samltest.Options) { o.SignResponse, o.SignAssertion = true, true }},
		{"encrypted unsigned assertion in signed response", func(o *samltest.Options) {
			o.SignResponse, o.EncryptTo, o.BlockCipher = true, encCert, xmlenc.AES256GCM
		}},
	}
	// Each block cipher an IdP may use, with RSA-OAEP key transport.
	for name, cipher := range map[string]xmlenc.BlockCipher{
		"AES-128-CBC": xmlenc.AES128CBC, "AES-256-CBC": xmlenc.AES256CBC, "AES-128-GCM": xmlenc.AES128GCM,
		"AES-256-GCM": xmlenc.AES256GCM, "3DES-CBC": xmlenc.TripleDES,
	} {
		cases = append(cases, struct {
			name string
			mod  func(o *samltest.Options)
		}{"encrypted " + name, func(o *samltest.Options) { o.SignAssertion, o.EncryptTo, o.BlockCipher = true, encCert, cipher }})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := f.opts()
			tc.mod(&o)
			id, err := f.finish(samltest.Bytes(f.idp.Response(o)))
			if err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if id.Subject != "00u1ana" || id.Email != "ana@acme.com" || id.GivenName != "Ana" || id.FamilyName != "Lima" ||
				id.DisplayName != "Ana Lima" || strings.Join(id.Groups, ",") != "eng,admins" || id.SessionIndex != "_sess1" ||
				id.Issuer != f.idp.EntityID || id.ConnectionID != "con_test1" || id.TenantID != "ten_1" {
				t.Fatalf("identity = %+v", id)
			}
			if g, ok := id.Raw["groups"].([]any); !ok || len(g) != 2 {
				t.Fatalf("Raw groups = %#v", id.Raw["groups"])
			}
		})
	}
}

func TestEmailFromNameID(t *testing.T) {
	f := newFixture(t, nil)
	o := signedBoth(f.opts())
	o.NameID, o.NameIDFormat, o.Attributes = "bo@acme.com", samltest.FormatEmail, nil
	id, err := f.finish(samltest.Bytes(f.idp.Response(o)))
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "bo@acme.com" || id.Email != "bo@acme.com" {
		t.Fatalf("identity = %+v", id)
	}
}

func TestTransientWithSubjectAttribute(t *testing.T) {
	f := newFixture(t, map[string]any{"subject_attribute": "employeeID"})
	o := signedBoth(f.opts())
	o.NameIDFormat, o.NameID = samltest.FormatTransient, "_random"
	o.Attributes["employeeID"] = []string{"E42"}
	id, err := f.finish(samltest.Bytes(f.idp.Response(o)))
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "E42" {
		t.Fatalf("subject = %q", id.Subject)
	}
}

// TestSecurityTable: every forged or invalid response is refused, with the
// expected cause, and Finish returns no identity.
// securityCase is a forged or invalid response and the cause it must be
// refused for (nil: any).
type securityCase struct {
	name string
	doc  func() []byte
	want error
}

// securityCases are the forged and invalid responses of TestSecurityTable
// (also run through both verifiers by the differential test).
func securityCases(f *fixture) []securityCase {
	type tcase = securityCase
	attacker := samltest.NewSigner("Attacker", 2048)
	str := func(s string) *string { return &s }
	doc := func(o samltest.Options) []byte { return samltest.Bytes(f.idp.Response(o)) }
	signedResp := func() samltest.Options { o := f.opts(); o.SignResponse = true; return o }
	signedAssertion := func() samltest.Options { o := f.opts(); o.SignAssertion = true; return o }

	var cases []tcase
	for n := 1; n <= 8; n++ {
		n := n
		cases = append(cases, tcase{name: "XSW" + string(rune('0'+n)), want: nil, doc: func() []byte {
			o := signedAssertion()
			if n <= 2 {
				o = signedResp()
			}
			return samltest.Bytes(samltest.XSW(n, f.idp.Response(o), "evil@attacker.com"))
		}})
	}
	cases = append(cases, []tcase{
		{"comment injection in NameID", func() []byte {
			o := signedBoth(f.opts())
			o.NameID, o.NameIDFormat, o.Attributes = "ana@acme.com.evil.com", samltest.FormatEmail, nil
			return samltest.Bytes(samltest.InjectComment(f.idp.Response(o), len("ana@acme.com")))
		}, ErrMalformed},
		{"two assertions", func() []byte {
			return samltest.Bytes(samltest.DuplicateAssertion(f.idp.Response(signedAssertion()), "evil"))
		}, ErrAssertionCount},
		{"assertion in Extensions", func() []byte {
			return samltest.Bytes(samltest.HideAssertionInExtensions(f.idp.Response(signedAssertion()), "evil"))
		}, ErrAssertionCount},
		{"unsigned", func() []byte { return doc(f.opts()) }, ErrSignature},
		{"attacker key, certificate in KeyInfo", func() []byte {
			o := signedBoth(f.opts())
			o.SignWith = attacker
			return doc(o)
		}, ErrSignature},
		{"attacker signs assertion, response unsigned", func() []byte {
			o := signedAssertion()
			o.SignWith = attacker
			return doc(o)
		}, ErrSignature},
		{"encrypted assertion, nothing signed", func() []byte {
			o := f.opts()
			o.EncryptTo = f.c.(*Connector).encryption[0].cert
			return doc(o)
		}, ErrSignature},
		{"encrypted assertion signed by the attacker", func() []byte {
			o := signedAssertion()
			o.SignWith, o.EncryptTo = attacker, f.c.(*Connector).encryption[0].cert
			return doc(o)
		}, ErrSignature},
		{"response signed by the IdP, assertion by the attacker", func() []byte {
			o := f.opts()
			o.SignWith, o.SignAssertion = attacker, true
			d := f.responseWith(f.idp.Sign(f.idp.Assertion(&o), &o), o)
			root := d.Root()
			signed := f.idp.Sign(root, nil)
			d.SetRoot(signed)
			return samltest.Bytes(d)
		}, ErrSignature},
		{"wrong audience", func() []byte { o := signedBoth(f.opts()); o.Audience = "https://other.example.com/sp"; return doc(o) }, ErrAudience},
		{"wrong recipient", func() []byte {
			o := signedBoth(f.opts())
			o.Recipient = str("https://other.example.com/acs")
			return doc(o)
		}, ErrDestination},
		{"wrong destination", func() []byte {
			o := signedBoth(f.opts())
			o.Destination = str("https://other.example.com/acs")
			return doc(o)
		}, ErrDestination},
		{"wrong issuer", func() []byte { o := signedBoth(f.opts()); o.Issuer = "https://evil.example.org/idp"; return doc(o) }, ErrIssuer},
		{"expired", func() []byte { o := signedBoth(f.opts()); o.Now = f.clock.Now().Add(-10 * time.Minute); return doc(o) }, ErrExpired},
		{"not yet valid", func() []byte { o := signedBoth(f.opts()); o.Now = f.clock.Now().Add(10 * time.Minute); return doc(o) }, ErrNotYetValid},
		{"InResponseTo of another flow", func() []byte { o := signedBoth(f.opts()); o.InResponseTo = "id-of-another-browser"; return doc(o) }, ErrInResponseTo},
		{"unsolicited (no InResponseTo) to an SP-initiated flow", func() []byte {
			o := signedBoth(f.opts())
			o.InResponseTo = ""
			return doc(o)
		}, ErrInResponseTo},
		{"XML that changes on a round trip", func() []byte {
			b := doc(signedBoth(f.opts()))
			return []byte(strings.Replace(string(b), "<samlp:Response ", `<samlp:Response :ID="_evil" `, 1))
		}, ErrRoundTrip},
		{"DOCTYPE with entity", func() []byte {
			b := doc(signedBoth(f.opts()))
			return append([]byte(`<!DOCTYPE samlp:Response [<!ENTITY x "ana@acme.com">]>`), b...)
		}, ErrDoctype},
		{"depth bomb", func() []byte {
			b := string(doc(signedBoth(f.opts())))
			deep := strings.Repeat("<x>", 100) + strings.Repeat("</x>", 100)
			return []byte(strings.Replace(b, "</samlp:Response>", deep+"</samlp:Response>", 1))
		}, ErrMalformed},
		{"SHA-1 refused by default", func() []byte { o := signedBoth(f.opts()); o.SHA1 = true; return doc(o) }, ErrWeakCrypto},
		{"SHA-1 assertion only, response unsigned", func() []byte { o := signedAssertion(); o.SHA1 = true; return doc(o) }, ErrWeakCrypto},
		{"transient NameID without subject_attribute", func() []byte {
			o := signedBoth(f.opts())
			o.NameIDFormat, o.NameID = samltest.FormatTransient, "_tr1"
			return doc(o)
		}, ErrSubject},
		{"IdP error status", func() []byte {
			o := signedBoth(f.opts())
			o.Status = "urn:oasis:names:tc:SAML:2.0:status:Responder"
			return doc(o)
		}, ErrStatus},
		{"not a Response", func() []byte { return []byte(`<x xmlns="urn:oasis:names:tc:SAML:2.0:protocol"/>`) }, ErrMalformed},
	}...)
	return cases
}

func TestSecurityTable(t *testing.T) {
	f := newFixture(t, nil)
	cases := securityCases(f)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := f.finish(tc.doc())
			if err == nil || id != nil {
				t.Fatalf("Finish accepted the response: identity %+v, err %v", id, err)
			}
			t.Logf("refused: %v", err)
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if msg := gatehouse.ErrorMessage(err); strings.Contains(msg, "saml:") || msg == "" {
				t.Fatalf("public message %q leaks detail", msg)
			}
		})
	}
}

func TestOversizeRefusedBeforeParsing(t *testing.T) {
	f := newFixture(t, nil)
	// Over 1 MiB decoded: refused on the base64 length.
	big := make([]byte, MaxResponseBytes+1)
	id, err := f.finish(big)
	if id != nil || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("id %v err %v", id, err)
	}
	// A body far over the limit is cut by the form reader.
	r := httptest.NewRequest(http.MethodPost, "/acs", strings.NewReader("SAMLResponse="+strings.Repeat("A", 3<<20)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err := f.c.Finish(context.Background(), f.flow, r); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v", err)
	}
}

func TestSHA1AllowedWhenOptedIn(t *testing.T) {
	f := newFixture(t, map[string]any{"allow_sha1": true})
	o := signedBoth(f.opts())
	o.SHA1 = true
	if _, err := f.finish(samltest.Bytes(f.idp.Response(o))); err != nil {
		t.Fatal(err)
	}
}

func TestReplay(t *testing.T) {
	f := newFixture(t, nil)
	b := samltest.Bytes(f.idp.Response(signedBoth(f.opts())))
	if _, err := f.finish(b); err != nil {
		t.Fatal(err)
	}
	id, err := f.finish(b)
	if id != nil || !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: id %v err %v", id, err)
	}
	// A second replica (another Connector on the same connection and the
	// same shared replay cache) refuses it too.
	other, err := Type().Open(context.Background(), f.env, f.conn, spSecrets)
	if err != nil {
		t.Fatal(err)
	}
	id, err = other.Finish(context.Background(), f.flow, post(b, f.flow.State))
	if id != nil || !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay on replica: id %v err %v", id, err)
	}
	// A fresh assertion for the same flow passes on the replica.
	if _, err := other.Finish(context.Background(), f.flow, post(samltest.Bytes(f.idp.Response(signedBoth(f.opts()))), f.flow.State)); err != nil {
		t.Fatal(err)
	}
}

func TestNoReplayCacheFailsClosed(t *testing.T) {
	f := newFixture(t, nil)
	env := f.env
	env.Replay = nil
	c, err := Type().Open(context.Background(), env, f.conn, spSecrets)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := c.Finish(context.Background(), f.flow, post(samltest.Bytes(f.idp.Response(signedBoth(f.opts()))), "")); id != nil || !errors.Is(err, ErrNoReplayCache) {
		t.Fatalf("id %v err %v", id, err)
	}
}

// TestClockSkewBoundary checks NotOnOrAfter (exclusive) and NotBefore
// (inclusive) at exactly the configured skew.
func TestClockSkewBoundary(t *testing.T) {
	for _, skew := range []int{90, 30} {
		f := newFixture(t, map[string]any{"clock_skew_seconds": skew})
		now, s := f.clock.Now(), time.Duration(skew)*time.Second
		cases := []struct {
			name string
			mod  func(o *samltest.Options)
			want error
		}{
			{"NotOnOrAfter just inside skew", func(o *samltest.Options) { o.NotOnOrAfter = now.Add(-s + time.Millisecond) }, nil},
			{"NotOnOrAfter at skew", func(o *samltest.Options) { o.NotOnOrAfter = now.Add(-s) }, ErrExpired},
			{"NotBefore at skew", func(o *samltest.Options) { o.NotBefore = now.Add(s) }, nil},
			{"NotBefore past skew", func(o *samltest.Options) { o.NotBefore = now.Add(s + time.Millisecond) }, ErrNotYetValid},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				o := signedBoth(f.opts())
				o.IssueInstant = now.Add(-10 * time.Second)
				tc.mod(&o)
				id, err := f.finish(samltest.Bytes(f.idp.Response(o)))
				if tc.want == nil && err != nil {
					t.Fatalf("skew %d: %v", skew, err)
				}
				if tc.want != nil && (id != nil || !errors.Is(err, tc.want)) {
					t.Fatalf("skew %d: id %v err %v, want %v", skew, id, err, tc.want)
				}
			})
		}
	}
}

func TestIdPInitiated(t *testing.T) {
	t.Run("disabled", func(t *testing.T) {
		f := newFixture(t, nil)
		if _, ok := f.c.(connector.IdPInitiator); ok {
			t.Fatal("connector accepts unsolicited responses by default")
		}
	})
	t.Run("enabled", func(t *testing.T) {
		f := newFixture(t, map[string]any{"allow_idp_initiated": true, "idp_initiated_target": "/apps/wiki"})
		ii, ok := f.c.(connector.IdPInitiator)
		if !ok {
			t.Fatal("no IdPInitiator")
		}
		o := signedBoth(f.opts())
		o.InResponseTo = ""
		id, err := ii.FinishUnsolicited(context.Background(), post(samltest.Bytes(f.idp.Response(o)), ""))
		if err != nil || id.Subject != "00u1ana" {
			t.Fatalf("id %v err %v", id, err)
		}
		// A response to an SP-initiated request cannot be replayed as an
		// unsolicited one.
		o = signedBoth(f.opts())
		id, err = ii.FinishUnsolicited(context.Background(), post(samltest.Bytes(f.idp.Response(o)), ""))
		if id != nil || !errors.Is(err, ErrUnsolicited) {
			t.Fatalf("id %v err %v", id, err)
		}
	})
}

func TestBegin(t *testing.T) {
	t.Run("redirect, signed", func(t *testing.T) {
		f := newFixture(t, map[string]any{"sign_authn_requests": true})
		flow := &connector.Flow{ID: "flw_2"}
		act, err := f.c.Begin(context.Background(), flow)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(act.RedirectURL, f.idp.SSOURL+"?") || !strings.Contains(act.RedirectURL, "Signature=") || !strings.Contains(act.RedirectURL, "SigAlg=") {
			t.Fatalf("redirect %s", act.RedirectURL)
		}
		id, acs, rs, err := samltest.ParseRedirect(act.RedirectURL)
		if err != nil {
			t.Fatal(err)
		}
		if id == "" || id != flow.RequestID || acs != f.acs() || rs != flow.State || flow.State == "" || len(rs) > 80 {
			t.Fatalf("id %q flow %q acs %q relay %q", id, flow.RequestID, acs, rs)
		}
		if got := f.c.(connector.FlowStateFinder).FlowState(post([]byte("<x/>"), rs)); got != rs {
			t.Fatalf("FlowState = %q", got)
		}
	})
	t.Run("post when the IdP offers only POST", func(t *testing.T) {
		f := newFixture(t, map[string]any{
			"idp_metadata_xml": nil,
			"idp_sso_url":      "https://idp.example.org/idp/sso", "idp_sso_binding": "post",
			"idp_entity_id": "https://idp.example.org/idp", "idp_certificate": samltest.NewSigner("Test IdP", 2048).CertPEM(),
		})
		flow := &connector.Flow{ID: "flw_3", State: "st-3"}
		act, err := f.c.Begin(context.Background(), flow)
		if err != nil {
			t.Fatal(err)
		}
		html := string(act.HTML)
		if act.RedirectURL != "" || !strings.Contains(html, `action="https://idp.example.org/idp/sso"`) ||
			!strings.Contains(html, `name="SAMLRequest"`) || !strings.Contains(html, `value="st-3"`) ||
			strings.Contains(html, "<script>") || !strings.Contains(html, `<script src="/sso/assets/autopost.js"></script>`) {
			t.Fatalf("html %s", html)
		}
	})
}

func TestMetadataAndRollover(t *testing.T) {
	f := newFixture(t, nil)
	md, err := f.c.(interface {
		Metadata(context.Context) ([]byte, error)
	}).Metadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := string(md)
	for _, want := range []string{`entityID="` + f.entityID() + `"`, `Location="` + f.acs() + `"`, `use="signing"`, `use="encryption"`, "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"} {
		if !strings.Contains(s, want) {
			t.Fatalf("metadata lacks %s:\n%s", want, s)
		}
	}
	if strings.Count(s, `use="signing"`) != 1 || strings.Count(s, `use="encryption"`) != 1 {
		t.Fatal("want one key of each use")
	}
	// Start a rollover: two of each, old key still signs, both decrypt.
	_, sec, err := Type().Configure(context.Background(), f.env, f.conn, spSecrets, map[string]json.RawMessage{"sp_key_rollover": mustJSON("start")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Type().Open(context.Background(), f.env, f.conn, sec)
	if err != nil {
		t.Fatal(err)
	}
	md, _ = c.(*Connector).Metadata(context.Background())
	if strings.Count(string(md), `use="signing"`) != 2 || strings.Count(string(md), `use="encryption"`) != 2 {
		t.Fatalf("rollover metadata:\n%s", md)
	}
	flow := &connector.Flow{ID: "flw_r"}
	if _, err := c.Begin(context.Background(), flow); err != nil {
		t.Fatal(err)
	}
	for _, kp := range c.(*Connector).encryption {
		o := f.opts()
		o.InResponseTo, o.SignAssertion, o.EncryptTo = flow.RequestID, true, kp.cert
		if _, err := c.Finish(context.Background(), flow, post(samltest.Bytes(f.idp.Response(o)), "")); err != nil {
			t.Fatalf("decrypt with rollover key: %v", err)
		}
	}
	// Finish: one of each, the new ones.
	_, sec2, err := Type().Configure(context.Background(), f.env, f.conn, sec, map[string]json.RawMessage{"sp_key_rollover": mustJSON("finish")})
	if err != nil {
		t.Fatal(err)
	}
	var s1, s2 Secrets
	_ = json.Unmarshal(sec, &s1)
	_ = json.Unmarshal(sec2, &s2)
	if len(s2.Signing) != 1 || s2.Signing[0] != s1.Signing[1] || s2.Encryption[0] != s1.Encryption[1] {
		t.Fatal("finish did not keep the new pairs")
	}
}

func TestConfigureErrors(t *testing.T) {
	f := newFixture(t, nil)
	short := samltest.NewSigner("Short", 1024)
	cases := []struct {
		name  string
		in    map[string]any
		field string
	}{
		{"no IdP", map[string]any{"idp_metadata_xml": nil}, "idp_metadata_url"},
		{"two sources", map[string]any{"idp_metadata_url": "https://x.example/md", "idp_metadata_xml": "<x/>"}, "idp_metadata_url"},
		{"bad cert", map[string]any{"idp_sso_url": "https://idp/sso", "idp_entity_id": "e", "idp_certificate": "nope"}, "idp_certificate"},
		{"short key", map[string]any{"idp_sso_url": "https://idp/sso", "idp_entity_id": "e", "idp_certificate": short.CertPEM()}, "idp_certificate"},
		{"http SSO", map[string]any{"idp_sso_url": "http://idp.example.org/sso", "idp_entity_id": "e", "idp_certificate": f.idp.Signer.CertPEM()}, "idp_sso_url"},
		{"skew", map[string]any{"clock_skew_seconds": 600}, "clock_skew_seconds"},
		{"target", map[string]any{"idp_initiated_target": "https://evil.example.com/"}, "idp_initiated_target"},
		{"target //", map[string]any{"idp_initiated_target": "//evil.example.com/"}, "idp_initiated_target"},
		{"format", map[string]any{"name_id_format": "transient"}, "name_id_format"},
		{"unknown", map[string]any{"acs_url": "https://evil/"}, "acs_url"},
		{"doctype metadata", map[string]any{"idp_metadata_xml": `<!DOCTYPE x [<!ENTITY a "b">]><x/>`}, "idp_metadata_xml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := map[string]json.RawMessage{}
			for k, v := range tc.in {
				raw[k] = mustJSON(v)
			}
			_, _, err := Type().Configure(context.Background(), f.env, f.conn, spSecrets, raw)
			if gatehouse.ErrorField(err) != tc.field || !gatehouse.IsCode(err, gatehouse.EINVALID) {
				t.Fatalf("err %v, want field %s", err, tc.field)
			}
		})
	}
	// Short keys with the opt-in, and a certificate list (rollover).
	_, _, err := Type().Configure(context.Background(), f.env, f.conn, spSecrets, map[string]json.RawMessage{
		"idp_sso_url": mustJSON("https://idp/sso"), "idp_entity_id": mustJSON("e"), "allow_short_keys": mustJSON(true),
		"idp_certificate": mustJSON([]string{short.CertPEM(), base64.StdEncoding.EncodeToString(f.idp.Signer.Cert.Raw)}),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDescribe(t *testing.T) {
	f := newFixture(t, nil)
	d := Type().Describe(f.env, f.conn)
	if d["sp_entity_id"] != f.entityID() || d["acs_url"] != f.acs() || d["sp_metadata_url"] != f.entityID() ||
		d["slo_url"] != publicURL+"/sso/saml/con_test1/slo" || d["idp_entity_id"] != f.idp.EntityID || d["allow_idp_initiated"] != false {
		t.Fatalf("describe %v", d)
	}
	if d["idp_certificate_expiry_warning"] != false {
		t.Fatal("unexpected expiry warning")
	}
	f.clock.t = time.Date(2099, 12, 20, 0, 0, 0, 0, time.UTC) // the test cert ends 2100-01-01
	if d := Type().Describe(f.env, f.conn); d["idp_certificate_expiry_warning"] != true {
		t.Fatalf("no expiry warning: %v", d["idp_certificates"])
	}
}

// TestMetadataURLRefresh: metadata fetched through env.HTTPClient, cached,
// refreshed after the period, so a new IdP certificate is trusted without
// reconfiguration.
func TestMetadataURLRefresh(t *testing.T) {
	idp := samltest.New("https://idp.example.org")
	var mu sync.Mutex
	served, fetches := idp.Metadata(), 0
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetches++
		_, _ = w.Write(served)
	}))
	defer srv.Close()
	f := newFixture(t, nil)
	f.env.HTTPClient = srv.Client()
	f.conn = &gatehouse.Connection{ID: "con_url", TenantID: "ten_1", Type: gatehouse.ConnSAML}
	f.configure(map[string]any{"idp_metadata_url": srv.URL + "/metadata"})
	f.flow = &connector.Flow{ID: "flw_u"}
	if _, err := f.c.Begin(context.Background(), f.flow); err != nil {
		t.Fatal(err)
	}
	if _, err := f.finish(samltest.Bytes(idp.Response(signedBoth(f.opts())))); err != nil {
		t.Fatal(err)
	}
	// The IdP rolls its key; old and new are both published.
	newIdP := *idp
	newIdP.Signer = samltest.NewSigner("Test IdP 2", 2048)
	newIdP.ExtraCerts = []*x509.Certificate{idp.Signer.Cert}
	mu.Lock()
	served = newIdP.Metadata()
	mu.Unlock()
	// Within the refresh period the new key is not known yet.
	if _, err := f.finish(samltest.Bytes(newIdP.Response(signedBoth(f.opts())))); !errors.Is(err, ErrSignature) {
		t.Fatalf("err %v", err)
	}
	f.clock.Add(metadataRefresh + time.Second)
	for _, p := range []*samltest.IdP{&newIdP, idp} {
		if _, err := f.finish(samltest.Bytes(p.Response(signedBoth(f.opts())))); err != nil {
			t.Fatalf("after refresh: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fetches != 3 { // Configure, first use, refresh
		t.Fatalf("fetches = %d", fetches)
	}
}

// TestXSWWithoutStructuralChecks: the signature wrapping variants are
// refused by the single-assertion rule before any signature is looked at;
// this shows the second line holds too. With the pre-parse checks skipped,
// each variant is refused or yields the identity the IdP signed, never the
// attacker's.
func TestXSWWithoutStructuralChecks(t *testing.T) {
	f := newFixture(t, nil)
	sp := f.c.(*Connector)
	for n := 1; n <= 8; n++ {
		o := f.opts()
		if n <= 2 {
			o.SignResponse = true
		} else {
			o.SignAssertion = true
		}
		doc := samltest.Bytes(samltest.XSW(n, f.idp.Response(o), "evil@attacker.com"))
		id, err := sp.verifyDocument(context.Background(), f.flow, doc, true)
		if err == nil && id.Subject != "00u1ana" {
			t.Fatalf("XSW%d: accepted the attacker's identity %+v", n, id)
		}
		t.Logf("XSW%d: %v", n, err)
	}
}

// TestWrappedBase64: a SAMLResponse wrapped at 76 columns (as some IdPs
// send it) is read like an unwrapped one.
func TestWrappedBase64(t *testing.T) {
	f := newFixture(t, nil)
	b64 := base64.StdEncoding.EncodeToString(samltest.Bytes(f.idp.Response(signedBoth(f.opts()))))
	var wrapped strings.Builder
	for len(b64) > 76 {
		wrapped.WriteString(b64[:76] + "\r\n")
		b64 = b64[76:]
	}
	wrapped.WriteString(b64)
	form := "SAMLResponse=" + url.QueryEscape(wrapped.String()) + "&RelayState=" + url.QueryEscape(f.flow.State)
	r := httptest.NewRequest(http.MethodPost, f.acs(), strings.NewReader(form))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id, err := f.c.Finish(context.Background(), f.flow, r); err != nil || id.Subject != "00u1ana" {
		t.Fatalf("id %v err %v", id, err)
	}
}
