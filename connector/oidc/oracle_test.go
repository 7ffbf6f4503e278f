package oidc

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// The oracle of the differential tests (idtoken_test.go): the ID token
// check as it ran before idtoken.go, go-oidc's verifier plus the rules it
// leaves to the caller, kept word for word.

// verifyGoOIDC is the ID token check as it was before idtoken.go: go-oidc's
// verifier plus the rules it leaves to the caller. It is the oracle of the
// differential tests.
func (k *conn) verifyGoOIDC(ctx context.Context, md *Metadata, raw, nonce string) (*gooidc.IDToken, map[string]any, error) {
	fail := func(format string, args ...any) error {
		return Refuse(ReasonIDToken, idTokenMessage, fmt.Errorf("id token: "+format, args...))
	}
	now := k.env.Clock.Now()
	v := gooidc.NewVerifier(md.Issuer, &oracleKeys{k: k, md: md}, &gooidc.Config{
		ClientID:             k.cfg.ClientID,
		SupportedSigningAlgs: k.cfg.AllowedAlgs,
		// The template issuer is checked below, once tid is known.
		SkipIssuerCheck: md.Template(),
		// go-oidc compares exp with Now exactly; move Now back by the
		// skew so a token expiring a moment ago on a fast IdP clock passes.
		Now: func() time.Time { return now.Add(-ClockSkew) },
	})
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		var exp *gooidc.TokenExpiredError
		if errors.As(err, &exp) {
			return nil, nil, fail("expired at %s (now %s)", exp.Expiry.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		return nil, nil, fail("%v", err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, nil, fail("claims: %v", err)
	}
	// Step 2 for Entra ID's multi-tenant template: the issuer must be the
	// template completed with the token's own tid.
	if md.Template() {
		tid, _ := claims["tid"].(string)
		if tid == "" || strings.ContainsAny(tid, "/?#") {
			return nil, nil, fail("no usable tid claim for the templated issuer")
		}
		if want := strings.Replace(md.Issuer, tenantTemplate, tid, 1); idt.Issuer != want {
			return nil, nil, fail("issued by %q, want %q", idt.Issuer, want)
		}
	}
	if tids := k.cfg.AllowedTenantIDs; len(tids) > 0 {
		if tid, _ := claims["tid"].(string); !slices.Contains(tids, tid) {
			return nil, nil, fail("directory (tid) %q is not in allowed_tenant_ids", tid)
		}
	}
	// Step 3: every audience must be us or one we trust.
	for _, a := range idt.Audience {
		if a != k.cfg.ClientID && !slices.Contains(k.cfg.TrustedAudiences, a) {
			return nil, nil, fail("untrusted audience %q", a)
		}
	}
	// Steps 4-5: with several audiences azp must be present; when present
	// it must be our client id.
	azp, hasAZP := claims["azp"].(string)
	if len(idt.Audience) > 1 && !hasAZP {
		return nil, nil, fail("several audiences %q and no azp", idt.Audience)
	}
	if _, present := claims["azp"]; present && azp != k.cfg.ClientID {
		return nil, nil, fail("azp %q is not our client id", claims["azp"])
	}
	// Step 10: iat is required; one in the future means a wrong clock or
	// a forged token.
	if idt.IssuedAt.IsZero() {
		return nil, nil, fail("no iat")
	}
	if idt.IssuedAt.After(now.Add(ClockSkew)) {
		return nil, nil, fail("issued in the future (iat %s, now %s)", idt.IssuedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	// Step 11: the nonce sent in Begin.
	if nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, nil, fail("nonce mismatch (present=%v)", idt.Nonce != "")
	}
	if idt.Subject == "" {
		return nil, nil, fail("no sub")
	}
	return idt, claims, nil
}

// oracleKeys gives go-oidc the key for one token: the client secret for
// an allowed HMAC algorithm, otherwise a public key from the provider's key
// set (never the reverse: an HS256 token "signed" with a public key is
// refused).
type oracleKeys struct {
	k  *conn
	md *Metadata
}

func (vk *oracleKeys) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	algs := make([]jose.SignatureAlgorithm, 0, len(vk.k.cfg.AllowedAlgs))
	for _, a := range vk.k.cfg.AllowedAlgs {
		algs = append(algs, jose.SignatureAlgorithm(a))
	}
	jws, err := jose.ParseSigned(raw, algs)
	if err != nil {
		return nil, err
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	h := jws.Signatures[0].Header
	if slices.Contains(hmacAlgs, h.Algorithm) {
		// OIDC Core §10.1: the key is the octets of the client secret.
		if vk.k.sec.ClientSecret == "" {
			return nil, errors.New("HMAC-signed token and no client secret")
		}
		return jws.Verify([]byte(vk.k.sec.ClientSecret))
	}
	ks := vk.k.t.cache.keySet(vk.md.JWKSURI)
	keys, err := ks.get(ctx, vk.k.env, false)
	if err != nil {
		return nil, fmt.Errorf("key set %s: %w", vk.md.JWKSURI, err)
	}
	cands := candidates(keys, h.KeyID, h.Algorithm)
	if len(cands) == 0 {
		// An unknown kid: the provider may have rotated its keys.
		if keys, err = ks.get(ctx, vk.k.env, true); err != nil {
			return nil, fmt.Errorf("key set %s: %w", vk.md.JWKSURI, err)
		}
		cands = candidates(keys, h.KeyID, h.Algorithm)
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("no key with kid %q for %s in the provider's key set", h.KeyID, h.Algorithm)
	}
	for _, key := range cands {
		if payload, err := jws.Verify(key.Key); err == nil {
			return payload, nil
		}
	}
	return nil, fmt.Errorf("the signature does not verify with the provider's key %q", h.KeyID)
}
