package op

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

// forwardAuth answers a reverse proxy's sub-request: /t/{tenant}/forward-auth
// [?app=<client_id>][&redirect=1].
//
//   - A valid browser session (of an active user, in the app's allowed
//     groups and connections when app= names one): 200 with the user in
//     X-Gatehouse-User (id), -Email, -Username, -Name and -Groups
//     (comma-separated names). The proxy copies them to the upstream.
//   - No session: 401 (nginx auth_request turns it into its error_page),
//     or with redirect=1 (Traefik forwardAuth, Caddy forward_auth, which
//     pass the answer to the browser) a 302 to the tenant's login that
//     returns to the original URI (X-Forwarded-Uri, or nginx's
//     X-Original-URI) when it is a local path.
//   - Signed in but not allowed: 403.
//
// The session cookie is host-only, so the protected app must be served on
// the same host as Gatehouse (docs/apps.md).
func (p *Provider) forwardAuth(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st := stateFrom(ctx)
	w.Header().Set("Cache-Control", "no-store")
	q := r.URL.Query()
	var app *gatehouse.App
	if cid := q.Get("app"); cid != "" {
		c, err := p.storage.loadClient(ctx, cid)
		if err != nil {
			http.Error(w, "Unknown app.", http.StatusNotFound)
			return
		}
		app = c.app
	}
	sess, user, err := p.cfg.Sessions.Current(ctx, r, st.tenant.ID)
	if err != nil && !gatehouse.IsCode(err, gatehouse.EUNAUTHORIZED) {
		p.log.ErrorContext(ctx, "op: forward-auth session", "err", err)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	if err == nil && app != nil && len(app.AllowedConnections) > 0 && !slices.Contains(app.AllowedConnections, sess.ConnectionID) {
		err = gatehouse.Errorf(gatehouse.EUNAUTHORIZED, "signed in through another connection")
	}
	if err != nil {
		if q.Get("redirect") != "1" {
			http.Error(w, "Not signed in.", http.StatusUnauthorized)
			return
		}
		tpath := p.basePath + "/t/" + url.PathEscape(st.tenant.Slug)
		v := url.Values{}
		orig := r.Header.Get("X-Forwarded-Uri")
		if orig == "" {
			orig = r.Header.Get("X-Original-URI")
		}
		if localPath(orig) {
			v.Set("return_to", orig)
		}
		if app != nil && len(app.AllowedConnections) == 1 {
			v.Set("connection", app.AllowedConnections[0])
		}
		target := tpath + "/login"
		if len(v) > 0 {
			target += "?" + v.Encode()
		}
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	if app != nil && !groupAllowed(app, user) {
		http.Error(w, "You are not allowed to use this app.", http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("X-Gatehouse-User", headerValue(user.ID))
	h.Set("X-Gatehouse-Email", headerValue(user.Email))
	h.Set("X-Gatehouse-Username", headerValue(user.Username))
	h.Set("X-Gatehouse-Name", headerValue(user.DisplayName))
	groups := make([]string, 0, len(user.Groups))
	for _, g := range user.Groups {
		groups = append(groups, strings.ReplaceAll(g, ",", " "))
	}
	slices.Sort(groups)
	h.Set("X-Gatehouse-Groups", headerValue(strings.Join(groups, ",")))
	w.WriteHeader(http.StatusOK)
}

// headerValue keeps printable ASCII only: header injection is impossible,
// and proxies pass the value unchanged.
func headerValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return -1
		}
		return r
	}, s)
}

// localPath accepts only a path on this host with characters of a URL's
// path and query: no scheme, no "//host", no backslash, no controls. The
// login checks return_to again.
func localPath(s string) bool {
	if len(s) == 0 || len(s) > 2048 || s[0] != '/' || strings.HasPrefix(s, "//") {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~/?&=%+:@,;!$'()*", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}
