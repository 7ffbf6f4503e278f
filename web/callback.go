package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/session"
)

// reasonReplayed: the flow was already finished once (a replayed callback).
const reasonReplayed = "flow_replayed"

// Audit action of a login that failed before provisioning (the flow, the
// connector's checks, or the IdP's own error answer). Refusals by the
// provisioning policy are recorded by provision as login.refused.
const auditLoginFailed = "login.failed"

// endpoint loads the connection named in a /sso/... path and opens its
// connector, checking the connection's type against the path's (a callback
// URL belongs to one protocol). On failure it has answered with the page.
// cached reads through the catalog: only for a login's callback, whose
// commit checks the connection again (current).
func (s *Server) endpoint(w http.ResponseWriter, r *http.Request, typ, id string, cached bool) (*gatehouse.Tenant, *gatehouse.Connection, connector.Connector, bool) {
	ctx := r.Context()
	var t *gatehouse.Tenant
	var c *gatehouse.Connection
	var err error
	if cached {
		c, t, err = s.catalog.connection(ctx, id)
	} else {
		err = s.store.View(ctx, func(tx gatehouse.Tx) error {
			var err error
			if c, err = tx.GetConnectionByID(ctx, id); err != nil {
				return err
			}
			t, err = tx.GetTenant(ctx, c.TenantID)
			return err
		})
	}
	if err == nil && c.Type != typ {
		err = gatehouse.Errorf(gatehouse.ENOTFOUND, "not found")
	}
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		err = gatehouse.Errorf(gatehouse.ENOTFOUND, "This sign-in method does not exist (any more). Start again from your application.")
	}
	if err != nil {
		s.fail(w, r, nil, err)
		return nil, nil, nil, false
	}
	conn, err := s.connector(ctx, c)
	if err != nil {
		s.fail(w, r, t, err)
		return nil, nil, nil, false
	}
	return t, c, conn, true
}

// handleCallback: GET or POST /sso/{type}/{id}/callback (OIDC, OAuth 2.0,
// mock; POST for response_mode=form_post).
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request) {
	s.finish(w, r, r.PathValue("type"), r.PathValue("id"))
}

// handleACS: POST /sso/saml/{id}/acs (SAML HTTP-POST binding).
func (s *Server) handleACS(w http.ResponseWriter, r *http.Request) {
	s.finish(w, r, gatehouse.ConnSAML, r.PathValue("id"))
}

// finish completes a login at a connection's callback or ACS. Order
// matters: the flow cookie must match (browser binding), then the
// connector verifies the IdP's answer (an IdP's error answer, RFC 6749
// §4.1.2.1, is the connector's to check and word, after its own binding
// checks such as RFC 9207's iss), then provisioning decides, and in the
// same transaction the flow (and the connector's one-time keys, such as a
// SAML assertion's id) is recorded as used — so a replayed callback fails
// on every replica and writes nothing (singleUse) — and the session is
// written. Every refusal clears the flow cookie and sets nothing else.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, typ, id string) {
	ctx := r.Context()
	t, c, conn, ok := s.endpoint(w, r, typ, id, true)
	if !ok {
		return
	}
	state := ""
	if sf, ok := conn.(connector.FlowStateFinder); ok {
		state = sf.FlowState(r)
	}
	flow, err := s.sessions.FindFlow(r, c, state)
	// Abandoned logins of this browser are tidied up on the way (the flow
	// just found is not opened twice).
	if err == nil {
		s.sessions.ClearStaleFlows(w, r, session.FlowCookieName(flow))
	} else {
		s.sessions.ClearStaleFlows(w, r)
	}
	if err != nil {
		// IdP-initiated SAML: an answer nobody asked for. The connector
		// decides whether the connection accepts it (off by default) and
		// checks it as strictly as a solicited one.
		if ui, ok := conn.(connector.IdPInitiator); ok && gatehouse.ErrorReason(err) == session.ReasonFlowMissing {
			s.finishUnsolicited(w, r, t, c, ui)
			return
		}
		s.fail(w, r, t, err, s.loginPath(t))
		return
	}
	// From here on the flow cookie is spent whatever happens.
	s.sessions.ClearFlow(w, flow)
	if !strings.HasPrefix(flow.ID, loginFlowPrefix) {
		s.fail(w, r, t, &gatehouse.Error{Code: gatehouse.EINVALID, Reason: session.ReasonFlowMismatch,
			Message: "This sign-in response does not belong to a sign-in started in this browser. Please start again."}, s.loginPath(t))
		return
	}
	if !c.Enabled && !flow.Test {
		s.fail(w, r, t, &gatehouse.Error{Code: gatehouse.EFORBIDDEN, Reason: "connection_disabled",
			Message: "This sign-in method was turned off while you were signing in."})
		return
	}
	once := &singleUse{}
	once.add("flow:"+flow.ID, session.FlowExpiry(flow))
	ctx = withSingleUse(ctx, once)
	ident, err := conn.Finish(ctx, flow, r)
	if err != nil {
		s.auditFailure(ctx, r, c, err, once)
		s.fail(w, r, t, err, s.loginPath(t))
		return
	}
	s.complete(ctx, w, r, t, c, flow, ident, once)
}

