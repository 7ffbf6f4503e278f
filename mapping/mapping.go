// Package mapping turns the claims or attributes a connector received from an
// IdP into the fields of a gatehouse.Identity, the same way for every
// protocol: per-protocol default names, names the admin configured, and CEL
// expressions for unusual cases.
//
// Order of precedence for each field: a CEL expression in
// AttributeMapping.Expressions, else the configured name, else the protocol's
// default names (first one present wins). A configured name replaces the
// defaults: when it is absent the field stays empty, so a misconfiguration
// shows up instead of silently reading another attribute.
package mapping

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

// Field names, as used in AttributeMapping.Expressions and in error Field
// values ("mapping.expressions.<field>").
const (
	FieldSubject       = "subject"
	FieldEmail         = "email"
	FieldEmailVerified = "email_verified"
	FieldUsername      = "username"
	FieldDisplayName   = "display_name"
	FieldGivenName     = "given_name"
	FieldFamilyName    = "family_name"
	FieldGroups        = "groups"
)

// fields lists every mappable field in a stable order.
var fields = []string{FieldSubject, FieldEmail, FieldEmailVerified, FieldUsername,
	FieldDisplayName, FieldGivenName, FieldFamilyName, FieldGroups}

// Entra ID / ADFS claim URIs (WS-Federation claim types). Entra ID sends
// these in SAML assertions by default.
const (
	claimEmail       = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
	claimName        = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name" // Entra: the UPN
	claimGivenName   = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
	claimSurname     = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
	claimUPN         = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
	claimDisplayName = "http://schemas.microsoft.com/identity/claims/displayname"
	claimGroups      = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
	claimADFSGroup   = "http://schemas.xmlsoap.org/claims/Group"
	claimCommonName  = "http://schemas.xmlsoap.org/claims/CommonName"
)

// LDAP attribute OIDs as SAML attribute names (urn:oid form, as sent by
// Shibboleth, SimpleSAMLphp and other SAML2 IdPs with the "uri" NameFormat).
const (
	oidMail        = "urn:oid:0.9.2342.19200300.100.1.3"
	oidUID         = "urn:oid:0.9.2342.19200300.100.1.1"
	oidGivenName   = "urn:oid:2.5.4.42"
	oidSN          = "urn:oid:2.5.4.4"
	oidCN          = "urn:oid:2.5.4.3"
	oidDisplayName = "urn:oid:2.16.840.1.113730.3.1.241"
	oidEPPN        = "urn:oid:1.3.6.1.4.1.5923.1.1.1.6" // eduPersonPrincipalName
	oidIsMemberOf  = "urn:oid:1.3.6.1.4.1.5923.1.5.1.1" // isMemberOf
	oidPKCS9Email  = "urn:oid:1.2.840.113549.1.9.1"
)

// defaults holds, per protocol and field, the names looked up in order.
var defaults = map[string]map[string][]string{
	gatehouse.ConnOIDC: {
		// OpenID Connect Core 1.0 §5.1 standard claims.
		FieldEmail:         {"email"},
		FieldEmailVerified: {"email_verified"},
		FieldUsername:      {"preferred_username"},
		FieldDisplayName:   {"name"},
		FieldGivenName:     {"given_name"},
		FieldFamilyName:    {"family_name"},
		FieldGroups:        {"groups"},
	},
	gatehouse.ConnOAuth2: {
		// Plain OAuth 2.0 userinfo endpoints mostly follow the OIDC names;
		// GitHub-style APIs call the username "login".
		FieldEmail:         {"email", "mail"},
		FieldEmailVerified: {"email_verified", "verified_email"},
		FieldUsername:      {"preferred_username", "username", "login"},
		FieldDisplayName:   {"name", "display_name", "displayName"},
		FieldGivenName:     {"given_name", "first_name", "firstName"},
		FieldFamilyName:    {"family_name", "last_name", "lastName"},
		FieldGroups:        {"groups"},
	},
	gatehouse.ConnSAML: {
		// SAML has no email_verified: the attribute is absent and the JIT
		// policy treats the email accordingly. The Entra ID "name" claim is
		// the user principal name; it is the last resort for email (used
		// only when it is a valid address) and a username source.
		FieldEmail: {"email", "mail", "emailaddress", "emailAddress", "Email", "EmailAddress",
			"User.email", "user.email", claimEmail, oidMail, oidPKCS9Email, claimUPN, claimName},
		FieldUsername: {"username", "userName", "uid", "User.Username", "login", oidUID,
			"sAMAccountName", "preferred_username", oidEPPN, claimUPN, claimName},
		FieldDisplayName: {"displayName", "displayname", "display_name", "DisplayName", "name",
			"cn", claimDisplayName, oidDisplayName, claimCommonName, oidCN},
		FieldGivenName: {"givenName", "givenname", "given_name", "firstName", "FirstName",
			"first_name", "User.FirstName", claimGivenName, oidGivenName},
		FieldFamilyName: {"sn", "surname", "familyName", "family_name", "lastName", "LastName",
			"last_name", "User.LastName", claimSurname, oidSN},
		FieldGroups: {"groups", "Groups", "memberOf", "member_of", "MemberOf", "User.Groups",
			claimGroups, claimADFSGroup, oidIsMemberOf},
	},
}

