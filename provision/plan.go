package provision

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/mapping"
)

// input is one resolution's arguments.
type input struct {
	tenant *gatehouse.Tenant
	conn   *gatehouse.Connection
	id     *gatehouse.Identity
	now    time.Time
	dry    bool
}

// plan is what a resolution will write. It is computed by reads only.
type plan struct {
	in      *input
	res     *Result
	refusal *gatehouse.Error
	// user is the user after the resolution (nil when unknown).
	user       *gatehouse.User
	createUser bool
	// changes lists the profile fields changed on an existing user.
	changes []string
	// newLink is the link to create; link the one found.
	newLink *gatehouse.FederatedIdentity
	link    *gatehouse.FederatedIdentity
	linkVia string
	adds    []*gatehouse.Membership
	removes []*gatehouse.Membership
	// current: the user's stored memberships (every manager).
	current []*gatehouse.Membership
	// names: group ID → name, for the result and audit details.
	names map[string]string
	// wroteWithUser: createUser wrote newLink and adds with the user.
	wroteWithUser bool
	// probed: username key → taken, learnt with the email look-up;
	// probedGroups: group name key → the group (nil: none), likewise.
	probed       map[string]bool
	probedGroups map[string]*gatehouse.Group
	// noOutbox: the store said the tenant has no enabled webhook, so
	// AppendOutbox would write nothing.
	noOutbox bool
	// facts: the first-login facts the first look read with no link,
	// for the email factsEmail (firstLook).
	facts      *gatehouse.FirstLoginFacts
	factsEmail string
}

func (p *plan) explain(format string, args ...any) {
	p.res.Explanation = append(p.res.Explanation, fmt.Sprintf(format, args...))
}

// refuse sets the refusal; the explanation gets the admin's view of it.
func (p *plan) refuse(code, reason, message, why string) {
	p.refusal = &gatehouse.Error{Code: code, Reason: reason, Message: message}
	p.explain("Refused (%s): %s", reason, why)
}

// err returns the refusal as an error, or nil.
func (p *plan) err() error {
	if p.refusal == nil {
		return nil
	}
	return p.refusal
}

// plan decides. Rule order (issue 4): an existing link; else a user with
// the same email, linked only where the policy allows; else a new user.
func (r *Resolver) plan(ctx context.Context, tx gatehouse.Tx, in *input) (*plan, error) {
	p := &plan{in: in, res: &Result{}, names: map[string]string{}}
	if in.now.IsZero() {
		in.now = r.clock.Now().UTC()
	}
	tenant, conn, id := in.tenant, in.conn, in.id
	link, lu, loaded, err := p.firstLook(ctx, tx)
	if err != nil {
		return nil, err
	}
	if link != nil {
		return p, r.planExisting(ctx, tx, p, link, lu, loaded)
	}
	p.explain("No account is linked yet to subject %q of connection %q.", id.Subject, conn.Name)
	email, ok := r.checkEmail(p)
	if !ok {
		return p, nil
	}
	// With the store's fast path, one statement reads the email's user,
	// whether the first username is taken and whether this connection
	// has SCIM tokens (else there is nothing to reconcile): the first
	// look's, or one of its own.
	probe, err := p.firstLoginProbe(ctx, tx, email)
	if err != nil {
		return nil, err
	}
	// SCIM reconciliation: the IdP that pushed the user through SCIM now
	// signs them in; link by externalId, userName or email.
	var u *gatehouse.User
	var via string
	if probe == nil || probe.scimTokens {
		if u, via, err = r.scimMatch(ctx, tx, p, email); err != nil {
			return nil, err
		}
	}
	switch {
	case u != nil:
	case probe != nil:
		u = probe.user
	default:
		u, err = tx.GetUserByEmail(ctx, tenant.ID, email)
		if err != nil && !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return nil, err
		}
	}
	if u != nil {
		// A concurrent first login of this same identity commits its
		// user and link together. Under READ COMMITTED (PostgreSQL) it
		// may have committed after our first look for the link and
		// before this read of the user: look again, so the race ends in
		// "existing" instead of a refused link. (LinkOrFirstLoginProbe
		// reads the email's user with the first look, in one snapshot;
		// scimMatch and the portable path read it later.)
		if link, lu, loaded, err := linkedUser(ctx, tx, tenant.ID, conn.ID, id.Subject); err == nil {
			p = &plan{in: in, res: &Result{}, names: map[string]string{}}
			return p, r.planExisting(ctx, tx, p, link, lu, loaded)
		} else if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return nil, err
		}
		if via != "" {
			return p, r.planLink(ctx, tx, p, u, via)
		}
		return p, r.planLinkByEmail(ctx, tx, p, u)
	}
	p.explain("No user of the tenant has the email %s.", email)
	return p, r.planCreate(ctx, tx, p, email)
}

