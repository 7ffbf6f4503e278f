// Package oidc connects a tenant to an OpenID Connect provider (Okta, Entra
// ID, Google, Auth0, Keycloak, any certified OP) with the authorization code
// flow, PKCE S256, state and nonce.
//
// The ID token is checked by our own code (idtoken.go, all of OIDC Core
// §3.1.3.7 and §3.1.3.8 in one pass over the compact JWS: signature with the
// algorithm allow-list and HMAC keyed by the client secret only, iss, aud,
// azp, exp, iat, nbf, nonce, sub, at_hash), with go-oidc's verifier as the
// oracle of its differential tests; this package also checks the RFC 9207
// `iss` response parameter, Entra ID's tenant-templated issuer, and the
// userinfo `sub` (OIDC Core §5.3.4). Every HTTP request goes through
// connector.Env.HTTPClient (package outbound).
package oidc

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/mapping"
	"github.com/gatehouse-sso/gatehouse/outbound"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// ClockSkew is the tolerance for exp and iat between our clock and the IdP's.
const ClockSkew = 2 * time.Minute

// RawGroupsOverage is set in Identity.Raw when the IdP said the user has
// more groups than the token carries.
const RawGroupsOverage = "gatehouse_groups_overage"

type oidcType struct{ cache *cache }

// Type returns the "oidc" connection type. Each Type has its own discovery
// and key cache; the server registers one.
func Type() *connector.Type {
	t := &oidcType{cache: newCache()}
	return &connector.Type{
		Name:      gatehouse.ConnOIDC,
		Configure: t.configure,
		Describe:  describe,
		Open:      t.open,
	}
}

// Register registers the "oidc" type.
func Register() { connector.Register(Type()) }

// Env fills the defaults of a connector environment: the wall clock, and
// an outbound client with the strict default policy when none was given
// (fail closed: no loopback, no private addresses).
func Env(env connector.Env) connector.Env {
	if env.Clock == nil {
		env.Clock = gatehouse.SystemClock{}
	}
	if env.HTTPClient == nil {
		env.HTTPClient = outbound.NewClient(outbound.Policy{})
	}
	return env
}

type conn struct {
	t      *oidcType
	env    connector.Env
	c      *gatehouse.Connection
	cfg    *Config
	sec    *Secrets
	signer crypto.Signer // private_key_jwt
}

func (t *oidcType) open(ctx context.Context, env connector.Env, c *gatehouse.Connection, secrets json.RawMessage) (connector.Connector, error) {
	cfg, err := parseConfig(c.Config)
	if err != nil {
		return nil, err
	}
	sec, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	k := &conn{t: t, env: Env(env), c: c, cfg: cfg, sec: sec}
	if cfg.TokenEndpointAuthMethod == AuthPrivateKeyJWT {
		if k.signer, err = parsePrivateKey(sec.PrivateKey); err != nil {
			return nil, fmt.Errorf("oidc: connection %s: private key: %w", c.ID, err)
		}
	}
	return k, nil
}

func (k *conn) metadata(ctx context.Context) (*Metadata, error) {
	md, err := k.t.cache.discover(ctx, k.env, k.cfg, false)
	if err != nil {
		return nil, Unavailable(ReasonUnavailable, fmt.Errorf("discovery for %s: %w", k.cfg.Issuer, err))
	}
	return md, nil
}

// oauth2Config builds the authorization request; the code exchange is
// exchange.go's.
func (k *conn) oauth2Config(md *Metadata) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    k.cfg.ClientID,
		RedirectURL: redirectURI(k.env, k.c),
		Scopes:      k.cfg.Scopes,
		Endpoint:    oauth2.Endpoint{AuthURL: md.AuthorizationEndpoint, TokenURL: md.TokenEndpoint},
	}
}

// Begin fills the flow's state, nonce and PKCE verifier and returns the
// authorization request (OIDC Core §3.1.2.1, RFC 7636).
func (k *conn) Begin(ctx context.Context, flow *connector.Flow) (connector.Action, error) {
	md, err := k.metadata(ctx)
	if err != nil {
		return connector.Action{}, err
	}
	flow.State = secret.NewToken("")
	flow.Nonce = secret.NewToken("")
	flow.PKCEVerifier = oauth2.GenerateVerifier()
	opts := AuthParams(flow, k.cfg.AuthParams, oauth2.S256ChallengeOption(flow.PKCEVerifier), gooidc.Nonce(flow.Nonce))
	if flow.ForceLogin {
		// OIDC Core §3.1.2.1: prompt=login makes the IdP authenticate the
		// user again; without it an app's prompt=login or max_age would be
		// answered from the IdP's own session. It replaces a configured
		// prompt (set last, it wins).
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
	}
	return connector.Action{RedirectURL: k.oauth2Config(md).AuthCodeURL(flow.State, opts...)}, nil
}

