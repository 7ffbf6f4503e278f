package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/session"
)

// fakeSAML stands in for the SAML connector (tested on its own against a
// real IdP) to test the web side of the ACS, metadata and SLO endpoints:
// a cross-site POST, RelayState binding, IdP-initiated login, and logout.
type fakeSAML struct {
	conn        *gatehouse.Connection
	unsolicited bool
}

type fakeSAMLUnsolicited struct{ *fakeSAML }

func (f fakeSAMLUnsolicited) FinishUnsolicited(ctx context.Context, r *http.Request) (*gatehouse.Identity, error) {
	if r.PostFormValue("InResponseTo") != "" {
		return nil, gatehouse.Errorf(gatehouse.EINVALID, "solicited response without its flow")
	}
	return f.identity(r), nil
}

func (f fakeSAMLUnsolicited) IdPInitiatedTarget() string { return "/t/acme/?idp=1" }

func (f *fakeSAML) Begin(_ context.Context, flow *connector.Flow) (connector.Action, error) {
	flow.State, flow.RequestID = secret.NewToken(""), "id-"+secret.NewToken("")
	return connector.Action{RedirectURL: "https://idp.example/sso?" + url.Values{"RelayState": {flow.State}, "ID": {flow.RequestID}}.Encode()}, nil
}

func (f *fakeSAML) FlowState(r *http.Request) string { return r.PostFormValue("RelayState") }

func (f *fakeSAML) Finish(_ context.Context, flow *connector.Flow, r *http.Request) (*gatehouse.Identity, error) {
	if r.PostFormValue("InResponseTo") != flow.RequestID {
		return nil, gatehouse.Errorf(gatehouse.EINVALID, "InResponseTo mismatch")
	}
	return f.identity(r), nil
}

func (f *fakeSAML) identity(r *http.Request) *gatehouse.Identity {
	email := r.PostFormValue("email")
	return &gatehouse.Identity{Subject: email, Email: email,
		SessionIndex: "_si1", Raw: map[string]any{"nameid": email, "nameid_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"}}
}

func (f *fakeSAML) Metadata(context.Context) ([]byte, error) {
	return []byte(`<EntityDescriptor entityID="` + f.conn.ID + `"/>`), nil
}

func (f *fakeSAML) LogoutRedirect(_ context.Context, nameID, format, index, relay string) (string, string, error) {
	if nameID == "" || index != "_si1" || !strings.Contains(format, "emailAddress") {
		return "", "", errors.New("bad logout data")
	}
	return "https://idp.example/slo?" + url.Values{"RelayState": {relay}, "NameID": {nameID}}.Encode(), "lreq-" + nameID, nil
}

func (f *fakeSAML) FinishLogout(_ context.Context, r *http.Request, requestID string) error {
	if r.URL.Query().Get("InResponseTo") != requestID {
		return errors.New("InResponseTo mismatch")
	}
	return nil
}

func registerFakeSAML() {
	connector.Register(&connector.Type{Name: gatehouse.ConnSAML,
		Open: func(_ context.Context, _ connector.Env, c *gatehouse.Connection, _ json.RawMessage) (connector.Connector, error) {
			f := &fakeSAML{conn: c}
			if strings.Contains(string(c.Config), "idp_initiated") {
				return fakeSAMLUnsolicited{f}, nil
			}
			return f, nil
		}})
}