func init() {
	// The mock connector (tests, demos) speaks OIDC claim names.
	defaults[gatehouse.ConnMock] = defaults[gatehouse.ConnOIDC]
}

// DefaultNames returns the attribute names looked up for field when no name
// or expression is configured, for the console and error messages.
func DefaultNames(protocol, field string) []string {
	return append([]string(nil), defaults[protocol][field]...)
}

// Source describes, for messages, where field is read from under m: the
// expression, the configured name, or the protocol's first default name.
func Source(protocol string, m gatehouse.AttributeMapping, field string) string {
	if e := m.Expressions[field]; e != "" {
		return "the expression for " + field
	}
	if n := configured(m, field); n != "" {
		return n
	}
	names := defaults[protocol][field]
	switch len(names) {
	case 0:
		return field
	case 1:
		return names[0]
	}
	return names[0] + " (or " + names[1] + ")"
}

func configured(m gatehouse.AttributeMapping, field string) string {
	switch field {
	case FieldSubject:
		return m.Subject
	case FieldEmail:
		return m.Email
	case FieldUsername:
		return m.Username
	case FieldDisplayName:
		return m.DisplayName
	case FieldGivenName:
		return m.GivenName
	case FieldFamilyName:
		return m.FamilyName
	case FieldGroups:
		return m.Groups
	}
	return ""
}

// Apply fills id from raw using m and the defaults of protocol ("oidc",
// "oauth2", "saml", "mock"). Fields found in raw overwrite id's; fields not
// found keep what id had (a connector may have filled Subject from the
// protocol itself). Subject is mapped only when m names it or an
// expression gives it. id.Raw is set to raw when it was nil.
//
// Errors: EINVALID naming the field when an expression fails, exceeds its
// cost budget or time limit, or yields the wrong type; EINVALID for an
// unknown protocol.
func Apply(protocol string, m gatehouse.AttributeMapping, raw map[string]any, id *gatehouse.Identity) error {
	table, ok := defaults[protocol]
	if !ok {
		return gatehouse.Errorf(gatehouse.EINVALID, "Unknown connection type %q for attribute mapping.", protocol)
	}
	if id.Raw == nil {
		id.Raw = raw
	}
	// SAML names are matched without regard to case: an index from the
	// folded name to the key (the first in sort order, so the choice is
	// deterministic if two keys differ only in case).
	var folded map[string]string
	if protocol == gatehouse.ConnSAML {
		folded = foldIndex(raw)
	}
	if GroupsOverage(raw) {
		id.GroupsIncomplete = true
	}
	for _, field := range fields {
		if expr := m.Expressions[field]; expr != "" {
			v, err := evaluate(field, expr, raw)
			if err != nil {
				return err
			}
			if v != nil {
				set(id, field, v)
			}
			continue
		}
		var names []string
		if n := configured(m, field); n != "" {
			names = []string{n}
		} else if field != FieldSubject {
			names = table[field]
		}
		for _, name := range names {
			v, ok := lookup(raw, name, folded)
			if !ok {
				continue
			}
			if c := convert(field, v); c != nil {
				if field == FieldEmail && (name == claimName || name == claimUPN) && !gatehouse.ValidEmail(c.(string)) {
					continue // a UPN serves as email only when it is an address
				}
				set(id, field, c)
				break
			}
		}
	}
	return nil
}

// GroupsOverage reports whether the IdP left groups out because there were
// too many: Entra ID then sends a groups.link claim (SAML) or names the
// groups claim in _claim_names (OIDC) instead of the list.
func GroupsOverage(raw map[string]any) bool {
	if _, ok := raw["http://schemas.microsoft.com/claims/groups.link"]; ok {
		return true
	}
	if names, ok := raw["_claim_names"].(map[string]any); ok {
		_, ok = names["groups"]
		return ok
	}
	return false
}

// set stores a converted value (string, bool or []string) in id.
func set(id *gatehouse.Identity, field string, v any) {
	switch field {
	case FieldSubject:
		id.Subject = v.(string)
	case FieldEmail:
		id.Email = v.(string)
	case FieldEmailVerified:
		b := v.(bool)
		id.EmailVerified = &b
	case FieldUsername:
		id.Username = v.(string)
	case FieldDisplayName:
		id.DisplayName = v.(string)
	case FieldGivenName:
		id.GivenName = v.(string)
	case FieldFamilyName:
		id.FamilyName = v.(string)
	case FieldGroups:
		id.Groups = v.([]string)
	}
}

// convert turns a raw value into the field's Go type, or nil when it holds
// nothing usable (absent, empty, wrong shape).
func convert(field string, v any) any {
	switch field {
	case FieldEmailVerified:
		return toBool(v)
	case FieldGroups:
		return toStrings(v)
	}
	s, ok := toString(v)
	if !ok || s == "" {
		return nil
	}
	return s
}

