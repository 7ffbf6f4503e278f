package scim

import (
	"encoding/json"
	"net/url"
	"strings"

	"github.com/gatehouse-sso/gatehouse/scim/filter"
)

// canonicalize turns a request body into a document with the schema's
// attribute names (names are case-insensitive, RFC 7643 §2.1) and typed
// values: booleans sent as strings ("False", as Entra ID does) become
// booleans, a complex value sent as a bare string (Entra's manager) becomes
// {"value": ...}. Attributes of no known schema are dropped (RFC 7644
// §3.3: the provider may ignore what it does not store).
func canonicalize(rt *resourceType, raw map[string]any) (map[string]any, error) {
	doc := map[string]any{}
	for k, v := range raw {
		if strings.EqualFold(k, "schemas") {
			doc["schemas"] = v
			continue
		}
		if ext := rt.extension(k); ext != nil {
			m, ok := v.(map[string]any)
			if !ok {
				if v == nil {
					continue
				}
				return nil, scimErr(typeInvalidSyntax, "%s must be an object.", ext.ID)
			}
			em := map[string]any{}
			for ek, ev := range m {
				a := findAttr(ext.Attrs, ek)
				if a == nil {
					continue
				}
				cv, err := canonValue(a, ev)
				if err != nil {
					return nil, err
				}
				if cv != nil {
					em[a.Name] = cv
				}
			}
			if len(em) > 0 {
				doc[ext.ID] = em
			}
			continue
		}
		a, _ := rt.attr("", k)
		if a == nil {
			continue
		}
		cv, err := canonValue(a, v)
		if err != nil {
			return nil, err
		}
		if cv != nil {
			doc[a.Name] = cv
		}
	}
	return doc, nil
}

