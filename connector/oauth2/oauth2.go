// Package oauth2 connects a tenant to a plain OAuth 2.0 provider that has
// no OpenID Connect (GitHub and the like): the authorization code flow
// (RFC 6749 §4.1) with state and PKCE S256 (RFC 7636), then a userinfo API
// call whose JSON is read with configured claim paths ("id",
// "data.user.id", "emails.0.email").
//
// Without an ID token there is no signed statement about the user: the
// identity is what the userinfo API says to the access token, fetched over
// TLS from the configured URL. Subject is the provider's stable user id,
// never the email.
package oauth2

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	xoauth2 "golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/oidc"
	"github.com/gatehouse-sso/gatehouse/mapping"
	"github.com/gatehouse-sso/gatehouse/outbound"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// Config is a connection's stored, non-secret OAuth 2.0 configuration.
type Config struct {
	Preset       string   `json:"preset,omitempty"`
	AuthorizeURL string   `json:"authorize_url"`
	TokenURL     string   `json:"token_url"`
	UserInfoURL  string   `json:"userinfo_url"`
	EmailsURL    string   `json:"emails_url,omitempty"`
	ClientID     string   `json:"client_id"`
	Scopes       []string `json:"scopes"`
	// TokenEndpointAuthMethod: client_secret_basic or client_secret_post.
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method"`
	// PKCE sends an S256 code challenge (RFC 7636). Default on; turn it
	// off only for a provider that rejects unknown parameters.
	PKCE       *bool             `json:"pkce"`
	AuthParams map[string]string `json:"auth_params,omitempty"`
	// Claim paths into the userinfo JSON: a key, or a dotted path through
	// objects and array indexes.
	SubjectPath       string `json:"subject_path"`
	EmailPath         string `json:"email_path,omitempty"`
	EmailVerifiedPath string `json:"email_verified_path,omitempty"`
	UsernamePath      string `json:"username_path,omitempty"`
	NamePath          string `json:"name_path,omitempty"`
	GivenNamePath     string `json:"given_name_path,omitempty"`
	FamilyNamePath    string `json:"family_name_path,omitempty"`
	GroupsPath        string `json:"groups_path,omitempty"`
}

type secrets struct {
	ClientSecret string `json:"client_secret,omitempty"`
}

// RawPrimaryEmail is the key under which the primary entry of an emails
// list (emails_url) is put in the raw claims.
const RawPrimaryEmail = "primary_email"

// presets fill the defaults of well-known providers.
var presets = map[string]Config{
	// GitHub: /user gives the stable numeric id and the login; the public
	// profile email may be empty or unverified, so the address comes from
	// /user/emails (the primary one, with its verified flag).
	"github": {
		AuthorizeURL: "https://github.com/login/oauth/authorize",
		TokenURL:     "https://github.com/login/oauth/access_token",
		UserInfoURL:  "https://api.github.com/user",
		EmailsURL:    "https://api.github.com/user/emails",
		Scopes:       []string{"read:user", "user:email"},
		SubjectPath:  "id", UsernamePath: "login", NamePath: "name",
		EmailPath: RawPrimaryEmail + ".email", EmailVerifiedPath: RawPrimaryEmail + ".verified",
		TokenEndpointAuthMethod: "client_secret_post",
	},
}

var reservedParams = []string{"client_id", "redirect_uri", "response_type", "response_mode", "scope",
	"state", "code_challenge", "code_challenge_method", "client_secret", "request", "request_uri"}

type oauth2Type struct{}

// Type returns the "oauth2" connection type.
func Type() *connector.Type {
	t := oauth2Type{}
	return &connector.Type{Name: gatehouse.ConnOAuth2, Configure: t.configure, Describe: describe, Open: t.open}
}

// Register registers the "oauth2" type.
func Register() { connector.Register(Type()) }