// AuthParams returns opts plus the flow's login_hint and the configured
// extra parameters, in a stable order.
func AuthParams(flow *connector.Flow, extra map[string]string, opts ...oauth2.AuthCodeOption) []oauth2.AuthCodeOption {
	if flow.LoginHint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", flow.LoginHint))
	}
	keys := make([]string, 0, len(extra))
	for p := range extra {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	for _, p := range keys {
		opts = append(opts, oauth2.SetAuthURLParam(p, extra[p]))
	}
	return opts
}

// FlowState implements connector.FlowStateFinder.
func (k *conn) FlowState(r *http.Request) string { return FlowStateParam(r) }

// Finish verifies the authorization response on the callback and returns
// the identity.
func (k *conn) Finish(ctx context.Context, flow *connector.Flow, r *http.Request) (*gatehouse.Identity, error) {
	q := r.URL.Query()
	if err := CheckState(q, flow.State); err != nil {
		return nil, err
	}
	md, err := k.metadata(ctx)
	if err != nil {
		return nil, err
	}
	// RFC 9207 §2.4: compare iss before anything else in the response,
	// error responses included; when the provider advertises it, it must
	// be present.
	if q.Has("iss") {
		if !k.issuerMatches(q.Get("iss"), md) {
			return nil, Refuse(ReasonIssuer, "This sign-in response came from a different identity provider than the one the sign-in was started with.",
				fmt.Errorf("iss parameter %q, want %q", q.Get("iss"), md.Issuer))
		}
	} else if md.IssParameterSupported {
		return nil, Refuse(ReasonIssuer, "This sign-in response does not name its identity provider. Start the sign-in again.",
			errors.New("iss parameter missing although the provider advertises authorization_response_iss_parameter_supported"))
	}
	if err := ProviderError(q); err != nil {
		return nil, err
	}
	code, err := Code(q)
	if err != nil {
		return nil, err
	}
	tok, err := k.exchange(ctx, md, code, flow.PKCEVerifier)
	if err != nil {
		return nil, err
	}
	rawID := tok.IDToken
	if rawID == "" {
		return nil, Refuse(ReasonIDToken, "The identity provider did not return an ID token. Check that the connection requests the openid scope.", errors.New("no id_token in the token response"))
	}
	idt, claims, err := k.verify(ctx, md, rawID, flow.Nonce)
	if err != nil {
		return nil, err
	}
	if flow.ForceLogin {
		// OIDC Core §3.1.2.1: with prompt=login the provider must
		// authenticate the user again or answer login_required. An
		// auth_time from before this login began says it answered from
		// its session instead (§3.1.3.7 step 13 checks auth_time the same
		// way for max_age). Without auth_time there is nothing to check.
		if at, err := numericDate(claims, "auth_time"); err != nil || (!at.IsZero() && at.Before(flow.CreatedAt.Add(-ClockSkew))) {
			return nil, Refuse(ReasonIDToken, "The identity provider did not ask you to sign in again, as this application requires. Sign out of the identity provider and try again.",
				fmt.Errorf("prompt=login sent, auth_time %v is before the login began (%s)", claims["auth_time"], flow.CreatedAt.UTC().Format(time.RFC3339)))
		}
	}
	if hds := k.cfg.HostedDomains; len(hds) > 0 {
		if hd, _ := claims["hd"].(string); !slices.Contains(hds, strings.ToLower(hd)) {
			return nil, Refuse(ReasonHostedDomain, fmt.Sprintf("Sign in with your organization's Google Workspace account (%s).", strings.Join(hds, ", ")),
				fmt.Errorf("hd claim %q is not in hosted_domains %v", hd, hds))
		}
	}
	if idt.AccessTokenHash != "" {
		// OIDC Core §3.1.3.8: at_hash binds the access token to the ID token.
		if err := checkAccessTokenHash(idt, tok.AccessToken); err != nil {
			return nil, Refuse(ReasonIDToken, idTokenMessage, fmt.Errorf("at_hash: %w", err))
		}
	}
	if err := k.userinfo(ctx, md, tok.AccessToken, idt.Subject, claims); err != nil {
		return nil, err
	}
	return k.identity(md, idt, claims)
}

