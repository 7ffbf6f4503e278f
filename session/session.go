// Package session keeps the browser-side state of Gatehouse: the sealed,
// short-lived flow cookies of logins in progress and the signed-in browser
// sessions (a random token in cookie gatehouse_session, its digest in the
// store).
package session

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// CookieName is the browser session cookie.
const CookieName = "gatehouse_session"

// Server defaults for session lifetimes; a tenant may override both.
const (
	DefaultIdle     = 8 * time.Hour
	DefaultAbsolute = 24 * time.Hour
	// DefaultTouchInterval: a session's last-seen time is written at most
	// this often, so a busy browser costs reads, not a write per request.
	DefaultTouchInterval = time.Minute
)

// tokenPrefix marks session tokens for secret scanners and humans.
const tokenPrefix = "gh_ses_"

// Config configures a Manager.
type Config struct {
	Store   gatehouse.Store
	Keyring *secret.Keyring
	// PublicURL decides Secure (https) and the cookie path (its path part).
	PublicURL string
	Clock     gatehouse.Clock
	Logger    *slog.Logger
	// Zero values mean the defaults above.
	Idle, Absolute, TouchInterval time.Duration
}

// Manager issues, finds and ends sessions, and seals flow cookies.
type Manager struct {
	store         gatehouse.Store
	clock         gatehouse.Clock
	log           *slog.Logger
	flows         *flowSealer
	secure        bool
	basePath      string
	idle          time.Duration
	absolute      time.Duration
	touchInterval time.Duration
}

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil || cfg.Keyring == nil {
		return nil, errors.New("session: Store and Keyring are required")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("session: PublicURL must be an absolute http(s) URL")
	}
	fs, err := newFlowSealer(cfg.Keyring)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		store: cfg.Store, clock: cfg.Clock, log: cfg.Logger, flows: fs,
		secure:   u.Scheme == "https",
		basePath: strings.TrimRight(u.Path, "/"),
		idle:     cfg.Idle, absolute: cfg.Absolute, touchInterval: cfg.TouchInterval,
	}
	if m.clock == nil {
		m.clock = gatehouse.SystemClock{}
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.idle <= 0 {
		m.idle = DefaultIdle
	}
	if m.absolute <= 0 {
		m.absolute = DefaultAbsolute
	}
	if m.touchInterval <= 0 {
		m.touchInterval = DefaultTouchInterval
	}
	return m, nil
}

// Secure reports whether cookies carry the Secure flag (public URL is https).
func (m *Manager) Secure() bool { return m.secure }

// BasePath is the path part of the public URL, without a trailing slash.
func (m *Manager) BasePath() string { return m.basePath }

func (m *Manager) lifetimes(t *gatehouse.Tenant) (idle, absolute time.Duration) {
	idle, absolute = m.idle, m.absolute
	if t != nil && t.SessionIdle > 0 {
		idle = t.SessionIdle
	}
	if t != nil && t.SessionAbsolute > 0 {
		absolute = t.SessionAbsolute
	}
	if idle > absolute {
		idle = absolute
	}
	return idle, absolute
}

// Start issues a session for user at tenant, signed in through connection
// connID (sessionIndex is the IdP's session handle, SAML), and sets the
// cookie. A login should use Replace instead, so the session the browser
// had before ends with it.
func (m *Manager) Start(ctx context.Context, w http.ResponseWriter, tenant *gatehouse.Tenant, user *gatehouse.User, connID, sessionIndex string) (*gatehouse.Session, error) {
	return m.start(ctx, w, "", tenant, user, connID, sessionIndex)
}

// Replace is Start for a login in browser r: whatever session r carried
// (another tenant, another user) is deleted in the same transaction that
// creates the new one, so a token is never reused across a login (session
// fixation) and the login costs one write.
func (m *Manager) Replace(ctx context.Context, w http.ResponseWriter, r *http.Request, tenant *gatehouse.Tenant, user *gatehouse.User, connID, sessionIndex string) (*gatehouse.Session, error) {
	p, err := m.PrepareReplace(r, tenant, user, connID, sessionIndex)
	if err != nil {
		return nil, err
	}
	return m.commit(ctx, w, p)
}

