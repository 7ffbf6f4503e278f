package scim

import (
	"reflect"
	"strings"

	"github.com/gatehouse-sso/gatehouse/scim/filter"
)

// maxPatchOps bounds the operations of one PATCH request.
const maxPatchOps = 1000

// applyPatch applies a PatchOp request (RFC 7644 §3.5.2) to a rendered
// resource document. Operation names are case-insensitive ("Replace" and
// "Add" from Entra ID); an operation without path carries an object whose
// keys are attribute paths (plain names, "name.givenName", or URN-prefixed
// extension attributes); remove with a value removes those values from a
// multi-valued attribute (Entra's member removal).
func (s *Server) applyPatch(rt *resourceType, doc map[string]any, body map[string]any) error {
	var ops []any
	for k, v := range body {
		if strings.EqualFold(k, "Operations") {
			ops, _ = v.([]any)
		}
	}
	if len(ops) == 0 {
		return scimErr(typeInvalidSyntax, "A PATCH request needs a non-empty Operations list.")
	}
	if len(ops) > maxPatchOps {
		return scimErr(typeTooMany, "A PATCH request may carry at most %d operations.", maxPatchOps)
	}
	for _, raw := range ops {
		m, ok := raw.(map[string]any)
		if !ok {
			return scimErr(typeInvalidSyntax, "Each operation must be an object.")
		}
		var op, path string
		var value any
		for k, v := range m {
			switch strings.ToLower(k) {
			case "op":
				op, _ = v.(string)
			case "path":
				path, _ = v.(string)
			case "value":
				value = v
			}
		}
		op = strings.ToLower(strings.TrimSpace(op))
		if op != "add" && op != "remove" && op != "replace" {
			return scimErr(typeInvalidSyntax, "Unknown PATCH op %q; use add, remove or replace.", op)
		}
		path = strings.TrimSpace(path)
		if path != "" {
			if err := s.patchPath(rt, doc, op, path, value, false); err != nil {
				return err
			}
			continue
		}
		if op == "remove" {
			return scimErr(typeNoTarget, "A remove operation needs a path.")
		}
		obj, ok := value.(map[string]any)
		if !ok {
			return scimErr(typeInvalidValue, "An operation without a path needs an object value.")
		}
		for k, v := range obj {
			if strings.EqualFold(k, "schemas") {
				continue
			}
			if ext := rt.extension(k); ext != nil {
				em, ok := v.(map[string]any)
				if !ok {
					return scimErr(typeInvalidValue, "%s must be an object.", ext.ID)
				}
				for ek, ev := range em {
					if err := s.patchPath(rt, doc, op, ext.ID+":"+ek, ev, true); err != nil {
						return err
					}
				}
				continue
			}
			if err := s.patchPath(rt, doc, op, k, v, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// patchPath applies one operation at a path. lenient (keys of a value
// object) skips read-only and unknown attributes instead of failing:
// clients echo id or meta back, and Okta sends the group id in its rename.
func (s *Server) patchPath(rt *resourceType, doc map[string]any, op, path string, value any, lenient bool) error {
	pp, err := filter.ParsePatchPath(path, s.limits)
	if err != nil {
		return scimErr(typeInvalidPath, "Invalid path %q: %s.", path, errText(err))
	}
	a, ext := rt.attr(pp.URI, pp.Attr)
	if a == nil {
		if lenient || (pp.URI != "" && rt.extension(pp.URI) == nil && !strings.EqualFold(pp.URI, rt.Schema.ID)) {
			// An extension schema Gatehouse does not store (custom IdP
			// extensions): ignored like unknown attributes in a body.
			return nil
		}
		return scimErr(typeInvalidPath, "Unknown attribute %q.", pp.Path.String())
	}
	var sub *attrDef
	if pp.Sub != "" {
		if sub = a.sub(pp.Sub); sub == nil {
			if lenient {
				return nil
			}
			return scimErr(typeInvalidPath, "Unknown sub-attribute %q of %s.", pp.Sub, a.Name)
		}
	}
	if a.Mutability == mReadOnly || (sub != nil && sub.Mutability == mReadOnly) {
		if lenient {
			return nil
		}
		return scimErr(typeMutability, "%s is read-only.", pp.String())
	}
	container := doc
	if ext != nil {
		em, _ := doc[ext.ID].(map[string]any)
		if em == nil {
			em = map[string]any{}
		}
		container = em
		defer func() {
			if len(em) > 0 {
				doc[ext.ID] = em
				addSchema(doc, ext.ID)
			} else {
				delete(doc, ext.ID)
			}
		}()
	}
	switch {
	case pp.Filter != nil:
		if !a.Multi {
			return scimErr(typeInvalidPath, "%s is not multi-valued; it takes no filter.", a.Name)
		}
		return patchFiltered(container, a, sub, pp.Filter, op, value)
	case a.Multi:
		return patchMulti(container, a, sub, op, value)
	case a.Type == tComplex:
		return patchComplex(container, a, sub, op, value)
	}
	if sub != nil {
		return scimErr(typeInvalidPath, "%s has no sub-attributes.", a.Name)
	}
	if op == "remove" {
		delete(container, a.Name)
		return nil
	}
	v, err := canonScalar(a, value)
	if err != nil {
		return err
	}
	if v == nil {
		delete(container, a.Name)
	} else {
		container[a.Name] = v
	}
	return nil
}

func addSchema(doc map[string]any, uri string) {
	list, _ := doc["schemas"].([]any)
	for _, s := range list {
		if s == uri {
			return
		}
	}
	doc["schemas"] = append(list, uri)
}

func errText(err error) string {
	if fe, ok := err.(*filter.Error); ok {
		return fe.Msg
	}
	return err.Error()
}

// patchComplex handles a single-valued complex attribute (name, manager).
// replace and add both merge the given sub-attributes (RFC 7644 §3.5.2.3:
// sub-attributes not specified are left unchanged).
func patchComplex(container map[string]any, a, sub *attrDef, op string, value any) error {
	m, _ := container[a.Name].(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	defer func() {
		if len(m) > 0 {
			container[a.Name] = m
		} else {
			delete(container, a.Name)
		}
	}()
	if sub != nil {
		if op == "remove" {
			delete(m, sub.Name)
			return nil
		}
		v, err := canonScalar(sub, value)
		if err != nil {
			return err
		}
		if v == nil {
			delete(m, sub.Name)
		} else {
			m[sub.Name] = v
		}
		return nil
	}
	if op == "remove" {
		m = nil
		return nil
	}
	v, err := canonComplex(a, value)
	if err != nil {
		return err
	}
	if v == nil {
		if op == "replace" {
			m = nil
		}
		return nil
	}
	for k, sv := range v.(map[string]any) {
		m[k] = sv
	}
	return nil
}

// patchMulti handles a multi-valued attribute without a filter.
func patchMulti(container map[string]any, a, sub *attrDef, op string, value any) error {
	list, _ := container[a.Name].([]any)
	set := func(l []any) { setList(container, a.Name, l) }
	if sub != nil {
		// "emails.value" without a filter addresses every element.
		if op == "remove" {
			for _, it := range list {
				if m, ok := it.(map[string]any); ok {
					delete(m, sub.Name)
				}
			}
			set(list)
			return nil
		}
		v, err := canonScalar(sub, value)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			list = []any{map[string]any{}}
		}
		for _, it := range list {
			if m, ok := it.(map[string]any); ok {
				m[sub.Name] = v
			}
		}
		set(list)
		return nil
	}
	switch op {
	case "remove":
		if value == nil {
			delete(container, a.Name)
			return nil
		}
		// Remove the listed values (Entra: {"op":"Remove","path":"members",
		// "value":[{"value":"<id>"}]}).
		drop, err := canonValue(a, value)
		if err != nil {
			return err
		}
		var kept []any
		for _, it := range list {
			if !containsElem(drop, it) {
				kept = append(kept, it)
			}
		}
		set(kept)
		return nil
	case "replace":
		v, err := canonValue(a, value)
		if err != nil {
			return err
		}
		l, _ := v.([]any)
		set(clearOtherPrimaries(l))
		return nil
	}
	v, err := canonValue(a, value)
	if err != nil {
		return err
	}
	add, _ := v.([]any)
	for _, it := range add {
		if !containsElem(list, it) {
			if isPrimary(it) {
				// At most one value is primary (RFC 7643 §2.4): the newcomer wins.
				for _, old := range list {
					if m, ok := old.(map[string]any); ok {
						delete(m, "primary")
					}
				}
			}
			list = append(list, it)
		}
	}
	set(list)
	return nil
}

// setList stores a multi-valued attribute; an empty one is absent.
func setList(container map[string]any, name string, l []any) {
	if len(l) > 0 {
		container[name] = l
	} else {
		delete(container, name)
	}
}

func isPrimary(v any) bool {
	m, _ := v.(map[string]any)
	p, _ := m["primary"].(bool)
	return p
}

// clearOtherPrimaries keeps only the first primary of a list.
func clearOtherPrimaries(l []any) []any {
	seen := false
	for _, it := range l {
		if isPrimary(it) {
			if seen {
				delete(it.(map[string]any), "primary")
			}
			seen = true
		}
	}
	return l
}

// containsElem reports whether list has an element equal to it: the same
// "value" when both have one (members, emails), else the same content.
func containsElem(list any, it any) bool {
	l, _ := list.([]any)
	im, _ := it.(map[string]any)
	iv, hasValue := im["value"].(string)
	for _, e := range l {
		em, _ := e.(map[string]any)
		if ev, ok := em["value"].(string); ok && hasValue {
			if ev == iv {
				return true
			}
			continue
		}
		if reflect.DeepEqual(normalizeJSON(e), normalizeJSON(it)) {
			return true
		}
	}
	return false
}

// patchFiltered handles attr[filter] and attr[filter].sub.
func patchFiltered(container map[string]any, a, sub *attrDef, f *filter.Expr, op string, value any) error {
	list, _ := container[a.Name].([]any)
	var matched []map[string]any
	var kept []any
	for _, it := range list {
		m, _ := it.(map[string]any)
		ok, err := matchElem(f, a, m)
		if err != nil {
			return err
		}
		if ok {
			matched = append(matched, m)
		} else {
			kept = append(kept, it)
		}
	}
	set := func(l []any) { setList(container, a.Name, l) }
	if op == "remove" {
		// Removing what is not there is not an error: a retried removal
		// (or Okta removing a member already gone) succeeds.
		if sub == nil {
			set(kept)
			return nil
		}
		for _, m := range matched {
			delete(m, sub.Name)
		}
		return nil
	}
	if sub != nil {
		v, err := canonScalar(sub, value)
		if err != nil {
			return err
		}
		if len(matched) == 0 {
			// Entra ID sets emails[type eq "work"].value on a user with no
			// work email yet: create the element the filter describes.
			elem, ok := elemFromFilter(f, a)
			if !ok {
				return scimErr(typeNoTarget, "No value of %s matches the filter.", a.Name)
			}
			elem[sub.Name] = v
			if sub.Name == "value" && a.Name == "emails" && len(list) == 0 {
				elem["primary"] = true
			}
			set(append(list, elem))
			return nil
		}
		for _, m := range matched {
			if v == nil {
				delete(m, sub.Name)
			} else {
				m[sub.Name] = v
			}
		}
		return nil
	}
	v, err := canonComplex(a, value)
	if err != nil {
		return err
	}
	if len(matched) == 0 {
		return scimErr(typeNoTarget, "No value of %s matches the filter.", a.Name)
	}
	nv, _ := v.(map[string]any)
	if nv == nil {
		set(kept)
		return nil
	}
	// Each matched element is replaced (replace) or merged into (add).
	out := kept
	for _, m := range matched {
		if op == "replace" {
			out = append(out, deepCopy(nv))
			continue
		}
		for k, sv := range nv {
			m[k] = sv
		}
		out = append(out, m)
	}
	set(out)
	return nil
}

// elemFromFilter builds the element a filter of eq terms joined by "and"
// describes, e.g. type eq "work" → {"type": "work"}.
func elemFromFilter(f *filter.Expr, a *attrDef) (map[string]any, bool) {
	elem := map[string]any{}
	var walk func(e *filter.Expr) bool
	walk = func(e *filter.Expr) bool {
		switch e.Op {
		case filter.And:
			return walk(e.Children[0]) && walk(e.Children[1])
		case filter.Eq:
			sub := a.sub(e.Path.Attr)
			if sub == nil || e.Path.Sub != "" {
				return false
			}
			v, err := canonScalar(sub, e.Value)
			if err != nil || v == nil {
				return false
			}
			elem[sub.Name] = v
			return true
		}
		return false
	}
	return elem, walk(f)
}

// matchElem evaluates a value filter on one element of a multi-valued
// attribute, comparing strings as the sub-attribute's caseExact says.
func matchElem(e *filter.Expr, a *attrDef, elem map[string]any) (bool, error) {
	switch e.Op {
	case filter.And, filter.Or:
		l, err := matchElem(e.Children[0], a, elem)
		if err != nil {
			return false, err
		}
		if e.Op == filter.And && !l {
			return false, nil
		}
		if e.Op == filter.Or && l {
			return true, nil
		}
		return matchElem(e.Children[1], a, elem)
	case filter.Not:
		r, err := matchElem(e.Children[0], a, elem)
		return !r, err
	case filter.ValuePath:
		return false, scimErr(typeInvalidFilter, "Value filters cannot be nested.")
	}
	if e.Path.Sub != "" || (e.Path.URI != "" && !strings.EqualFold(e.Path.URI, "")) {
		return false, scimErr(typeInvalidPath, "%q is not a sub-attribute of %s.", e.Path.String(), a.Name)
	}
	sub := a.sub(e.Path.Attr)
	if sub == nil {
		return false, scimErr(typeInvalidPath, "%q is not a sub-attribute of %s.", e.Path.Attr, a.Name)
	}
	got := elem[sub.Name]
	if e.Op == filter.Pr {
		return got != nil && got != "", nil
	}
	want, err := canonScalar(sub, e.Value)
	if err != nil {
		return false, scimErr(typeInvalidFilter, "%s compares with a %s.", sub.Name, sub.Type)
	}
	return compareValues(e.Op, got, want, sub.CaseExact), nil
}

// compareValues applies a SCIM comparison to two scalar values.
func compareValues(op string, got, want any, caseExact bool) bool {
	if gb, ok := got.(bool); ok {
		wb, ok := want.(bool)
		switch op {
		case filter.Eq:
			return ok && gb == wb
		case filter.Ne:
			return !ok || gb != wb
		}
		return false
	}
	gs, gok := got.(string)
	ws, wok := want.(string)
	if op == filter.Eq && want == nil {
		return got == nil
	}
	if op == filter.Ne && want == nil {
		return got != nil
	}
	if !gok || !wok {
		return op == filter.Ne
	}
	if !caseExact {
		gs, ws = strings.ToLower(gs), strings.ToLower(ws)
	}
	switch op {
	case filter.Eq:
		return gs == ws
	case filter.Ne:
		return gs != ws
	case filter.Co:
		return strings.Contains(gs, ws)
	case filter.Sw:
		return strings.HasPrefix(gs, ws)
	case filter.Ew:
		return strings.HasSuffix(gs, ws)
	case filter.Gt:
		return gs > ws
	case filter.Ge:
		return gs >= ws
	case filter.Lt:
		return gs < ws
	case filter.Le:
		return gs <= ws
	}
	return false
}
