package saml

import (
	"errors"
	"strings"

	crewjam "github.com/crewjam/saml"

	"github.com/gatehouse-sso/gatehouse"
)

// Common attribute names per profile field, in order of preference: LDAP
// names, their OIDs (eduPerson / SAML V2.0 X.500 profile), the claim URIs of
// Entra ID and ADFS, and the names Okta, OneLogin and Google use in their
// examples.
var (
	emailAttrs = []string{
		"email", "mail", "emailAddress", "Email", "User.email",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
		"urn:oid:0.9.2342.19200300.100.1.3",
	}
	givenNameAttrs = []string{
		"givenName", "given_name", "firstName", "first_name", "FirstName", "User.FirstName",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
		"urn:oid:2.5.4.42",
	}
	familyNameAttrs = []string{
		"sn", "surname", "family_name", "lastName", "last_name", "LastName", "User.LastName",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
		"urn:oid:2.5.4.4",
	}
	displayNameAttrs = []string{
		"displayName", "display_name", "name", "cn",
		"http://schemas.microsoft.com/identity/claims/displayname",
		"urn:oid:2.16.840.1.113730.3.1.241", "urn:oid:2.5.4.3",
	}
	usernameAttrs = []string{
		"username", "uid", "preferred_username",
		"urn:oid:0.9.2342.19200300.100.1.1",
	}
	groupAttrs = []string{
		"groups", "memberOf", "Groups", "isMemberOf",
		"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
		"http://schemas.xmlsoap.org/claims/Group",
		"http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
		"urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
	}
)

// identity turns a verified assertion into the normalized Identity. The
// subject is the persistent (or emailAddress, unspecified...) NameID, or the
// configured subject_attribute; never a transient NameID, which changes at
// every login and would create a new user each time.
func (c *Connector) identity(a *crewjam.Assertion, idp *idpInfo) (*gatehouse.Identity, error) {
	raw := attributes(a)
	nameID := a.Subject.NameID
	if nameID == nil {
		return nil, refuse(ErrSubject, msgSubject, errors.New("no NameID (BaseID is not supported)"))
	}
	format := strings.TrimSpace(nameID.Format)
	value := strings.TrimSpace(nameID.Value)
	id := &gatehouse.Identity{
		TenantID:     c.conn.TenantID,
		ConnectionID: c.conn.ID,
		Issuer:       idp.EntityID,
		Raw:          raw,
	}
	switch {
	case c.cfg.SubjectAttribute != "":
		id.Subject = firstValue(raw, c.cfg.SubjectAttribute)
		if id.Subject == "" {
			return nil, refuse(ErrSubject, msgSubject, errors.New("subject_attribute "+c.cfg.SubjectAttribute+" is missing"))
		}
	case format == formatTransient:
		return nil, refuse(ErrSubject, msgSubject, errors.New("transient NameID and no subject_attribute configured"))
	default:
		id.Subject = value
	}
	if id.Subject == "" {
		return nil, refuse(ErrSubject, msgSubject, errors.New("empty NameID"))
	}
	raw["nameid"] = value
	raw["nameid_format"] = format
	for _, s := range a.AuthnStatements {
		if s.SessionIndex != "" {
			id.SessionIndex = s.SessionIndex
			break
		}
	}
	c.applyMapping(id, raw, format, value)
	return id, nil
}

// applyMapping fills the profile fields: the connection's plain attribute
// names first, then the common names. Email falls back to an
// emailAddress-format NameID, and to an unspecified NameID that is an email
// address (Okta's and OneLogin's default).
func (c *Connector) applyMapping(id *gatehouse.Identity, raw map[string]any, format, nameID string) {
	m := c.conn.Mapping
	pick := func(configured string, defaults []string) string {
		if configured != "" {
			return firstValue(raw, configured)
		}
		for _, name := range defaults {
			if v := firstValue(raw, name); v != "" {
				return v
			}
		}
		return ""
	}
	id.Email = pick(m.Email, emailAttrs)
	if id.Email == "" && m.Email == "" && (format == formatEmail || format == formatUnspecified || format == "") && gatehouse.ValidEmail(nameID) {
		id.Email = nameID
	}
	id.GivenName = pick(m.GivenName, givenNameAttrs)
	id.FamilyName = pick(m.FamilyName, familyNameAttrs)
	id.DisplayName = pick(m.DisplayName, displayNameAttrs)
	id.Username = pick(m.Username, usernameAttrs)
	if id.DisplayName == "" && (id.GivenName != "" || id.FamilyName != "") {
		id.DisplayName = strings.TrimSpace(id.GivenName + " " + id.FamilyName)
	}
	groupNames := groupAttrs
	if m.Groups != "" {
		groupNames = []string{m.Groups}
	}
	for _, name := range groupNames {
		if vs := allValues(raw, name); len(vs) > 0 {
			id.Groups = vs
			break
		}
	}
}

// attributes returns the assertion's attributes by Name (and by
// FriendlyName when that differs and is not taken): one value as a string,
// several as []any.
func attributes(a *crewjam.Assertion) map[string]any {
	raw := map[string]any{}
	add := func(name string, vals []any) {
		if name == "" {
			return
		}
		if len(vals) == 1 {
			raw[name] = vals[0]
		} else {
			raw[name] = vals
		}
	}
	friendly := map[string][]any{}
	for _, st := range a.AttributeStatements {
		for _, attr := range st.Attributes {
			var vals []any
			for _, v := range attr.Values {
				if v.Nil {
					continue
				}
				s := v.Value
				if v.NameID != nil {
					s = v.NameID.Value
				}
				vals = append(vals, strings.TrimSpace(s))
			}
			if prev, ok := raw[attr.Name]; ok {
				vals = append(asList(prev), vals...)
			}
			add(attr.Name, vals)
			if attr.FriendlyName != "" && attr.FriendlyName != attr.Name {
				friendly[attr.FriendlyName] = append(friendly[attr.FriendlyName], vals...)
			}
		}
	}
	for name, vals := range friendly {
		if _, taken := raw[name]; !taken {
			add(name, vals)
		}
	}
	return raw
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

func firstValue(raw map[string]any, name string) string {
	for _, v := range asList(raw[name]) {
		if s, ok := v.(string); ok && s != "" {
			return s
		}
	}
	return ""
}

func allValues(raw map[string]any, name string) []string {
	v, ok := raw[name]
	if !ok {
		return nil
	}
	var out []string
	for _, x := range asList(v) {
		if s, ok := x.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}
