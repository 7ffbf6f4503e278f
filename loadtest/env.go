package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Env is what a scenario's setup works with: the Gatehouse replicas (or an
// external broker), the upstream IdP, the run's bounds.
type Env struct {
	// URLs of the Gatehouse replicas; the first is the public URL every
	// replica was configured with (see Browser routing).
	URLs        []string
	DatabaseURL string
	Transport   *http.Transport
	IdP         *IdP
	Tenant      string // slug
	Domain      string // the tenant's email domain
	RunID       string // makes emails unique across runs on one database
	N           int
	Concurrency int
	Duration    time.Duration
	Log         io.Writer
	// External broker (app-broker against another OpenID provider).
	External *ExternalBroker

	tenantID string
	rr       atomic.Int64
}

// ExternalBroker names another OpenID provider's client for app-broker.
type ExternalBroker struct {
	Issuer, ClientID, ClientSecret, RedirectURI string
	// Scopes requested; default "openid email profile".
	Scopes string
	// NoLoginHint: the broker does not pass login_hint upstream, so the
	// upstream makes a fresh user per sign-in.
	NoLoginHint bool
}

func (e *Env) logf(format string, a ...any) {
	if e.Log != nil {
		fmt.Fprintf(e.Log, format+"\n", a...)
	}
}

// Browser returns a fresh simulated browser. With replicas, each request
// to Gatehouse goes to the next replica in turn, so every login started
// on one replica finishes on another (the public URL is the same).
func (e *Env) Browser() *Browser {
	b := NewBrowser(e.Transport)
	if len(e.URLs) > 1 {
		pub, _ := url.Parse(e.URLs[0])
		var hosts []string
		for _, u := range e.URLs {
			pu, _ := url.Parse(u)
			hosts = append(hosts, pu.Host)
		}
		start := int(e.rr.Add(1))
		b.route = func(u *url.URL) {
			if u.Host == pub.Host {
				u.Host = hosts[start%len(hosts)]
				start++
			}
		}
	}
	return b
}

// Client is a plain HTTP client over the shared transport, no redirects.
func (e *Env) Client() *http.Client {
	return &http.Client{Transport: e.Transport, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// API calls Gatehouse's admin API as the superuser.
func (e *Env) API(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.URLs[0]+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	want := http.StatusOK
	if method == http.MethodPost {
		want = http.StatusCreated
	}
	return doJSON(e.Client(), req, want, out)
}

// EnsureTenant creates the bench tenant (once per database).
func (e *Env) EnsureTenant(ctx context.Context) error {
	if e.tenantID != "" {
		return nil
	}
	var t struct {
		ID string `json:"id"`
	}
	err := e.API(ctx, "GET", "/api/v1/tenants/"+e.Tenant, nil, &t)
	if err != nil {
		err = e.API(ctx, "POST", "/api/v1/tenants", map[string]any{
			"slug": e.Tenant, "name": "Bench", "domains": []string{e.Domain}, "support_contact": "it@" + e.Domain}, &t)
	}
	if err != nil {
		return err
	}
	e.tenantID = t.ID
	// Most tenants put every new user in a default group; so do the
	// bench connections.
	return e.API(ctx, "POST", "/api/v1/tenants/"+e.Tenant+"/groups", map[string]any{"name": DefaultGroup}, nil)
}

// DefaultGroup is the group every bench connection adds its new users to.
const DefaultGroup = "Everyone"

// jitPolicy of the bench connections: the defaults plus DefaultGroup.
func jitPolicy() map[string]any {
	return map[string]any{"enabled": true, "update_profile": true, "default_groups": []string{DefaultGroup}}
}

// Email of the i-th user of this run (prefix tells scenarios apart).
func (e *Env) Email(prefix string, i int) string {
	return fmt.Sprintf("%s%d-%s@%s", prefix, i, e.RunID, e.Domain)
}

// CreateOIDCConnection adds a connection to the upstream IdP.
func (e *Env) CreateOIDCConnection(ctx context.Context) (string, error) {
	return e.createOIDCConnection(ctx, "Bench OIDC "+e.RunID, jitPolicy())
}

func (e *Env) createOIDCConnection(ctx context.Context, name string, jit map[string]any) (string, error) {
	if err := e.EnsureTenant(ctx); err != nil {
		return "", err
	}
	var c struct {
		ID string `json:"id"`
	}
	err := e.API(ctx, "POST", "/api/v1/tenants/"+e.Tenant+"/connections", map[string]any{
		"type": "oidc", "name": name, "enabled": true, "jit": jit,
		"issuer": e.IdP.Issuer, "client_id": e.IdP.ClientID, "client_secret": e.IdP.ClientSecret,
		"userinfo": "never", "allowed_algs": []string{"ES256"},
	}, &c)
	return c.ID, err
}

func (b *Browser) hasSession(host string) bool { return b.Cookie(host, "gatehouse_session") != "" }

// hostOf returns the host of a URL.
func hostOf(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return pu.Host
}

func isUnder(u *url.URL, prefix string) bool { return strings.HasPrefix(u.String(), prefix) }
