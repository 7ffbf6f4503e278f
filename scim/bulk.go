package scim

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

type bulkOp struct {
	index   int
	method  string
	bulkID  string
	version string
	path    string
	data    any
}

// bulk runs a BulkRequest (RFC 7644 §3.7). Each operation runs in its own
// transaction, as the RFC has no all-or-nothing mode. "bulkId:<id>" in a
// path or in data refers to the resource a POST of the same request
// created; an operation waiting on one runs after it, so the order of
// operations in the request does not matter (§3.7.2). failOnErrors stops
// after that many errors (§3.7.3).
func (s *Server) bulk(ctx context.Context, c *caller, body []byte) (*result, error) {
	raw, err := s.decode(body)
	if err != nil {
		return nil, err
	}
	var rawOps []any
	failOnErrors := 0
	for k, v := range raw {
		switch strings.ToLower(k) {
		case "operations":
			rawOps, _ = v.([]any)
		case "failonerrors":
			if failOnErrors, err = jsonInt(v, "failOnErrors"); err != nil {
				return nil, err
			}
		}
	}
	if len(rawOps) == 0 {
		return nil, scimErr(typeInvalidSyntax, "A bulk request needs a non-empty Operations list.")
	}
	if len(rawOps) > s.cfg.MaxBulkOperations {
		return nil, &gatehouse.Error{Code: gatehouse.EINVALID, Reason: "tooLarge",
			Message: "A bulk request may carry at most " + itoa(s.cfg.MaxBulkOperations) + " operations."}
	}
	ops := make([]*bulkOp, 0, len(rawOps))
	declared := map[string]bool{}
	for i, r := range rawOps {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, scimErr(typeInvalidSyntax, "Each bulk operation must be an object.")
		}
		op := &bulkOp{index: i}
		for k, v := range m {
			switch strings.ToLower(k) {
			case "method":
				op.method, _ = v.(string)
			case "bulkid":
				op.bulkID, _ = v.(string)
			case "version":
				op.version, _ = v.(string)
			case "path":
				op.path, _ = v.(string)
			case "data":
				op.data = v
			}
		}
		op.method = strings.ToUpper(op.method)
		if op.method == http.MethodPost {
			if op.bulkID == "" {
				return nil, scimErr(typeInvalidValue, "Bulk POST operations need a bulkId.")
			}
			if declared[op.bulkID] {
				return nil, scimErr(typeUniqueness, "bulkId %q is used twice.", op.bulkID)
			}
			declared[op.bulkID] = true
		}
		ops = append(ops, op)
	}

	resolved := map[string]string{} // bulkId → created resource id
	results := make([]any, len(ops))
	errorsSeen := 0
	pending := ops
	for len(pending) > 0 && (failOnErrors <= 0 || errorsSeen < failOnErrors) {
		var waiting []*bulkOp
		progressed := false
		for _, op := range pending {
			if failOnErrors > 0 && errorsSeen >= failOnErrors {
				break
			}
			refs := bulkRefs(op)
			blocked := false
			for _, ref := range refs {
				if _, ok := resolved[ref]; !ok && declared[ref] && !ranAlready(ops, results, ref) {
					blocked = true
				}
			}
			if blocked {
				waiting = append(waiting, op)
				continue
			}
			progressed = true
			res := s.bulkOne(ctx, c, op, resolved, declared)
			if st, _ := res["status"].(string); st >= "400" {
				errorsSeen++
			}
			results[op.index] = res
		}
		if !progressed {
			// Every remaining operation waits on another: a cycle (§3.7.1).
			for _, op := range waiting {
				results[op.index] = bulkError(op, gatehouse.Errorf(gatehouse.ECONFLICT, "Circular bulkId reference."))
				errorsSeen++
			}
			break
		}
		pending = waiting
	}
	out := []any{}
	for _, r := range results {
		if r != nil {
			out = append(out, r)
		}
	}
	return &result{status: http.StatusOK, doc: map[string]any{"schemas": []string{msgBulkResponse}, "Operations": out}}, nil
}

// ranAlready reports whether the POST declaring bulkId already ran (and
// failed, since it is not resolved): referrers then fail, not wait.
func ranAlready(ops []*bulkOp, results []any, bulkID string) bool {
	for _, op := range ops {
		if op.method == http.MethodPost && op.bulkID == bulkID {
			return results[op.index] != nil
		}
	}
	return false
}

// bulkRefs lists the bulkIds an operation refers to.
func bulkRefs(op *bulkOp) []string {
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			if id, ok := strings.CutPrefix(x, "bulkId:"); ok {
				refs = append(refs, id)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(op.data)
	for _, part := range strings.Split(op.path, "/") {
		walk(part)
	}
	return refs
}

// substitute replaces "bulkId:<id>" references by the created ids.
func substitute(v any, resolved map[string]string) (any, error) {
	switch x := v.(type) {
	case string:
		if id, ok := strings.CutPrefix(x, "bulkId:"); ok {
			real, ok := resolved[id]
			if !ok {
				return nil, scimErr(typeInvalidValue, "bulkId %q does not name a resource created in this request.", id)
			}
			return real, nil
		}
		return x, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := substitute(e, resolved)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := substitute(e, resolved)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

func (s *Server) bulkOne(ctx context.Context, c *caller, op *bulkOp, resolved map[string]string, declared map[string]bool) map[string]any {
	path := op.path
	var parts []string
	for _, p := range strings.Split(strings.Trim(path, "/"), "/") {
		r, err := substitute(p, resolved)
		if err != nil {
			return bulkError(op, err)
		}
		parts = append(parts, r.(string))
	}
	path = strings.Join(parts, "/")
	var body []byte
	switch op.method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		data, err := substitute(op.data, resolved)
		if err != nil {
			return bulkError(op, err)
		}
		if body, err = json.Marshal(data); err != nil {
			return bulkError(op, err)
		}
	case http.MethodDelete:
	default:
		return bulkError(op, scimErr(typeInvalidSyntax, "Unknown bulk method %q.", op.method))
	}
	seg := strings.Split(strings.Trim(path, "/"), "/")
	ep := strings.ToLower(seg[0])
	if (ep != "users" && ep != "groups") || (op.method == http.MethodPost) != (len(seg) == 1) || len(seg) > 2 {
		return bulkError(op, scimErr(typeInvalidPath, "Bulk path %q must be /Users or /Groups (POST) or /Users/{id} or /Groups/{id}.", op.path))
	}
	pc := precond{ifMatch: op.version}
	res, err := s.dispatch(ctx, c, op.method, path, nil, body, pc)
	if err != nil {
		return bulkError(op, err)
	}
	out := map[string]any{"method": op.method, "status": itoa(res.status)}
	if op.bulkID != "" {
		out["bulkId"] = op.bulkID
	}
	loc := res.location
	if loc == "" && op.method != http.MethodDelete {
		loc = s.base + "/" + path
	}
	if loc != "" {
		out["location"] = loc
	}
	if res.version > 0 {
		out["version"] = etag(res.version)
	}
	if op.method == http.MethodPost {
		if doc, ok := res.doc.(map[string]any); ok {
			if id, ok := doc["id"].(string); ok {
				resolved[op.bulkID] = id
			}
		}
	}
	return out
}

func bulkError(op *bulkOp, err error) map[string]any {
	status, doc := errorDoc(err)
	out := map[string]any{"method": op.method, "status": itoa(status), "response": doc}
	if op.bulkID != "" {
		out["bulkId"] = op.bulkID
	}
	if op.path != "" && op.method != http.MethodPost {
		out["location"] = op.path
	}
	return out
}
