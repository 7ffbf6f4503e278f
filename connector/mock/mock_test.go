package mock

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
)

var env = connector.Env{PublicURL: "http://localhost:8080"}

func TestConfigure(t *testing.T) {
	for _, tc := range []struct {
		name, in, field string
	}{
		{"ok", `{"users":[{"subject":"a","email":"a@x.com","email_verified":true,"groups":["g"]}]}`, ""},
		{"empty", `{}`, ""},
		{"unknown field", `{"users":[],"issuer":"x"}`, "issuer"},
		{"unknown user field", `{"users":[{"subject":"a","mail":"x"}]}`, "users"},
		{"no subject", `{"users":[{"email":"a@x.com"}]}`, "users"},
		{"duplicate subject", `{"users":[{"subject":"a"},{"subject":"a"}]}`, "users"},
		{"not a list", `{"users":{"subject":"a"}}`, "users"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tc.in), &in); err != nil {
				t.Fatal(err)
			}
			cfg, secrets, err := Type().Configure(context.Background(), env, nil, nil, in)
			if gatehouse.ErrorField(err) != tc.field {
				t.Fatalf("err %v, want field %q", err, tc.field)
			}
			if err == nil && (secrets != nil || !json.Valid(cfg)) {
				t.Fatalf("config %s secrets %s", cfg, secrets)
			}
		})
	}
	if !Type().DevOnly {
		t.Fatal("the mock must exist only on development instances")
	}
}

func openMock(t *testing.T, m gatehouse.AttributeMapping) connector.Connector {
	t.Helper()
	yes := true
	cfg, _ := json.Marshal(Config{Users: []User{
		{Subject: "ana", Email: "Ana@Acme.com", EmailVerified: &yes, Name: "Ana Lima", Groups: []string{"eng"}, Claims: map[string]any{"upn": "ana.lima@acme.com"}},
		{Subject: "bo"},
	}})
	c, err := Type().Open(context.Background(), env, &gatehouse.Connection{ID: "con_1", TenantID: "ten_1", Type: "mock", Config: cfg, Mapping: m}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBeginAndFinish(t *testing.T) {
	c := openMock(t, gatehouse.AttributeMapping{})
	flow := &connector.Flow{ID: "flw_1", LoginHint: "ana@acme.com"}
	act, err := c.Begin(context.Background(), flow)
	if err != nil || flow.State == "" {
		t.Fatalf("%v %q", err, flow.State)
	}
	u, _ := url.Parse(act.RedirectURL)
	if u.Path != "/sso/mock/con_1/callback" || u.Query().Get("user") != "ana" || u.Query().Get("state") != flow.State {
		t.Fatalf("redirect %s", act.RedirectURL)
	}
	r := httptest.NewRequest("GET", act.RedirectURL, nil)
	if got := c.(connector.FlowStateFinder).FlowState(r); got != flow.State {
		t.Fatalf("FlowState %q", got)
	}
	id, err := c.Finish(context.Background(), flow, r)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "ana" || id.Email != "Ana@Acme.com" || id.EmailVerified == nil || !*id.EmailVerified ||
		id.DisplayName != "Ana Lima" || len(id.Groups) != 1 || id.ConnectionID != "con_1" || id.TenantID != "ten_1" ||
		id.Issuer != Issuer || id.Raw["upn"] != "ana.lima@acme.com" {
		t.Fatalf("identity %+v", id)
	}

	// Without a hint: a page listing the users, escaped.
	act, err = c.Begin(context.Background(), &connector.Flow{ID: "flw_2"})
	if err != nil || act.RedirectURL != "" || !strings.Contains(string(act.HTML), "user=bo") || !strings.Contains(string(act.HTML), "error=access_denied") {
		t.Fatalf("%v %s", err, act.HTML)
	}
}

func TestFinishRefusals(t *testing.T) {
	c := openMock(t, gatehouse.AttributeMapping{})
	flow := &connector.Flow{ID: "flw_1", State: "s1"}
	for _, tc := range []struct {
		name, query, code string
	}{
		{"wrong state", "state=s2&user=ana", gatehouse.EINVALID},
		{"no state", "user=ana", gatehouse.EINVALID},
		{"idp error", "state=s1&error=access_denied", gatehouse.EFORBIDDEN},
		{"unknown user", "state=s1&user=zed", gatehouse.EINVALID},
		{"user by email is not a subject", "state=s1&user=ana%40acme.com", gatehouse.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Finish(context.Background(), flow, httptest.NewRequest("GET", "/cb?"+tc.query, nil))
			if !gatehouse.IsCode(err, tc.code) {
				t.Fatalf("err %v, want %s", err, tc.code)
			}
		})
	}
}

func TestFinishAppliesMapping(t *testing.T) {
	c := openMock(t, gatehouse.AttributeMapping{Email: "upn"})
	flow := &connector.Flow{ID: "flw_1", State: "s1"}
	id, err := c.Finish(context.Background(), flow, httptest.NewRequest("GET", "/cb?state=s1&user=ana", nil))
	if err != nil || id.Email != "ana.lima@acme.com" {
		t.Fatalf("%+v %v", id, err)
	}
	// A user with no email: the identity carries none (provisioning refuses).
	id, err = c.Finish(context.Background(), flow, httptest.NewRequest("GET", "/cb?state=s1&user=bo", nil))
	if err != nil || id.Email != "" || id.Subject != "bo" {
		t.Fatalf("%+v %v", id, err)
	}
}
