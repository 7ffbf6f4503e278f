package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// FlowCookiePrefix starts the name of every flow cookie. The rest of the
// name is a hash of the flow's state (or its id when the protocol has no
// state), so several logins in progress in one browser — two tabs, two
// tenants — each keep their own cookie instead of overwriting one.
const FlowCookiePrefix = "gatehouse_flow_"

// FlowTTL is how long a login may take between Begin and the callback.
// It is checked against the sealed CreatedAt with the Clock, not only
// through the cookie's expiry, which the browser controls.
const FlowTTL = 10 * time.Minute

// flowSkew tolerates a flow created on a replica whose clock runs slightly ahead.
const flowSkew = time.Minute

// maxFlowCookie bounds what we try to decrypt: a flow is a few hundred bytes.
const maxFlowCookie = 4096

// Flow cookie refusal reasons (gatehouse.Error.Reason).
const (
	ReasonFlowMissing  = "flow_missing"
	ReasonFlowExpired  = "flow_expired"
	ReasonFlowMismatch = "flow_mismatch"
)

// FlowCookieName returns the cookie name of a flow: keyed by State when the
// protocol has one (the callback carries it back, so the cookie is found
// directly), else by ID.
func FlowCookieName(f *connector.Flow) string {
	if f.State != "" {
		return flowCookieNameFor(f.State)
	}
	return flowCookieNameFor(f.ID)
}

func flowCookieNameFor(key string) string {
	h := sha256.Sum256([]byte("gatehouse flow cookie\x00" + key))
	return FlowCookiePrefix + base64.RawURLEncoding.EncodeToString(h[:12])
}

// flowSealer encrypts flows with AES-256-GCM (NIST SP 800-38D) under a key
// derived from the root key, so every replica sharing the root key can open
// a flow another replica sealed. The cookie name is the additional data: a
// sealed value moved under another cookie's name does not open.
type flowSealer struct{ aead cipher.AEAD }

func newFlowSealer(k *secret.Keyring) (*flowSealer, error) {
	b, err := aes.NewCipher(k.DeriveKey("flow-cookie"))
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &flowSealer{aead: a}, nil
}

func (s *flowSealer) seal(name string, f *connector.Flow) (string, error) {
	pt, err := json.Marshal(f)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(pt)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, pt, []byte(name))), nil
}

func (s *flowSealer) open(name, value string) (*connector.Flow, error) {
	if len(value) > maxFlowCookie {
		return nil, errors.New("flow cookie too large")
	}
	box, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil, err
	}
	if len(box) < s.aead.NonceSize()+s.aead.Overhead() {
		return nil, errors.New("flow cookie truncated")
	}
	pt, err := s.aead.Open(nil, box[:s.aead.NonceSize()], box[s.aead.NonceSize():], []byte(name))
	if err != nil {
		return nil, err
	}
	var f connector.Flow
	if err := json.Unmarshal(pt, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// SetFlow seals flow into its own cookie. crossSitePost is true for flows
// whose IdP answers with a cross-site POST (the SAML HTTP-POST binding to
// the ACS): browsers send SameSite=Lax cookies on cross-site top-level GET
// navigations (the OIDC callback) but not on cross-site POSTs, so such a
// flow's cookie is SameSite=None, which browsers accept only with Secure.
// On plain http (local use) Secure is impossible and the cookie falls back
// to Lax: a SAML POST binding then works only when the IdP is same-site
// with Gatehouse (e.g. both on localhost).
func (m *Manager) SetFlow(w http.ResponseWriter, flow *connector.Flow, crossSitePost bool) error {
	if flow.ID == "" || flow.TenantID == "" || flow.ConnectionID == "" {
		return errors.New("session: flow without id, tenant or connection")
	}
	if flow.CreatedAt.IsZero() {
		flow.CreatedAt = m.clock.Now()
	}
	name := FlowCookieName(flow)
	value, err := m.flows.seal(name, flow)
	if err != nil {
		return err
	}
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     m.basePath + "/sso/",
		MaxAge:   int(FlowTTL / time.Second),
		Expires:  m.clock.Now().Add(FlowTTL),
		HttpOnly: true,
		Secure:   m.secure,
		SameSite: http.SameSiteLaxMode,
	}
	if crossSitePost && m.secure {
		c.SameSite = http.SameSiteNoneMode
	}
	http.SetCookie(w, c)
	return nil
}

