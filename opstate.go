package gatehouse

import (
	"strings"
	"time"
)

// The OpenID Connect provider's state (package op). Token values are never
// stored: only their SHA-256 digests (codes, refresh tokens) or random ids
// that are useless without the provider's encryption key (access tokens).

// OPAuthRequest is an app's authorization request, from /authorize until
// its code is exchanged. The row outlives the exchange (until ExpiresAt plus
// a day) so a second use of its code is recognised and revokes what the
// first use issued (RFC 6749 section 4.1.2).
type OPAuthRequest struct {
	ID       string
	TenantID string
	ClientID string
	// Request holds the protocol parameters (redirect_uri, scopes, state,
	// nonce, PKCE challenge, prompt, max_age ...), as JSON the op package
	// defines.
	Request []byte
	// Set when the user has signed in for it.
	UserID    string
	AuthTime  time.Time
	SessionID string // public session id ("sid"), not the cookie digest
	Done      bool
	// CodeHash is the digest of the authorization code, once issued.
	CodeHash   []byte
	CodeUsedAt *time.Time
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// OPToken is an issued access token, known by its id (jti).
type OPToken struct {
	ID       string
	TenantID string
	ClientID string
	// UserID is empty for client_credentials tokens.
	UserID string
	// GrantID ties every token issued from one authorization (the auth
	// request id) together, so code reuse and refresh-token reuse revoke
	// the whole family.
	GrantID   string
	SessionID string
	Scopes    []string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
}

// OPRefreshToken is an issued refresh token, stored by digest. Each use
// rotates it: the old one is marked used and a new one of the same grant
// is issued; presenting a used one revokes the grant (RFC 9700 section 4.14.2).
type OPRefreshToken struct {
	ID          string
	TenantID    string
	Hash        []byte
	ClientID    string
	UserID      string
	GrantID     string
	SessionID   string
	RotatedFrom string
	Scopes      []string
	AMR         []string
	AuthTime    time.Time
	CreatedAt   time.Time
	ExpiresAt   time.Time
	UsedAt      *time.Time
	RevokedAt   *time.Time
	// AccessExpiresAt, when set, is the expiry of the access token issued
	// with this refresh token and kept in its row (PairedAccessID) instead
	// of an OPToken of its own. RevokedAt revokes that access token too.
	AccessExpiresAt time.Time
}

// Paired access tokens. An access token issued together with a refresh
// token of the same scopes is stored in the refresh token's row: its id is
// the row's id under pairedAccessPrefix, and GetOPToken and RevokeOPTokens
// take it like any access token's id.
const (
	refreshRowPrefix   = "ort_"
	pairedAccessPrefix = "oap_"
)

// PairedAccessID is the id of the access token kept in the refresh token
// row refreshID ("ort_…"); "" for an id of another shape.
func PairedAccessID(refreshID string) string {
	if rest, ok := strings.CutPrefix(refreshID, refreshRowPrefix); ok && rest != "" {
		return pairedAccessPrefix + rest
	}
	return ""
}

// PairedRefreshID is the refresh token row that holds the access token
// accessID, and whether accessID is a paired access token's id at all.
func PairedRefreshID(accessID string) (string, bool) {
	if rest, ok := strings.CutPrefix(accessID, pairedAccessPrefix); ok && rest != "" {
		return refreshRowPrefix + rest, true
	}
	return "", false
}

// OPTokenFilter selects the tokens RevokeOPTokens revokes. At least one
// field must be set; set fields all apply.
type OPTokenFilter struct {
	GrantID   string
	UserID    string
	SessionID string
	ClientID  string
	// TokenID names one access token or refresh token id.
	TokenID string
}