func (s *Server) finishUnsolicited(w http.ResponseWriter, r *http.Request, t *gatehouse.Tenant, c *gatehouse.Connection, ui connector.IdPInitiator) {
	ctx := r.Context()
	if !c.Enabled {
		s.fail(w, r, t, &gatehouse.Error{Code: gatehouse.EFORBIDDEN, Reason: "connection_disabled", Message: "This sign-in method is turned off."})
		return
	}
	once := &singleUse{}
	ctx = withSingleUse(ctx, once)
	ident, err := ui.FinishUnsolicited(ctx, r)
	if err != nil {
		s.auditFailure(ctx, r, c, err, once)
		s.fail(w, r, t, err, s.loginPath(t))
		return
	}
	flow := &connector.Flow{TenantID: t.ID, ConnectionID: c.ID}
	// Where an unsolicited login lands is the connection's setting, never
	// the request's (RelayState is not a URL).
	if tg, ok := ui.(interface{ IdPInitiatedTarget() string }); ok && ValidReturnTo(tg.IdPInitiatedTarget()) {
		flow.ReturnTo = tg.IdPInitiatedTarget()
	}
	s.complete(ctx, w, r, t, c, flow, ident, once)
}

// complete provisions the identity and starts the session, or renders the
// test page for a test flow. once holds the login's one-time keys: they
// are written in the provisioning transaction, or on a refusal in a
// transaction of their own.
func (s *Server) complete(ctx context.Context, w http.ResponseWriter, r *http.Request, t *gatehouse.Tenant, c *gatehouse.Connection, flow *connector.Flow, ident *gatehouse.Identity, once *singleUse) {
	// The connector answers for its own connection only; a mismatch is a
	// bug that must not sign anyone in elsewhere.
	if (ident.ConnectionID != "" && ident.ConnectionID != c.ID) || (ident.TenantID != "" && ident.TenantID != t.ID) {
		s.fail(w, r, t, fmt.Errorf("web: connector %s returned an identity of connection %q tenant %q", c.ID, ident.ConnectionID, ident.TenantID))
		return
	}
	ident.ConnectionID, ident.TenantID = c.ID, t.ID
	if flow.Test {
		// A dry run writes nothing: the keys get a transaction of their own.
		if err := s.store.Update(ctx, func(tx gatehouse.Tx) error { return once.write(ctx, tx) }); err != nil {
			s.refused(ctx, w, r, t, c, err, nil)
			return
		}
		res, err := s.resolver.Resolve(ctx, t, c, ident, provision.DryRun)
		if err != nil && res == nil {
			var ge *gatehouse.Error
			if !errors.As(err, &ge) || ge.Code == gatehouse.EINTERNAL || ge.Code == gatehouse.EUNAVAILABLE {
				s.fail(w, r, t, err)
				return
			}
		}
		s.render(w, r, http.StatusOK, "test", &page{Title: "Test sign-in", Tenant: t, Connection: c.Name,
			RequestID: requestID(r), Test: newTestResult(ident, res, err)})
		return
	}
	// A login always gets a fresh token: whatever session the browser had
	// (another tenant, another user) ends here (session fixation). The
	// session is written in the provisioning transaction: one commit per
	// login instead of two.
	idpSess := idpSession(c, ident).Encode()
	var pending *session.Pending
	var pendingFor *provision.Result
	// direct is where OnLoginTx sends the browser (the app, with the code
	// of the authorize request the login returns to), decided in the
	// same transaction.
	var direct LoginAnswer
	hook := func(ctx context.Context, tx gatehouse.Tx, res *provision.Result) error {
		p, err := s.sessions.PrepareReplace(r, t, res.User, c.ID, idpSess)
		if err != nil {
			return err
		}
		if err := p.WriteForLogin(ctx, tx); err != nil {
			return err
		}
		var next LoginAnswer
		if s.onLoginTx != nil && flow.ReturnTo != "" {
			ev := LoginEvent{Tenant: t, Connection: c, User: res.User, Session: p.Session, Identity: ident, ReturnTo: flow.ReturnTo}
			if next, err = s.onLoginTx(ctx, tx, r, ev); err != nil {
				return err
			}
		}
		pending, pendingFor, direct = p, res, next
		return nil
	}
	// First in the same transaction: the connection (maybe read from the
	// catalog) is still the one the login was verified with, and the
	// login's one-time keys were not used before.
	guard := func(ctx context.Context, tx gatehouse.Tx) error { return guardLogin(ctx, tx, t, c, once) }
	rctx := provision.WithGuard(provision.WithAfterApply(ctx, hook), guard)
	res, err := s.resolver.Resolve(rctx, t, c, ident, provision.Apply)
	if err != nil {
		if res != nil {
			// A refusal: its transaction committed the keys the guard
			// wrote, with the refusal's audit event.
			once = nil
		}
		s.refused(ctx, w, r, t, c, err, once)
		return
	}
	if res == nil || res.User == nil || !res.User.Active() {
		s.fail(w, r, t, fmt.Errorf("web: provisioning returned no active user (outcome %v)", res))
		return
	}
	var sess *gatehouse.Session
	if pending != nil && pendingFor == res {
		pending.SetCookie(w)
		sess = pending.Session
	} else {
		direct = LoginAnswer{}
		// A resolver that does not run the hook (a test double).
		if sess, err = s.sessions.Replace(ctx, w, r, t, res.User, c.ID, idpSess); err != nil {
			s.fail(w, r, t, err)
			return
		}
	}
	target := flow.ReturnTo
	if s.onLogin != nil {
		next, err := s.onLogin(ctx, r, LoginEvent{Tenant: t, Connection: c, User: res.User, Session: sess, Identity: ident, ReturnTo: flow.ReturnTo})
		if err != nil {
			s.fail(w, r, t, err)
			return
		}
		if next != "" {
			target, direct = next, LoginAnswer{}
		}
	}
	if direct.Page != nil {
		// The app's form_post page, with its code: the login committed.
		direct.Page(w, r)
		return
	}
	if direct.Redirect != "" {
		// Absolute: the app's registered redirect URI, with its code.
		w.Header().Set("Cache-Control", "no-store")
		found(w, direct.Redirect)
		return
	}
	if target == "" || !ValidReturnTo(target) {
		target = s.landingPath(t)
	} else {
		target = s.basePath + target
	}
	w.Header().Set("Cache-Control", "no-store")
	found(w, target)
}