func (m *Manager) start(ctx context.Context, w http.ResponseWriter, replaced string, tenant *gatehouse.Tenant, user *gatehouse.User, connID, sessionIndex string) (*gatehouse.Session, error) {
	p, err := m.prepare(replaced, tenant, user, connID, sessionIndex)
	if err != nil {
		return nil, err
	}
	return m.commit(ctx, w, p)
}

// commit writes p in a transaction of its own and sets the cookie.
func (m *Manager) commit(ctx context.Context, w http.ResponseWriter, p *Pending) (*gatehouse.Session, error) {
	if err := m.store.Update(ctx, func(tx gatehouse.Tx) error { return p.Write(ctx, tx) }); err != nil {
		return nil, err
	}
	p.SetCookie(w)
	return p.Session, nil
}

// Pending is a new session to be written in the caller's own transaction
// (PrepareReplace), so a login can write its user, link, audit events and
// session in one commit. The cookie is set (SetCookie) only once that
// transaction has committed.
type Pending struct {
	m        *Manager
	token    string
	replaced string
	// Session is the session Write creates.
	Session *gatehouse.Session
}

// PrepareReplace is Replace in two steps: it makes the session (nothing
// is written yet); Write stores it, deleting the browser's previous
// session, inside the caller's transaction; SetCookie then sends it.
func (m *Manager) PrepareReplace(r *http.Request, tenant *gatehouse.Tenant, user *gatehouse.User, connID, sessionIndex string) (*Pending, error) {
	old := ""
	if token, ok := m.token(r); ok {
		old = secret.DigestString(token)
	}
	return m.prepare(old, tenant, user, connID, sessionIndex)
}

func (m *Manager) prepare(replaced string, tenant *gatehouse.Tenant, user *gatehouse.User, connID, sessionIndex string) (*Pending, error) {
	if user.TenantID != tenant.ID {
		return nil, errors.New("session: user and tenant differ")
	}
	now := m.clock.Now().UTC()
	idle, absolute := m.lifetimes(tenant)
	token := secret.NewToken(tokenPrefix)
	return &Pending{m: m, token: token, replaced: replaced, Session: &gatehouse.Session{
		ID:           secret.DigestString(token),
		TenantID:     tenant.ID,
		UserID:       user.ID,
		ConnectionID: connID,
		SessionIndex: sessionIndex,
		AuthTime:     now,
		CreatedAt:    now,
		LastSeenAt:   now,
		IdleExpiry:   now.Add(idle),
		ExpiresAt:    now.Add(absolute),
	}}, nil
}

// Write deletes the replaced session (if any) and creates the new one in
// tx.
func (p *Pending) Write(ctx context.Context, tx gatehouse.Tx) error {
	if err := p.deleteReplaced(ctx, tx); err != nil {
		return err
	}
	return tx.CreateSession(ctx, p.Session)
}

// loginSessionCreator is the store's optional CreateSession for a login's
// own transaction, without the store's check that the user is live
// (sqlstore has it).
type loginSessionCreator interface {
	CreateLoginSession(ctx context.Context, s *gatehouse.Session) error
}

// WriteForLogin is Write inside the transaction of a login that has
// itself read or created the session's user as active in tx (provision's
// AfterApply): the store may then skip its own check of the user, one
// statement and a savepoint fewer per login.
func (p *Pending) WriteForLogin(ctx context.Context, tx gatehouse.Tx) error {
	if err := p.deleteReplaced(ctx, tx); err != nil {
		return err
	}
	if f, ok := tx.(loginSessionCreator); ok {
		return f.CreateLoginSession(ctx, p.Session)
	}
	return tx.CreateSession(ctx, p.Session)
}

func (p *Pending) deleteReplaced(ctx context.Context, tx gatehouse.Tx) error {
	if p.replaced == "" {
		return nil
	}
	if err := tx.DeleteSession(ctx, p.replaced); err != nil && !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return err
	}
	return nil
}

