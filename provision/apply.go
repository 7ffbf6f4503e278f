package provision

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// apply writes a plan inside the resolution's transaction: the change, its
// audit events and its outbox events commit together or not at all.
func (r *Resolver) apply(ctx context.Context, tx gatehouse.Tx, p *plan) error {
	in := p.in
	u := p.user
	tenantID := in.tenant.ID
	active := u.Status == gatehouse.StatusActive
	if p.createUser {
		if active {
			// The first login is written with the user: one INSERT
			// instead of an INSERT and an UPDATE.
			u.LastLoginAt = &in.now
		}
		if err := r.createUser(ctx, tx, p); err != nil {
			return err
		}
	} else if len(p.changes) > 0 {
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
	}
	switch {
	case p.wroteWithUser:
		// createUser wrote the link and the memberships with the user.
	case p.newLink != nil:
		if err := tx.CreateIdentity(ctx, p.newLink); err != nil {
			return err
		}
	case active:
		if err := tx.TouchIdentity(ctx, tenantID, in.conn.ID, in.id.Subject, in.now); err != nil {
			return err
		}
		p.link.LastLoginAt = &in.now
	}
	if active && !p.createUser {
		// A user's last login is not a profile change: no new version.
		if err := tx.TouchUserLogin(ctx, tenantID, u.ID, in.now); err != nil {
			return err
		}
		u.LastLoginAt = &in.now
	}
	for _, m := range p.adds {
		if p.wroteWithUser {
			break // written by createUser
		}
		if err := tx.AddMembership(ctx, m); err != nil {
			return err
		}
	}
	for _, m := range p.removes {
		if err := tx.RemoveMembership(ctx, tenantID, m.GroupID, m.UserID, m.ManagedBy); err != nil {
			return err
		}
	}

	base := map[string]any{"connection": in.conn.ID, "subject": in.id.Subject, "email": u.Email}
	with := func(kv ...any) map[string]any {
		d := make(map[string]any, len(base)+len(kv)/2)
		for k, v := range base {
			d[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			d[kv[i].(string)] = kv[i+1]
		}
		return d
	}
	var events []*gatehouse.AuditEvent
	event := func(action string, details map[string]any) {
		events = append(events, &gatehouse.AuditEvent{
			ID: r.newID("aud"), TenantID: tenantID, Time: in.now,
			ActorType: actorTypeConnection, ActorID: in.conn.ID, RequestID: r.requestID(ctx),
			Action: action, TargetType: "user", TargetID: u.ID, Details: details,
		})
	}
	var outboxType string
	switch {
	case p.createUser:
		event(auditUserJITCreated, with("username", u.Username, "status", u.Status, "groups", p.res.Groups))
		outboxType = outboxUserCreated
	case p.newLink != nil:
		event(auditUserLinked, with("via", p.linkVia))
		outboxType = outboxUserLinked
	}
	if !p.createUser && p.res.Updated {
		event(auditUserUpdatedFromIdP, with("changed", p.changes,
			"groups_added", p.groupList(p.adds), "groups_removed", p.groupList(p.removes)))
		if outboxType == "" {
			outboxType = outboxUserUpdated
		}
	}
	if active {
		event(auditLoginSucceeded, with("outcome", p.res.Outcome))
	} else {
		// Only a new pending user gets here: created, but not signed in.
		event(auditLoginRefused, with("reason", p.refusal.Reason))
	}
	if err := gatehouse.AppendAudits(ctx, tx, events...); err != nil {
		return err
	}
	if outboxType != "" && !p.noOutbox {
		return r.outbox(ctx, tx, tenantID, outboxType, in.now, u, map[string]any{
			"connection_id": in.conn.ID, "subject": in.id.Subject, "groups": p.res.Groups})
	}
	return nil
}

// createUser inserts the new user. When a concurrent login of someone
// else took the chosen username first (PostgreSQL reports it once that
// login commits), it picks the next free one in the same transaction
// instead of starting over: fifty Sams arriving together would otherwise
// need fifty rounds.
//
// With the store's fast path the user's link and memberships are written
// with it (p.wroteWithUser); an error other than a taken username fails
// the resolution, whose transaction is then rolled back.
func (r *Resolver) createUser(ctx context.Context, tx gatehouse.Tx, p *plan) error {
	u := p.user
	groups := u.Groups
	skip := map[string]bool{}
	fast, isFast := tx.(jitCreator)
	for {
		var err error
		if isFast {
			err = fast.CreateJITUser(ctx, u, p.newLink, p.adds)
		} else {
			err = tx.CreateUser(ctx, u)
		}
		if err == nil {
			u.Groups = groups
			p.wroteWithUser = isFast
			return nil
		}
		if !gatehouse.IsCode(err, gatehouse.ECONFLICT) || gatehouse.ErrorField(err) != "username" || len(skip) >= 20 {
			return err
		}
		// Our own identity won elsewhere (same email): start over and
		// find it.
		if _, e := tx.GetUserByEmail(ctx, u.TenantID, u.Email); e == nil {
			return err
		} else if !gatehouse.IsCode(e, gatehouse.ENOTFOUND) {
			return e
		}
		skip[gatehouse.FoldKey(u.Username)] = true
		next, e := r.chooseUsername(ctx, tx, p, skip)
		if e != nil {
			return e
		}
		p.explain("Username %q was taken a moment ago by a concurrent sign-in; using %q.", u.Username, next)
		u.Username = next
	}
}

// groupList names the groups of memberships, for audit details.
func (p *plan) groupList(ms []*gatehouse.Membership) []string {
	out := []string{}
	for _, m := range ms {
		if n, ok := p.names[m.GroupID]; ok {
			out = append(out, n)
		} else {
			out = append(out, m.GroupID)
		}
	}
	sort.Strings(out)
	return out
}

// outbox appends a provisioning event for webhook delivery. The payload is
// {"user": <user>, ...extra}.
func (r *Resolver) outbox(ctx context.Context, tx gatehouse.Tx, tenantID, typ string, now time.Time, u *gatehouse.User, extra map[string]any) error {
	body := map[string]any{"user": u}
	for k, v := range extra {
		body[k] = v
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return tx.AppendOutbox(ctx, &gatehouse.OutboxEvent{ID: r.newID("obx"), TenantID: tenantID,
		Type: typ, Payload: payload, CreatedAt: now})
}