// ClearFlow removes flow's cookie from the browser.
func (m *Manager) ClearFlow(w http.ResponseWriter, flow *connector.Flow) {
	m.clearFlowCookie(w, FlowCookieName(flow))
}

func (m *Manager) clearFlowCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: m.basePath + "/sso/",
		MaxAge: -1, Expires: time.Unix(0, 0), HttpOnly: true, Secure: m.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// ClearStaleFlows removes the flow cookies r carries that can no longer
// finish — expired, or unreadable (sealed under a rotated root key) — so
// abandoned logins do not pile up in the browser until their Max-Age.
// Cookies named in except (the flow FindFlow just opened, see
// FlowCookieName) are not opened again.
func (m *Manager) ClearStaleFlows(w http.ResponseWriter, r *http.Request, except ...string) {
	for _, c := range r.Cookies() {
		if !strings.HasPrefix(c.Name, FlowCookiePrefix) || slices.Contains(except, c.Name) {
			continue
		}
		if f, err := m.flows.open(c.Name, c.Value); err != nil || !m.fresh(f) {
			m.clearFlowCookie(w, c.Name)
		}
	}
}

// FindFlow returns the login in progress that the callback r finishes for
// connection conn. state is the value the callback carries (OIDC `state`,
// SAML `RelayState`, see connector.FlowStateFinder); with it the cookie is
// found by name and the sealed state must equal it. Without it, the newest
// fresh flow of conn is taken. The flow must belong to conn and its tenant
// and be younger than FlowTTL. Errors are *gatehouse.Error (EINVALID) with
// Reason ReasonFlowMissing, ReasonFlowExpired or ReasonFlowMismatch.
func (m *Manager) FindFlow(r *http.Request, conn *gatehouse.Connection, state string) (*connector.Flow, error) {
	var flow *connector.Flow
	if state != "" {
		c, err := r.Cookie(flowCookieNameFor(state))
		if err != nil {
			return nil, errFlowMissing(nil)
		}
		f, err := m.flows.open(c.Name, c.Value)
		if err != nil {
			return nil, errFlowMissing(err)
		}
		// The name is a hash of the state, but compare the sealed value
		// itself: the state is what binds the IdP's answer to this browser.
		if !secret.EqualString(f.State, state) {
			return nil, errFlowMismatch("the state does not match the flow")
		}
		flow = f
	} else {
		for _, c := range r.Cookies() {
			if !strings.HasPrefix(c.Name, FlowCookiePrefix) {
				continue
			}
			f, err := m.flows.open(c.Name, c.Value)
			if err != nil || f.ConnectionID != conn.ID || !m.fresh(f) {
				continue
			}
			if flow == nil || f.CreatedAt.After(flow.CreatedAt) {
				flow = f
			}
		}
		if flow == nil {
			return nil, errFlowMissing(nil)
		}
	}
	// Mix-up defence: a flow started for one connection (or tenant) is
	// never finished by another connection's callback.
	if flow.ConnectionID != conn.ID || flow.TenantID != conn.TenantID {
		return nil, errFlowMismatch("the flow belongs to another connection")
	}
	if !m.fresh(flow) {
		return nil, &gatehouse.Error{Code: gatehouse.EINVALID, Reason: ReasonFlowExpired,
			Message: "This sign-in took too long and has expired. Please start again."}
	}
	return flow, nil
}

func (m *Manager) fresh(f *connector.Flow) bool {
	now := m.clock.Now()
	return !f.CreatedAt.IsZero() && now.Sub(f.CreatedAt) <= FlowTTL && f.CreatedAt.Sub(now) <= flowSkew
}

// FlowExpiry is when a flow stops being usable: the expiry of its one-time
// use record in the store.
func FlowExpiry(f *connector.Flow) time.Time { return f.CreatedAt.Add(FlowTTL + flowSkew) }

func errFlowMissing(cause error) error {
	return &gatehouse.Error{Code: gatehouse.EINVALID, Reason: ReasonFlowMissing, Err: cause,
		Message: "This sign-in was not started in this browser, or it has expired. Please start again."}
}

func errFlowMismatch(why string) error {
	return &gatehouse.Error{Code: gatehouse.EINVALID, Reason: ReasonFlowMismatch, Err: errors.New(why),
		Message: "This sign-in response does not belong to the sign-in started in this browser. Please start again."}
}