func parse(cfgRaw, secRaw json.RawMessage) (*Config, *secrets, error) {
	cfg, sec := &Config{}, &secrets{}
	if len(cfgRaw) > 0 {
		if err := json.Unmarshal(cfgRaw, cfg); err != nil {
			return nil, nil, fmt.Errorf("oauth2: stored config: %w", err)
		}
	}
	if len(secRaw) > 0 {
		if err := json.Unmarshal(secRaw, sec); err != nil {
			return nil, nil, fmt.Errorf("oauth2: stored secrets: %w", err)
		}
	}
	return cfg, sec, nil
}

func (oauth2Type) configure(ctx context.Context, env connector.Env, c *gatehouse.Connection, oldSecrets json.RawMessage, in map[string]json.RawMessage) (json.RawMessage, json.RawMessage, error) {
	cfg, sec, err := parse(c.Config, oldSecrets)
	if err != nil {
		return nil, nil, err
	}
	err = oidc.DecodeInput("an OAuth 2.0", map[string]any{
		"preset": &cfg.Preset, "authorize_url": &cfg.AuthorizeURL, "token_url": &cfg.TokenURL,
		"userinfo_url": &cfg.UserInfoURL, "emails_url": &cfg.EmailsURL, "client_id": &cfg.ClientID,
		"client_secret": &sec.ClientSecret, "scopes": &cfg.Scopes, "token_endpoint_auth_method": &cfg.TokenEndpointAuthMethod,
		"pkce": &cfg.PKCE, "auth_params": &cfg.AuthParams, "subject_path": &cfg.SubjectPath,
		"email_path": &cfg.EmailPath, "email_verified_path": &cfg.EmailVerifiedPath, "username_path": &cfg.UsernamePath,
		"name_path": &cfg.NamePath, "given_name_path": &cfg.GivenNamePath, "family_name_path": &cfg.FamilyNamePath,
		"groups_path": &cfg.GroupsPath,
	}, in)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.complete(sec); err != nil {
		return nil, nil, err
	}
	outCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	outSec, err := json.Marshal(sec)
	return outCfg, outSec, err
}

func (cfg *Config) complete(sec *secrets) error {
	cfg.Preset = strings.ToLower(strings.TrimSpace(cfg.Preset))
	if cfg.Preset != "" {
		p, ok := presets[cfg.Preset]
		if !ok {
			return gatehouse.FieldError("preset", "Unknown preset %q; known presets: github.", cfg.Preset)
		}
		fill := func(dst *string, v string) {
			if *dst == "" {
				*dst = v
			}
		}
		fill(&cfg.AuthorizeURL, p.AuthorizeURL)
		fill(&cfg.TokenURL, p.TokenURL)
		fill(&cfg.UserInfoURL, p.UserInfoURL)
		fill(&cfg.EmailsURL, p.EmailsURL)
		fill(&cfg.SubjectPath, p.SubjectPath)
		fill(&cfg.UsernamePath, p.UsernamePath)
		fill(&cfg.NamePath, p.NamePath)
		fill(&cfg.EmailPath, p.EmailPath)
		fill(&cfg.EmailVerifiedPath, p.EmailVerifiedPath)
		fill(&cfg.TokenEndpointAuthMethod, p.TokenEndpointAuthMethod)
		if len(cfg.Scopes) == 0 {
			cfg.Scopes = slices.Clone(p.Scopes)
		}
	}
	for field, u := range map[string]string{"authorize_url": cfg.AuthorizeURL, "token_url": cfg.TokenURL, "userinfo_url": cfg.UserInfoURL} {
		if err := oidc.CheckEndpoint(field, u); err != nil {
			return err
		}
	}
	if cfg.EmailsURL != "" {
		if err := oidc.CheckEndpoint("emails_url", cfg.EmailsURL); err != nil {
			return err
		}
	}
	cfg.ClientID = strings.TrimSpace(cfg.ClientID)
	if cfg.ClientID == "" {
		return gatehouse.FieldError("client_id", "The client ID is required.")
	}
	if sec.ClientSecret == "" {
		return gatehouse.FieldError("client_secret", "The client secret is required.")
	}
	for _, s := range cfg.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			return gatehouse.FieldError("scopes", "Scope %q is not a valid scope token.", s)
		}
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{}
	}
	switch cfg.TokenEndpointAuthMethod {
	case "":
		cfg.TokenEndpointAuthMethod = oidc.AuthBasic
	case oidc.AuthBasic, oidc.AuthPost:
	default:
		return gatehouse.FieldError("token_endpoint_auth_method", "Use client_secret_basic or client_secret_post.")
	}
	if cfg.PKCE == nil {
		on := true
		cfg.PKCE = &on
	}
	for k := range cfg.AuthParams {
		if slices.Contains(reservedParams, k) {
			return gatehouse.FieldError("auth_params", "The parameter %s is set by Gatehouse and cannot be configured.", k)
		}
	}
	if cfg.SubjectPath == "" {
		cfg.SubjectPath = "sub"
	}
	for field, p := range map[string]string{"subject_path": cfg.SubjectPath, "email_path": cfg.EmailPath,
		"email_verified_path": cfg.EmailVerifiedPath, "username_path": cfg.UsernamePath, "name_path": cfg.NamePath,
		"given_name_path": cfg.GivenNamePath, "family_name_path": cfg.FamilyNamePath, "groups_path": cfg.GroupsPath} {
		if p != strings.TrimSpace(p) || strings.Contains(p, "..") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || len(p) > 256 {
			return gatehouse.FieldError(field, "The %s must be a claim name or a dotted path such as data.user.id or emails.0.email.", field)
		}
	}
	return nil
}

