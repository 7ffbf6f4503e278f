// Package gatehouse holds the domain: the types every part shares and the
// interfaces between parts. It imports no net/http and no database/sql.
package gatehouse

import (
	"encoding/json"
	"time"
)

// Tenant is an organization. It owns everything else; nothing crosses tenants.
type Tenant struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
	// Domains are the tenant's verified email domains, lower-case. A domain
	// belongs to at most one tenant (home-realm discovery relies on it).
	Domains        []string `json:"domains"`
	SupportContact string   `json:"support_contact"`
	// AdminGroups: members of these groups are tenant admins in the console.
	AdminGroups []string `json:"admin_groups"`
	// Session lifetimes; zero means the server default.
	SessionIdle     time.Duration `json:"-"`
	SessionAbsolute time.Duration `json:"-"`
	CreatedAt       time.Time     `json:"created_at"`
	UpdatedAt       time.Time     `json:"updated_at"`
}

// User status values.
const (
	StatusActive      = "active"
	StatusPending     = "pending"
	StatusDeactivated = "deactivated"
)

// User sources: who created the account.
const (
	SourceJIT    = "jit"
	SourceSCIM   = "scim"
	SourceAdmin  = "admin"
	SourceImport = "import"
)

// User is an account in a tenant.
type User struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	// Email as sent; may be empty only for SCIM-created users.
	Email       string `json:"email"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	GivenName   string `json:"given_name"`
	FamilyName  string `json:"family_name"`
	Status      string `json:"status"`
	ExternalID  string `json:"external_id,omitempty"`
	Source      string `json:"source"`
	// Attributes holds extra profile data (SCIM enterprise extension, raw
	// IdP attributes an admin chose to keep). Never used for identity.
	Attributes  map[string]any `json:"attributes,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	LastLoginAt *time.Time     `json:"last_login_at"`
	// Version increases on every change; it is the ETag and the
	// optimistic-concurrency token.
	Version int64 `json:"version"`
	// DeletedAt marks a tombstone: the user is gone for every reader but
	// JIT refuses to re-create it until an admin clears the tombstone.
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
	// Groups are the names of the user's groups, filled by reads that say so.
	Groups []string `json:"groups"`
}

// Active reports whether the user may sign in.
func (u *User) Active() bool { return u.Status == StatusActive && u.DeletedAt == nil }

