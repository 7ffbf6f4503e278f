package loadtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// IdP is the upstream OpenID provider of the OIDC scenarios: as fast as a
// real provider can be, so the figures are the broker's. Its authorize
// endpoint signs the user in without a form: the login_hint is the email
// (and the subject is derived from it); with no login_hint (a broker that
// does not pass it on) every authorize request is a new user. ID tokens
// are ES256.
type IdP struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// Domain of the fresh users made when no login_hint arrives.
	Domain string

	key    *ecdsa.PrivateKey
	signer jose.Signer
	jwks   []byte
	grants sync.Map // code -> *idpGrant
	tokens sync.Map // access token -> claims
	fresh  atomic.Int64
	srv    *http.Server
	ln     net.Listener
}

type idpGrant struct {
	claims    map[string]any
	challenge string
	redirect  string
	expires   time.Time
}

// StartIdP listens on addr ("127.0.0.1:0" for any port; "localhost:0" for
// an issuer named http://localhost:PORT).
func StartIdP(addr, clientID, clientSecret, domain string) (*IdP, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	// A host name in addr stays in the issuer (the socket is bound to
	// what it resolves to): some relying parties allow plain HTTP only to
	// "localhost" (openid-client, hence Ory Polis).
	hostPort := ln.Addr().String()
	if h, _, err := net.SplitHostPort(addr); err == nil && h != "" && net.ParseIP(h) == nil {
		_, port, _ := net.SplitHostPort(hostPort)
		hostPort = net.JoinHostPort(h, port)
	}
	p := &IdP{Issuer: "http://" + hostPort, ClientID: clientID, ClientSecret: clientSecret, Domain: domain, key: key, ln: ln}
	p.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "bench-es256"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	p.jwks, _ = json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "bench-es256", Algorithm: "ES256", Use: "sig"}}})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(p.jwks)
	})
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("GET /userinfo", p.userinfo)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Close stops the IdP.
func (p *IdP) Close() { _ = p.srv.Close() }

func (p *IdP) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSONResp(w, 200, map[string]any{
		"issuer":                                p.Issuer,
		"authorization_endpoint":                p.Issuer + "/authorize",
		"token_endpoint":                        p.Issuer + "/token",
		"userinfo_endpoint":                     p.Issuer + "/userinfo",
		"jwks_uri":                              p.Issuer + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":      []string{"S256"},
		"claims_supported":                      []string{"sub", "email", "email_verified", "name", "given_name", "family_name"},
	})
}

func writeJSONResp(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// UserClaims are the claims of the user with this email.
func UserClaims(email string) map[string]any {
	local, _, _ := strings.Cut(email, "@")
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	return map[string]any{
		"sub": "u" + hex.EncodeToString(sum[:10]), "email": email, "email_verified": true,
		"name": "Bench " + local, "given_name": "Bench", "family_name": local,
	}
}

func (p *IdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != p.ClientID || q.Get("response_type") != "code" {
		http.Error(w, "unknown client or response_type", http.StatusBadRequest)
		return
	}
	redirect := q.Get("redirect_uri")
	ru, err := url.Parse(redirect)
	if err != nil || redirect == "" {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	email := q.Get("login_hint")
	if email == "" {
		email = fmt.Sprintf("fresh-%d-%s@%s", p.fresh.Add(1), randHex(3), p.Domain)
	}
	claims := UserClaims(email)
	if n := q.Get("nonce"); n != "" {
		claims["nonce"] = n
	}
	code := randHex(16)
	p.grants.Store(code, &idpGrant{claims: claims, challenge: q.Get("code_challenge"), redirect: redirect, expires: time.Now().Add(time.Minute)})
	v := ru.Query()
	v.Set("code", code)
	if s := q.Get("state"); s != "" {
		v.Set("state", s)
	}
	v.Set("iss", p.Issuer) // RFC 9207
	ru.RawQuery = v.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

func (p *IdP) clientOK(r *http.Request) bool {
	id, sec, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		sec, _ = url.QueryUnescape(sec)
	} else {
		id, sec = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	return id == p.ClientID && subtle.ConstantTimeCompare([]byte(sec), []byte(p.ClientSecret)) == 1
}

func (p *IdP) token(w http.ResponseWriter, r *http.Request) {
	if !p.clientOK(r) {
		writeJSONResp(w, 401, map[string]string{"error": "invalid_client"})
		return
	}
	v, ok := p.grants.LoadAndDelete(r.PostFormValue("code"))
	if !ok || r.PostFormValue("grant_type") != "authorization_code" {
		writeJSONResp(w, 400, map[string]string{"error": "invalid_grant"})
		return
	}
	g := v.(*idpGrant)
	if time.Now().After(g.expires) || r.PostFormValue("redirect_uri") != g.redirect {
		writeJSONResp(w, 400, map[string]string{"error": "invalid_grant"})
		return
	}
	if g.challenge != "" {
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			writeJSONResp(w, 400, map[string]string{"error": "invalid_grant", "error_description": "PKCE"})
			return
		}
	}
	now := time.Now()
	claims := map[string]any{"iss": p.Issuer, "aud": p.ClientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	for k, v := range g.claims {
		claims[k] = v
	}
	payload, _ := json.Marshal(claims)
	jws, err := p.signer.Sign(payload)
	if err != nil {
		writeJSONResp(w, 500, map[string]string{"error": "server_error"})
		return
	}
	idt, _ := jws.CompactSerialize()
	at := randHex(16)
	p.tokens.Store(at, g.claims)
	writeJSONResp(w, 200, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 300, "id_token": idt})
}

func (p *IdP) userinfo(w http.ResponseWriter, r *http.Request) {
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	v, found := p.tokens.Load(at)
	if !ok || !found {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(401)
		return
	}
	c := map[string]any{}
	for k, val := range v.(map[string]any) {
		if k != "nonce" {
			c[k] = val
		}
	}
	writeJSONResp(w, 200, c)
}