func redirectURI(env connector.Env, c *gatehouse.Connection) string {
	return env.PublicURL + "/sso/oauth2/" + url.PathEscape(c.ID) + "/callback"
}

func describe(env connector.Env, c *gatehouse.Connection) map[string]any {
	out := map[string]any{"redirect_uri": redirectURI(env, c)}
	cfg, _, err := parse(c.Config, nil)
	if err != nil {
		return out
	}
	b, _ := json.Marshal(cfg)
	var fields map[string]any
	_ = json.Unmarshal(b, &fields)
	for k, v := range fields {
		out[k] = v
	}
	return out
}

type conn struct {
	env connector.Env
	c   *gatehouse.Connection
	cfg *Config
	sec *secrets
}

func (oauth2Type) open(ctx context.Context, env connector.Env, c *gatehouse.Connection, secretsRaw json.RawMessage) (connector.Connector, error) {
	cfg, sec, err := parse(c.Config, secretsRaw)
	if err != nil {
		return nil, err
	}
	return &conn{env: oidc.Env(env), c: c, cfg: cfg, sec: sec}, nil
}

func (k *conn) oauth2Config() *xoauth2.Config {
	style := xoauth2.AuthStyleInHeader
	if k.cfg.TokenEndpointAuthMethod == oidc.AuthPost {
		style = xoauth2.AuthStyleInParams
	}
	return &xoauth2.Config{
		ClientID: k.cfg.ClientID, ClientSecret: k.sec.ClientSecret, RedirectURL: redirectURI(k.env, k.c), Scopes: k.cfg.Scopes,
		Endpoint: xoauth2.Endpoint{AuthURL: k.cfg.AuthorizeURL, TokenURL: k.cfg.TokenURL, AuthStyle: style},
	}
}

func (k *conn) pkce() bool { return k.cfg.PKCE == nil || *k.cfg.PKCE }

// Begin fills state and the PKCE verifier and returns the authorization
// request.
func (k *conn) Begin(ctx context.Context, flow *connector.Flow) (connector.Action, error) {
	flow.State = secret.NewToken("")
	var opts []xoauth2.AuthCodeOption
	if k.pkce() {
		flow.PKCEVerifier = xoauth2.GenerateVerifier()
		opts = append(opts, xoauth2.S256ChallengeOption(flow.PKCEVerifier))
	}
	return connector.Action{RedirectURL: k.oauth2Config().AuthCodeURL(flow.State, oidc.AuthParams(flow, k.cfg.AuthParams, opts...)...)}, nil
}

// FlowState implements connector.FlowStateFinder.
func (k *conn) FlowState(r *http.Request) string { return oidc.FlowStateParam(r) }

