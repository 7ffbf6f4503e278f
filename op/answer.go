package op

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// AnswerLogin answers, inside the transaction of a login that has just
// provisioned user and written sess (package web calls it from the
// provisioning transaction), the authorize request the login returns to:
// returnTo is the login's return address. When it is a sealed authorize
// request of tenant t that this login answers, the request's code row and
// the sign-in's audit are written in tx, and AnswerLogin returns where the
// browser goes straight from the callback: the app's redirect URI with
// the code, or, for response_mode=form_post, the page that posts the code
// to the app (page, to be written once tx has committed). No resume
// request, no transaction of its own for the code.
//
// The code is bound exactly as resume binds it: to the request's client,
// redirect URI, PKCE challenge, nonce and scopes (sealed with the request),
// and to user, sess's auth_time and sid. One authorize request gets one
// code: a second login returning to the same request writes nothing here.
//
// Everything that resume decides otherwise returns neither (the login then
// goes to returnTo, and resume answers as before): a return address that
// is no sealed request of t, a request expired or forged, an app gone or
// without the request's redirect URI any more, a session that does not
// answer the request (an app limited to other connections, an
// id_token_hint naming another user), an app limited to groups the user is
// not in or whose groups user does not carry, a request answered before.
// An error is a failure of tx, and fails the login.
func (p *Provider) AnswerLogin(ctx context.Context, tx gatehouse.Tx, t *gatehouse.Tenant, user *gatehouse.User, sess *gatehouse.Session, returnTo string) (next string, page http.HandlerFunc, err error) {
	if t == nil || user == nil || sess == nil || user.TenantID != t.ID || sess.TenantID != t.ID || sess.UserID != user.ID || !user.Active() {
		return "", nil, nil
	}
	prefix := "/t/" + url.PathEscape(t.Slug) + "/" + pathResume + "?"
	rest, ok := strings.CutPrefix(strings.TrimPrefix(returnTo, p.basePath), prefix)
	if !ok {
		return "", nil, nil
	}
	q, err := url.ParseQuery(rest)
	if err != nil || len(q) != 1 || len(q["ar"]) != 1 {
		return "", nil, nil
	}
	ar, err := p.requests.open(t.ID, q.Get("ar"), p.clock.Now())
	if err != nil {
		return "", nil, nil
	}
	if next, page, done, err := p.answerWithKnownApp(ctx, tx, t, user, sess, ar); done || err != nil {
		return next, page, err
	}
	// Read as stored, and cached for the app's token request that
	// follows within moments (the code grant's one statement,
	// spendCodeOfCachedApp).
	app, err := p.apps.refresh(ctx, appKey{t.ID, ar.row.ClientID}, func(ctx context.Context) (*gatehouse.App, error) {
		return tx.GetAppByClientID(ctx, t.ID, ar.row.ClientID)
	})
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	if !p.answerable(ar, app, user, sess) {
		return "", nil, nil
	}
	code := p.codeRow(ar, user, sess)
	if err := writeAnswer(ctx, tx, ar); err != nil {
		if err == errAnswered {
			return "", nil, nil
		}
		return "", nil, err
	}
	if err := gatehouse.AppendAudits(ctx, tx, p.signedInEvent(t, app, user, sess)); err != nil {
		return "", nil, err
	}
	return p.codeAnswer(ar, code)
}

// codeAnswer is how the app gets code for ar: a redirect to its redirect
// URI, or for response_mode=form_post the page that posts it there.
func (p *Provider) codeAnswer(ar *authRequest, code string) (next string, page http.HandlerFunc, err error) {
	if ar.GetResponseMode() == oidc.ResponseModeFormPost {
		return "", func(w http.ResponseWriter, r *http.Request) { p.formPost(w, r, ar, code) }, nil
	}
	next, err = p.codeResponseURL(ar, code)
	return next, nil, err
}

// answerable: the login answers ar for app itself, as resume would: the
// redirect URI is still registered, the session answers the request, and
// the user is in one of the app's allowed groups, if it has any. The
// user's groups are those the login left in its transaction (the
// resolution's, which sets Groups); a user without them (nil) goes to
// resume, which reads them, and so does one outside the allowed groups, to
// be refused there with its page. The token endpoint checks the groups
// again (checkUser).
func (p *Provider) answerable(ar *authRequest, app *gatehouse.App, user *gatehouse.User, sess *gatehouse.Session) bool {
	if !redirectRegistered(&client{app: app, p: p}, ar) {
		return false
	}
	if len(app.AllowedGroups) > 0 && (user.Groups == nil || !groupAllowed(app, user)) {
		return false
	}
	needs, _ := p.needsLogin(ar, app, sess, user)
	return !needs
}

// knownAppCodeCreator writes an answered request's code row only while its
// app is as the caller read it (sqlstore CreateOPAuthCodeOfApp).
type knownAppCodeCreator interface {
	CreateOPAuthCodeOfApp(ctx context.Context, r *gatehouse.OPAuthRequest, appID string, appUpdated time.Time) (bool, error)
}

// answerWithKnownApp answers a sealed request from the app the replica
// read before (knownAppAge) instead of reading it again: it decides as
// AnswerLogin does and writes the code in one statement that also checks
// the app is unchanged. done is false, with nothing written, whenever it
// cannot tell: no app known, a decision that leaves the request to resume
// (the app as stored may decide otherwise), or a statement that wrote
// nothing (the app changed, or the request was answered before). The
// caller then reads the app as stored and decides again.
func (p *Provider) answerWithKnownApp(ctx context.Context, tx gatehouse.Tx, t *gatehouse.Tenant, user *gatehouse.User, sess *gatehouse.Session, ar *authRequest) (next string, page http.HandlerFunc, done bool, err error) {
	c, ok := tx.(knownAppCodeCreator)
	if !ok || !ar.sealed {
		return "", nil, false, nil
	}
	app, ok := p.apps.peekAged(appKey{t.ID, ar.row.ClientID}, knownAppAge)
	if !ok || !p.answerable(ar, app, user, sess) {
		return "", nil, false, nil
	}
	code := p.codeRow(ar, user, sess)
	if created, err := c.CreateOPAuthCodeOfApp(ctx, ar.row, app.ID, app.UpdatedAt); err != nil || !created {
		return "", nil, false, err
	}
	if err := gatehouse.AppendAudits(ctx, tx, p.signedInEvent(t, app, user, sess)); err != nil {
		return "", nil, false, err
	}
	next, page, err = p.codeAnswer(ar, code)
	return next, page, true, err
}