// checkEmail returns the trimmed email, or refuses (missing_email,
// invalid_email) naming the attribute the connection expects it in.
func (r *Resolver) checkEmail(p *plan) (string, bool) {
	conn := p.in.conn
	attr := mapping.Source(conn.Type, conn.Mapping, mapping.FieldEmail)
	email := strings.TrimSpace(p.in.id.Email)
	if email == "" {
		p.refusal = &gatehouse.Error{Code: gatehouse.EINVALID, Reason: ReasonMissingEmail, Field: attr,
			Message: fmt.Sprintf("Your identity provider did not send your email address (expected in %q). Ask your administrator to check the sign-in connection's attribute mapping.", attr)}
		p.explain("Refused (%s): the identity provider sent no email address in %q; the email is the one attribute an account needs.", ReasonMissingEmail, attr)
		return "", false
	}
	if !gatehouse.ValidEmail(email) {
		shown := email
		if r := []rune(shown); len(r) > 80 {
			shown = string(r[:80]) + "…"
		}
		p.refusal = &gatehouse.Error{Code: gatehouse.EINVALID, Reason: ReasonInvalidEmail, Field: attr,
			Message: fmt.Sprintf("Your identity provider sent %q as your email address (in %q), which is not a valid email address. Ask your administrator to check the sign-in connection's attribute mapping.", shown, attr)}
		p.explain("Refused (%s): %q from %q is not a valid email address.", ReasonInvalidEmail, shown, attr)
		return "", false
	}
	return email, true
}

// refuseUnusable refuses a deactivated, deleted or pending user; it reports
// whether it did.
func (p *plan) refuseUnusable(u *gatehouse.User) bool {
	switch {
	case u.DeletedAt != nil:
		p.refuse(gatehouse.EFORBIDDEN, ReasonUserDeleted,
			"Your account was deleted and cannot be re-created by signing in. Ask your administrator.",
			fmt.Sprintf("user %s (%s) was deleted; sign-in never re-creates a deleted user until an administrator purges it.", u.ID, u.Email))
	case u.Status == gatehouse.StatusDeactivated:
		p.refuse(gatehouse.EFORBIDDEN, ReasonUserDeactivated,
			"Your account is deactivated. Ask your administrator to reactivate it.",
			fmt.Sprintf("user %s (%s) is deactivated.", u.ID, u.Email))
	case u.Status == gatehouse.StatusPending:
		p.res.Outcome = OutcomePending
		p.refuse(gatehouse.EFORBIDDEN, ReasonPendingApproval,
			"Your account is waiting for an administrator's approval. You can sign in once it is approved.",
			fmt.Sprintf("user %s (%s) is waiting for approval.", u.ID, u.Email))
	default:
		return false
	}
	return true
}

