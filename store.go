package gatehouse

import (
	"context"
	"time"
)

// Store is the storage of every tenant's data. Implementations: store/sqlstore
// (SQLite and PostgreSQL). Every backend passes store/storetest.
//
// Error contract for every method of Store and Tx: ENOTFOUND when the object
// does not exist in that tenant (an object of another tenant is "not found"),
// ECONFLICT on a uniqueness violation (Error.Field names the field),
// EPRECONDITION when an expected version does not match, EUNAVAILABLE when the
// database cannot be reached, anything else is internal.
type Store interface {
	// Update runs fn in one read-write transaction: it commits when fn
	// returns nil and rolls back otherwise, so a change and its audit event
	// land together or not at all.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(tx Tx) error) error
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// Engine is "sqlite" or "postgres".
	Engine() string
	Close() error
}

// FirstLoginFacts is what a first login asks before it creates a user,
// answered in one statement by a store's optional fast path (sqlstore's
// FirstLoginProbe; package provision falls back to a statement each).
type FirstLoginFacts struct {
	User          *User  // the user with the email, a tombstone included (it keeps its email reserved); nil when none
	UsernameTaken bool   // the username asked about is taken
	SCIMTokens    bool   // the connection has SCIM tokens
	Webhooks      bool   // the tenant has an enabled webhook
	Group         *Group // the group asked about by name (ID, TenantID, Name); nil when none, or none asked
}

// AuditBatch holds audit events that a transaction writes together, in
// one statement, before it ends: package provision's login transaction
// writes its own events and those of its hooks (an app's sign-in) so.
type AuditBatch struct{ events []*AuditEvent }

type auditBatchKey struct{}

// WithAuditBatch returns ctx carrying b: AppendAudit with it adds to b,
// whose owner writes it (Flush) in the same transaction.
func WithAuditBatch(ctx context.Context, b *AuditBatch) context.Context {
	return context.WithValue(ctx, auditBatchKey{}, b)
}

// AppendAudits records events in tx: into the batch ctx carries, if any,
// else at once (in one statement when tx can). Either way they commit or
// roll back with tx.
func AppendAudits(ctx context.Context, tx Tx, events ...*AuditEvent) error {
	if b, ok := ctx.Value(auditBatchKey{}).(*AuditBatch); ok && b != nil {
		b.events = append(b.events, events...)
		return nil
	}
	return (&AuditBatch{events: events}).Flush(ctx, tx)
}

