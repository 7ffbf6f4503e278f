package op

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// Grant type names as apps store them (App.GrantTypes).
const (
	grantCode              = "authorization_code"
	grantRefresh           = "refresh_token"
	grantClientCredentials = "client_credentials"
)

// client is a gatehouse.App as zitadel's op.Client.
type client struct {
	app    *gatehouse.App
	issuer string
	p      *Provider
	// next, when set, is where the authorize request nextID goes instead
	// of the resume endpoint (atAuthorize). A client lives for one request.
	next, nextID string
	// cached: app is the replica's cached copy (apps.go), shared with
	// other requests (never modified), and read again before a code is
	// issued from it (storage.freshClient).
	cached bool
}

var _ zop.Client = (*client)(nil)

func (c *client) GetID() string                    { return c.app.ClientID }
func (c *client) RedirectURIs() []string           { return c.app.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.app.PostLogoutRedirectURIs }

// CheckRedirectURIs refuses, when an app is registered, the redirect URIs
// the authorize endpoint would refuse at every sign-in (the rule of
// zitadel's ValidateAuthReqRedirectURI for the application types below):
// https always; http for confidential apps, or any app on a development
// instance (dev); never a custom scheme, since no app is "native".
func CheckRedirectURIs(public, dev bool, uris []string) error {
	for _, u := range uris {
		scheme, _, _ := strings.Cut(u, "://")
		switch strings.ToLower(scheme) {
		case "https":
		case "http":
			if public && !dev {
				return gatehouse.FieldError("redirect_uris", "%q: a public app's redirect URIs must use https (http only on a development instance).", u)
			}
		default:
			return gatehouse.FieldError("redirect_uris", "%q: redirect URIs must be http or https URLs.", u)
		}
	}
	return nil
}

// ApplicationType: confidential apps are "web"; public ones "user agent".
// Never "native": zitadel lets native apps use any port on a loopback
// redirect URI, and Gatehouse matches redirect URIs exactly.
func (c *client) ApplicationType() zop.ApplicationType {
	if c.app.Public {
		return zop.ApplicationTypeUserAgent
	}
	return zop.ApplicationTypeWeb
}

// AuthMethod: public clients have no secret (PKCE stands in for it);
// confidential ones send it with HTTP Basic or in the form.
func (c *client) AuthMethod() oidc.AuthMethod {
	if c.app.Public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

// ResponseTypes: the code flow only (RFC 9700 section 2.1.2: no implicit).
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

// GrantTypes: what the app registered, defaulting to the code flow with
// refresh tokens, plus client_credentials for confidential apps. A public
// client never gets client_credentials: it has no credentials.
func (c *client) GrantTypes() []oidc.GrantType {
	names := c.app.GrantTypes
	if len(names) == 0 {
		names = []string{grantCode, grantRefresh}
		if !c.app.Public {
			names = append(names, grantClientCredentials)
		}
	}
	var out []oidc.GrantType
	for _, n := range names {
		if n == grantClientCredentials && c.app.Public {
			continue
		}
		switch n {
		case grantCode, grantRefresh, grantClientCredentials:
			out = append(out, oidc.GrantType(n))
		}
	}
	return out
}

func (c *client) hasGrant(g string) bool { return slices.Contains(c.GrantTypes(), oidc.GrantType(g)) }

// LoginURL is where a stored authorize request continues: where
// atAuthorize decided (the login, or the app with a code), else our resume
// endpoint, which signs the user in (or sends them to log in) first.
func (c *client) LoginURL(id string) string {
	if c.next != "" && c.nextID == id {
		return c.next
	}
	return c.issuer + "/" + pathResume + "?" + url.Values{"id": {id}}.Encode()
}

// AccessTokenType: opaque bearer tokens (an encrypted token id), so
// revocation and deactivation take effect at once at userinfo and
// introspection.
func (c *client) AccessTokenType() zop.AccessTokenType { return zop.AccessTokenTypeBearer }

func (c *client) IDTokenLifetime() time.Duration { return c.p.cfg.IDTokenTTL }

// DevMode allows http redirect URIs for public clients; confidential
// clients may always use http for the code flow (zitadel's rule).
func (c *client) DevMode() bool { return c.p.cfg.Dev }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed: "groups" besides the standard scopes; any other scope is
// dropped from the request (unknown scopes are ignored, not refused).
func (c *client) IsScopeAllowed(scope string) bool { return scope == scopeGroups }

// IDTokenUserinfoClaimsAssertion: the ID token carries the profile, email
// and groups claims too, so an app needs no userinfo call.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }

func (c *client) ClockSkew() time.Duration { return 0 }

// accessTTL and refreshTTL are the app's lifetimes or the server's.
func (c *client) accessTTL() time.Duration {
	if c.app.AccessTokenTTL > 0 {
		return time.Duration(c.app.AccessTokenTTL) * time.Second
	}
	return c.p.cfg.AccessTokenTTL
}

func (c *client) refreshTTL() time.Duration {
	if c.app.RefreshTokenTTL > 0 {
		return time.Duration(c.app.RefreshTokenTTL) * time.Second
	}
	return c.p.cfg.RefreshTokenTTL
}

// signingAlg is the app's ID token algorithm: RS256 unless it chose ES256
// or EdDSA.
func (c *client) signingAlg() string { return normalizeAlg(c.app.IDTokenSigningAlg) }
