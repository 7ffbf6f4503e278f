// Package mock is a deterministic connector for tests and local demos. Its
// "IdP" is a page listing the configured users; picking one (or a
// login_hint naming one) returns straight to the callback. It exists only
// on development instances (GATEHOUSE_DEV=1): it authenticates nobody.
package mock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/mapping"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// Issuer is the issuer of every mock identity.
const Issuer = "https://mock.gatehouse.invalid"

// User is one identity the mock IdP offers.
type User struct {
	Subject       string   `json:"subject"`
	Email         string   `json:"email,omitempty"`
	EmailVerified *bool    `json:"email_verified,omitempty"`
	Name          string   `json:"name,omitempty"`
	GivenName     string   `json:"given_name,omitempty"`
	FamilyName    string   `json:"family_name,omitempty"`
	Username      string   `json:"username,omitempty"`
	Groups        []string `json:"groups,omitempty"`
	// Claims are extra raw claims, for mapping tests.
	Claims map[string]any `json:"claims,omitempty"`
}

// Config is the mock connection's config.
type Config struct {
	Users []User `json:"users"`
}

// Type returns the mock connection type.
func Type() *connector.Type {
	return &connector.Type{
		Name:      gatehouse.ConnMock,
		DevOnly:   true,
		Configure: configure,
		Describe: func(env connector.Env, c *gatehouse.Connection) map[string]any {
			var cfg Config
			_ = json.Unmarshal(c.Config, &cfg)
			return map[string]any{"redirect_uri": CallbackURL(env, c.ID), "users": cfg.Users}
		},
		Open: open,
	}
}

// Register adds the mock type to the connector registry.
func Register() { connector.Register(Type()) }

// CallbackURL is the connection's callback.
func CallbackURL(env connector.Env, connID string) string {
	return strings.TrimRight(env.PublicURL, "/") + "/sso/mock/" + url.PathEscape(connID) + "/callback"
}

func configure(_ context.Context, _ connector.Env, c *gatehouse.Connection, _ json.RawMessage, in map[string]json.RawMessage) (json.RawMessage, json.RawMessage, error) {
	var cfg Config
	if c != nil && len(c.Config) > 0 {
		if err := json.Unmarshal(c.Config, &cfg); err != nil {
			return nil, nil, gatehouse.FieldError("users", "The stored mock configuration is unreadable.")
		}
	}
	for k := range in {
		if k != "users" {
			return nil, nil, gatehouse.FieldError(k, "Unknown field %q for a mock connection.", k)
		}
	}
	if raw, ok := in["users"]; ok {
		cfg.Users = nil
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg.Users); err != nil {
			return nil, nil, gatehouse.FieldError("users", "users must be a list of {subject, email, ...}: %v", err)
		}
	}
	seen := map[string]bool{}
	for i, u := range cfg.Users {
		if strings.TrimSpace(u.Subject) == "" {
			return nil, nil, gatehouse.FieldError("users", "User %d has no subject.", i+1)
		}
		if seen[u.Subject] {
			return nil, nil, gatehouse.FieldError("users", "Subject %q is listed twice.", u.Subject)
		}
		seen[u.Subject] = true
	}
	if cfg.Users == nil {
		cfg.Users = []User{}
	}
	out, err := json.Marshal(cfg)
	return out, nil, err
}

func open(_ context.Context, env connector.Env, c *gatehouse.Connection, _ json.RawMessage) (connector.Connector, error) {
	var cfg Config
	if err := json.Unmarshal(c.Config, &cfg); err != nil {
		return nil, gatehouse.Errorf(gatehouse.EINVALID, "The mock connection's configuration is unreadable.")
	}
	return &Connector{env: env, conn: c, users: cfg.Users}, nil
}

// Connector is an opened mock connection.
type Connector struct {
	env   connector.Env
	conn  *gatehouse.Connection
	users []User
}

