package scim

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

// discovery answers /ServiceProviderConfig, /ResourceTypes and /Schemas
// (RFC 7644 §4). They describe the server, not the tenant, but are served
// only to authenticated clients like everything else here.
func (s *Server) discovery(endpoint, id string) (*result, error) {
	ok := func(doc any) (*result, error) { return &result{status: http.StatusOK, doc: doc}, nil }
	notFound := gatehouse.Errorf(gatehouse.ENOTFOUND, "Not found.")
	switch endpoint {
	case "serviceproviderconfig":
		if id != "" {
			return nil, notFound
		}
		return ok(s.spConfig())
	case "resourcetypes":
		return lookupOrList(id, []*resourceType{userType, groupType},
			func(rt *resourceType) string { return rt.Name }, s.resourceTypeDoc, s.listResponse)
	case "schemas":
		return lookupOrList(id, []*schemaDef{userSchema, enterpriseSchema, groupSchema},
			func(sc *schemaDef) string { return sc.ID }, s.schemaDoc, s.listResponse)
	}
	return nil, notFound
}

// lookupOrList answers one discovery document by id, or the list of all.
func lookupOrList[T any](id string, all []T, key func(T) string, doc func(T) map[string]any,
	list func([]any, int, int) *result) (*result, error) {
	if id != "" {
		for _, x := range all {
			if strings.EqualFold(key(x), id) {
				return &result{status: http.StatusOK, doc: doc(x)}, nil
			}
		}
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "Not found.")
	}
	docs := make([]any, 0, len(all))
	for _, x := range all {
		docs = append(docs, doc(x))
	}
	return list(docs, len(docs), 0), nil
}

func (s *Server) spConfig() map[string]any {
	return map[string]any{
		"schemas":          []string{SchemaSPConfig},
		"documentationUri": "https://github.com/gatehouse-sso/gatehouse/blob/main/docs/scim.md",
		"patch":            map[string]any{"supported": true},
		"bulk": map[string]any{"supported": true, "maxOperations": s.cfg.MaxBulkOperations,
			"maxPayloadSize": s.cfg.MaxBodyBytes},
		"filter":         map[string]any{"supported": true, "maxResults": s.cfg.MaxResults},
		"changePassword": map[string]any{"supported": false},
		"sort":           map[string]any{"supported": true},
		"etag":           map[string]any{"supported": true},
		"authenticationSchemes": []any{map[string]any{
			"type": "oauthbearertoken", "name": "Bearer token",
			"description": "A SCIM token created in the Gatehouse console or API (prefix gh_scim_), sent as Authorization: Bearer <token>.",
			"primary":     true,
		}},
		"meta": map[string]any{"resourceType": "ServiceProviderConfig", "location": s.base + "/ServiceProviderConfig"},
	}
}

func (s *Server) resourceTypeDoc(rt *resourceType) map[string]any {
	doc := map[string]any{
		"schemas":     []string{SchemaResType},
		"id":          rt.Name,
		"name":        rt.Name,
		"endpoint":    rt.Endpoint,
		"description": rt.Schema.Description,
		"schema":      rt.Schema.ID,
		"meta":        map[string]any{"resourceType": "ResourceType", "location": s.base + "/ResourceTypes/" + rt.Name},
	}
	var exts []any
	for _, e := range rt.Extensions {
		exts = append(exts, map[string]any{"schema": e.ID, "required": false})
	}
	if exts != nil {
		doc["schemaExtensions"] = exts
	}
	return doc
}

func (s *Server) schemaDoc(sc *schemaDef) map[string]any {
	attrs := sc.Attrs
	if sc != enterpriseSchema {
		// id, externalId and meta are common attributes (RFC 7643 §3.1);
		// externalId is listed with the core schemas as clients expect.
		attrs = append([]*attrDef{commonAttrs[1]}, attrs...)
	}
	list := make([]any, 0, len(attrs))
	for _, a := range attrs {
		list = append(list, attrDoc(a))
	}
	return map[string]any{
		"schemas":     []string{SchemaSchema},
		"id":          sc.ID,
		"name":        sc.Name,
		"description": sc.Description,
		"attributes":  list,
		"meta":        map[string]any{"resourceType": "Schema", "location": s.base + "/Schemas/" + url.PathEscape(sc.ID)},
	}
}

func attrDoc(a *attrDef) map[string]any {
	d := map[string]any{
		"name": a.Name, "type": a.Type, "multiValued": a.Multi, "required": a.Required,
		"caseExact": a.CaseExact, "mutability": a.Mutability, "returned": a.Returned,
		"description": a.Description,
	}
	if a.Type == tString || a.Type == tReference {
		u := a.Uniqueness
		if u == "" {
			u = "none"
		}
		d["uniqueness"] = u
	}
	if len(a.Canonical) > 0 {
		d["canonicalValues"] = a.Canonical
	}
	if len(a.RefTypes) > 0 {
		d["referenceTypes"] = a.RefTypes
	}
	if len(a.Sub) > 0 {
		var subs []any
		for _, sa := range a.Sub {
			subs = append(subs, attrDoc(sa))
		}
		d["subAttributes"] = subs
	}
	return d
}
