package provision

import (
	"context"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

// The store's optional fast paths for a resolution (sqlstore has them):
// one statement each where the portable path (gatehouse.Tx alone) takes
// several. A resolution decides and writes the same either way; the tests
// run both.

// linkedUserGetter reads a link and its live user together; a nil user
// means the user is gone.
type linkedUserGetter interface {
	GetLinkedUser(ctx context.Context, tenantID, connectionID, subject string) (*gatehouse.FederatedIdentity, *gatehouse.User, error)
}

// membershipRefLister lists a user's memberships with their groups' names.
type membershipRefLister interface {
	ListUserMembershipRefs(ctx context.Context, tenantID, userID string) ([]*gatehouse.Membership, map[string]string, error)
}

// firstLoginProber reads, in one statement, what a first login asks: the
// user with an email (nil when none), whether a username is taken, whether
// the connection has SCIM tokens, whether the tenant has an enabled
// webhook (without one AppendOutbox writes nothing), and a group by name.
type firstLoginProber interface {
	FirstLoginProbe(ctx context.Context, tenantID, connectionID, email, username, group string) (*gatehouse.FirstLoginFacts, error)
}

// linkProber is linkedUserGetter and, only when there is no link,
// firstLoginProber in one statement: a first login's first look then
// needs no second one for the probe.
type linkProber interface {
	LinkOrFirstLoginProbe(ctx context.Context, tenantID, connectionID, subject, email, username, group string) (*gatehouse.FederatedIdentity, *gatehouse.User, *gatehouse.FirstLoginFacts, error)
}

type probe struct {
	user       *gatehouse.User
	scimTokens bool
}

// firstLoginProbe asks the store's fast path, when it has one (else nil):
// the email's user, whether the connection has SCIM tokens, whether the
// first username a new user would get is taken, which planCreate asks
// next, and the connection's first default group, which
// planDefaultGroups asks then (one statement instead of four).
// When firstLook already read the facts for this email, they are used.
func (p *plan) firstLoginProbe(ctx context.Context, tx gatehouse.Tx, email string) (*probe, error) {
	cand, group := probeArgs(p.in)
	facts := p.facts
	if facts == nil || p.factsEmail != email {
		f, ok := tx.(firstLoginProber)
		if !ok {
			return nil, nil
		}
		var err error
		if facts, err = f.FirstLoginProbe(ctx, p.in.tenant.ID, p.in.conn.ID, email, cand, group); err != nil {
			return nil, err
		}
	}
	p.probed = map[string]bool{gatehouse.FoldKey(cand): facts.UsernameTaken}
	if group != "" {
		p.probedGroups = map[string]*gatehouse.Group{gatehouse.FoldKey(group): facts.Group}
	}
	// No enabled webhook in this transaction's view: the outbox event
	// would not be written, so it is not built either.
	p.noOutbox = !facts.Webhooks
	return &probe{user: facts.User, scimTokens: facts.SCIMTokens}, nil
}

// probeArgs are the username and the group a first login's probe asks
// about: the first username a new user would get, and the connection's
// first default group when it creates users ("" for none).
func probeArgs(in *input) (username, group string) {
	username, _ = usernameBase(in.id)
	if in.conn.JIT.Enabled && len(in.conn.JIT.DefaultGroups) > 0 {
		group = in.conn.JIT.DefaultGroups[0]
	}
	return username, group
}

// usernameTaken is tx.UsernameTaken, answered from the probe of
// userByEmail when it asked about this username.
func (p *plan) usernameTaken(ctx context.Context, tx gatehouse.Tx, username string) (bool, error) {
	if taken, ok := p.probed[gatehouse.FoldKey(username)]; ok {
		return taken, nil
	}
	return tx.UsernameTaken(ctx, p.in.tenant.ID, username)
}

// jitCreator writes a new user, its first link and its first memberships
// in one savepoint.
type jitCreator interface {
	CreateJITUser(ctx context.Context, u *gatehouse.User, link *gatehouse.FederatedIdentity, ms []*gatehouse.Membership) error
}

// linkedUser returns the link (connection, subject) and, when loaded, its
// live user (nil when gone). Without the fast path loaded is false and
// the caller reads the user itself.
func linkedUser(ctx context.Context, tx gatehouse.Tx, tenantID, connectionID, subject string) (link *gatehouse.FederatedIdentity, u *gatehouse.User, loaded bool, err error) {
	if f, ok := tx.(linkedUserGetter); ok {
		link, u, err = f.GetLinkedUser(ctx, tenantID, connectionID, subject)
		return link, u, err == nil, err
	}
	link, err = tx.GetIdentity(ctx, tenantID, connectionID, subject)
	return link, nil, false, err
}

// firstLook is a resolution's first look for the link (connection,
// subject), as linkedUser, but a nil link when there is none. With the
// store's linkProber the same statement reads, when there is no link, the
// first-login facts for the identity's trimmed email (what checkEmail
// returns when it is valid); firstLoginProbe uses them then.
func (p *plan) firstLook(ctx context.Context, tx gatehouse.Tx) (link *gatehouse.FederatedIdentity, u *gatehouse.User, loaded bool, err error) {
	in := p.in
	f, ok := tx.(linkProber)
	if !ok {
		link, u, loaded, err = linkedUser(ctx, tx, in.tenant.ID, in.conn.ID, in.id.Subject)
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return nil, nil, false, nil
		}
		return link, u, loaded, err
	}
	email := strings.TrimSpace(in.id.Email)
	cand, group := probeArgs(in)
	link, u, facts, err := f.LinkOrFirstLoginProbe(ctx, in.tenant.ID, in.conn.ID, in.id.Subject, email, cand, group)
	if err != nil || link != nil {
		return link, u, err == nil, err
	}
	p.facts, p.factsEmail = facts, email
	return nil, nil, false, nil
}

// memberships returns the user's memberships and records the names of
// their groups when the store gives them.
func (p *plan) memberships(ctx context.Context, tx gatehouse.Tx, userID string) ([]*gatehouse.Membership, error) {
	if f, ok := tx.(membershipRefLister); ok {
		ms, names, err := f.ListUserMembershipRefs(ctx, p.in.tenant.ID, userID)
		for id, name := range names {
			p.names[id] = name
		}
		return ms, err
	}
	return tx.ListUserMemberships(ctx, p.in.tenant.ID, userID)
}