// refused answers a login that did not commit. A replay or a connection
// changed under way is recorded as a failed login; any other refusal was
// recorded by provisioning. The login's one-time keys are written unless
// the refusal was a replay (they are used already), so the same response
// cannot be tried again.
func (s *Server) refused(ctx context.Context, w http.ResponseWriter, r *http.Request, t *gatehouse.Tenant, c *gatehouse.Connection, err error, once *singleUse) {
	if errors.Is(err, errKeyUsed) {
		s.auditFailure(ctx, r, c, err, nil)
		s.fail(w, r, t, err, s.loginPath(t))
		return
	}
	switch gatehouse.ErrorReason(err) {
	case reasonConnectionChanged, errConnectionDisabled.Reason:
		s.catalog.forget(c.ID, t)
		s.auditFailure(ctx, r, c, err, once)
		s.fail(w, r, t, err, s.loginPath(t))
		return
	}
	if once != nil {
		if e := s.store.Update(ctx, func(tx gatehouse.Tx) error { return once.spend(ctx, tx) }); e != nil {
			s.log.ErrorContext(ctx, "record one-time keys of a refused login", "connection", c.ID, "err", e, "request_id", requestID(r))
		}
	}
	s.fail(w, r, t, err)
}

// auditFailure records a failed login at connection c for the tenant's
// admins, in a transaction of its own, with the private cause (the admin
// needs it to fix the connection; the user sees only the message). The
// login's one-time keys (once, may be nil) are written with it.
func (s *Server) auditFailure(ctx context.Context, r *http.Request, c *gatehouse.Connection, failure error, once *singleUse) {
	details := map[string]any{"message": gatehouse.ErrorMessage(failure), "code": gatehouse.ErrorCode(failure)}
	if reason := gatehouse.ErrorReason(failure); reason != "" {
		details["reason"] = reason
	}
	cause := failure.Error()
	if len(cause) > 1000 {
		cause = cause[:1000]
	}
	details["error"] = cause
	e := &gatehouse.AuditEvent{
		ID: gatehouse.NewID("aud"), TenantID: c.TenantID, Time: s.clock.Now().UTC(),
		ActorType: "connection", ActorID: c.ID, Action: auditLoginFailed,
		TargetType: "connection", TargetID: c.ID, RequestID: requestID(r), Details: details,
	}
	if err := s.store.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.AppendAudit(ctx, e); err != nil {
			return err
		}
		return once.spend(ctx, tx)
	}); err != nil {
		s.log.ErrorContext(ctx, "record failed login", "connection", c.ID, "err", err, "request_id", e.RequestID)
	}
}

