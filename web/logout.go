package web

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// SingleLogout is implemented by connectors that take the IdP's logout
// messages at /sso/saml/{id}/slo (SAML Single Logout, front channel).
type SingleLogout interface {
	// SingleLogout verifies a LogoutRequest or LogoutResponse carried by r.
	// For a LogoutRequest it returns the IdP session index it ends ("" for
	// all of the subject's sessions) and the LogoutResponse to send back;
	// for a LogoutResponse, an empty Action.
	SingleLogout(ctx context.Context, r *http.Request) (sessionIndex string, answer connector.Action, err error)
}

// LogoutStarter is implemented by connectors that can sign the user out at
// the IdP too (SP-initiated SAML Single Logout), after the local session
// has ended.
type LogoutStarter interface {
	StartLogout(ctx context.Context, s *gatehouse.Session, user *gatehouse.User) (connector.Action, error)
}

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
	var next *connector.Action
	if t != nil {
		if sess, u, err := s.sessions.Current(ctx, r, t.ID); err == nil && sess.ConnectionID != "" {
			next = s.idpLogout(ctx, t, sess, u)
		}
	}
	if err := s.sessions.End(ctx, w, r); err != nil {
		s.fail(w, r, t, err)
		return
	}
	if next != nil {
		writeAction(w, r, *next)
		return
	}
	p := &page{Title: "Signed out", Tenant: t, Done: true}
	if t != nil {
		p.Retry = s.loginPath(t)
	}
	s.render(w, r, http.StatusOK, "logout", p)
}

// idpLogout asks the session's connector for an IdP logout, when it
// offers one. Failures only skip the IdP step: the local sign-out happens.
func (s *Server) idpLogout(ctx context.Context, t *gatehouse.Tenant, sess *gatehouse.Session, u *gatehouse.User) *connector.Action {
	var c *gatehouse.Connection
	err := s.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		c, err = tx.GetConnection(ctx, t.ID, sess.ConnectionID)
		return err
	})
	if err != nil || !c.Enabled {
		return nil
	}
	conn, err := s.connector(ctx, c)
	if err != nil {
		return nil
	}
	ls, ok := conn.(LogoutStarter)
	if !ok {
		return nil
	}
	act, err := ls.StartLogout(ctx, sess, u)
	if err != nil {
		s.log.WarnContext(ctx, "IdP logout not started", "connection", c.ID, "err", err)
		return nil
	}
	if act.RedirectURL == "" && len(act.HTML) == 0 {
		return nil
	}
	return &act
}

// handleSLO: GET or POST /sso/saml/{id}/slo — the IdP's logout request or
// response. A verified request ends this browser's session when it was
// started through this connection (and, when given, with that session
// index).
func (s *Server) handleSLO(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, c, err := s.callbackConnection(ctx, gatehouse.ConnSAML, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	conn, err := s.connector(ctx, c)
	if err != nil {
		s.fail(w, r, t, err)
		return
	}
	sl, ok := conn.(SingleLogout)
	if !ok {
		s.fail(w, r, t, gatehouse.Errorf(gatehouse.ENOTFOUND, "Single logout is not set up for this connection."))
		return
	}
	index, answer, err := sl.SingleLogout(ctx, r)
	if err != nil {
		s.fail(w, r, t, err)
		return
	}
	if sess, _, err := s.sessions.Current(ctx, r, t.ID); err == nil && sess.ConnectionID == c.ID &&
		(index == "" || secret.EqualString(index, sess.SessionIndex)) {
		if err := s.sessions.End(ctx, w, r); err != nil {
			s.fail(w, r, t, err)
			return
		}
	}
	if answer.RedirectURL != "" || len(answer.HTML) > 0 {
		writeAction(w, r, answer)
		return
	}
	s.render(w, r, http.StatusOK, "logout", &page{Title: "Signed out", Tenant: t, Done: true, Retry: s.loginPath(t)})
}