// Finish checks the response, exchanges the code and reads the userinfo.
func (k *conn) Finish(ctx context.Context, flow *connector.Flow, r *http.Request) (*gatehouse.Identity, error) {
	q := r.URL.Query()
	if err := oidc.CheckState(q, flow.State); err != nil {
		return nil, err
	}
	if err := oidc.ProviderError(q); err != nil {
		return nil, err
	}
	code, err := oidc.Code(q)
	if err != nil {
		return nil, err
	}
	var opts []xoauth2.AuthCodeOption
	if k.pkce() {
		if flow.PKCEVerifier == "" {
			return nil, oidc.Refuse(oidc.ReasonState, "This sign-in is incomplete. Start again.", fmt.Errorf("flow has no PKCE verifier"))
		}
		opts = append(opts, xoauth2.VerifierOption(flow.PKCEVerifier))
	}
	hctx := context.WithValue(ctx, xoauth2.HTTPClient, k.env.HTTPClient)
	tok, err := k.oauth2Config().Exchange(hctx, code, opts...)
	if err != nil {
		return nil, oidc.ExchangeError(ctx, err)
	}
	h := http.Header{"Authorization": {"Bearer " + tok.AccessToken}, "User-Agent": {"Gatehouse"}}
	var raw map[string]any
	if err := outbound.GetJSON(ctx, k.env.HTTPClient, k.cfg.UserInfoURL, h, &raw); err != nil {
		return nil, oidc.Unavailable(oidc.ReasonUserInfo, fmt.Errorf("userinfo: %w", err))
	}
	if k.cfg.EmailsURL != "" {
		var emails []map[string]any
		if err := outbound.GetJSON(ctx, k.env.HTTPClient, k.cfg.EmailsURL, h, &emails); err != nil {
			return nil, oidc.Unavailable(oidc.ReasonUserInfo, fmt.Errorf("emails: %w", err))
		}
		for _, e := range emails {
			if p, _ := e["primary"].(bool); p {
				raw[RawPrimaryEmail] = e
				break
			}
		}
	}
	return k.identity(raw)
}

func (k *conn) identity(raw map[string]any) (*gatehouse.Identity, error) {
	u, _ := url.Parse(k.cfg.AuthorizeURL)
	id := &gatehouse.Identity{TenantID: k.c.TenantID, ConnectionID: k.c.ID, Issuer: u.Scheme + "://" + u.Host, Raw: raw}
	m := k.c.Mapping
	def := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	if m.Expressions[mapping.FieldSubject] == "" {
		def(&m.Subject, k.cfg.SubjectPath)
	}
	def(&m.Email, k.cfg.EmailPath)
	def(&m.Username, k.cfg.UsernamePath)
	def(&m.DisplayName, k.cfg.NamePath)
	def(&m.GivenName, k.cfg.GivenNamePath)
	def(&m.FamilyName, k.cfg.FamilyNamePath)
	def(&m.Groups, k.cfg.GroupsPath)
	if err := mapping.Apply(gatehouse.ConnOAuth2, m, raw, id); err != nil {
		return nil, err
	}
	if id.Subject == "" {
		return nil, oidc.Refuse(oidc.ReasonMissingClaims, "The identity provider did not say who you are (no user id in its answer). Contact your administrator.",
			fmt.Errorf("no subject at %s in the userinfo response", mapping.Source(gatehouse.ConnOAuth2, m, mapping.FieldSubject)))
	}
	if k.cfg.EmailVerifiedPath != "" {
		// The configured path decides alone: absent means unknown.
		id.EmailVerified = nil
		if v, ok := Lookup(raw, k.cfg.EmailVerifiedPath); ok {
			switch b := v.(type) {
			case bool:
				id.EmailVerified = &b
			case string:
				if t, err := strconv.ParseBool(b); err == nil {
					id.EmailVerified = &t
				}
			}
		}
	}
	return id, nil
}

// Lookup finds path in raw: the exact key first, then a dotted path
// through nested objects and array indexes ("emails.0.email").
func Lookup(raw map[string]any, path string) (any, bool) { return mapping.Path(raw, path) }