var pickPage = template.Must(template.New("pick").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mock identity provider</title></head>
<body><main><h1>Mock identity provider</h1>
<p>Development only. Choose who to sign in as.</p>
<ul>{{range .Users}}<li><a href="{{.URL}}">{{.Label}}</a></li>{{end}}</ul>
<p><a href="{{.Deny}}">Deny the sign-in</a></p></main></body></html>
`))

// Begin sends the browser to the callback when the flow's login hint names
// a configured user (by email or subject), so tests are pure redirects;
// otherwise it renders a page listing the users.
func (c *Connector) Begin(_ context.Context, flow *connector.Flow) (connector.Action, error) {
	flow.State = secret.NewToken("")
	back := func(v url.Values) string {
		v.Set("state", flow.State)
		return CallbackURL(c.env, c.conn.ID) + "?" + v.Encode()
	}
	if flow.LoginHint != "" {
		if u := c.find(flow.LoginHint); u != nil {
			return connector.Action{RedirectURL: back(url.Values{"user": {u.Subject}})}, nil
		}
	}
	type item struct{ URL, Label string }
	data := struct {
		Users []item
		Deny  string
	}{Deny: back(url.Values{"error": {"access_denied"}})}
	for _, u := range c.users {
		label := u.Subject
		if u.Email != "" {
			label = u.Email + " (" + u.Subject + ")"
		}
		data.Users = append(data.Users, item{back(url.Values{"user": {u.Subject}}), label})
	}
	var b bytes.Buffer
	if err := pickPage.Execute(&b, data); err != nil {
		return connector.Action{}, err
	}
	return connector.Action{HTML: b.Bytes()}, nil
}

func (c *Connector) find(hint string) *User {
	for i, u := range c.users {
		if u.Subject == hint || (u.Email != "" && gatehouse.NormalizeEmail(u.Email) == gatehouse.NormalizeEmail(hint)) {
			return &c.users[i]
		}
	}
	return nil
}

// FlowState returns the callback's state (connector.FlowStateFinder).
func (c *Connector) FlowState(r *http.Request) string { return r.URL.Query().Get("state") }

// Finish returns the chosen user's identity.
func (c *Connector) Finish(_ context.Context, flow *connector.Flow, r *http.Request) (*gatehouse.Identity, error) {
	q := r.URL.Query()
	if flow.State == "" || !secret.EqualString(q.Get("state"), flow.State) {
		return nil, &gatehouse.Error{Code: gatehouse.EINVALID, Reason: "state_mismatch",
			Message: "This sign-in response does not belong to the sign-in started in this browser."}
	}
	if e := q.Get("error"); e != "" {
		msg := "Your identity provider refused the sign-in. Contact your administrator."
		if e == "access_denied" {
			msg = "Your identity provider did not sign you in: access was denied or the sign-in was cancelled."
		}
		return nil, &gatehouse.Error{Code: gatehouse.EFORBIDDEN, Reason: "idp_error", Message: msg,
			Err: errors.New("mock IdP answered error=" + e)}
	}
	u := c.find(q.Get("user"))
	if u == nil || u.Subject != q.Get("user") {
		return nil, gatehouse.Errorf(gatehouse.EINVALID, "The mock identity provider returned an unknown user.")
	}
	raw := map[string]any{"iss": Issuer, "sub": u.Subject}
	for k, v := range u.Claims {
		raw[k] = v
	}
	put := func(k, v string) {
		if v != "" {
			raw[k] = v
		}
	}
	put("email", u.Email)
	put("name", u.Name)
	put("given_name", u.GivenName)
	put("family_name", u.FamilyName)
	put("preferred_username", u.Username)
	if u.EmailVerified != nil {
		raw["email_verified"] = *u.EmailVerified
	}
	if u.Groups != nil {
		gs := make([]any, len(u.Groups))
		for i, g := range u.Groups {
			gs[i] = g
		}
		raw["groups"] = gs
	}
	id := &gatehouse.Identity{
		TenantID: c.conn.TenantID, ConnectionID: c.conn.ID, Issuer: Issuer,
		Subject: u.Subject, Raw: raw,
	}
	if err := mapping.Apply(gatehouse.ConnMock, c.conn.Mapping, raw, id); err != nil {
		return nil, err
	}
	return id, nil
}
