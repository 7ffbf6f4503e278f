package session

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// IdPSession is what single logout needs to name the user's session at
// the IdP: the SAML SessionIndex, NameID and its format.
//
// gatehouse.Session has one field for it (SessionIndex); a SAML logout
// request needs the NameID as well, so the three travel encoded in that
// field. A plain value (no prefix) is a bare session index.
type IdPSession struct {
	Index        string `json:"si,omitempty"`
	NameID       string `json:"nid,omitempty"`
	NameIDFormat string `json:"fmt,omitempty"`
}

const idpSessionPrefix = "gh1:"

// Encode returns the value stored in gatehouse.Session.SessionIndex.
func (s IdPSession) Encode() string {
	if s.NameID == "" && s.NameIDFormat == "" {
		return s.Index
	}
	b, _ := json.Marshal(s)
	return idpSessionPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// DecodeIdPSession reads a gatehouse.Session.SessionIndex written by Encode.
func DecodeIdPSession(v string) IdPSession {
	rest, ok := strings.CutPrefix(v, idpSessionPrefix)
	if !ok {
		return IdPSession{Index: v}
	}
	var s IdPSession
	if b, err := base64.RawURLEncoding.DecodeString(rest); err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s
}
