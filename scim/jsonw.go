package scim

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-sso/gatehouse"
)

// A JSON writer for the documents SCIM renders (PERF).
//
// Responses are JSON-shaped values (map[string]any, []any, string, bool,
// ...) built by userDoc, groupDoc and listResponse. encoding/json walks
// them by reflection, which was ~7 % of Gatehouse's CPU per SCIM create and
// more per list. appendJSON writes the same bytes as encoding/json (sorted
// map keys, the same string escaping; FuzzAppendJSON and the golden
// responses in testdata prove it) for those shapes, and hands any other
// value to encoding/json, so nothing can come out different.

// appendJSON appends v as encoding/json would encode it, escaping <, > and
// & as json.Marshal does when html is set (an Encoder with
// SetEscapeHTML(false) when not).
func appendJSON(b []byte, v any, html bool) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, x, html), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case map[string]any:
		if x == nil {
			return append(b, "null"...), nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k, html)
			b = append(b, ':')
			var err error
			if b, err = appendJSON(b, x[k], html); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		return appendArray(b, x, html)
	case []string:
		return appendArray(b, x, html)
	}
	// Numbers other than int (float64, json.Number: their formatting and
	// validation rules are encoding/json's), and any other type.
	return appendMarshal(b, v, html)
}

func appendArray[T any](b []byte, list []T, html bool) ([]byte, error) {
	if list == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	for i, e := range list {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendJSON(b, any(e), html); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

// appendMarshal appends v encoded by encoding/json itself.
func appendMarshal(b []byte, v any, html bool) ([]byte, error) {
	if html {
		j, err := json.Marshal(v)
		return append(b, j...), err
	}
	w := &appendWriter{b: b}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return w.b[:len(w.b)-1], nil // Encode ends with a newline
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

const hexDigits = "0123456789abcdef"

// appendString appends s quoted as encoding/json does: \" \\ \b \f \n \r
// \t, other control characters as \u00XX, U+2028 and U+2029 escaped (for
// JavaScript), each invalid UTF-8 byte as U+FFFD (unescaped), and <, >, &
// as \u003c, \u003e, \u0026 when html is set.
func appendString(b []byte, s string, html bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!html || (c != '<' && c != '>' && c != '&')) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// userEvent is the outbox payload of a user change: {"user": u}.
type userEvent struct{ user *gatehouse.User }

// appendUserEvent appends {"user": u} exactly as json.Marshal encodes it
// (gatehouse.User's field order and tags, HTML escaping on); the outbox
// feeds webhooks, so the bytes must not change. TestUserEventJSON compares
// it with json.Marshal and fails when gatehouse.User gains a field.
func appendUserEvent(b []byte, u *gatehouse.User) ([]byte, error) {
	str := func(name, v string) {
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		b = appendString(b, v, true)
	}
	var err error
	tm := func(name string, t time.Time) {
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		j, terr := t.MarshalJSON()
		if terr != nil {
			err = terr
		}
		b = append(b, j...)
	}
	b = append(b, `{"user":{"id":`...)
	b = appendString(b, u.ID, true)
	str("tenant_id", u.TenantID)
	str("email", u.Email)
	str("username", u.Username)
	str("display_name", u.DisplayName)
	str("given_name", u.GivenName)
	str("family_name", u.FamilyName)
	str("status", u.Status)
	if u.ExternalID != "" {
		str("external_id", u.ExternalID)
	}
	str("source", u.Source)
	if len(u.Attributes) > 0 {
		b = append(b, `,"attributes":`...)
		if b, err = appendJSON(b, u.Attributes, true); err != nil {
			return nil, err
		}
	}
	tm("created_at", u.CreatedAt)
	tm("updated_at", u.UpdatedAt)
	if u.LastLoginAt == nil {
		b = append(b, `,"last_login_at":null`...)
	} else {
		tm("last_login_at", *u.LastLoginAt)
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, u.Version, 10)
	if u.DeletedAt != nil {
		tm("deleted_at", *u.DeletedAt)
	}
	b = append(b, `,"groups":`...)
	if b, err = appendJSON(b, u.Groups, true); err != nil {
		return nil, err
	}
	return append(b, '}', '}'), err
}
