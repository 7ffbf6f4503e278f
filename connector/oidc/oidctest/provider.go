// Package oidctest is an in-process OpenID provider for tests that can also
// forge: it signs with its own keys and, on request, issues ID tokens with a
// tampered signature, wrong claims, alg none, HS256 keyed with its public
// key, an unknown key id, or a userinfo answer for another subject.
//
// It implements discovery, JWKS, authorization (no login page: the user is
// whoever Provider.Claims describes), token (client_secret_basic,
// client_secret_post and private_key_jwt, with PKCE S256 checked) and
// userinfo endpoints.
package oidctest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
)

// Forge changes the next ID token (and userinfo answer) the provider issues.
type Forge struct {
	// Claims edits the ID token claims after the defaults are set.
	Claims func(c map[string]any)
	// Alg: "" signs normally; "none" sends an unsigned token;
	// "HS256-pubkey" signs HS256 keyed with the PEM of the provider's
	// public key (the algorithm-confusion attack); "HS256-secret" signs
	// HS256 with the client secret (legitimate when the RP allows it).
	Alg string
	// TamperSignature flips a bit of the signature.
	TamperSignature bool
	// UnknownKey signs with a key that is not in the JWKS (with its own kid).
	UnknownKey bool
	// UserInfo edits the userinfo answer.
	UserInfo func(c map[string]any)
}

// Key is a signing key.
type Key struct {
	ID     string
	Alg    jose.SignatureAlgorithm
	Signer crypto.Signer
}

var (
	sharedOnce sync.Once
	sharedKey  *Key
)

// SharedKey is one RS256 key reused by every provider of a test binary
// (2048-bit RSA generation is slow).
func SharedKey() *Key {
	sharedOnce.Do(func() { sharedKey = NewKey("k1", jose.RS256) })
	return sharedKey
}

// NewKey makes an RSA (RS256) or ECDSA (ES256) key.
func NewKey(id string, alg jose.SignatureAlgorithm) *Key {
	var s crypto.Signer
	var err error
	if alg == jose.ES256 {
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		panic(err)
	}
	return &Key{ID: id, Alg: alg, Signer: s}
}

type grant struct {
	clientID, redirectURI, nonce, challenge string
	claims                                  map[string]any
	userinfo                                map[string]any
	forge                                   Forge
}

// Provider is the test OpenID provider.
type Provider struct {
	Server *httptest.Server
	// Issuer is what discovery and tokens name; the server URL by default.
	Issuer string
	Clock  gatehouse.Clock

	mu           sync.Mutex
	ClientID     string
	ClientSecret string
	// ClientJWKS verifies private_key_jwt assertions when set.
	ClientJWKS *jose.JSONWebKeySet
	// Claims are the user's claims for the next login (sub, email...).
	Claims map[string]any
	// UserInfoClaims, when set, are served by userinfo (else Claims).
	UserInfoClaims map[string]any
	// Next is applied to the next token issued, then cleared.
	Next Forge
	// IssParameter advertises and sends RFC 9207 iss; IssValue overrides
	// the value sent ("" sends the issuer; "-" sends none).
	IssParameter bool
	IssValue     string
	// ErrorResponse makes the authorization endpoint answer with this
	// error code instead of a code.
	ErrorResponse string
	// Metadata edits the discovery document.
	Metadata func(m map[string]any)
	// Down makes discovery answer 503.
	Down bool
	// Delay makes discovery answer only after this long (a slow IdP).
	Delay time.Duration
	// DiscoveryHits counts discovery requests.
	DiscoveryHits int

	keys       []*Key // published; keys[0] signs
	grants     map[string]*grant
	tokens     map[string]map[string]any // access token → userinfo
	JWKSHits   int
	LastAuthed url.Values // the last authorization request's parameters
	// LastAssertion is the last private_key_jwt client assertion received.
	LastAssertion string
}

