package console

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gatehouse-sso/gatehouse/secret"
)

// A value shown once (a new secret or token, an import's result) travels
// from the POST that made it to the page that shows it in a one-time
// cookie: the POST answers with a redirect (so reloading the page never
// posts again), and the first GET of that page reads the cookie and
// deletes it (so a reload, or the back button, does not show it again).
//
// The cookie is sealed with the root key (AES-GCM: unreadable and
// unforgeable), bound to the console session and to the one page it is
// for, and expires after onceTTL even when never read. It is HttpOnly,
// SameSite=Strict and scoped to the console like the session cookie. Each
// page has a cookie of its own, so values made in two tabs at once both
// wait for their page.
const onceCookie = "gatehouse_console_once_"

// onceName is the cookie of a page's value.
func onceName(page string) string {
	h := sha256.Sum256([]byte(page))
	return onceCookie + hex.EncodeToString(h[:6])
}

// onceTTL bounds how long a value waits for its page.
const onceTTL = 5 * time.Minute

var onceAAD = []byte("gatehouse console once v1")

type onceBox struct {
	SID   string `json:"sid"`
	Path  string `json:"p"`
	Value string `json:"v"`
	Exp   int64  `json:"exp"`
}

// showOnce redirects to the console path page (with a flash key), where
// takeOnce gives value back exactly once.
func (c *Console) showOnce(w http.ResponseWriter, r *http.Request, k *call, page, value, flash string) error {
	if value == "" { // nothing to show (a public app has no secret)
		return c.redirect(w, r, page, flash)
	}
	pt, err := json.Marshal(onceBox{SID: k.p.sid, Path: page, Value: value, Exp: c.clock.Now().Add(onceTTL).Unix()})
	if err != nil {
		return err
	}
	box, err := c.cfg.Keyring.Seal(pt, onceAAD)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: onceName(page), Value: base64.RawURLEncoding.EncodeToString(box), Path: c.base + "/",
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode, MaxAge: int(onceTTL / time.Second)})
	return c.redirect(w, r, page, flash)
}

// takeOnce returns the value waiting for the console path page in this
// session, deleting it; "" when there is none.
func (c *Console) takeOnce(w http.ResponseWriter, r *http.Request, k *call, page string) string {
	ck, err := r.Cookie(onceName(page))
	if err != nil || ck.Value == "" || len(ck.Value) > 8192 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return ""
	}
	pt, err := c.cfg.Keyring.Open(raw, onceAAD)
	var b onceBox
	if err != nil || json.Unmarshal(pt, &b) != nil || !secret.EqualString(b.SID, k.p.sid) || b.Path != page {
		// Another session's, or no good: it expires by itself.
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: onceName(page), Value: "", Path: c.base + "/", MaxAge: -1, Expires: time.Unix(0, 0),
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode})
	if c.clock.Now().Unix() > b.Exp {
		return ""
	}
	return b.Value
}