// planExisting: rule 1, the link (connection, subject) exists. When
// loaded, u is its live user as read with the link (nil: gone).
func (r *Resolver) planExisting(ctx context.Context, tx gatehouse.Tx, p *plan, link *gatehouse.FederatedIdentity, u *gatehouse.User, loaded bool) error {
	in := p.in
	p.link = link
	p.res.Identity = link
	var err error
	if !loaded {
		u, err = tx.GetUser(ctx, in.tenant.ID, link.UserID)
	}
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) || (err == nil && u == nil) {
		// Deleting a user removes its links, so this is only a race with
		// a deletion; refuse like a tombstone.
		p.refuse(gatehouse.EFORBIDDEN, ReasonUserDeleted,
			"Your account was deleted. Ask your administrator.",
			fmt.Sprintf("the linked user %s no longer exists.", link.UserID))
		return nil
	}
	if err != nil {
		return err
	}
	p.user = u
	p.res.User = u
	p.explain("Subject %q of connection %q is linked to user %s (%s).", in.id.Subject, in.conn.Name, u.Username, u.ID)
	if p.refuseUnusable(u) {
		return nil
	}
	p.res.Outcome = OutcomeExisting
	if err := r.planProfile(ctx, tx, p); err != nil {
		return err
	}
	return r.planGroups(ctx, tx, p)
}

// scimMatch finds the SCIM-provisioned user this login is for, when the
// connection is the one that pushed that user through SCIM (issue 7:
// "through the token's connection"). When every SCIM token of the tenant
// names this connection, any SCIM user qualifies. Otherwise the tenant has
// tokens of several connections (or tokens naming none): a user qualifies
// only when the token that created or adopted it names this connection, so a
// user pushed by one IdP is never claimed by another; the rest fall to the
// normal email policy.
func (r *Resolver) scimMatch(ctx context.Context, tx gatehouse.Tx, p *plan, email string) (*gatehouse.User, string, error) {
	in := p.in
	toks, err := tx.ListSCIMTokens(ctx, in.tenant.ID)
	if err != nil || len(toks) == 0 {
		return nil, "", err
	}
	tokenConn := make(map[string]string, len(toks))
	all, some := true, false
	for _, t := range toks {
		tokenConn[t.ID] = t.ConnectionID
		if t.ConnectionID == in.conn.ID {
			some = true
		} else {
			all = false
		}
	}
	if !some {
		return nil, "", nil
	}
	try := []struct {
		via string
		get func() (*gatehouse.User, error)
	}{
		// Okta's SCIM externalId is its user id, which is also its OIDC
		// subject; an Entra ID app can be set up the same way.
		{"externalId", func() (*gatehouse.User, error) { return tx.GetUserByExternalID(ctx, in.tenant.ID, in.id.Subject) }},
		{"userName", func() (*gatehouse.User, error) {
			if in.id.Username == "" {
				return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "no username")
			}
			return tx.GetUserByUsername(ctx, in.tenant.ID, in.id.Username)
		}},
		{"email", func() (*gatehouse.User, error) { return tx.GetUserByEmail(ctx, in.tenant.ID, email) }},
	}
	for _, c := range try {
		u, err := c.get()
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if u.Source != gatehouse.SourceSCIM || u.DeletedAt != nil {
			continue
		}
		if !all {
			tok, err := scimPusher(ctx, tx, in.tenant.ID, u.ID)
			if err != nil {
				return nil, "", err
			}
			if tok == "" || tokenConn[tok] != in.conn.ID {
				continue
			}
		}
		if c.via == "email" && in.id.EmailVerified != nil && !*in.id.EmailVerified && !in.conn.JIT.TrustUnverifiedEmail {
			// An address the IdP itself calls unverified does not
			// identify anyone, SCIM or not.
			continue
		}
		p.explain("The connection provisions this tenant through SCIM, and user %s was created by SCIM with the same %s.", u.ID, c.via)
		return u, "scim_" + c.via, nil
	}
	return nil, "", nil
}