// Flush writes b's events in tx, in one statement when tx can (a store's
// optional AppendAudits), and empties b.
func (b *AuditBatch) Flush(ctx context.Context, tx Tx) error {
	events := b.events
	b.events = nil
	if f, ok := tx.(interface {
		AppendAudits(ctx context.Context, events []*AuditEvent) error
	}); ok && len(events) > 1 {
		return f.AppendAudits(ctx, events)
	}
	for _, e := range events {
		if err := tx.AppendAudit(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// StoreAs finds, in st or the stores it wraps (a wrapper has an
// Unwrap() Store method, as tracing's does), the first that implements T:
// the optional fast paths a concrete store offers beyond this interface
// (sqlstore's LookupSCIMToken, CatalogGeneration, ...). Without it a
// wrapper would hide them and every caller fall back to its slow path.
func StoreAs[T any](st Store) (T, bool) {
	for st != nil {
		if v, ok := st.(T); ok {
			return v, true
		}
		w, ok := st.(interface{ Unwrap() Store })
		if !ok {
			break
		}
		st = w.Unwrap()
	}
	var zero T
	return zero, false
}

// Page asks for one page of a list. Cursor is opaque, from a previous
// ListResult; Limit is clamped by the store to [1, 1000], default 100.
type Page struct {
	Limit  int
	Cursor string
}

// UserFilter narrows ListUsers. Zero fields do not filter.
type UserFilter struct {
	Email    string // exact, case-insensitive
	Username string // exact, case-insensitive
	Source   string
	Status   string
	GroupID  string
	// Query matches a substring of email, username or display name.
	Query string
	// IncludeDeleted lists tombstones too.
	IncludeDeleted bool
	// LastLoginSince keeps users who signed in at or after it.
	LastLoginSince time.Time
	// LastLoginBefore keeps users who last signed in before it, or never.
	LastLoginBefore time.Time
}

// AuditFilter narrows ListAudit. Zero fields do not filter.
type AuditFilter struct {
	Action   string // exact, or a prefix ending in "." ("user.")
	TargetID string
	ActorID  string
	Since    time.Time
	Until    time.Time
}

// Tx is one transaction. All tenant-owned reads and writes take the tenant
// ID; an object of another tenant is never returned or changed.
//
// A write that only adds a row under a new random ID (AppendAudit,
// AppendOutbox, CreateOPToken, CreateOPRefreshToken) may be sent with the
// transaction's next statement or its commit: its failure may then come
// back from a later call or from Update itself, and fails the transaction
// all the same.
type Tx interface {
	// Tenants.
	CreateTenant(ctx context.Context, t *Tenant) error
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	GetTenantBySlug(ctx context.Context, slug string) (*Tenant, error)
	// GetTenantByDomain finds the tenant that verified domain (lower-case).
	GetTenantByDomain(ctx context.Context, domain string) (*Tenant, error)
	ListTenants(ctx context.Context, p Page) ([]*Tenant, string, error)
	UpdateTenant(ctx context.Context, t *Tenant) error
	// DeleteTenant removes the tenant and everything it owns.
	DeleteTenant(ctx context.Context, id string) error

	// Users. Reads skip tombstones unless said otherwise.
	CreateUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, tenantID, id string) (*User, error)
	// GetUserByEmail matches case-insensitively and returns tombstones too,
	// so JIT can refuse to re-create a deleted user.
	GetUserByEmail(ctx context.Context, tenantID, email string) (*User, error)
	GetUserByUsername(ctx context.Context, tenantID, username string) (*User, error)
	GetUserByExternalID(ctx context.Context, tenantID, externalID string) (*User, error)
	ListUsers(ctx context.Context, tenantID string, f UserFilter, p Page) ([]*User, string, error)
	CountUsers(ctx context.Context, tenantID string, f UserFilter) (int, error)
	// UpdateUser writes u when its stored version equals u.Version, then
	// increments u.Version; EPRECONDITION otherwise.
	UpdateUser(ctx context.Context, u *User) error
	// TouchUserLogin sets last_login_at without changing the version.
	TouchUserLogin(ctx context.Context, tenantID, userID string, at time.Time) error
	// DeleteUser leaves a tombstone and removes memberships, links and sessions.
	DeleteUser(ctx context.Context, tenantID, id string) error
	// PurgeUser removes a user or tombstone for good.
	PurgeUser(ctx context.Context, tenantID, id string) error
	// UsernameTaken reports whether username is used in the tenant (any case,
	// tombstones included).
	UsernameTaken(ctx context.Context, tenantID, username string) (bool, error)
	// QueryUsers returns one page of the users (tombstones excluded) that
	// match q.Filter, sorted, and the total number of matches. Filter
	// attributes are the UserAttr* names; any other is EINVALID.
	QueryUsers(ctx context.Context, tenantID string, q Query) ([]*User, int, error)

	// Groups.
	CreateGroup(ctx context.Context, g *Group) error
	GetGroup(ctx context.Context, tenantID, id string) (*Group, error)
	GetGroupByName(ctx context.Context, tenantID, name string) (*Group, error)
	ListGroups(ctx context.Context, tenantID string, p Page) ([]*Group, string, error)
	UpdateGroup(ctx context.Context, g *Group) error
	DeleteGroup(ctx context.Context, tenantID, id string) error
	// QueryGroups is QueryUsers for groups (GroupAttr* names).
	QueryGroups(ctx context.Context, tenantID string, q Query) ([]*Group, int, error)

	// Memberships. AddMembership is idempotent for the same manager.
	AddMembership(ctx context.Context, m *Membership) error
	// RemoveMembership removes the pair for that manager only; not found is
	// not an error.
	RemoveMembership(ctx context.Context, tenantID, groupID, userID, managedBy string) error
	// ListGroupMembers lists memberships of a group; managedBy "" lists all.
	ListGroupMembers(ctx context.Context, tenantID, groupID, managedBy string) ([]*Membership, error)
	// ListUserMemberships lists a user's memberships of every manager.
	ListUserMemberships(ctx context.Context, tenantID, userID string) ([]*Membership, error)

	// Federated identities.
	CreateIdentity(ctx context.Context, fi *FederatedIdentity) error
	GetIdentity(ctx context.Context, tenantID, connectionID, subject string) (*FederatedIdentity, error)
	ListUserIdentities(ctx context.Context, tenantID, userID string) ([]*FederatedIdentity, error)
	TouchIdentity(ctx context.Context, tenantID, connectionID, subject string, at time.Time) error

	// Connections. Deleting one removes its identity links and sessions.
	CreateConnection(ctx context.Context, c *Connection) error
	GetConnection(ctx context.Context, tenantID, id string) (*Connection, error)
	// GetConnectionByID finds a connection without knowing its tenant (for
	// callbacks at /sso/.../{connection_id}); the caller then trusts c.TenantID.
	GetConnectionByID(ctx context.Context, id string) (*Connection, error)
	ListConnections(ctx context.Context, tenantID string) ([]*Connection, error)
	UpdateConnection(ctx context.Context, c *Connection) error
	DeleteConnection(ctx context.Context, tenantID, id string) error

	// Apps.
	CreateApp(ctx context.Context, a *App) error
	GetApp(ctx context.Context, tenantID, id string) (*App, error)
	GetAppByClientID(ctx context.Context, tenantID, clientID string) (*App, error)
	ListApps(ctx context.Context, tenantID string) ([]*App, error)
	UpdateApp(ctx context.Context, a *App) error
	// DeleteApp also revokes the tokens issued to the app (OPTokenFilter
	// ClientID), in the same transaction.
	DeleteApp(ctx context.Context, tenantID, id string) error

	// API tokens; looked up by digest across tenants.
	CreateAPIToken(ctx context.Context, t *APIToken) error
	GetAPITokenByHash(ctx context.Context, hash []byte) (*APIToken, error)
	ListAPITokens(ctx context.Context, tenantID string) ([]*APIToken, error)
	DeleteAPIToken(ctx context.Context, tenantID, id string) error
	TouchAPIToken(ctx context.Context, id string, at time.Time) error

	// SCIM tokens; looked up by digest across tenants.
	CreateSCIMToken(ctx context.Context, t *SCIMToken) error
	GetSCIMTokenByHash(ctx context.Context, hash []byte) (*SCIMToken, error)
	ListSCIMTokens(ctx context.Context, tenantID string) ([]*SCIMToken, error)
	DeleteSCIMToken(ctx context.Context, tenantID, id string) error
	TouchSCIMToken(ctx context.Context, id string, at time.Time) error

	// Signing keys.
	CreateSigningKey(ctx context.Context, k *SigningKey) error
	ListSigningKeys(ctx context.Context, tenantID string) ([]*SigningKey, error)
	UpdateSigningKey(ctx context.Context, k *SigningKey) error

	// Sessions. ID is the digest of the cookie token.
	CreateSession(ctx context.Context, s *Session) error
	GetSession(ctx context.Context, id string) (*Session, error)
	TouchSession(ctx context.Context, id string, lastSeen, idleExpiry time.Time) error
	DeleteSession(ctx context.Context, id string) error
	DeleteUserSessions(ctx context.Context, tenantID, userID string) (int, error)

	// Audit log.
	AppendAudit(ctx context.Context, e *AuditEvent) error
	ListAudit(ctx context.Context, tenantID string, f AuditFilter, p Page) ([]*AuditEvent, string, error)

	// Outbox of provisioning events for webhooks.
	AppendOutbox(ctx context.Context, e *OutboxEvent) error
	ListPendingOutbox(ctx context.Context, limit int) ([]*OutboxEvent, error)
	MarkOutboxDelivered(ctx context.Context, id string, at time.Time) error
	// Webhooks and their deliveries (webhook.go).
	WebhookTx

	// OpenID Connect provider state (package op); see opstate.go.
	CreateOPAuthRequest(ctx context.Context, r *OPAuthRequest) error
	GetOPAuthRequest(ctx context.Context, tenantID, id string) (*OPAuthRequest, error)
	// CompleteOPAuthRequest records r's UserID, AuthTime, SessionID and Done.
	CompleteOPAuthRequest(ctx context.Context, r *OPAuthRequest) error
	// SetOPAuthCode stores the digest of the request's code and moves its
	// expiry to expires.
	SetOPAuthCode(ctx context.Context, tenantID, id string, codeHash []byte, expires time.Time) error
	// UseOPAuthCode marks the code used and returns its request. A code
	// used before gives the request AND an ECONFLICT error (the caller
	// revokes what the first use issued); an unknown code is ENOTFOUND.
	UseOPAuthCode(ctx context.Context, tenantID string, codeHash []byte, at time.Time) (*OPAuthRequest, error)
	CreateOPToken(ctx context.Context, t *OPToken) error
	// GetOPToken reads an access token, a paired one (PairedAccessID)
	// from its refresh token's row.
	GetOPToken(ctx context.Context, tenantID, id string) (*OPToken, error)
	// CreateOPRefreshToken writes a refresh token and, when its
	// AccessExpiresAt is set, the access token paired with it.
	CreateOPRefreshToken(ctx context.Context, t *OPRefreshToken) error
	GetOPRefreshToken(ctx context.Context, tenantID string, hash []byte) (*OPRefreshToken, error)
	// UseOPRefreshToken marks a refresh token used (rotated); ECONFLICT when
	// it was used or revoked before.
	UseOPRefreshToken(ctx context.Context, tenantID, id string, at time.Time) error
	// RevokeOPTokens revokes the access and refresh tokens f selects and
	// returns how many rows it revoked: a refresh token and the access
	// token paired with it are one. f.TokenID of a paired access token
	// revokes that access token alone.
	RevokeOPTokens(ctx context.Context, tenantID string, f OPTokenFilter, at time.Time) (int, error)
	// ListOPSessionClients lists the client ids issued tokens in session sid.
	ListOPSessionClients(ctx context.Context, tenantID, sessionID string) ([]string, error)

	// UseOnce records key (a flow id, a SAML assertion id) as used until
	// expires. ECONFLICT when it was already used: the replay cache every
	// replica shares.
	UseOnce(ctx context.Context, key string, expires time.Time) error
}

// Clock tells the time; protocol code never calls time.Now directly, so
// time windows are tested without sleeping.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

// Sealer encrypts secrets that must be read back (IdP client secrets,
// private keys). aad binds a ciphertext to its owner (e.g. a connection ID)
// so it cannot be moved to another row.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(ciphertext, aad []byte) ([]byte, error)
}