// toString returns a single trimmed string. A multi-valued SAML attribute
// gives its first non-empty value.
func toString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return strings.TrimSpace(t), true
	case []string:
		for _, s := range t {
			if s = strings.TrimSpace(s); s != "" {
				return s, true
			}
		}
	case []any:
		for _, e := range t {
			if s, ok := toString(e); ok && s != "" {
				return s, true
			}
		}
	case json.Number:
		return t.String(), true
	case float64:
		// JSON numbers decode to float64: GitHub's numeric user id must
		// read "12345", not "12345.0" or "1.2345e+04".
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return strconv.FormatInt(int64(t), 10), true
		}
		return strconv.FormatFloat(t, 'g', -1, 64), true
	case int:
		return strconv.Itoa(t), true
	case int64:
		return strconv.FormatInt(t, 10), true
	case uint64:
		return strconv.FormatUint(t, 10), true
	}
	return "", false
}

// toBool accepts a JSON boolean or the strings "true"/"false" (some IdPs,
// e.g. older Cognito and Auth0 rules, send email_verified as a string).
func toBool(v any) any {
	switch t := v.(type) {
	case bool:
		return t
	case string, []any, []string:
		s, _ := toString(t)
		switch strings.ToLower(s) {
		case "true":
			return true
		case "false":
			return false
		}
	}
	return nil
}

// toStrings returns trimmed, non-empty, de-duplicated values in order. A
// single string is one group (SAML IdPs that send one AttributeValue per
// group already arrive as a list).
func toStrings(v any) any {
	var in []any
	switch t := v.(type) {
	case []any:
		in = t
	case []string:
		for _, s := range t {
			in = append(in, s)
		}
	default:
		in = []any{t}
	}
	out := []string{}
	seen := map[string]bool{}
	for _, e := range in {
		s, ok := toString(e)
		if !ok || s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

// foldIndex maps each lower-cased key of raw to the key itself.
func foldIndex(raw map[string]any) map[string]string {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	idx := make(map[string]string, len(keys))
	for _, k := range keys {
		if lk := strings.ToLower(k); idx[lk] == "" && raw[k] != nil {
			idx[lk] = k
		}
	}
	return idx
}

// lookup finds name in raw: the exact key first (SAML attribute names and
// claim URIs contain dots), then, with folded, the key that differs only in
// case (IdPs disagree on the case of names such as "EmailAddress"), then a
// dotted path into nested objects with numeric array indexes
// ("profile.email", "emails.0.value").
func lookup(raw map[string]any, name string, folded map[string]string) (any, bool) {
	if v, ok := raw[name]; ok && v != nil {
		return v, true
	}
	if k, ok := folded[strings.ToLower(name)]; ok {
		return raw[k], true
	}
	return walk(raw, name)
}

// Path finds path in raw: the exact key first, then a dotted path through
// nested objects and array indexes ("emails.0.value"). OAuth 2.0 userinfo
// documents are read this way.
func Path(raw map[string]any, path string) (any, bool) {
	if v, ok := raw[path]; ok {
		return v, v != nil
	}
	return walk(raw, path)
}

// walk follows a dotted path through nested objects and arrays.
func walk(raw map[string]any, path string) (any, bool) {
	if !strings.Contains(path, ".") {
		return nil, false
	}
	var cur any = raw
	for _, part := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[part]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, cur != nil
}

// Validate checks m before a connection is saved: known expression fields,
// expressions that compile to the right type, names without surrounding
// space. Errors are gatehouse.FieldError naming "mapping.<field>" or
// "mapping.expressions.<field>".
func Validate(m gatehouse.AttributeMapping) error {
	for _, f := range []string{FieldSubject, FieldEmail, FieldUsername, FieldDisplayName,
		FieldGivenName, FieldFamilyName, FieldGroups} {
		n := configured(m, f)
		if n != strings.TrimSpace(n) || len(n) > maxNameLen {
			return gatehouse.FieldError("mapping."+f, "The attribute name for %s must have no surrounding spaces and at most %d characters.", f, maxNameLen)
		}
	}
	keys := make([]string, 0, len(m.Expressions))
	for k := range m.Expressions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known(k) {
			return gatehouse.FieldError("mapping.expressions."+k, "Unknown field %q in mapping expressions; expected one of %s.", k, strings.Join(fields, ", "))
		}
		if strings.TrimSpace(m.Expressions[k]) == "" {
			return gatehouse.FieldError("mapping.expressions."+k, "The expression for %s is empty.", k)
		}
		if _, err := compile(k, m.Expressions[k]); err != nil {
			return err
		}
	}
	return nil
}

func known(field string) bool {
	for _, f := range fields {
		if f == field {
			return true
		}
	}
	return false
}

const maxNameLen = 256

func fieldErr(field, format string, args ...any) *gatehouse.Error {
	e := gatehouse.FieldError("mapping.expressions."+field, "The mapping expression for %s %s", field, fmt.Sprintf(format, args...))
	return e
}
