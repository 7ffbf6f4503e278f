package saml

import (
	"errors"
	"fmt"
	"strings"

	crewjam "github.com/crewjam/saml"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/mapping"
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
	// The NameID is the subject unless it is transient; a configured
	// subject_attribute (or a subject mapping) replaces it.
	if format != formatTransient {
		id.Subject = value
	}
	raw["nameid"] = value
	raw["nameid_format"] = format
	for _, s := range a.AuthnStatements {
		if s.SessionIndex != "" {
			id.SessionIndex = s.SessionIndex
			break
		}
	}
	if err := c.applyMapping(id, raw, format, value); err != nil {
		return nil, err
	}
	if c.cfg.SubjectAttribute != "" {
		id.Subject = firstValue(raw, c.cfg.SubjectAttribute)
		if id.Subject == "" {
			return nil, refuse(ErrSubject, msgSubject, errors.New("subject_attribute "+c.cfg.SubjectAttribute+" is missing"))
		}
	}
	if id.Subject == "" || (format == formatTransient && id.Subject == value) {
		return nil, refuse(ErrSubject, msgSubject, fmt.Errorf("no stable subject (NameID format %q, no subject_attribute)", format))
	}
	return id, nil
}

// applyMapping fills the profile fields with the shared mapping (the
// connection's expressions and names, then the SAML defaults: mail, the
// Entra ID / ADFS claim URIs, urn:oid names...). Email falls back to an
// emailAddress-format NameID, and to an unspecified NameID that is an email
// address (Okta's and OneLogin's default).
func (c *Connector) applyMapping(id *gatehouse.Identity, raw map[string]any, format, nameID string) error {
	m := c.conn.Mapping
	if err := mapping.Apply(gatehouse.ConnSAML, m, raw, id); err != nil {
		return err
	}
	_, emailExpr := m.Expressions[mapping.FieldEmail]
	if id.Email == "" && m.Email == "" && !emailExpr &&
		(format == formatEmail || format == formatUnspecified || format == "") && gatehouse.ValidEmail(nameID) {
		id.Email = nameID
	}
	if id.DisplayName == "" && (id.GivenName != "" || id.FamilyName != "") {
		id.DisplayName = strings.TrimSpace(id.GivenName + " " + id.FamilyName)
	}
	return nil
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
