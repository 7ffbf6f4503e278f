package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/outbound"
)

// Client authentication methods at the token endpoint (OIDC Core §9).
const (
	AuthBasic         = "client_secret_basic"
	AuthPost          = "client_secret_post"
	AuthPrivateKeyJWT = "private_key_jwt"
)

// When the userinfo endpoint is called.
const (
	UserInfoAuto   = "auto"   // when the ID token has no email
	UserInfoAlways = "always" // on every login
	UserInfoNever  = "never"
)

// Config is a connection's stored, non-secret OIDC configuration: the flat
// fields of the connection JSON.
type Config struct {
	Preset                  string   `json:"preset,omitempty"`
	Issuer                  string   `json:"issuer"`
	ClientID                string   `json:"client_id"`
	Scopes                  []string `json:"scopes"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	// AuthParams are extra authorization request parameters (prompt,
	// domain_hint, hd, acr_values...).
	AuthParams map[string]string `json:"auth_params,omitempty"`
	// AllowedAlgs is the ID token signature allow-list. HS256/384/512 are
	// accepted only when listed here, and then only keyed with the client
	// secret (OIDC Core §10.1), never with a key from the JWKS.
	AllowedAlgs []string `json:"allowed_algs"`
	UserInfo    string   `json:"userinfo"`
	// TrustedAudiences are other audiences an ID token may carry besides
	// client_id (OIDC Core §3.1.3.7 step 3); such a token must then name
	// us in azp.
	TrustedAudiences []string `json:"trusted_audiences,omitempty"`
	// AllowedTenantIDs restricts a multi-tenant Entra ID connection to
	// these directory ids (the token's tid).
	AllowedTenantIDs []string `json:"allowed_tenant_ids,omitempty"`
	// HostedDomains restricts a Google connection to Workspace accounts of
	// these domains (the ID token's hd claim; the hd authorization
	// parameter alone only styles Google's account picker).
	HostedDomains []string `json:"hosted_domains,omitempty"`
	// ClientJWKS is the public half of the private_key_jwt key, to register
	// at the IdP; ClientKeyID is its kid (RFC 7638 thumbprint).
	ClientJWKS  *jose.JSONWebKeySet `json:"client_jwks,omitempty"`
	ClientKeyID string              `json:"client_key_id,omitempty"`
	// ClientCertificate is a certificate (PEM) for the same key, for IdPs
	// that register certificates rather than keys (Entra ID): supplied, or
	// self-signed by Gatehouse. Assertions name it in x5t and x5t#S256.
	ClientCertificate string `json:"client_certificate,omitempty"`
}

// Secrets are the sealed settings.
type Secrets struct {
	ClientSecret string `json:"client_secret,omitempty"`
	// PrivateKey is the private_key_jwt signing key, PKCS#8 PEM.
	PrivateKey string `json:"private_key,omitempty"`
}

// DefaultScopes are requested when none are configured.
var DefaultScopes = []string{"openid", "email", "profile"}

// DefaultAlgs is the ID token signature allow-list when none is configured:
// asymmetric algorithms only.
var DefaultAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}

var hmacAlgs = []string{"HS256", "HS384", "HS512"}

func hmacBits(alg string) int {
	switch alg {
	case "HS384":
		return 384
	case "HS512":
		return 512
	}
	return 256
}

// preset fills the defaults of a well-known provider.
type preset struct {
	issuer string // default issuer, "" when the tenant must give theirs
	hint   string // what the issuer looks like, for errors
	params map[string]string
}

var presets = map[string]preset{
	"google": {issuer: "https://accounts.google.com"},
	// Entra ID: the "organizations" endpoint accepts any work account; its
	// discovery document names the issuer template
	// https://login.microsoftonline.com/{tenantid}/v2.0, checked against
	// each token's tid. A single-tenant connection gives its own issuer.
	"entra":    {issuer: "https://login.microsoftonline.com/organizations/v2.0"},
	"okta":     {hint: "https://{your-org}.okta.com or https://{your-org}.okta.com/oauth2/default"},
	"auth0":    {hint: "https://{tenant}.{region}.auth0.com/ (with the trailing slash)"},
	"keycloak": {hint: "https://{host}/realms/{realm}"},
}

// Presets lists the preset names.
func Presets() []string {
	out := make([]string, 0, len(presets))
	for k := range presets {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// reservedParams are set by the flow itself; auth_params may not override
// them (a response_mode=form_post or a foreign redirect_uri would break the
// callback's checks).
var reservedParams = []string{"client_id", "redirect_uri", "response_type", "response_mode", "scope",
	"state", "nonce", "code_challenge", "code_challenge_method", "request", "request_uri", "login_hint", "client_secret"}

// anyURLPolicy checks URL syntax and the https rule only; the destination
// is checked by the outbound client when it connects.
var anyURLPolicy = outbound.Policy{AllowLoopback: true, Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}

func parseConfig(raw json.RawMessage) (*Config, error) {
	cfg := &Config{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, cfg); err != nil {
			return nil, fmt.Errorf("oidc: stored config: %w", err)
		}
	}
	return cfg, nil
}

func parseSecrets(raw json.RawMessage) (*Secrets, error) {
	s := &Secrets{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, s); err != nil {
			return nil, fmt.Errorf("oidc: stored secrets: %w", err)
		}
	}
	return s, nil
}

// applyInput decodes the request's protocol fields over cfg and sec.
func applyInput(cfg *Config, sec *Secrets, in map[string]json.RawMessage) error {
	return DecodeInput("an OpenID Connect", map[string]any{
		"preset": &cfg.Preset, "issuer": &cfg.Issuer, "client_id": &cfg.ClientID, "scopes": &cfg.Scopes,
		"token_endpoint_auth_method": &cfg.TokenEndpointAuthMethod, "auth_params": &cfg.AuthParams,
		"allowed_algs": &cfg.AllowedAlgs, "userinfo": &cfg.UserInfo, "trusted_audiences": &cfg.TrustedAudiences,
		"allowed_tenant_ids": &cfg.AllowedTenantIDs, "client_certificate": &cfg.ClientCertificate,
		"hosted_domains": &cfg.HostedDomains,
		"client_secret":  &sec.ClientSecret, "private_key": &sec.PrivateKey,
	}, in)
}

// DecodeInput decodes each field of in into its target. Unknown fields are
// refused, so a typo does not silently do nothing; null leaves a field as
// it was. kind names the connection type in messages ("an OAuth 2.0").
func DecodeInput(kind string, targets map[string]any, in map[string]json.RawMessage) error {
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst, ok := targets[k]
		if !ok {
			return gatehouse.FieldError(k, "Unknown field %q for %s connection.", k, kind)
		}
		v := in[k]
		if string(v) == "null" {
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return &gatehouse.Error{Code: gatehouse.EINVALID, Field: k, Message: fmt.Sprintf("The field %s has the wrong type.", k), Err: err}
		}
	}
	return nil
}

// CheckEndpoint validates a configured endpoint URL: absolute, https
// unless on loopback, no credentials. Where it leads is checked by the
// outbound client when it connects.
func CheckEndpoint(field, u string) error {
	if u == "" {
		return gatehouse.FieldError(field, "The %s is required.", field)
	}
	if err := outbound.CheckURL(u, anyURLPolicy); err != nil {
		return &gatehouse.Error{Code: gatehouse.EINVALID, Field: field, Message: fmt.Sprintf("The %s must be an https URL: %s", field, err.Error()), Err: err}
	}
	return nil
}

// configure validates and completes a connection's configuration; it
// fetches the discovery document to prove the issuer answers.
func (t *oidcType) configure(ctx context.Context, env connector.Env, c *gatehouse.Connection, oldSecrets json.RawMessage, in map[string]json.RawMessage) (json.RawMessage, json.RawMessage, error) {
	cfg, err := parseConfig(c.Config)
	if err != nil {
		return nil, nil, err
	}
	sec, err := parseSecrets(oldSecrets)
	if err != nil {
		return nil, nil, err
	}
	// The key and certificate are replaced only when the request gives
	// them; the stored ones are kept if they still fit.
	old := keyPair{key: sec.PrivateKey, cert: cfg.ClientCertificate}
	sec.PrivateKey, cfg.ClientCertificate = "", ""
	if err := applyInput(cfg, sec, in); err != nil {
		return nil, nil, err
	}
	if err := cfg.complete(sec, old, Env(env).Clock.Now()); err != nil {
		return nil, nil, err
	}
	md, err := t.cache.discover(ctx, Env(env), cfg, true)
	if err != nil {
		return nil, nil, &gatehouse.Error{Code: gatehouse.EINVALID, Field: "issuer",
			Message: fmt.Sprintf("Could not read the OpenID configuration of issuer %s: %s", cfg.Issuer, err.Error()), Err: err}
	}
	if len(md.AuthMethods) > 0 && !slices.Contains(md.AuthMethods, cfg.TokenEndpointAuthMethod) {
		return nil, nil, gatehouse.FieldError("token_endpoint_auth_method",
			"The issuer does not support %s; it supports %s.", cfg.TokenEndpointAuthMethod, strings.Join(md.AuthMethods, ", "))
	}
	if cfg.UserInfo == UserInfoAlways && md.UserInfoEndpoint == "" {
		return nil, nil, gatehouse.FieldError("userinfo", "The issuer has no userinfo endpoint.")
	}
	outCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	outSec, err := json.Marshal(sec)
	if err != nil {
		return nil, nil, err
	}
	return outCfg, outSec, nil
}

// keyPair is the stored private_key_jwt key and certificate (PEM).
type keyPair struct{ key, cert string }

// complete fills defaults and validates everything that needs no network.
func (cfg *Config) complete(sec *Secrets, old keyPair, now time.Time) error {
	cfg.Preset = strings.ToLower(strings.TrimSpace(cfg.Preset))
	var ps preset
	if cfg.Preset != "" {
		var ok bool
		if ps, ok = presets[cfg.Preset]; !ok {
			return gatehouse.FieldError("preset", "Unknown preset %q; known presets: %s.", cfg.Preset, strings.Join(Presets(), ", "))
		}
	}
	cfg.Issuer = strings.TrimSpace(cfg.Issuer)
	if cfg.Issuer == "" {
		cfg.Issuer = ps.issuer
	}
	if cfg.Issuer == "" {
		if ps.hint != "" {
			return gatehouse.FieldError("issuer", "The issuer is required, e.g. %s.", ps.hint)
		}
		return gatehouse.FieldError("issuer", "The issuer is required.")
	}
	if err := CheckEndpoint("issuer", cfg.Issuer); err != nil {
		return err
	}
	if u, _ := url.Parse(cfg.Issuer); u.RawQuery != "" || u.Fragment != "" {
		// OIDC Discovery §2: no query or fragment components.
		return gatehouse.FieldError("issuer", "The issuer must not have a query or fragment.")
	}
	cfg.ClientID = strings.TrimSpace(cfg.ClientID)
	if cfg.ClientID == "" {
		return gatehouse.FieldError("client_id", "The client ID is required.")
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = slices.Clone(DefaultScopes)
	}
	for _, s := range cfg.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			return gatehouse.FieldError("scopes", "Scope %q is not a valid scope token.", s)
		}
	}
	if !slices.Contains(cfg.Scopes, "openid") {
		return gatehouse.FieldError("scopes", "The scopes must include openid.")
	}
	for k := range cfg.AuthParams {
		if slices.Contains(reservedParams, k) {
			return gatehouse.FieldError("auth_params", "The parameter %s is set by Gatehouse and cannot be configured.", k)
		}
	}
	if cfg.TokenEndpointAuthMethod == "" {
		cfg.TokenEndpointAuthMethod = AuthBasic
	}
	switch cfg.TokenEndpointAuthMethod {
	case AuthBasic, AuthPost:
		if sec.ClientSecret == "" {
			return gatehouse.FieldError("client_secret", "The client secret is required for %s.", cfg.TokenEndpointAuthMethod)
		}
		cfg.ClientJWKS, cfg.ClientKeyID, cfg.ClientCertificate, sec.PrivateKey = nil, "", "", ""
	case AuthPrivateKeyJWT:
		if sec.PrivateKey == "" {
			sec.PrivateKey = old.key
		}
		if sec.PrivateKey == "" {
			pemKey, err := generateKey()
			if err != nil {
				return err
			}
			sec.PrivateKey = pemKey
		}
		key, err := parsePrivateKey(sec.PrivateKey)
		if err != nil {
			return &gatehouse.Error{Code: gatehouse.EINVALID, Field: "private_key", Message: "The private key must be an RSA (2048 bits or more) or ECDSA P-256/P-384 key in PEM form.", Err: err}
		}
		if err := cfg.certificate(key, old.cert, now); err != nil {
			return err
		}
		if cfg.ClientJWKS, cfg.ClientKeyID, err = publicJWKS(key); err != nil {
			return err
		}
	default:
		return gatehouse.FieldError("token_endpoint_auth_method", "Unknown method %q; use client_secret_basic, client_secret_post or private_key_jwt.", cfg.TokenEndpointAuthMethod)
	}
	if len(cfg.AllowedAlgs) == 0 {
		cfg.AllowedAlgs = slices.Clone(DefaultAlgs)
	}
	for _, a := range cfg.AllowedAlgs {
		switch {
		case slices.Contains(DefaultAlgs, a):
		case slices.Contains(hmacAlgs, a):
			if sec.ClientSecret == "" {
				return gatehouse.FieldError("allowed_algs", "%s ID tokens are keyed with the client secret, and this connection has none.", a)
			}
			// RFC 7518 §3.2: the key must be at least as long as the hash.
			if bits := 8 * len(sec.ClientSecret); bits < hmacBits(a) {
				return gatehouse.FieldError("allowed_algs", "%s needs a client secret of at least %d bytes; this one has %d.", a, hmacBits(a)/8, bits/8)
			}
		case strings.EqualFold(a, "none"):
			return gatehouse.FieldError("allowed_algs", "Unsigned ID tokens (alg none) are never accepted.")
		default:
			return gatehouse.FieldError("allowed_algs", "Unknown signature algorithm %q.", a)
		}
	}
	switch cfg.UserInfo {
	case "":
		cfg.UserInfo = UserInfoAuto
	case UserInfoAuto, UserInfoAlways, UserInfoNever:
	default:
		return gatehouse.FieldError("userinfo", "userinfo must be auto, always or never.")
	}
	if len(cfg.AllowedTenantIDs) > 0 && cfg.Preset != "entra" {
		return gatehouse.FieldError("allowed_tenant_ids", "allowed_tenant_ids applies to the entra preset only.")
	}
	if len(cfg.HostedDomains) > 0 && cfg.Preset != "google" {
		return gatehouse.FieldError("hosted_domains", "hosted_domains applies to the google preset only.")
	}
	for i, d := range cfg.HostedDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" || strings.ContainsAny(d, " @/") {
			return gatehouse.FieldError("hosted_domains", "%q is not a domain name.", cfg.HostedDomains[i])
		}
		cfg.HostedDomains[i] = d
	}
	if len(cfg.HostedDomains) == 1 && cfg.AuthParams["hd"] == "" {
		// Let Google's picker offer only that domain's accounts.
		if cfg.AuthParams == nil {
			cfg.AuthParams = map[string]string{}
		}
		cfg.AuthParams["hd"] = cfg.HostedDomains[0]
	}
	return nil
}

// Key handling for private_key_jwt (RFC 7523 §2.2, OIDC Core §9).

func generateKey() (string, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

func parsePrivateKey(p string) (crypto.Signer, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, fmt.Errorf("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits", k.N.BitLen())
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("unsupported curve %s", k.Curve.Params().Name)
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", key)
}

// certificate checks a supplied certificate against key, or keeps the
// stored one if it still matches, or makes a self-signed one.
func (cfg *Config) certificate(key crypto.Signer, stored string, now time.Time) error {
	if cfg.ClientCertificate != "" {
		c, err := parseCertificate(cfg.ClientCertificate)
		if err != nil || !publicKeyEqual(c.PublicKey, key.Public()) {
			return &gatehouse.Error{Code: gatehouse.EINVALID, Field: "client_certificate",
				Message: "The client certificate must be one PEM certificate for the connection's private key.", Err: err}
		}
		return nil
	}
	if c, err := parseCertificate(stored); err == nil && publicKeyEqual(c.PublicKey, key.Public()) {
		cfg.ClientCertificate = stored
		return nil
	}
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(randomBytes(16)),
		Subject:      pkix.Name{CommonName: "Gatehouse client " + cfg.ClientID},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(3, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	cfg.ClientCertificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return nil
}

func parseCertificate(p string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(p))
	if block == nil || block.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) > 0 {
		return nil, fmt.Errorf("want exactly one PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("oidc: crypto/rand: " + err.Error())
	}
	return b
}

// certThumbprints returns the x5t (SHA-1) and x5t#S256 values of a
// certificate (RFC 7515 §4.1.7-8).
func certThumbprints(p string) (x5t, x5tS256 string, err error) {
	c, err := parseCertificate(p)
	if err != nil {
		return "", "", err
	}
	s1 := sha1.Sum(c.Raw)
	s256 := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(s1[:]), base64.RawURLEncoding.EncodeToString(s256[:]), nil
}

func signingAlg(k crypto.Signer) jose.SignatureAlgorithm {
	if ec, ok := k.(*ecdsa.PrivateKey); ok {
		if ec.Curve == elliptic.P384() {
			return jose.ES384
		}
		return jose.ES256
	}
	return jose.RS256
}

func publicJWKS(k crypto.Signer) (*jose.JSONWebKeySet, string, error) {
	jwk := jose.JSONWebKey{Key: k.Public(), Use: "sig", Algorithm: string(signingAlg(k))}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, "", err
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}}, jwk.KeyID, nil
}

// redirectURI is the connection's own callback. Each connection has its
// own, so a code issued for one IdP cannot be replayed into another's flow
// (mix-up, RFC 9207 §1).
func redirectURI(env connector.Env, c *gatehouse.Connection) string {
	return env.PublicURL + "/sso/oidc/" + url.PathEscape(c.ID) + "/callback"
}

func describe(env connector.Env, c *gatehouse.Connection) map[string]any {
	out := map[string]any{"redirect_uri": redirectURI(env, c)}
	cfg, err := parseConfig(c.Config)
	if err != nil {
		return out
	}
	out["issuer"] = cfg.Issuer
	out["client_id"] = cfg.ClientID
	out["scopes"] = cfg.Scopes
	out["token_endpoint_auth_method"] = cfg.TokenEndpointAuthMethod
	out["allowed_algs"] = cfg.AllowedAlgs
	out["userinfo"] = cfg.UserInfo
	if cfg.Preset != "" {
		out["preset"] = cfg.Preset
	}
	if len(cfg.AuthParams) > 0 {
		out["auth_params"] = cfg.AuthParams
	}
	if len(cfg.TrustedAudiences) > 0 {
		out["trusted_audiences"] = cfg.TrustedAudiences
	}
	if len(cfg.AllowedTenantIDs) > 0 {
		out["allowed_tenant_ids"] = cfg.AllowedTenantIDs
	}
	if len(cfg.HostedDomains) > 0 {
		out["hosted_domains"] = cfg.HostedDomains
	}
	if cfg.ClientJWKS != nil {
		out["client_jwks"] = cfg.ClientJWKS
		out["client_key_id"] = cfg.ClientKeyID
		out["client_certificate"] = cfg.ClientCertificate
	}
	return out
}