// clientAssertion is the private_key_jwt client authentication JWT
// (RFC 7523 §3, OIDC Core §9): iss and sub the client id, aud the token
// endpoint, a unique jti, a short life.
func (k *conn) clientAssertion(md *Metadata) (string, error) {
	alg := signingAlg(k.signer)
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if k.cfg.ClientCertificate != "" {
		// Entra ID finds the key by certificate thumbprint.
		x5t, x5tS256, err := certThumbprints(k.cfg.ClientCertificate)
		if err != nil {
			return "", fmt.Errorf("oidc: client certificate: %w", err)
		}
		opts = opts.WithHeader("x5t", x5t).WithHeader("x5t#S256", x5tS256)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: k.signer, KeyID: k.cfg.ClientKeyID, Algorithm: string(alg)}}, opts)
	if err != nil {
		return "", err
	}
	now := k.env.Clock.Now()
	claims := map[string]any{
		"iss": k.cfg.ClientID, "sub": k.cfg.ClientID, "aud": md.TokenEndpoint,
		"jti": secret.NewToken(""), "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

const idTokenMessage = "The sign-in could not be verified: the identity provider's ID token failed a security check. Contact your administrator if this continues."

// verify checks the ID token per OIDC Core §3.1.3.7 (idtoken.go) and
// returns its claims; every refusal is the same user-facing error.
func (k *conn) verify(ctx context.Context, md *Metadata, raw, nonce string) (*idToken, map[string]any, error) {
	idt, claims, err := k.checkIDToken(ctx, md, raw, nonce, k.env.Clock.Now())
	if err != nil {
		return nil, nil, Refuse(ReasonIDToken, idTokenMessage, err)
	}
	return idt, claims, nil
}

// userinfo fetches the userinfo endpoint when configured or when the ID
// token has no email, and merges its claims under the ID token's.
func (k *conn) userinfo(ctx context.Context, md *Metadata, accessToken, sub string, claims map[string]any) error {
	email, _ := claims["email"].(string)
	switch {
	case k.cfg.UserInfo == UserInfoNever, md.UserInfoEndpoint == "":
		return nil
	case k.cfg.UserInfo == UserInfoAuto && email != "":
		return nil
	}
	var ui map[string]any
	h := http.Header{"Authorization": {"Bearer " + accessToken}}
	if err := outbound.GetJSON(ctx, k.env.HTTPClient, md.UserInfoEndpoint, h, &ui); err != nil {
		return Unavailable(ReasonUserInfo, fmt.Errorf("userinfo: %w", err))
	}
	// OIDC Core §5.3.4: the userinfo sub must equal the ID token's, else
	// the response may be for another user (token substitution).
	if got, _ := ui["sub"].(string); got != sub {
		return Refuse(ReasonUserInfoSub, idTokenMessage, fmt.Errorf("userinfo sub %q differs from the ID token's %q", got, sub))
	}
	for name, v := range ui {
		if _, ok := claims[name]; !ok {
			claims[name] = v
		}
	}
	return nil
}

// identity maps verified claims to the identity.
func (k *conn) identity(md *Metadata, idt *idToken, claims map[string]any) (*gatehouse.Identity, error) {
	id := &gatehouse.Identity{
		TenantID:     k.c.TenantID,
		ConnectionID: k.c.ID,
		Issuer:       idt.Issuer,
		Subject:      idt.Subject,
		Raw:          claims,
	}
	if k.cfg.Preset == "entra" {
		// Entra ID: the stable, tenant-scoped key of a user is tid+oid
		// (sub is per application; email and UPN can be changed by any
		// admin of the user's directory).
		tid, _ := claims["tid"].(string)
		oid, _ := claims["oid"].(string)
		if tid == "" || oid == "" {
			return nil, Refuse(ReasonMissingClaims, "The identity provider did not send the user's directory and object id. Ask your administrator to request the profile scope.",
				errors.New("entra: tid or oid claim missing"))
		}
		id.Subject = tid + "/" + oid
		// xms_edov (optional claim): the email's domain is verified by
		// the directory that owns it.
		if v, ok := claims["xms_edov"].(bool); ok {
			id.EmailVerified = &v
		} else if md.Template() && len(k.cfg.AllowedTenantIDs) == 0 {
			// A multi-tenant connection open to every directory: anyone
			// can make a directory and give a user any email address
			// (the "nOAuth" attack), so without xms_edov the email is
			// unverified. The JIT policy then neither links an account
			// by it nor creates one for it (unless the connection trusts
			// unverified emails); allowed_tenant_ids names directories
			// whose administrators the tenant trusts instead.
			unverified := false
			id.EmailVerified = &unverified
		}
	}
	// Groups overage (Entra ID): too many groups to fit in the token; the
	// claim points elsewhere. The groups we have are not the whole truth.
	if names, ok := claims["_claim_names"].(map[string]any); ok {
		if _, ok := names["groups"]; ok {
			id.GroupsIncomplete = true
		}
	}
	if v, _ := claims["hasgroups"].(bool); v {
		id.GroupsIncomplete = true
	}
	if id.GroupsIncomplete {
		claims[RawGroupsOverage] = true
	}
	if err := mapping.Apply(gatehouse.ConnOIDC, k.c.Mapping, claims, id); err != nil {
		return nil, err
	}
	if id.GroupsIncomplete && len(id.Groups) == 0 {
		id.Groups = nil
	}
	return id, nil
}

// issuerMatches compares an RFC 9207 iss parameter with the provider's
// issuer (for a tenant template: any tenant's issuer on that template; the
// ID token's own iss/tid check then pins it).
func (k *conn) issuerMatches(iss string, md *Metadata) bool {
	if !md.Template() {
		return iss == md.Issuer
	}
	i := strings.Index(md.Issuer, tenantTemplate)
	pre, post := md.Issuer[:i], md.Issuer[i+len(tenantTemplate):]
	if len(iss) <= len(pre)+len(post) || !strings.HasPrefix(iss, pre) || !strings.HasSuffix(iss, post) {
		return false
	}
	return !strings.ContainsAny(iss[len(pre):len(iss)-len(post)], "/?#")
}