// canonValue types v as attribute a says; nil means absent.
func canonValue(a *attrDef, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if a.Multi {
		var items []any
		switch x := v.(type) {
		case []any:
			items = x
		default:
			items = []any{x}
		}
		out := make([]any, 0, len(items))
		for _, it := range items {
			cv, err := canonComplex(a, it)
			if err != nil {
				return nil, err
			}
			if cv != nil {
				out = append(out, cv)
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	}
	if a.Type == tComplex {
		return canonComplex(a, v)
	}
	return canonScalar(a, v)
}

func canonComplex(a *attrDef, v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		out := map[string]any{}
		for k, sv := range x {
			sub := a.sub(k)
			if sub == nil {
				continue
			}
			cv, err := canonScalar(sub, sv)
			if err != nil {
				return nil, err
			}
			if cv != nil {
				out[sub.Name] = cv
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	case string, json.Number, bool:
		if a.sub("value") != nil {
			cv, err := canonScalar(a.sub("value"), x)
			if err != nil || cv == nil {
				return nil, err
			}
			return map[string]any{"value": cv}, nil
		}
	}
	return nil, scimErr(typeInvalidValue, "%s must be an object.", a.Name)
}

func canonScalar(a *attrDef, v any) (any, error) {
	switch a.Type {
	case tBoolean:
		switch x := v.(type) {
		case nil:
			return nil, nil
		case bool:
			return x, nil
		case string:
			// Entra ID sends "True"/"False" as strings.
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
		}
		return nil, scimErr(typeInvalidValue, "%s must be true or false.", a.Name)
	case tComplex:
		return canonComplex(a, v)
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		if x {
			return "true", nil
		}
		return "false", nil
	}
	return nil, scimErr(typeInvalidValue, "%s must be a string.", a.Name)
}

// projection is the attributes / excludedAttributes of a request (RFC
// 7644 §3.4.2.5).
type projection struct {
	attributes, excluded []filter.Path
}

func parseAttrList(list []string) ([]filter.Path, error) {
	var out []filter.Path
	for _, item := range list {
		for _, s := range strings.Split(item, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if len(s) > 4 && strings.EqualFold(s[:4], "urn:") {
				// A bare schema URN names the whole extension.
				if ext := userType.extension(s); ext != nil {
					out = append(out, filter.Path{URI: ext.ID})
					continue
				}
			}
			p, err := filter.ParseAttrPath(s)
			if err != nil {
				return nil, scimErr(typeInvalidValue, "Invalid attribute name %q.", s)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

func projectionFromQuery(q url.Values) (projection, error) {
	return newProjection(q["attributes"], q["excludedAttributes"])
}

func newProjection(attrs, excluded []string) (projection, error) {
	var p projection
	var err error
	if p.attributes, err = parseAttrList(attrs); err != nil {
		return p, err
	}
	p.excluded, err = parseAttrList(excluded)
	return p, err
}

// wants reports whether a top-level attribute (of schema uri, "" for
// core) is to be rendered at all; renderers use it to skip costly
// attributes (members, groups) nobody asked for.
func (p projection) wants(rt *resourceType, name string) bool {
	if len(p.attributes) > 0 {
		for _, a := range p.attributes {
			if a.Attr != "" && p.pathIs(rt, a, name) {
				return true
			}
		}
		return false
	}
	for _, a := range p.excluded {
		if a.Sub == "" && p.pathIs(rt, a, name) {
			return false
		}
	}
	return true
}

func (p projection) pathIs(rt *resourceType, a filter.Path, name string) bool {
	return strings.EqualFold(a.Attr, name) && (a.URI == "" || strings.EqualFold(a.URI, rt.Schema.ID))
}

// apply returns doc reduced to what p asks for; id and schemas are always
// returned, password never (RFC 7643 §2.4 "returned").
func (p projection) apply(rt *resourceType, doc map[string]any) map[string]any {
	if len(p.attributes) == 0 && len(p.excluded) == 0 {
		return doc
	}
	if len(p.attributes) > 0 {
		out := map[string]any{"schemas": doc["schemas"], "id": doc["id"]}
		for _, a := range p.attributes {
			copyPath(rt, doc, out, a)
		}
		return out
	}
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		out[k] = v
	}
	for _, a := range p.excluded {
		if strings.EqualFold(a.Attr, "id") && a.URI == "" {
			continue
		}
		deletePath(rt, out, a)
	}
	return out
}

// locate finds the container map and key of path a in doc.
func locate(rt *resourceType, doc map[string]any, a filter.Path) (map[string]any, string) {
	container := doc
	if a.URI != "" && !strings.EqualFold(a.URI, rt.Schema.ID) {
		ext := rt.extension(a.URI)
		if ext == nil {
			return nil, ""
		}
		m, _ := doc[ext.ID].(map[string]any)
		if a.Attr == "" {
			return doc, ext.ID
		}
		container = m
	}
	if container == nil {
		return nil, ""
	}
	for k := range container {
		if strings.EqualFold(k, a.Attr) {
			return container, k
		}
	}
	return nil, ""
}

func copyPath(rt *resourceType, doc, out map[string]any, a filter.Path) {
	container, key := locate(rt, doc, a)
	if container == nil {
		return
	}
	dst := out
	if a.URI != "" && !strings.EqualFold(a.URI, rt.Schema.ID) && a.Attr != "" {
		ext := rt.extension(a.URI)
		m, _ := out[ext.ID].(map[string]any)
		if m == nil {
			m = map[string]any{}
			out[ext.ID] = m
		}
		dst = m
	}
	v := container[key]
	if a.Sub == "" {
		dst[key] = v
		return
	}
	switch x := v.(type) {
	case map[string]any:
		m, _ := dst[key].(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		for k, sv := range x {
			if strings.EqualFold(k, a.Sub) {
				m[k] = sv
			}
		}
		if len(m) > 0 {
			dst[key] = m
		}
	case []any:
		var list []any
		for _, it := range x {
			if m, ok := it.(map[string]any); ok {
				for k, sv := range m {
					if strings.EqualFold(k, a.Sub) {
						list = append(list, map[string]any{k: sv})
					}
				}
			}
		}
		if len(list) > 0 {
			dst[key] = list
		}
	}
}

func deletePath(rt *resourceType, doc map[string]any, a filter.Path) {
	container, key := locate(rt, doc, a)
	if container == nil {
		return
	}
	if a.Sub == "" {
		delete(container, key)
		return
	}
	// Copy before changing: the document may share maps with others.
	switch x := container[key].(type) {
	case map[string]any:
		m := map[string]any{}
		for k, v := range x {
			if !strings.EqualFold(k, a.Sub) {
				m[k] = v
			}
		}
		container[key] = m
	case []any:
		list := make([]any, 0, len(x))
		for _, it := range x {
			if m, ok := it.(map[string]any); ok {
				c := map[string]any{}
				for k, v := range m {
					if !strings.EqualFold(k, a.Sub) {
						c[k] = v
					}
				}
				list = append(list, c)
			}
		}
		container[key] = list
	}
}

// deepCopy copies a JSON-shaped value so a document can be changed without
// touching the object it was rendered from.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopy(e)
		}
		return l
	}
	return v
}

func getString(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func getMap(m map[string]any, key string) map[string]any {
	x, _ := m[key].(map[string]any)
	return x
}

func getList(m map[string]any, key string) []any {
	x, _ := m[key].([]any)
	return x
}

// normalizeJSON gives a value the shape it has after a JSON round trip, so
// values read from the database and values decoded from a request compare.
func normalizeJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	return out
}