func TestSAMLEndpoints(t *testing.T) {
	registerFakeSAML()
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			e := newEnv(t, engine)
			acme := e.tenant("acme", "acme.com")
			c := &gatehouse.Connection{TenantID: acme.ID, Type: gatehouse.ConnSAML, Name: "Okta", Enabled: true,
				Config: json.RawMessage(`{}`), JIT: gatehouse.DefaultJITPolicy()}
			e.update(func(ctx context.Context, tx gatehouse.Tx) error { return tx.CreateConnection(ctx, c) })
			acs := "/sso/saml/" + c.ID + "/acs"

			// login starts an SP-initiated login and returns the RelayState
			// and request ID the IdP would echo.
			login := func(b *browser) (relay, reqID string) {
				r := b.get("/t/acme/login")
				if r.StatusCode != http.StatusFound {
					t.Fatalf("start: %d %s", r.StatusCode, r.Body)
				}
				u, _ := url.Parse(r.Header.Get("Location"))
				return u.Query().Get("RelayState"), u.Query().Get("ID")
			}
			idpPost := func(b *browser, form url.Values) *result {
				return b.post(acs, form, "Sec-Fetch-Site", "cross-site", "Origin", "https://idp.example")
			}

			t.Run("metadata needs no authentication", func(t *testing.T) {
				r := e.browser().get("/sso/saml/" + c.ID + "/metadata")
				wantStatus(t, r, 200, c.ID)
				if ct := r.Header.Get("Content-Type"); ct != "application/samlmetadata+xml" {
					t.Errorf("content type %q", ct)
				}
				wantStatus(t, e.browser().get("/sso/saml/con_nope/metadata"), 404)
			})

			t.Run("ACS: cross-site POST signs in, replay refused", func(t *testing.T) {
				b := e.browser()
				relay, reqID := login(b)
				form := url.Values{"RelayState": {relay}, "InResponseTo": {reqID}, "email": {"ana@acme.com"}}
				r := idpPost(b, form)
				if r.StatusCode != http.StatusFound || r.Header.Get("Location") != "/t/acme/" {
					t.Fatalf("ACS: %d %s", r.StatusCode, r.Body)
				}
				wantStatus(t, b.get("/t/acme/"), 200, "ana@acme.com")
				// The same response again, from an attacker holding a copy
				// of the flow cookie too, is refused by the store.
				wantStatus(t, idpPost(e.browser(), form), 400)
			})

			t.Run("ACS without this browser's flow is refused when IdP-initiated login is off", func(t *testing.T) {
				b := e.browser()
				relay, reqID := login(b)
				res := idpPost(e.browser(), url.Values{"RelayState": {relay}, "InResponseTo": {reqID}, "email": {"bo@acme.com"}})
				wantStatus(t, res, 400, "not started in this browser")
			})

			t.Run("logout at the IdP and the LogoutResponse", func(t *testing.T) {
				b := e.browser()
				relay, reqID := login(b)
				idpPost(b, url.Values{"RelayState": {relay}, "InResponseTo": {reqID}, "email": {"ana@acme.com"}})
				r := b.post("/t/acme/logout", nil)
				loc, _ := url.Parse(r.Header.Get("Location"))
				if r.StatusCode != http.StatusFound || loc.Host != "idp.example" || loc.Query().Get("NameID") != "ana@acme.com" {
					t.Fatalf("logout: %d %s %s", r.StatusCode, r.Header.Get("Location"), r.Body)
				}
				wantStatus(t, b.get("/t/acme/"), 200, "You are not signed in")
				slo := "/sso/saml/" + c.ID + "/slo?" + url.Values{"RelayState": {loc.Query().Get("RelayState")}, "InResponseTo": {"lreq-ana@acme.com"}}.Encode()
				wantStatus(t, b.get(slo), 200, "You are signed out")
				wantStatus(t, b.get(slo), 400) // once
				wantStatus(t, e.browser().get(slo), 400)

				// A logout handle is no login: the ACS refuses it.
				b2 := e.browser()
				relay2, reqID2 := login(b2)
				idpPost(b2, url.Values{"RelayState": {relay2}, "InResponseTo": {reqID2}, "email": {"ana@acme.com"}})
				r = b2.post("/t/acme/logout", nil)
				loc2, _ := url.Parse(r.Header.Get("Location"))
				wantStatus(t, idpPost(b2, url.Values{"RelayState": {loc2.Query().Get("RelayState")}, "InResponseTo": {"lreq-ana@acme.com"}, "email": {"ana@acme.com"}}), 400, "does not belong")
			})

			t.Run("IdP-initiated login lands on the connection's target", func(t *testing.T) {
				u := &gatehouse.Connection{TenantID: acme.ID, Type: gatehouse.ConnSAML, Name: "Okta tiles", Enabled: true,
					Config: json.RawMessage(`{"idp_initiated":true}`), JIT: gatehouse.DefaultJITPolicy()}
				e.update(func(ctx context.Context, tx gatehouse.Tx) error { return tx.CreateConnection(ctx, u) })
				b := e.browser()
				r := b.post("/sso/saml/"+u.ID+"/acs", url.Values{"RelayState": {"https://evil.com"}, "email": {"cy@acme.com"}}, "Sec-Fetch-Site", "cross-site")
				if r.StatusCode != http.StatusFound || r.Header.Get("Location") != "/t/acme/?idp=1" {
					t.Fatalf("unsolicited: %d %s %s", r.StatusCode, r.Header.Get("Location"), r.Body)
				}
				if c := setCookie(r.Response, session.CookieName); c == nil {
					t.Fatal("no session")
				}
			})
		})
	}
}