// New starts a provider whose users log in with claims; stop it with Close.
func New(clock gatehouse.Clock, clientID, clientSecret string) *Provider {
	p := &Provider{
		Clock: clock, ClientID: clientID, ClientSecret: clientSecret,
		keys:   []*Key{SharedKey()},
		grants: map[string]*grant{}, tokens: map[string]map[string]any{},
		Claims: map[string]any{"sub": "user-1", "email": "ada@example.com", "email_verified": true, "name": "Ada Lovelace"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", p.authorize)
	mux.HandleFunc("/token", p.token)
	mux.HandleFunc("/userinfo", p.userinfo)
	mux.HandleFunc("/jwks", p.jwks)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
			p.discovery(w, r)
			return
		}
		http.NotFound(w, r)
	})
	p.Server = httptest.NewServer(mux)
	p.Issuer = p.Server.URL
	return p
}

// Close stops the server.
func (p *Provider) Close() { p.Server.Close() }

// Rotate publishes a new signing key first (keeping the old one when keep).
func (p *Provider) Rotate(k *Key, keep bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if keep {
		p.keys = append([]*Key{k}, p.keys...)
	} else {
		p.keys = []*Key{k}
	}
}

// SetNext sets the forgery for the next token.
func (p *Provider) SetNext(f Forge) {
	p.mu.Lock()
	p.Next = f
	p.mu.Unlock()
}

// Do runs fn under the provider's lock (to edit its fields mid-test).
func (p *Provider) Do(fn func(p *Provider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p)
}

// Hits returns how many times the JWKS was fetched.
func (p *Provider) Hits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.JWKSHits
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	delay := p.Delay
	p.mu.Unlock()
	if delay > 0 {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(delay):
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.DiscoveryHits++
	if p.Down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	base := p.Server.URL
	m := map[string]any{
		"issuer":                                p.Issuer,
		"authorization_endpoint":                base + "/authorize",
		"token_endpoint":                        base + "/token",
		"userinfo_endpoint":                     base + "/userinfo",
		"jwks_uri":                              base + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"code_challenge_methods_supported":      []string{"S256"},
	}
	if p.IssParameter {
		m["authorization_response_iss_parameter_supported"] = true
	}
	if p.Metadata != nil {
		p.Metadata(m)
	}
	writeJSON(w, 200, m)
}

func (p *Provider) jwks(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.JWKSHits++
	set := jose.JSONWebKeySet{}
	for _, k := range p.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Signer.Public(), KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig"})
	}
	writeJSON(w, 200, set)
}

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := r.URL.Query()
	p.LastAuthed = q
	redirect := q.Get("redirect_uri")
	if q.Get("client_id") != p.ClientID || redirect == "" || q.Get("response_type") != "code" {
		http.Error(w, "bad authorization request", 400)
		return
	}
	out := url.Values{"state": {q.Get("state")}}
	switch {
	case p.IssValue == "-":
	case p.IssValue != "":
		out.Set("iss", p.IssValue)
	case p.IssParameter:
		out.Set("iss", p.Issuer)
	}
	if p.ErrorResponse != "" {
		out.Set("error", p.ErrorResponse)
		out.Set("error_description", "<script>alert(1)</script> the user said no")
	} else {
		if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
			http.Error(w, "PKCE S256 required", 400)
			return
		}
		code := rand.Text()
		p.grants[code] = &grant{clientID: q.Get("client_id"), redirectURI: redirect, nonce: q.Get("nonce"),
			challenge: q.Get("code_challenge"), claims: maps.Clone(p.Claims), userinfo: maps.Clone(p.UserInfoClaims), forge: p.Next}
		p.Next = Forge{}
		out.Set("code", code)
	}
	http.Redirect(w, r, redirect+"?"+out.Encode(), http.StatusFound)
}

func tokenError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": code + " (test provider)"})
}

