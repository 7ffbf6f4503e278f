package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/session"
)

// samlLogout is SP-initiated SAML Single Logout as the SAML connector
// offers it (saml-profiles §4.4): LogoutRedirect builds the signed
// LogoutRequest for the session's NameID and SessionIndex; FinishLogout
// checks the IdP's LogoutResponse at /sso/saml/{id}/slo against the
// request's ID. relayState is an opaque handle, never a URL.
type samlLogout interface {
	LogoutRedirect(ctx context.Context, nameID, nameIDFormat, sessionIndex, relayState string) (redirectURL, requestID string, err error)
	FinishLogout(ctx context.Context, r *http.Request, requestID string) error
}

// Flow ID prefixes: a login flow and a logout flow share the sealed cookie
// machinery but are never accepted for each other.
const (
	loginFlowPrefix  = "flw_"
	logoutFlowPrefix = "slo_"
)

// handleLanding: GET /t/{tenant}/ — who is signed in, and sign-out.
func (s *Server) handleLanding(w http.ResponseWriter, r *http.Request) {
	t, err := s.tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	p := &page{Title: "Signed in", Tenant: t, Action: s.logoutPath(t), Retry: s.loginPath(t)}
	_, u, err := s.sessions.Current(r.Context(), r, t.ID)
	switch {
	case err == nil:
		p.User = u
	case gatehouse.IsCode(err, gatehouse.EUNAUTHORIZED):
		p.Title = "Not signed in"
	default:
		s.fail(w, r, t, err)
		return
	}
	s.render(w, r, http.StatusOK, "landing", p)
}

func (s *Server) logoutPath(t *gatehouse.Tenant) string {
	if t == nil {
		return s.basePath + "/logout"
	}
	return s.basePath + "/t/" + url.PathEscape(t.Slug) + "/logout"
}

// logoutTenant is the tenant of /t/{tenant}/logout, nil for /logout.
func (s *Server) logoutTenant(w http.ResponseWriter, r *http.Request) (*gatehouse.Tenant, bool) {
	ref := r.PathValue("tenant")
	if ref == "" {
		return nil, true
	}
	t, err := s.tenant(r.Context(), ref)
	if err != nil {
		s.fail(w, r, nil, err)
		return nil, false
	}
	return t, true
}

// handleLogoutConfirm: GET /t/{tenant}/logout and /logout show a button
// that POSTs: a GET never signs anyone out (a link or image elsewhere
// cannot end a session).
func (s *Server) handleLogoutConfirm(w http.ResponseWriter, r *http.Request) {
	t, ok := s.logoutTenant(w, r)
	if !ok {
		return
	}
	s.render(w, r, http.StatusOK, "logout", &page{Title: "Sign out", Tenant: t, Action: s.logoutPath(t)})
}

// handleLogout: POST /t/{tenant}/logout and /logout (cross-origin POSTs
// are refused by the CSRF check in routes). The session is deleted in the
// store and the cookie cleared; when the connection can sign out at the
// IdP too, the browser goes there next.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, ok := s.logoutTenant(w, r)
	if !ok {
		return
	}
	next := ""
	var ended *gatehouse.Session
	if t != nil {
		if sess, _, err := s.sessions.Current(ctx, r, t.ID); err == nil {
			ended = sess
			if sess.ConnectionID != "" {
				next = s.idpLogout(ctx, w, t, sess)
			}
		}
	}
	if err := s.sessions.End(ctx, w, r); err != nil {
		s.fail(w, r, t, err)
		return
	}
	if ended != nil && s.onLogout != nil {
		s.onLogout(ctx, ended)
	}
	if next != "" {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, next, http.StatusFound)
		return
	}
	p := &page{Title: "Signed out", Tenant: t, Done: true}
	if t != nil {
		p.Retry = s.loginPath(t)
	}
	s.render(w, r, http.StatusOK, "logout", p)
}

// idpLogout starts a logout at the IdP when the session's connection
// offers one (SAML SLO with the session's NameID): it seals a logout flow
// (the LogoutRequest ID, a RelayState handle) into a flow cookie for
// handleSLO and returns the IdP's URL. Any failure only skips the IdP
// step: the local sign-out happens regardless.
func (s *Server) idpLogout(ctx context.Context, w http.ResponseWriter, t *gatehouse.Tenant, sess *gatehouse.Session) string {
	idp := session.DecodeIdPSession(sess.SessionIndex)
	if idp.NameID == "" {
		return ""
	}
	var c *gatehouse.Connection
	err := s.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		c, err = tx.GetConnection(ctx, t.ID, sess.ConnectionID)
		return err
	})
	if err != nil || !c.Enabled {
		return ""
	}
	conn, err := s.connector(ctx, c)
	if err != nil {
		return ""
	}
	sl, ok := conn.(samlLogout)
	if !ok {
		return ""
	}
	flow := &connector.Flow{ID: gatehouse.NewID("slo"), TenantID: t.ID, ConnectionID: c.ID,
		State: secret.NewToken(""), CreatedAt: s.clock.Now().UTC()}
	u, reqID, err := sl.LogoutRedirect(ctx, idp.NameID, idp.NameIDFormat, idp.Index, flow.State)
	if err != nil {
		// Also the normal answer when the IdP has no SLO endpoint.
		s.log.DebugContext(ctx, "no IdP logout", "connection", c.ID, "err", err)
		return ""
	}
	flow.RequestID = reqID
	// The LogoutResponse may come back as a cross-site POST.
	if err := s.sessions.SetFlow(w, flow, true); err != nil {
		return ""
	}
	return u
}

// handleSLO: GET or POST /sso/saml/{id}/slo — the IdP's LogoutResponse
// to a logout this browser started. The local session ended already; this
// only tells the user whether the IdP confirmed.
func (s *Server) handleSLO(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, c, conn, ok := s.endpoint(w, r, gatehouse.ConnSAML, r.PathValue("id"), false)
	if !ok {
		return
	}
	sl, ok := conn.(samlLogout)
	if !ok {
		s.fail(w, r, t, gatehouse.Errorf(gatehouse.ENOTFOUND, "Single logout is not set up for this connection."))
		return
	}
	state := r.URL.Query().Get("RelayState")
	if sf, ok := conn.(connector.FlowStateFinder); ok && r.Method == http.MethodPost {
		state = sf.FlowState(r)
	}
	flow, err := s.sessions.FindFlow(r, c, state)
	if err == nil && !strings.HasPrefix(flow.ID, logoutFlowPrefix) {
		err = &gatehouse.Error{Code: gatehouse.EINVALID, Reason: session.ReasonFlowMismatch,
			Message: "This sign-out response does not belong to a sign-out started in this browser."}
	}
	if err != nil {
		s.fail(w, r, t, err)
		return
	}
	s.sessions.ClearFlow(w, flow)
	err = s.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.UseOnce(ctx, "logout:"+flow.ID, session.FlowExpiry(flow)) })
	if err != nil {
		s.fail(w, r, t, err)
		return
	}
	p := &page{Title: "Signed out", Tenant: t, Done: true, Retry: s.loginPath(t)}
	if err := sl.FinishLogout(ctx, r, flow.RequestID); err != nil {
		s.log.InfoContext(ctx, "IdP did not confirm logout", "connection", c.ID, "err", err, "request_id", requestID(r))
		p.Message = "Your identity provider did not confirm that you are signed out there. Close the browser to be sure."
	}
	s.render(w, r, http.StatusOK, "logout", p)
}