// SetCookie sends the session cookie; call it after Write's transaction
// has committed.
func (p *Pending) SetCookie(w http.ResponseWriter) {
	// The cookie has no Max-Age: the server decides expiry (idle and
	// absolute), and a browser session cookie also ends with the browser.
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: p.token, Path: p.m.basePath + "/",
		HttpOnly: true, Secure: p.m.secure, SameSite: http.SameSiteLaxMode,
	})
}

// ErrNoSession is the error of Current when the browser has no valid
// session (none, expired, ended, another tenant's, or its user was
// deactivated): code EUNAUTHORIZED.
var ErrNoSession = &gatehouse.Error{Code: gatehouse.EUNAUTHORIZED, Message: "You are not signed in."}

func (m *Manager) token(r *http.Request) (string, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil || !strings.HasPrefix(c.Value, tokenPrefix) || len(c.Value) > 128 {
		return "", false
	}
	return c.Value, true
}

// Current returns the browser's session at tenantID and its user. It
// refuses (ErrNoSession) expired sessions and sessions of users who are no
// longer active — deactivated by an admin or SCIM, or deleted — and deletes
// the latter so they end at once. It writes the last-seen time at most
// once per touch interval.
func (m *Manager) Current(ctx context.Context, r *http.Request, tenantID string) (*gatehouse.Session, *gatehouse.User, error) {
	token, ok := m.token(r)
	if !ok {
		return nil, nil, ErrNoSession
	}
	id := secret.DigestString(token)
	now := m.clock.Now()
	var s *gatehouse.Session
	var u *gatehouse.User
	var t *gatehouse.Tenant
	err := m.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		if s, err = tx.GetSession(ctx, id); err != nil {
			return err
		}
		if s.TenantID != tenantID {
			return ErrNoSession
		}
		if t, err = tx.GetTenant(ctx, s.TenantID); err != nil {
			return err
		}
		u, err = tx.GetUser(ctx, s.TenantID, s.UserID)
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			u, err = nil, nil
		}
		return err
	})
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) || gatehouse.IsCode(err, gatehouse.EUNAUTHORIZED) {
		return nil, nil, ErrNoSession
	}
	if err != nil {
		return nil, nil, err
	}
	if u == nil || !u.Active() {
		// The account was deactivated or deleted after sign-in: end the
		// session now rather than at its expiry.
		if err := m.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.DeleteSession(ctx, id) }); err != nil && !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			m.log.ErrorContext(ctx, "end session of inactive user", "err", err)
		}
		return nil, nil, ErrNoSession
	}
	if !now.Before(s.ExpiresAt) || !now.Before(s.IdleExpiry) {
		return nil, nil, ErrNoSession
	}
	if now.Sub(s.LastSeenAt) >= m.touchInterval {
		idle, _ := m.lifetimes(t)
		next := now.Add(idle)
		if next.After(s.ExpiresAt) {
			next = s.ExpiresAt
		}
		err := m.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.TouchSession(ctx, id, now.UTC(), next.UTC()) })
		if err != nil && !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			// Failing to extend the idle window must not fail the request:
			// the session stays valid until its current idle expiry.
			m.log.WarnContext(ctx, "touch session", "err", err)
		} else if err == nil {
			s.LastSeenAt, s.IdleExpiry = now.UTC(), next.UTC()
		}
	}
	return s, u, nil
}

// Discard deletes the browser's current session in the store, whatever its
// tenant, without touching cookies.
func (m *Manager) Discard(ctx context.Context, r *http.Request) error {
	token, ok := m.token(r)
	if !ok {
		return nil
	}
	err := m.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.DeleteSession(ctx, secret.DigestString(token)) })
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil
	}
	return err
}

// End signs the browser out: the session is deleted in the store (so a
// copied cookie stops working too) and the cookie is cleared.
func (m *Manager) End(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	err := m.Discard(ctx, r)
	m.ClearCookie(w)
	return err
}

// ClearCookie removes the session cookie from the browser.
func (m *Manager) ClearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: m.basePath + "/", MaxAge: -1, Expires: time.Unix(0, 0),
		HttpOnly: true, Secure: m.secure, SameSite: http.SameSiteLaxMode,
	})
}