// testResult is the "test connection" page's content.
type testResult struct {
	Outcome     string
	User        string
	Groups      []string
	Explanation []string
	Refused     string
	Reason      string
	Fields      []field
	Claims      string
}

type field struct{ Name, Value string }

func newTestResult(id *gatehouse.Identity, res *provision.Result, err error) *testResult {
	tr := &testResult{}
	if res != nil {
		tr.Outcome, tr.Groups, tr.Explanation = res.Outcome, res.Groups, res.Explanation
		if res.User != nil {
			tr.User = res.User.Email
			if res.User.Username != "" {
				tr.User += " (username " + res.User.Username + ")"
			}
		}
	}
	if err != nil {
		tr.Refused, tr.Reason = gatehouse.ErrorMessage(err), gatehouse.ErrorReason(err)
	}
	verified := "not sent"
	if id.EmailVerified != nil {
		verified = fmt.Sprint(*id.EmailVerified)
	}
	tr.Fields = []field{
		{"Issuer", id.Issuer}, {"Subject", id.Subject}, {"Email", id.Email},
		{"Email verified", verified}, {"Username", id.Username}, {"Display name", id.DisplayName},
		{"Given name", id.GivenName}, {"Family name", id.FamilyName},
		{"Groups", strings.Join(id.Groups, ", ")},
	}
	keys := make([]string, 0, len(id.Raw))
	for k := range id.Raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v, _ := json.Marshal(id.Raw[k])
		fmt.Fprintf(&b, "%s: %s\n", k, v)
	}
	tr.Claims = b.String()
	return tr
}

// metadataProvider is implemented by connectors that publish metadata
// (the SAML SP metadata).
type metadataProvider interface {
	Metadata(ctx context.Context) ([]byte, error)
}

// handleMetadata: GET /sso/saml/{id}/metadata — no authentication: the
// admin hands this URL to the IdP. Served for disabled connections too, so
// the IdP side can be set up before the connection is switched on.
func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, c, conn, ok := s.endpoint(w, r, gatehouse.ConnSAML, r.PathValue("id"), false)
	if !ok {
		return
	}
	mp, ok := conn.(metadataProvider)
	if !ok {
		s.fail(w, r, t, gatehouse.Errorf(gatehouse.ENOTFOUND, "This connection publishes no metadata."))
		return
	}
	md, err := mp.Metadata(ctx)
	if err != nil {
		s.fail(w, r, t, err)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Content-Disposition", `inline; filename="gatehouse-`+c.ID+`-metadata.xml"`)
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(md)
}

// idpSession is what a later single logout needs from this login: for
// SAML the NameID (as the IdP sent it, with its format) besides the
// SessionIndex.
func idpSession(c *gatehouse.Connection, id *gatehouse.Identity) session.IdPSession {
	out := session.IdPSession{Index: id.SessionIndex}
	if c.Type == gatehouse.ConnSAML {
		out.NameID, _ = id.Raw["nameid"].(string)
		out.NameIDFormat, _ = id.Raw["nameid_format"].(string)
	}
	return out
}