// Group is a named set of users in a tenant.
type Group struct {
	ID         string    `json:"id"`
	TenantID   string    `json:"tenant_id"`
	Name       string    `json:"name"`
	ExternalID string    `json:"external_id,omitempty"`
	Source     string    `json:"source"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	Version    int64     `json:"version"`
	// MemberCount is filled by reads that say so.
	MemberCount int `json:"member_count"`
}

// Who manages a membership. A connection manages it as "connection:<id>".
const (
	ManagedByAdmin = "admin"
	ManagedBySCIM  = "scim"
)

// ManagedByConnection is the manager value for memberships synced from a
// connection's group claim.
func ManagedByConnection(connectionID string) string { return "connection:" + connectionID }

// Membership puts a user in a group. The same (group, user) pair may exist
// once per manager, so an admin's manual membership survives a SCIM replace
// and a login's group sync.
type Membership struct {
	TenantID  string    `json:"tenant_id"`
	GroupID   string    `json:"group_id"`
	UserID    string    `json:"user_id"`
	ManagedBy string    `json:"managed_by"`
	CreatedAt time.Time `json:"created_at"`
}

// FederatedIdentity links (connection, subject) to a user. It is the only
// identity key: never email.
type FederatedIdentity struct {
	TenantID     string     `json:"tenant_id"`
	ConnectionID string     `json:"connection_id"`
	Subject      string     `json:"subject"`
	UserID       string     `json:"user_id"`
	CreatedAt    time.Time  `json:"created_at"`
	LastLoginAt  *time.Time `json:"last_login_at"`
}

// Connection types.
const (
	ConnOIDC   = "oidc"
	ConnOAuth2 = "oauth2"
	ConnSAML   = "saml"
	ConnMock   = "mock"
)

// Connection is a tenant's SSO connection to an IdP.
type Connection struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	Type     string `json:"type"`
	Name     string `json:"name"`
	Enabled  bool   `json:"enabled"`
	// Config is the protocol's non-secret settings, as its connector
	// package defines them.
	Config json.RawMessage `json:"config"`
	// Secrets is the protocol's secret settings, sealed with the root key
	// (see Sealer). Never serialized to clients.
	Secrets []byte           `json:"-"`
	JIT     JITPolicy        `json:"jit"`
	Mapping AttributeMapping `json:"mapping"`
	// State is protocol runtime data (cached metadata, certificate expiry).
	State     json.RawMessage `json:"-"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// JITPolicy is a connection's just-in-time provisioning policy.
type JITPolicy struct {
	Enabled bool `json:"enabled"`
	// AllowedDomains: nil means the tenant's verified domains; an empty
	// list means any domain.
	AllowedDomains       *[]string `json:"allowed_domains"`
	DefaultGroups        []string  `json:"default_groups"`
	LinkExistingByEmail  bool      `json:"link_existing_by_email"`
	TrustUnverifiedEmail bool      `json:"trust_unverified_email"`
	// AuthoritativeForDomains: the IdP is trusted to vouch for emails in
	// the tenant's domains even when it sends no email_verified claim.
	AuthoritativeForDomains bool      `json:"authoritative_for_domains"`
	RequireApproval         bool      `json:"require_approval"`
	UpdateProfile           bool      `json:"update_profile"`
	GroupSync               GroupSync `json:"group_sync"`
}

// DefaultJITPolicy is the policy of a new connection when none is given.
func DefaultJITPolicy() JITPolicy {
	return JITPolicy{Enabled: true, UpdateProfile: true, DefaultGroups: []string{}}
}

// GroupSync maps IdP groups to Gatehouse groups at each login. Only the
// memberships it manages itself are added or removed.
type GroupSync struct {
	Enabled bool `json:"enabled"`
	// Mapping: IdP group name → Gatehouse group name. Unmapped IdP groups
	// are ignored.
	Mapping map[string]string `json:"mapping"`
}

// AttributeMapping says which claim or attribute gives each profile field.
// Empty fields use the protocol's defaults. Expressions are CEL over
// `claims` and override the plain names when set.
type AttributeMapping struct {
	Subject     string `json:"subject,omitempty"`
	Email       string `json:"email,omitempty"`
	Username    string `json:"username,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	GivenName   string `json:"given_name,omitempty"`
	FamilyName  string `json:"family_name,omitempty"`
	Groups      string `json:"groups,omitempty"`
	// Expressions: field name → CEL expression.
	Expressions map[string]string `json:"expressions,omitempty"`
}

// Identity is what every connector returns after verifying a login: one
// normalized shape whatever the protocol.
type Identity struct {
	TenantID     string
	ConnectionID string
	Issuer       string
	Subject      string
	Email        string
	// EmailVerified is nil when the protocol or IdP says nothing.
	EmailVerified *bool
	Username      string
	DisplayName   string
	GivenName     string
	FamilyName    string
	Groups        []string
	// GroupsIncomplete is true when the IdP said the user has more groups
	// than it sent (Entra ID's groups overage, `_claim_names`): group sync
	// must not remove memberships on the strength of Groups.
	GroupsIncomplete bool
	// Raw holds the claims or attributes as received, for mapping
	// expressions and the console's "test connection" view.
	Raw map[string]any
	// SessionIndex is the IdP's session handle (SAML), for logout.
	SessionIndex string
}

// App is an application that signs users in through Gatehouse (OIDC client).
type App struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	Name     string `json:"name"`
	ClientID string `json:"client_id"`
	// SecretHash is the digest of the client secret; empty for public clients.
	SecretHash             []byte   `json:"-"`
	Public                 bool     `json:"public"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	AllowedConnections     []string `json:"allowed_connections"`
	AllowedGroups          []string `json:"allowed_groups"`
	GrantTypes             []string `json:"grant_types"`
	IDTokenSigningAlg      string   `json:"id_token_signing_alg"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri"`
	// Token lifetimes in seconds; zero means the server default.
	AccessTokenTTL  int       `json:"access_token_ttl"`
	RefreshTokenTTL int       `json:"refresh_token_ttl"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// Roles of admin-API principals.
const (
	RoleSuperuser    = "superuser"
	RoleTenantAdmin  = "tenant_admin"
	RoleTenantViewer = "tenant_viewer"
)

// APIToken is a tenant-scoped admin-API bearer token.
type APIToken struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant_id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Hash       []byte     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// SCIMToken is a bearer token an IdP uses to provision one tenant.
type SCIMToken struct {
	ID           string     `json:"id"`
	TenantID     string     `json:"tenant_id"`
	Name         string     `json:"name"`
	ConnectionID string     `json:"connection_id"`
	Hash         []byte     `json:"-"`
	CreatedAt    time.Time  `json:"created_at"`
	LastUsedAt   *time.Time `json:"last_used_at"`
}

// SigningKey is a tenant's token-signing key. The private key is sealed.
type SigningKey struct {
	ID        string          `json:"id"`
	TenantID  string          `json:"tenant_id"`
	Alg       string          `json:"alg"`
	Private   []byte          `json:"-"`
	PublicJWK json.RawMessage `json:"public_jwk"`
	CreatedAt time.Time       `json:"created_at"`
	RetiredAt *time.Time      `json:"retired_at"`
	NotAfter  *time.Time      `json:"not_after"`
}

// Session is a signed-in browser at a tenant. The cookie carries a random
// token; the store keeps only its digest as ID.
type Session struct {
	ID           string    `json:"id"`
	TenantID     string    `json:"tenant_id"`
	UserID       string    `json:"user_id"`
	ConnectionID string    `json:"connection_id"`
	SessionIndex string    `json:"-"`
	AuthTime     time.Time `json:"auth_time"`
	CreatedAt    time.Time `json:"created_at"`
	LastSeenAt   time.Time `json:"last_seen_at"`
	IdleExpiry   time.Time `json:"idle_expiry"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// AuditEvent records a change or a security-relevant outcome. It is written
// in the same transaction as the change it describes.
type AuditEvent struct {
	ID         string         `json:"id"`
	TenantID   string         `json:"tenant_id"`
	Time       time.Time      `json:"time"`
	ActorType  string         `json:"actor_type"` // superuser, api_token, scim, user, system, connection
	ActorID    string         `json:"actor_id"`
	Action     string         `json:"action"`
	TargetType string         `json:"target_type"`
	TargetID   string         `json:"target_id"`
	RequestID  string         `json:"request_id,omitempty"`
	Details    map[string]any `json:"details,omitempty"`
}

// OutboxEvent is a provisioning event waiting for webhook delivery.
type OutboxEvent struct {
	ID          string          `json:"id"`
	TenantID    string          `json:"tenant_id"`
	Type        string          `json:"type"`
	Payload     json.RawMessage `json:"payload"`
	CreatedAt   time.Time       `json:"created_at"`
	DeliveredAt *time.Time      `json:"delivered_at"`
	Attempts    int             `json:"attempts"`
}

// Actor says who performs a change; it goes into audit events.
type Actor struct {
	Type      string // superuser, api_token, scim, user, system, connection
	ID        string
	RequestID string
}