// scimPusher returns the SCIM token that created or adopted the user (the
// actor of its latest scim.user.created or scim.user.adopted audit event,
// written with the change), or "" when none is recorded.
func scimPusher(ctx context.Context, tx gatehouse.Tx, tenantID, userID string) (string, error) {
	var latest *gatehouse.AuditEvent
	for _, action := range []string{"scim.user.created", "scim.user.adopted"} {
		evs, _, err := tx.ListAudit(ctx, tenantID, gatehouse.AuditFilter{Action: action, TargetID: userID}, gatehouse.Page{Limit: 1})
		if err != nil {
			return "", err
		}
		// Audit IDs sort by time: the greater is the later.
		if len(evs) > 0 && evs[0].ActorType == "scim" && (latest == nil || evs[0].ID > latest.ID) {
			latest = evs[0]
		}
	}
	if latest == nil {
		return "", nil
	}
	return latest.ActorID, nil
}

// planLinkByEmail: rule 2, a user has the same email. Linking needs the
// connection's permission, a verified email and a domain the tenant
// verified: otherwise anyone able to set an email at some IdP could take an
// account over ("nOAuth").
func (r *Resolver) planLinkByEmail(ctx context.Context, tx gatehouse.Tx, p *plan, u *gatehouse.User) error {
	in := p.in
	pol := in.conn.JIT
	p.user = u
	p.res.User = u
	p.explain("User %s (%s) already has this email.", u.ID, u.Username)
	if p.refuseUnusable(u) {
		return nil
	}
	email := strings.TrimSpace(in.id.Email)
	domain := gatehouse.EmailDomain(email)
	linkMsg := "An account with your email address already exists, and this sign-in method may not connect to it. Ask your administrator to link your account."
	switch {
	case !pol.LinkExistingByEmail:
		p.refuse(gatehouse.EFORBIDDEN, ReasonLinkNotAllowed, linkMsg,
			"the connection does not allow linking existing users by email (link_existing_by_email is off).")
		return nil
	case !tenantDomain(in.tenant, domain):
		p.refuse(gatehouse.EFORBIDDEN, ReasonLinkNotAllowed, linkMsg,
			fmt.Sprintf("%s is not one of the tenant's verified domains; linking by email needs one.", domain))
		return nil
	}
	if ok, why := verifiedForLink(in.id, pol); !ok {
		p.refuse(gatehouse.EFORBIDDEN, ReasonEmailUnverified,
			"Your identity provider does not vouch for your email address, so it cannot be used to reach your existing account. Ask your administrator.",
			why)
		return nil
	}
	p.explain("Linking is allowed: link_existing_by_email is on, the email is verified and %s is a verified domain of the tenant.", domain)
	return r.planLink(ctx, tx, p, u, "email")
}

// planLink links u to (connection, subject) after the policy said yes.
func (r *Resolver) planLink(ctx context.Context, tx gatehouse.Tx, p *plan, u *gatehouse.User, via string) error {
	in := p.in
	p.user = u
	p.res.User = u
	if p.refuseUnusable(u) {
		return nil
	}
	// One account per person per IdP: a second subject of the same
	// connection claiming a linked user is an IdP account reusing an email,
	// not the same person.
	links, err := tx.ListUserIdentities(ctx, in.tenant.ID, u.ID)
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.ConnectionID == in.conn.ID {
			p.refuse(gatehouse.EFORBIDDEN, ReasonLinkNotAllowed,
				"Your account is already connected to another identity at this sign-in method. Ask your administrator.",
				fmt.Sprintf("user %s is already linked to subject %q of this connection.", u.ID, l.Subject))
			return nil
		}
	}
	p.newLink = &gatehouse.FederatedIdentity{TenantID: in.tenant.ID, ConnectionID: in.conn.ID,
		Subject: in.id.Subject, UserID: u.ID, CreatedAt: in.now, LastLoginAt: &in.now}
	p.res.Identity = p.newLink
	p.linkVia = via
	p.res.Outcome = OutcomeLinked
	p.explain("Decision: link subject %q to user %s (%s).", in.id.Subject, u.Username, u.ID)
	if err := r.planProfile(ctx, tx, p); err != nil {
		return err
	}
	return r.planGroups(ctx, tx, p)
}

