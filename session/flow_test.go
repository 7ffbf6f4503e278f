package session

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// noStore satisfies gatehouse.Store for tests that never touch the store.
type noStore struct{ gatehouse.Store }

func testKeyring(t testing.TB, b byte) *secret.Keyring {
	k, err := secret.NewKeyring("k1", bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newFlowManager(t testing.TB, publicURL string, clk gatehouse.Clock, key byte) *Manager {
	m, err := New(Config{Store: noStore{}, Keyring: testKeyring(t, key), PublicURL: publicURL, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// roundTrip sets flows on a recorder and returns a callback request
// carrying the cookies set.
func roundTrip(t *testing.T, m *Manager, crossSite bool, flows ...*connector.Flow) (*http.Request, []*http.Cookie) {
	t.Helper()
	rec := httptest.NewRecorder()
	for _, f := range flows {
		if err := m.SetFlow(rec, f, crossSite); err != nil {
			t.Fatal(err)
		}
	}
	cookies := rec.Result().Cookies()
	r := httptest.NewRequest("GET", "/sso/oidc/con_1/callback", nil)
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r, cookies
}

var conn1 = &gatehouse.Connection{ID: "con_1", TenantID: "ten_1"}

func TestFlowCookieRoundTripAndFlags(t *testing.T) {
	clk := &safeClock{t: time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		name      string
		url       string
		crossSite bool
		secure    bool
		sameSite  http.SameSite
		path      string
	}{
		{"oidc https", "https://sso.example.com", false, true, http.SameSiteLaxMode, "/sso/"},
		{"saml https", "https://sso.example.com/gh/", true, true, http.SameSiteNoneMode, "/gh/sso/"},
		// Plain http cannot carry SameSite=None (browsers require Secure):
		// fall back to Lax, documented on SetFlow.
		{"saml http", "http://localhost:8080", true, false, http.SameSiteLaxMode, "/sso/"},
		{"oidc http", "http://localhost:8080", false, false, http.SameSiteLaxMode, "/sso/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newFlowManager(t, tc.url, clk, 1)
			f := &connector.Flow{ID: "flw_1", TenantID: "ten_1", ConnectionID: "con_1", State: "st-1", Nonce: "n", ReturnTo: "/x"}
			r, cookies := roundTrip(t, m, tc.crossSite, f)
			if len(cookies) != 1 {
				t.Fatalf("cookies %v", cookies)
			}
			c := cookies[0]
			if !strings.HasPrefix(c.Name, FlowCookiePrefix) || !c.HttpOnly || c.Secure != tc.secure || c.SameSite != tc.sameSite || c.Path != tc.path || c.MaxAge != 600 {
				t.Errorf("cookie flags: %+v", c)
			}
			if strings.Contains(c.Value, "st-1") || strings.Contains(c.Value, "flw_1") {
				t.Error("flow visible in cookie")
			}
			got, err := m.FindFlow(r, conn1, "st-1")
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != "flw_1" || got.Nonce != "n" || got.ReturnTo != "/x" || !got.CreatedAt.Equal(clk.Now()) {
				t.Errorf("flow %+v", got)
			}
		})
	}
}

func TestFlowCookiesDoNotClobber(t *testing.T) {
	clk := &safeClock{t: time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)}
	m := newFlowManager(t, "https://sso.example.com", clk, 1)
	a := &connector.Flow{ID: "flw_a", TenantID: "ten_1", ConnectionID: "con_1", State: "sa"}
	b := &connector.Flow{ID: "flw_b", TenantID: "ten_1", ConnectionID: "con_1", State: "sb"}
	r, cookies := roundTrip(t, m, false, a, b)
	if len(cookies) != 2 || cookies[0].Name == cookies[1].Name {
		t.Fatalf("two flows share a cookie: %v", cookies)
	}
	for st, id := range map[string]string{"sa": "flw_a", "sb": "flw_b"} {
		f, err := m.FindFlow(r, conn1, st)
		if err != nil || f.ID != id {
			t.Errorf("state %s: %v %v", st, f, err)
		}
	}
}

func TestFindFlowRefusals(t *testing.T) {
	start := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	clk := &safeClock{t: start}
	m := newFlowManager(t, "https://sso.example.com", clk, 1)
	f := &connector.Flow{ID: "flw_1", TenantID: "ten_1", ConnectionID: "con_1", State: "st"}
	r, cookies := roundTrip(t, m, false, f)

	other := newFlowManager(t, "https://sso.example.com", clk, 2) // another root key
	moved := httptest.NewRequest("GET", "/", nil)
	moved.AddCookie(&http.Cookie{Name: flowCookieNameFor("other"), Value: cookies[0].Value})
	tampered := httptest.NewRequest("GET", "/", nil)
	v := []byte(cookies[0].Value)
	v[len(v)/2] ^= 1
	tampered.AddCookie(&http.Cookie{Name: cookies[0].Name, Value: string(v)})

	for _, tc := range []struct {
		name   string
		m      *Manager
		r      *http.Request
		conn   *gatehouse.Connection
		state  string
		now    time.Time
		reason string
	}{
		{"no cookie", m, httptest.NewRequest("GET", "/", nil), conn1, "st", start, ReasonFlowMissing},
		{"no cookie, no state", m, httptest.NewRequest("GET", "/", nil), conn1, "", start, ReasonFlowMissing},
		{"other state", m, r, conn1, "nope", start, ReasonFlowMissing},
		{"value moved to another name", m, moved, conn1, "other", start, ReasonFlowMissing},
		{"tampered", m, tampered, conn1, "st", start, ReasonFlowMissing},
		{"other root key", other, r, conn1, "st", start, ReasonFlowMissing},
		{"other connection", m, r, &gatehouse.Connection{ID: "con_2", TenantID: "ten_1"}, "st", start, ReasonFlowMismatch},
		{"other tenant", m, r, &gatehouse.Connection{ID: "con_1", TenantID: "ten_2"}, "st", start, ReasonFlowMismatch},
		{"expired", m, r, conn1, "st", start.Add(FlowTTL + time.Second), ReasonFlowExpired},
		{"from the future", m, r, conn1, "st", start.Add(-2 * time.Minute), ReasonFlowExpired},
		{"expired, no state", m, r, conn1, "", start.Add(FlowTTL + time.Second), ReasonFlowMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk.Set(tc.now)
			defer clk.Set(start)
			_, err := tc.m.FindFlow(tc.r, tc.conn, tc.state)
			if gatehouse.ErrorReason(err) != tc.reason || !gatehouse.IsCode(err, gatehouse.EINVALID) {
				t.Errorf("err %v, want reason %s", err, tc.reason)
			}
		})
	}
	clk.Set(start.Add(FlowTTL)) // the last valid instant
	if _, err := m.FindFlow(r, conn1, "st"); err != nil {
		t.Errorf("at TTL: %v", err)
	}
}

func TestFindFlowWithoutStateTakesNewestOfConnection(t *testing.T) {
	start := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	clk := &safeClock{t: start}
	m := newFlowManager(t, "https://sso.example.com", clk, 1)
	rec := httptest.NewRecorder()
	_ = m.SetFlow(rec, &connector.Flow{ID: "flw_old", TenantID: "ten_1", ConnectionID: "con_1"}, true)
	clk.Set(start.Add(time.Minute))
	_ = m.SetFlow(rec, &connector.Flow{ID: "flw_new", TenantID: "ten_1", ConnectionID: "con_1"}, true)
	_ = m.SetFlow(rec, &connector.Flow{ID: "flw_other", TenantID: "ten_1", ConnectionID: "con_2"}, true)
	r := httptest.NewRequest("POST", "/sso/saml/con_1/acs", nil)
	for _, c := range rec.Result().Cookies() {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	f, err := m.FindFlow(r, conn1, "")
	if err != nil || f.ID != "flw_new" {
		t.Fatalf("%v %v", f, err)
	}
}

func TestClearFlow(t *testing.T) {
	m := newFlowManager(t, "https://sso.example.com", &safeClock{t: time.Now()}, 1)
	f := &connector.Flow{ID: "flw_1", TenantID: "ten_1", ConnectionID: "con_1", State: "st"}
	rec := httptest.NewRecorder()
	m.ClearFlow(rec, f)
	c := rec.Result().Cookies()
	if len(c) != 1 || c[0].Name != FlowCookieName(f) || c[0].MaxAge != -1 || c[0].Path != "/sso/" {
		t.Fatalf("%+v", c)
	}
}

func TestIdPSessionEncoding(t *testing.T) {
	for _, s := range []IdPSession{{}, {Index: "idx"}, {Index: "idx", NameID: "ana@acme.com", NameIDFormat: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"}, {NameID: "x"}} {
		if got := DecodeIdPSession(s.Encode()); got != s {
			t.Errorf("%+v → %q → %+v", s, s.Encode(), got)
		}
	}
	if got := DecodeIdPSession("plain-index"); got.Index != "plain-index" || got.NameID != "" {
		t.Errorf("%+v", got)
	}
}

func TestClearStaleFlows(t *testing.T) {
	start := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	clk := &safeClock{t: start}
	m := newFlowManager(t, "https://sso.example.com", clk, 1)
	rec := httptest.NewRecorder()
	_ = m.SetFlow(rec, &connector.Flow{ID: "flw_old", TenantID: "ten_1", ConnectionID: "con_1", State: "old"}, false)
	clk.Set(start.Add(FlowTTL))
	_ = m.SetFlow(rec, &connector.Flow{ID: "flw_new", TenantID: "ten_1", ConnectionID: "con_1", State: "new"}, false)
	clk.Set(start.Add(FlowTTL + time.Second))
	r := httptest.NewRequest("GET", "/sso/mock/con_1/callback", nil)
	for _, c := range rec.Result().Cookies() {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	r.AddCookie(&http.Cookie{Name: FlowCookiePrefix + "junk", Value: "x"})
	r.AddCookie(&http.Cookie{Name: "other", Value: "x"})
	out := httptest.NewRecorder()
	m.ClearStaleFlows(out, r)
	cleared := map[string]bool{}
	for _, c := range out.Result().Cookies() {
		if c.MaxAge >= 0 {
			t.Errorf("set %s", c.Name)
		}
		cleared[c.Name] = true
	}
	if len(cleared) != 2 || !cleared[flowCookieNameFor("old")] || !cleared[FlowCookiePrefix+"junk"] {
		t.Fatalf("cleared %v", cleared)
	}
}
