// Package provision resolves a verified IdP identity to a Gatehouse user:
// the existing link, a link to an existing account where the connection's
// policy allows it, or a new account created just in time. It is the same
// for every protocol; connectors only produce the gatehouse.Identity.
//
// Every decision is computed first as a plan by reads alone, then applied in
// the same transaction. A dry run computes the plan in a read-only
// transaction and writes nothing, so the console's "test connection" shows
// exactly what a real login would do.
package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/gatehouse-sso/gatehouse"
)

// Mode says whether Resolve writes.
type Mode int

const (
	// Apply resolves and writes: the login is real.
	Apply Mode = iota + 1
	// DryRun computes the same result and writes nothing (no user, link,
	// membership, audit or outbox row).
	DryRun
)

// Outcomes of a resolution.
const (
	OutcomeExisting = "existing" // an existing link (connection, subject)
	OutcomeLinked   = "linked"   // a new link to an existing user
	OutcomeCreated  = "created"  // a new user, created just in time
	OutcomePending  = "pending"  // a user waiting for an admin's approval
)

// Refusal reasons (gatehouse.Error.Reason).
const (
	ReasonJITDisabled       = "jit_disabled"
	ReasonDomainNotAllowed  = "domain_not_allowed"
	ReasonEmailUnverified   = "email_unverified"
	ReasonLinkNotAllowed    = "link_not_allowed"
	ReasonUserDeactivated   = "user_deactivated"
	ReasonUserDeleted       = "user_deleted"
	ReasonPendingApproval   = "pending_approval"
	ReasonMissingEmail      = "missing_email"
	ReasonInvalidEmail      = "invalid_email"
	ReasonMissingSubject    = "missing_subject"
	reasonNotPending        = "not_pending"
	defaultMaxAttempts      = 5
	actorTypeConnection     = "connection"
	outboxUserCreated       = "user.created"
	outboxUserLinked        = "user.linked"
	outboxUserUpdated       = "user.updated"
	auditLoginSucceeded     = "login.succeeded"
	auditLoginRefused       = "login.refused"
	auditUserJITCreated     = "user.jit_created"
	auditUserLinked         = "user.linked"
	auditUserUpdatedFromIdP = "user.updated_from_idp"
	auditUserApproved       = "user.approved"
)

// Options configures a Resolver. Zero fields take defaults.
type Options struct {
	// Clock gives the time of logins and records (default: the wall clock).
	Clock gatehouse.Clock
	// Logger receives operator diagnostics (default: slog.Default()).
	Logger *slog.Logger
	// NewID makes record IDs (default: gatehouse.NewID).
	NewID func(prefix string) string
	// RequestID returns the request id carried by ctx, for audit events.
	RequestID func(ctx context.Context) string
	// MaxAttempts bounds how often a resolution is retried after losing a
	// race (ECONFLICT or EPRECONDITION from the store); default 5.
	MaxAttempts int
}

// Resolver turns identities into users. It is safe for concurrent use.
type Resolver struct {
	store       gatehouse.Store
	clock       gatehouse.Clock
	log         *slog.Logger
	newID       func(string) string
	requestID   func(context.Context) string
	maxAttempts int
}