// planCreate: rule 3, nobody has this identity or email.
func (r *Resolver) planCreate(ctx context.Context, tx gatehouse.Tx, p *plan, email string) error {
	in := p.in
	pol := in.conn.JIT
	domain := gatehouse.EmailDomain(email)
	if !pol.Enabled {
		p.refuse(gatehouse.EFORBIDDEN, ReasonJITDisabled,
			"You have no account here yet, and this sign-in method does not create accounts. Ask your administrator to create your account.",
			"just-in-time provisioning is off for this connection.")
		return nil
	}
	if ok, why := domainAllowed(in.tenant, pol, domain); !ok {
		p.refuse(gatehouse.EFORBIDDEN, ReasonDomainNotAllowed,
			fmt.Sprintf("Your organization does not allow accounts for %s addresses through this sign-in method. Ask your administrator for access.", domain),
			why)
		return nil
	} else {
		p.explain("JIT is on and %s", why)
	}
	if v := in.id.EmailVerified; v != nil && !*v {
		if !pol.TrustUnverifiedEmail {
			p.refuse(gatehouse.EFORBIDDEN, ReasonEmailUnverified,
				"Your identity provider says your email address is not verified. Verify it with your identity provider, then sign in again.",
				"the identity provider sent email_verified=false and the connection does not trust unverified emails.")
			return nil
		}
		p.explain("The identity provider says the email is unverified; the connection trusts unverified emails (trust_unverified_email).")
	} else if v == nil {
		p.explain("The identity provider says nothing about email verification; for a new account that is accepted under the domain policy.")
	}
	username, err := r.chooseUsername(ctx, tx, p, nil)
	if err != nil {
		return err
	}
	status := gatehouse.StatusActive
	if pol.RequireApproval {
		status = gatehouse.StatusPending
	}
	u := &gatehouse.User{
		ID: r.newID("usr"), TenantID: in.tenant.ID, Email: email, Username: username,
		DisplayName: in.id.DisplayName, GivenName: in.id.GivenName, FamilyName: in.id.FamilyName,
		Status: status, Source: gatehouse.SourceJIT, CreatedAt: in.now, UpdatedAt: in.now,
	}
	if status == gatehouse.StatusActive {
		u.LastLoginAt = &in.now
	}
	p.user, p.res.User, p.createUser = u, u, true
	p.newLink = &gatehouse.FederatedIdentity{TenantID: in.tenant.ID, ConnectionID: in.conn.ID,
		Subject: in.id.Subject, UserID: u.ID, CreatedAt: in.now}
	if status == gatehouse.StatusActive {
		p.newLink.LastLoginAt = &in.now
	}
	p.res.Identity = p.newLink
	p.res.Outcome = OutcomeCreated
	p.explain("Decision: create user %s with username %s.", email, username)
	if err := r.planDefaultGroups(ctx, tx, p); err != nil {
		return err
	}
	if err := r.planGroups(ctx, tx, p); err != nil {
		return err
	}
	if status == gatehouse.StatusPending {
		p.res.Outcome = OutcomePending
		p.refuse(gatehouse.EFORBIDDEN, ReasonPendingApproval,
			"Your account was created and is waiting for an administrator's approval. You can sign in once it is approved.",
			"the connection requires approval of new users (require_approval); the user is created as pending.")
	}
	return nil
}