// authenticate checks the client per the method it used.
func (p *Provider) authenticate(r *http.Request) bool {
	if id, sec, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(id)
		sec, _ = url.QueryUnescape(sec)
		return id == p.ClientID && subtle.ConstantTimeCompare([]byte(sec), []byte(p.ClientSecret)) == 1
	}
	if r.PostForm.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		p.LastAssertion = r.PostForm.Get("client_assertion")
		if p.ClientJWKS == nil {
			return false
		}
		tok, err := jwt.ParseSigned(r.PostForm.Get("client_assertion"), []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.ES384})
		if err != nil {
			return false
		}
		var c jwt.Claims
		if err := tok.Claims(p.ClientJWKS.Keys[0].Key, &c); err != nil {
			return false
		}
		err = c.ValidateWithLeeway(jwt.Expected{Issuer: p.ClientID, Subject: p.ClientID,
			AnyAudience: jwt.Audience{p.Server.URL + "/token"}, Time: p.Clock.Now()}, time.Minute)
		return err == nil && c.ID != ""
	}
	return r.PostForm.Get("client_id") == p.ClientID &&
		subtle.ConstantTimeCompare([]byte(r.PostForm.Get("client_secret")), []byte(p.ClientSecret)) == 1
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		tokenError(w, 400, "invalid_request")
		return
	}
	if !p.authenticate(r) {
		tokenError(w, 401, "invalid_client")
		return
	}
	code := r.PostForm.Get("code")
	g := p.grants[code]
	delete(p.grants, code)
	if g == nil || r.PostForm.Get("redirect_uri") != g.redirectURI {
		tokenError(w, 400, "invalid_grant")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		tokenError(w, 400, "invalid_grant")
		return
	}
	now := p.Clock.Now()
	claims := maps.Clone(g.claims)
	claims["iss"] = p.Issuer
	claims["aud"] = p.ClientID
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(5 * time.Minute).Unix()
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	if g.forge.Claims != nil {
		g.forge.Claims(claims)
	}
	idToken, err := p.sign(claims, g.forge)
	if err != nil {
		tokenError(w, 500, "server_error")
		return
	}
	access := rand.Text()
	ui := g.userinfo
	if ui == nil {
		ui = maps.Clone(g.claims)
	}
	if g.forge.UserInfo != nil {
		g.forge.UserInfo(ui)
	}
	p.tokens[access] = ui
	writeJSON(w, 200, map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 300, "id_token": idToken})
}

func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ui, ok := p.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(401)
		return
	}
	writeJSON(w, 200, ui)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sign makes the compact JWS of claims, honouring the forgery.
func (p *Provider) sign(claims map[string]any, f Forge) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	key := p.keys[0]
	switch f.Alg {
	case "none":
		return b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64(payload) + ".", nil
	case "HS256-pubkey", "HS256-secret":
		var secret []byte
		if f.Alg == "HS256-secret" {
			secret = []byte(p.ClientSecret)
		} else {
			der, err := x509.MarshalPKIXPublicKey(key.Signer.Public())
			if err != nil {
				return "", err
			}
			secret = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		}
		head := b64([]byte(fmt.Sprintf(`{"alg":"HS256","kid":%q,"typ":"JWT"}`, key.ID)))
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(head + "." + b64(payload)))
		return head + "." + b64(payload) + "." + b64(mac.Sum(nil)), nil
	}
	if f.UnknownKey {
		key = NewKey("unknown-kid", jose.ES256)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.Alg, Key: jose.JSONWebKey{Key: key.Signer, KeyID: key.ID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		return "", err
	}
	if f.TamperSignature {
		parts := strings.Split(s, ".")
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sig[len(sig)/2] ^= 1
		parts[2] = b64(sig)
		s = strings.Join(parts, ".")
	}
	return s, nil
}

// Configure runs typ's Configure with the fields in over conn (old secrets
// sec), stores the new config in conn and opens the connection.
func Configure(typ *connector.Type, env connector.Env, conn *gatehouse.Connection, sec json.RawMessage, in map[string]any) (connector.Connector, json.RawMessage, error) {
	cfg, sec, err := typ.Configure(context.Background(), env, conn, sec, Fields(in))
	if err != nil {
		return nil, nil, err
	}
	conn.Config = cfg
	c, err := typ.Open(context.Background(), env, conn, sec)
	return c, sec, err
}

// Fields encodes a connection request's protocol fields as Configure takes
// them.
func Fields(in map[string]any) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for k, v := range in {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		out[k] = b
	}
	return out
}