// New returns a Resolver over store.
func New(store gatehouse.Store, opts Options) *Resolver {
	r := &Resolver{store: store, clock: opts.Clock, log: opts.Logger, newID: opts.NewID,
		requestID: opts.RequestID, maxAttempts: opts.MaxAttempts}
	if r.clock == nil {
		r.clock = gatehouse.SystemClock{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.newID == nil {
		r.newID = gatehouse.NewID
	}
	if r.requestID == nil {
		r.requestID = func(context.Context) string { return "" }
	}
	if r.maxAttempts <= 0 {
		r.maxAttempts = defaultMaxAttempts
	}
	return r
}

// Result is what a resolution did (or, in a dry run, would do).
type Result struct {
	User *gatehouse.User
	// Outcome is OutcomeExisting, OutcomeLinked, OutcomeCreated or
	// OutcomePending; empty on a refusal of an unknown user.
	Outcome string
	// Updated reports that the user's profile or connection-managed group
	// memberships changed.
	Updated bool
	// Groups are the names of the user's groups after the resolution,
	// sorted.
	Groups []string
	// Explanation says, in sentences for an admin, why this happened.
	Explanation []string
	// Identity is the link (connection, subject) → user.
	Identity *gatehouse.FederatedIdentity
}

// Resolve resolves id, verified by conn of tenant, to a user.
//
// On success it returns the result and nil. On a refusal it returns a
// *gatehouse.Error with Code EFORBIDDEN (EINVALID for a missing or invalid
// email) and one of the Reason constants, together with a non-nil Result
// carrying the explanation (and the user when one is known). A new user
// who must wait for approval is created and committed, and Resolve returns
// the result (Outcome "pending") with the pending_approval refusal.
//
// In Apply mode every write, its audit events and its outbox events commit
// together with what the guard (WithGuard) wrote; so does a refusal's
// login.refused audit event: a non-nil Result with an error means that
// transaction committed. When a concurrent resolution wins a race (same
// new identity, same derived username), the whole resolution is retried,
// so concurrent first logins all succeed with one user and one link.
func (r *Resolver) Resolve(ctx context.Context, tenant *gatehouse.Tenant, conn *gatehouse.Connection, id *gatehouse.Identity, mode Mode) (*Result, error) {
	if tenant == nil || conn == nil || id == nil {
		return nil, &gatehouse.Error{Code: gatehouse.EINTERNAL, Message: "Internal error.", Err: errors.New("provision: nil tenant, connection or identity")}
	}
	if conn.TenantID != tenant.ID || (id.ConnectionID != "" && id.ConnectionID != conn.ID) || (id.TenantID != "" && id.TenantID != tenant.ID) {
		return nil, &gatehouse.Error{Code: gatehouse.EINTERNAL, Message: "Internal error.",
			Err: fmt.Errorf("provision: identity of connection %q/tenant %q resolved for connection %q of tenant %q", id.ConnectionID, id.TenantID, conn.ID, tenant.ID)}
	}
	if id.Subject == "" {
		return nil, &gatehouse.Error{Code: gatehouse.EINVALID, Reason: ReasonMissingSubject,
			Message: "Your identity provider did not say who you are (no subject). Ask your administrator to check the connection."}
	}
	in := &input{tenant: tenant, conn: conn, id: id, dry: mode == DryRun}
	switch mode {
	case DryRun:
		var p *plan
		err := r.store.View(ctx, func(tx gatehouse.Tx) error {
			var err error
			p, err = r.plan(ctx, tx, in)
			return err
		})
		if err != nil {
			return nil, err
		}
		return p.res, p.err()
	case Apply:
	default:
		return nil, &gatehouse.Error{Code: gatehouse.EINTERNAL, Message: "Internal error.", Err: fmt.Errorf("provision: unknown mode %d", mode)}
	}
	guard, _ := ctx.Value(guardKey{}).(Guard)
	for attempt := 1; ; attempt++ {
		in.now = r.clock.Now().UTC()
		var p *plan
		err := r.store.Update(ctx, func(tx gatehouse.Tx) error {
			if guard != nil {
				if err := guard(ctx, tx); err != nil {
					return err
				}
			}
			var err error
			p, err = r.plan(ctx, tx, in)
			if err != nil {
				return err
			}
			if p.refusal != nil && !p.createUser {
				// Nothing of the plan to write: the refusal's audit event
				// commits with what the guard wrote (a login's one-time
				// keys, so the refused response cannot be tried again),
				// in one transaction.
				return gatehouse.AppendAudits(ctx, tx, r.refusalEvent(ctx, in, p))
			}
			// The resolution's audit events and those of the hook (an
			// app's sign-in) are written together, in one statement.
			audits := &gatehouse.AuditBatch{}
			actx := gatehouse.WithAuditBatch(ctx, audits)
			if err := r.apply(actx, tx, p); err != nil {
				return err
			}
			if hook, ok := ctx.Value(afterApplyKey{}).(AfterApply); ok && p.refusal == nil && p.res.User != nil && p.res.User.Active() {
				if err := hook(actx, tx, p.res); err != nil {
					return err
				}
			}
			return audits.Flush(ctx, tx)
		})
		switch {
		case err == nil:
			return p.res, p.err()
		case retryable(err) && attempt < r.maxAttempts && ctx.Err() == nil:
			// A concurrent login created the same user or link, or
			// changed the user, between our reads and writes: start
			// over and find what it wrote.
			r.log.DebugContext(ctx, "provision: retrying after a concurrent change",
				"tenant", tenant.ID, "connection", conn.ID, "attempt", attempt, "err", err)
			continue
		default:
			return nil, err
		}
	}
}

// AfterApply is called inside the transaction of an Apply resolution
// that signs the user in (an active user, no refusal), after the
// resolution's own writes, so the caller can add its own (the login's
// session) to the same commit. An error rolls the whole resolution back.
// It may run more than once (a resolution retried after a concurrent
// change, or a transaction re-run on PostgreSQL); only the run whose res
// Resolve returns was committed.
type AfterApply func(ctx context.Context, tx gatehouse.Tx, res *Result) error

type afterApplyKey struct{}

// WithAfterApply returns ctx carrying fn for Resolve. It travels in the
// context so wrappers of the resolver (metrics) need not know about it.
func WithAfterApply(ctx context.Context, fn AfterApply) context.Context {
	return context.WithValue(ctx, afterApplyKey{}, fn)
}

// Guard is called first in every transaction of an Apply resolution,
// before its reads, so the caller can make the resolution's commit depend
// on checks and writes of its own in the same transaction: a login's
// one-time keys (a replayed login then rolls back entirely, and the login
// costs one commit) and the check that its connection did not change
// while it was under way. An error rolls the resolution back and Resolve
// returns it as is. It may run more than once, like AfterApply; an error
// with code ECONFLICT or EPRECONDITION retries the resolution, so a
// condition that a retry will not change must use another code.
type Guard func(ctx context.Context, tx gatehouse.Tx) error

type guardKey struct{}

// WithGuard returns ctx carrying fn for Resolve (in Apply mode; a dry run
// writes nothing and does not call it).
func WithGuard(ctx context.Context, fn Guard) context.Context {
	return context.WithValue(ctx, guardKey{}, fn)
}

func retryable(err error) bool {
	return gatehouse.IsCode(err, gatehouse.ECONFLICT) || gatehouse.IsCode(err, gatehouse.EPRECONDITION)
}

func (r *Resolver) refusalEvent(ctx context.Context, in *input, p *plan) *gatehouse.AuditEvent {
	targetType, targetID := "identity", in.id.Subject
	if p.user != nil && p.user.ID != "" {
		targetType, targetID = "user", p.user.ID
	}
	return &gatehouse.AuditEvent{
		ID: r.newID("aud"), TenantID: in.tenant.ID, Time: in.now,
		ActorType: actorTypeConnection, ActorID: in.conn.ID,
		Action: auditLoginRefused, TargetType: targetType, TargetID: targetID,
		RequestID: r.requestID(ctx),
		Details: map[string]any{
			"reason":     p.refusal.Reason,
			"email":      in.id.Email,
			"subject":    in.id.Subject,
			"connection": in.conn.ID,
		},
	}
}

// Approve moves a pending user to active and records user.approved. It is
// the action behind POST /api/v1/tenants/{tenant}/users/{id}/approve.
// Errors: ENOTFOUND for an unknown user; ECONFLICT (Reason "not_pending")
// when the user is not waiting for approval.
func (r *Resolver) Approve(ctx context.Context, tenantID, userID string, actor gatehouse.Actor) (*gatehouse.User, error) {
	var out *gatehouse.User
	err := r.store.Update(ctx, func(tx gatehouse.Tx) error {
		u, err := tx.GetUser(ctx, tenantID, userID)
		if err != nil {
			return err
		}
		if u.Status != gatehouse.StatusPending {
			return &gatehouse.Error{Code: gatehouse.ECONFLICT, Reason: reasonNotPending, Field: "status",
				Message: fmt.Sprintf("The user is not waiting for approval (status %s).", u.Status)}
		}
		now := r.clock.Now().UTC()
		u.Status = gatehouse.StatusActive
		u.UpdatedAt = now
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, &gatehouse.AuditEvent{
			ID: r.newID("aud"), TenantID: tenantID, Time: now,
			ActorType: actor.Type, ActorID: actor.ID, RequestID: actor.RequestID,
			Action: auditUserApproved, TargetType: "user", TargetID: u.ID,
			Details: map[string]any{"email": u.Email, "username": u.Username},
		}); err != nil {
			return err
		}
		if err := r.outbox(ctx, tx, tenantID, outboxUserUpdated, now, u, nil); err != nil {
			return err
		}
		out = u
		return nil
	})
	return out, err
}