// tenantDomain reports whether domain is one of the tenant's verified domains.
func tenantDomain(t *gatehouse.Tenant, domain string) bool {
	for _, d := range t.Domains {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}

// domainAllowed applies allowed_domains: absent (nil) means the tenant's
// verified domains, [] any domain, a list exactly those domains.
func domainAllowed(t *gatehouse.Tenant, pol gatehouse.JITPolicy, domain string) (bool, string) {
	switch {
	case pol.AllowedDomains == nil:
		if tenantDomain(t, domain) {
			return true, fmt.Sprintf("%s is one of the tenant's verified domains.", domain)
		}
		return false, fmt.Sprintf("%s is not one of the tenant's verified domains (%s), and the connection lists no other allowed domains.", domain, strings.Join(t.Domains, ", "))
	case len(*pol.AllowedDomains) == 0:
		return true, "the connection allows any email domain (allowed_domains is [])."
	}
	for _, d := range *pol.AllowedDomains {
		if strings.EqualFold(strings.TrimSpace(d), domain) {
			return true, fmt.Sprintf("%s is in the connection's allowed domains.", domain)
		}
	}
	return false, fmt.Sprintf("%s is not in the connection's allowed domains (%s).", domain, strings.Join(*pol.AllowedDomains, ", "))
}

// verifiedForLink: linking an existing account needs an email the IdP
// vouches for. email_verified=true does; false does only with
// trust_unverified_email; an absent claim does with
// authoritative_for_domains (or trust_unverified_email).
func verifiedForLink(id *gatehouse.Identity, pol gatehouse.JITPolicy) (bool, string) {
	switch v := id.EmailVerified; {
	case v != nil && *v:
		return true, ""
	case v != nil:
		if pol.TrustUnverifiedEmail {
			return true, ""
		}
		return false, "the identity provider sent email_verified=false and the connection does not trust unverified emails."
	case pol.AuthoritativeForDomains || pol.TrustUnverifiedEmail:
		return true, ""
	}
	return false, "the identity provider sent no email_verified claim, and the connection is not marked authoritative for the tenant's domains; an unverified email never links an existing account."
}

// chooseUsername keeps the IdP's username when it is free, else derives
// one from it or from the email's local part, made unique: ana, ana2, ana3.
// Candidates in skip (lost to a concurrent login a moment ago) are passed
// over without asking the store.
func (r *Resolver) chooseUsername(ctx context.Context, tx gatehouse.Tx, p *plan, skip map[string]bool) (string, error) {
	base, fromIdP := usernameBase(p.in.id)
	for i := 1; i <= 50; i++ {
		cand := base
		if i > 1 {
			cand = fmt.Sprintf("%s%d", base, i)
		}
		if skip[gatehouse.FoldKey(cand)] {
			continue
		}
		taken, err := p.usernameTaken(ctx, tx, cand)
		if err != nil {
			return "", err
		}
		if !taken {
			if fromIdP && i > 1 {
				p.explain("The identity provider's username %q is taken by another user; using %q.", base, cand)
			}
			return cand, nil
		}
	}
	// Fifty people with the same local part: stop probing and add a
	// random suffix (unique with overwhelming probability; a collision is
	// an ECONFLICT and the resolution is retried).
	id := r.newID("x")
	return base + "-" + id[len(id)-6:], nil
}

// usernameBase is the first username a new user is offered: the IdP's,
// else the email's local part in lower case; fromIdP says which.
func usernameBase(id *gatehouse.Identity) (base string, fromIdP bool) {
	if base = strings.TrimSpace(id.Username); base != "" {
		return base, true
	}
	email := strings.TrimSpace(id.Email)
	if i := strings.LastIndexByte(email, '@'); i >= 0 {
		email = email[:i]
	}
	return strings.ToLower(email), false
}

// planProfile refreshes the mapped attributes of an existing user when the
// connection says so (update_profile). Only values the IdP sent are used:
// an attribute it stops sending is kept, not erased.
func (r *Resolver) planProfile(ctx context.Context, tx gatehouse.Tx, p *plan) error {
	in := p.in
	if !in.conn.JIT.UpdateProfile {
		p.explain("The profile is not refreshed from the identity provider (update_profile is off).")
		return nil
	}
	u := *p.user
	set := func(field string, dst *string, v string) {
		if v != "" && *dst != v {
			*dst = v
			p.changes = append(p.changes, field)
		}
	}
	set("display_name", &u.DisplayName, in.id.DisplayName)
	set("given_name", &u.GivenName, in.id.GivenName)
	set("family_name", &u.FamilyName, in.id.FamilyName)
	if e := strings.TrimSpace(in.id.Email); e != "" && e != u.Email && gatehouse.ValidEmail(e) {
		other, err := tx.GetUserByEmail(ctx, in.tenant.ID, e)
		switch {
		case err == nil && other.ID != u.ID:
			p.explain("The identity provider's email %s belongs to another user; the email is not changed.", e)
		case err == nil || gatehouse.IsCode(err, gatehouse.ENOTFOUND):
			set("email", &u.Email, e)
		default:
			return err
		}
	}
	// The username is refreshed only for JIT users: SCIM and admins own
	// the usernames of the users they create, and a login must not fight
	// them over it.
	if n := strings.TrimSpace(in.id.Username); n != "" && n != u.Username && u.Source == gatehouse.SourceJIT {
		taken := false
		if gatehouse.FoldKey(n) != gatehouse.FoldKey(u.Username) {
			var err error
			if taken, err = tx.UsernameTaken(ctx, in.tenant.ID, n); err != nil {
				return err
			}
		}
		if taken {
			p.explain("The identity provider's username %q is taken by another user; the username is not changed.", n)
		} else {
			set("username", &u.Username, n)
		}
	}
	if len(p.changes) == 0 {
		p.explain("The profile is up to date with the identity provider.")
		return nil
	}
	u.UpdatedAt = in.now
	p.user = &u
	p.res.User = &u
	p.res.Updated = true
	p.explain("The profile is refreshed from the identity provider: %s.", strings.Join(p.changes, ", "))
	return nil
}

// DefaultGroupsManager is the manager of the memberships a connection
// gives the users it creates (default_groups). It differs from the group
// sync manager (gatehouse.ManagedByConnection), so a later group sync never
// removes a default group; an admin can.
func DefaultGroupsManager(connectionID string) string {
	return gatehouse.ManagedByConnection(connectionID) + ":default"
}

// groupRefGetter is the store's optional GetGroupByName without the member
// count (sqlstore has it): counting the members of a default group on
// every login grows with the tenant.
type groupRefGetter interface {
	GetGroupRef(ctx context.Context, tenantID, id string) (*gatehouse.Group, error)
	GetGroupRefByName(ctx context.Context, tenantID, name string) (*gatehouse.Group, error)
}

// lookupGroup finds a group by name, remembering its name; nil when it
// does not exist.
func (p *plan) lookupGroup(ctx context.Context, tx gatehouse.Tx, name string) (*gatehouse.Group, error) {
	if g, ok := p.probedGroups[gatehouse.FoldKey(name)]; ok {
		if g != nil {
			p.names[g.ID] = g.Name
		}
		return g, nil
	}
	get := tx.GetGroupByName
	if fast, ok := tx.(groupRefGetter); ok {
		get = fast.GetGroupRefByName
	}
	g, err := get(ctx, p.in.tenant.ID, name)
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p.names[g.ID] = g.Name
	return g, nil
}

func (p *plan) membership(groupID, manager string) *gatehouse.Membership {
	return &gatehouse.Membership{TenantID: p.in.tenant.ID, GroupID: groupID, UserID: p.user.ID,
		ManagedBy: manager, CreatedAt: p.in.now}
}

// planDefaultGroups adds the connection's default groups to a new user.
func (r *Resolver) planDefaultGroups(ctx context.Context, tx gatehouse.Tx, p *plan) error {
	var added []string
	for _, name := range p.in.conn.JIT.DefaultGroups {
		g, err := p.lookupGroup(ctx, tx, name)
		if err != nil {
			return err
		}
		if g == nil {
			// Checked when the connection is saved; the group was
			// deleted since. Log in anyway: a missing default group is
			// the admin's to fix, not the user's.
			p.explain("Default group %q does not exist and is skipped.", name)
			r.log.WarnContext(ctx, "provision: default group missing", "tenant", p.in.tenant.ID, "connection", p.in.conn.ID, "group", name)
			continue
		}
		p.adds = append(p.adds, p.membership(g.ID, DefaultGroupsManager(p.in.conn.ID)))
		added = append(added, g.Name)
	}
	if len(added) > 0 {
		p.explain("Default groups of the connection: %s.", strings.Join(added, ", "))
	}
	return nil
}

// planGroups syncs the memberships managed by this connection with the
// IdP's groups through the mapping. Unmapped IdP groups are ignored;
// memberships of any other manager (admin, SCIM, default groups) are never
// touched.
func (r *Resolver) planGroups(ctx context.Context, tx gatehouse.Tx, p *plan) error {
	in := p.in
	if !p.createUser {
		cur, err := p.memberships(ctx, tx, p.user.ID)
		if err != nil {
			return err
		}
		p.current = cur
	}
	defer func() {
		p.res.Groups = p.groupNames(ctx, tx)
		p.user.Groups = p.res.Groups
	}()
	gs := in.conn.JIT.GroupSync
	if !gs.Enabled {
		return nil
	}
	// With a partial group list (Entra ID's overage: too many groups to
	// send), memberships may be added but none removed.
	partial := in.id.GroupsIncomplete || mapping.GroupsOverage(in.id.Raw)
	if partial {
		p.explain("The identity provider sent only part of the user's groups; group sync adds memberships but removes none.")
	}
	manager := gatehouse.ManagedByConnection(in.conn.ID)
	want := map[string]bool{}
	var wantNames []string
	for _, idpGroup := range in.id.Groups {
		target, ok := gs.Mapping[idpGroup]
		if !ok {
			continue
		}
		g, err := p.lookupGroup(ctx, tx, target)
		if err != nil {
			return err
		}
		if g == nil {
			p.explain("IdP group %q maps to group %q, which does not exist; skipped.", idpGroup, target)
			continue
		}
		if !want[g.ID] {
			want[g.ID] = true
			wantNames = append(wantNames, g.Name)
		}
	}
	have := map[string]bool{}
	for _, m := range p.current {
		if m.ManagedBy != manager {
			continue
		}
		have[m.GroupID] = true
		if !want[m.GroupID] && !partial {
			p.removes = append(p.removes, m)
		}
	}
	for _, gid := range sortedKeys(want) {
		if !have[gid] {
			p.adds = append(p.adds, p.membership(gid, manager))
		}
	}
	if len(wantNames) > 0 {
		p.explain("Group sync: the identity provider's groups give %s.", strings.Join(wantNames, ", "))
	} else {
		p.explain("Group sync: none of the identity provider's groups is mapped.")
	}
	if !p.createUser && len(p.adds)+len(p.removes) > 0 {
		p.res.Updated = true
	}
	return nil
}

// groupNames returns the sorted names of the user's groups after the plan.
func (p *plan) groupNames(ctx context.Context, tx gatehouse.Tx) []string {
	removed := map[[2]string]bool{}
	for _, m := range p.removes {
		removed[[2]string{m.GroupID, m.ManagedBy}] = true
	}
	ids := map[string]bool{}
	for _, m := range p.current {
		if !removed[[2]string{m.GroupID, m.ManagedBy}] {
			ids[m.GroupID] = true
		}
	}
	for _, m := range p.adds {
		ids[m.GroupID] = true
	}
	get := tx.GetGroup
	if fast, ok := tx.(groupRefGetter); ok {
		get = fast.GetGroupRef
	}
	out := []string{}
	for id := range ids {
		name, ok := p.names[id]
		if !ok {
			if g, err := get(ctx, p.in.tenant.ID, id); err == nil {
				name = g.Name
				p.names[id] = name
			} else {
				name = id
			}
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
