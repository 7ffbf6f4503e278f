package scim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/scim/filter"
)

// listParams is a query (RFC 7644 §3.4.2) from the URL or a SearchRequest.
type listParams struct {
	filter     string
	sortBy     string
	descending bool
	startIndex int // 1-based
	count      int
	countSet   bool
	proj       projection
}

const defaultCount = 100

func (s *Server) listParamsFromQuery(q url.Values) (listParams, error) {
	lp := listParams{filter: q.Get("filter"), sortBy: q.Get("sortBy"), startIndex: 1}
	var err error
	if v := q.Get("sortOrder"); v != "" {
		if lp.descending, err = parseSortOrder(v); err != nil {
			return lp, err
		}
	}
	if v := q.Get("startIndex"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return lp, scimErr(typeInvalidValue, "startIndex must be an integer.")
		}
		lp.startIndex = n
	}
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return lp, scimErr(typeInvalidValue, "count must be an integer.")
		}
		lp.count, lp.countSet = n, true
	}
	lp.proj, err = projectionFromQuery(q)
	return lp, err
}

func parseSortOrder(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "ascending":
		return false, nil
	case "descending":
		return true, nil
	}
	return false, scimErr(typeInvalidValue, "sortOrder must be ascending or descending.")
}

// listParamsFromSearch reads a SearchRequest body (RFC 7644 §3.4.3).
func (s *Server) listParamsFromSearch(body []byte) (listParams, error) {
	lp := listParams{startIndex: 1}
	raw, err := s.decode(body)
	if err != nil {
		return lp, err
	}
	var attrs, excluded []string
	for k, v := range raw {
		switch strings.ToLower(k) {
		case "filter":
			lp.filter, _ = v.(string)
		case "sortby":
			lp.sortBy, _ = v.(string)
		case "sortorder":
			o, _ := v.(string)
			if lp.descending, err = parseSortOrder(o); err != nil {
				return lp, err
			}
		case "startindex":
			if lp.startIndex, err = jsonInt(v, "startIndex"); err != nil {
				return lp, err
			}
		case "count":
			if lp.count, err = jsonInt(v, "count"); err != nil {
				return lp, err
			}
			lp.countSet = true
		case "attributes":
			attrs = stringList(v)
		case "excludedattributes":
			excluded = stringList(v)
		}
	}
	lp.proj, err = newProjection(attrs, excluded)
	return lp, err
}

func jsonInt(v any, name string) (int, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, scimErr(typeInvalidValue, "%s must be an integer.", name)
	}
	i, err := n.Int64()
	if err != nil || i > 1<<31 || i < -(1<<31) {
		return 0, scimErr(typeInvalidValue, "%s must be an integer.", name)
	}
	return int(i), nil
}

func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// page turns startIndex/count into offset/limit: startIndex below 1 is 1,
// a negative count is 0, and count is capped by MaxResults (RFC 7644
// §3.4.2.4).
func (s *Server) page(lp listParams) (offset, limit int) {
	offset = lp.startIndex - 1
	if offset < 0 {
		offset = 0
	}
	limit = lp.count
	switch {
	case !lp.countSet:
		limit = defaultCount
	case limit < 0:
		limit = 0
	}
	if limit > s.cfg.MaxResults {
		limit = s.cfg.MaxResults
	}
	return offset, limit
}

// domainQuery builds the store query of lp for one resource type. unknown
// attributes make the filter false instead of failing when lenient (the
// root search runs one filter over every type).
func (s *Server) domainQuery(rt *resourceType, lp listParams, lenient bool) (gatehouse.Query, error) {
	q := gatehouse.Query{ManagedBy: gatehouse.ManagedBySCIM, Descending: lp.descending}
	q.Offset, q.Limit = s.page(lp)
	if strings.TrimSpace(lp.filter) != "" {
		e, err := filter.Parse(lp.filter, s.limits)
		if err != nil {
			return q, scimErr(typeInvalidFilter, "Invalid filter: %s.", errText(err))
		}
		t := translator{rt: rt, lenient: lenient}
		if q.Filter, err = t.translate(e, nil); err != nil {
			return q, err
		}
	}
	if lp.sortBy != "" {
		p, err := filter.ParseAttrPath(lp.sortBy)
		if err != nil {
			return q, scimErr(typeInvalidValue, "Invalid sortBy %q.", lp.sortBy)
		}
		fa, ok := lookupAttr(rt, p)
		if !ok || (fa.kind != kText && fa.kind != kTime) {
			return q, scimErr(typeInvalidValue, "Sorting by %q is not supported.", lp.sortBy)
		}
		q.SortBy = fa.domain
	}
	return q, nil
}

// filterKind says how a SCIM attribute maps onto the domain.
type filterKind int

const (
	kText filterKind = iota
	kTime
	kActive     // active ↔ status
	kConst      // a value every resource of the type has (emails.type "work")
	kMembership // groups / members
)

type filterAttr struct {
	kind      filterKind
	domain    string
	caseExact bool
	// constVal is the value of a kConst attribute; presentIf is the domain
	// attribute that must be present for it to exist at all ("" = always).
	constVal  any
	presentIf string
}

// The allow-list of filterable attributes, keyed by lower-case
// "attr" or "attr.sub". Case sensitivity follows RFC 7643 §4: userName,
// emails and displayName compare case-insensitively; id and externalId
// are caseExact.
var userFilterAttrs = map[string]filterAttr{
	"id":                {kind: kText, domain: gatehouse.UserAttrID, caseExact: true},
	"externalid":        {kind: kText, domain: gatehouse.UserAttrExternalID, caseExact: true},
	"username":          {kind: kText, domain: gatehouse.UserAttrUsername},
	"displayname":       {kind: kText, domain: gatehouse.UserAttrDisplayName},
	"name.givenname":    {kind: kText, domain: gatehouse.UserAttrGivenName},
	"name.familyname":   {kind: kText, domain: gatehouse.UserAttrFamilyName},
	"emails":            {kind: kText, domain: gatehouse.UserAttrEmail},
	"emails.value":      {kind: kText, domain: gatehouse.UserAttrEmail},
	"emails.type":       {kind: kConst, constVal: "work", presentIf: gatehouse.UserAttrEmail},
	"emails.primary":    {kind: kConst, constVal: true, presentIf: gatehouse.UserAttrEmail},
	"active":            {kind: kActive, domain: gatehouse.UserAttrStatus},
	"meta.created":      {kind: kTime, domain: gatehouse.UserAttrCreatedAt},
	"meta.lastmodified": {kind: kTime, domain: gatehouse.UserAttrUpdatedAt},
	"meta.resourcetype": {kind: kConst, constVal: "User"},
	"groups":            {kind: kMembership, domain: gatehouse.UserAttrGroupID},
	"groups.value":      {kind: kMembership, domain: gatehouse.UserAttrGroupID},
}

var groupFilterAttrs = map[string]filterAttr{
	"id":                {kind: kText, domain: gatehouse.GroupAttrID, caseExact: true},
	"externalid":        {kind: kText, domain: gatehouse.GroupAttrExternalID, caseExact: true},
	"displayname":       {kind: kText, domain: gatehouse.GroupAttrName},
	"meta.created":      {kind: kTime, domain: gatehouse.GroupAttrCreatedAt},
	"meta.lastmodified": {kind: kTime, domain: gatehouse.GroupAttrUpdatedAt},
	"meta.resourcetype": {kind: kConst, constVal: "Group"},
	"members":           {kind: kMembership, domain: gatehouse.GroupAttrMemberID},
	"members.value":     {kind: kMembership, domain: gatehouse.GroupAttrMemberID},
	"members.type":      {kind: kConst, constVal: "User"},
}

func lookupAttr(rt *resourceType, p filter.Path) (filterAttr, bool) {
	if p.URI != "" && !strings.EqualFold(p.URI, rt.Schema.ID) {
		return filterAttr{}, false
	}
	key := strings.ToLower(p.Attr)
	if p.Sub != "" {
		key += "." + strings.ToLower(p.Sub)
	}
	table := userFilterAttrs
	if rt == groupType {
		table = groupFilterAttrs
	}
	fa, ok := table[key]
	return fa, ok
}

type translator struct {
	rt      *resourceType
	lenient bool
}

var fFalse = &gatehouse.Filter{Op: gatehouse.FilterFalse}
var fTrue = &gatehouse.Filter{Op: gatehouse.FilterTrue}

// translate maps a SCIM filter onto the domain filter; parent is the
// multi-valued attribute of an enclosing value filter.
func (t translator) translate(e *filter.Expr, parent *filter.Path) (*gatehouse.Filter, error) {
	switch e.Op {
	case filter.And, filter.Or, filter.Not:
		f := &gatehouse.Filter{Op: e.Op}
		for _, c := range e.Children {
			cf, err := t.translate(c, parent)
			if err != nil {
				return nil, err
			}
			f.Children = append(f.Children, cf)
		}
		return f, nil
	case filter.ValuePath:
		// Our multi-valued attributes hold one value per resource as the
		// database sees them (the email; one membership per row), so
		// attr[a and b] is (attr.a and attr.b).
		p := e.Path
		return t.translate(e.Children[0], &p)
	}
	p := e.Path
	if parent != nil {
		if p.URI != "" || p.Sub != "" {
			return nil, scimErr(typeInvalidFilter, "%q is not a sub-attribute of %s.", p.String(), parent.Attr)
		}
		p = filter.Path{URI: parent.URI, Attr: parent.Attr, Sub: p.Attr}
	}
	fa, ok := lookupAttr(t.rt, p)
	if !ok {
		if t.lenient {
			return fFalse, nil
		}
		return nil, scimErr(typeInvalidFilter, "Filtering on %q is not supported.", p.String())
	}
	return fa.compare(e.Op, e.Value, p.String())
}

func (fa filterAttr) compare(op string, value any, name string) (*gatehouse.Filter, error) {
	switch fa.kind {
	case kConst:
		ok := op == filter.Pr || compareValues(op, fa.constVal, constValue(fa.constVal, value), false)
		if !ok {
			return fFalse, nil
		}
		if fa.presentIf != "" {
			return &gatehouse.Filter{Op: gatehouse.FilterPr, Attr: fa.presentIf}, nil
		}
		return fTrue, nil
	case kActive:
		if op == filter.Pr {
			return fTrue, nil
		}
		b, err := canonScalar(&attrDef{Name: name, Type: tBoolean}, value)
		if err != nil || b == nil || (op != filter.Eq && op != filter.Ne) {
			return nil, scimErr(typeInvalidFilter, "active compares with eq or ne and true or false.")
		}
		// active eq true ⇔ status = active; anything else is inactive.
		if (op == filter.Eq) == b.(bool) {
			return &gatehouse.Filter{Op: gatehouse.FilterEq, Attr: fa.domain, Value: gatehouse.StatusActive, CaseExact: true}, nil
		}
		return &gatehouse.Filter{Op: gatehouse.FilterNe, Attr: fa.domain, Value: gatehouse.StatusActive, CaseExact: true}, nil
	case kMembership:
		if op == filter.Pr {
			return &gatehouse.Filter{Op: gatehouse.FilterPr, Attr: fa.domain}, nil
		}
		v, ok := value.(string)
		if !ok || (op != filter.Eq && op != filter.Ne) {
			return nil, scimErr(typeInvalidFilter, "%s compares with eq or ne and an id.", name)
		}
		return &gatehouse.Filter{Op: op, Attr: fa.domain, Value: v, CaseExact: true}, nil
	}
	if op == filter.Pr {
		return &gatehouse.Filter{Op: gatehouse.FilterPr, Attr: fa.domain}, nil
	}
	if value == nil {
		// "attr eq null" asks for absence (RFC 7644 §3.4.2.2).
		pr := &gatehouse.Filter{Op: gatehouse.FilterPr, Attr: fa.domain}
		switch op {
		case filter.Eq:
			return &gatehouse.Filter{Op: gatehouse.FilterNot, Children: []*gatehouse.Filter{pr}}, nil
		case filter.Ne:
			return pr, nil
		}
		return nil, scimErr(typeInvalidFilter, "null compares only with eq or ne.")
	}
	s, ok := value.(string)
	if !ok {
		return nil, scimErr(typeInvalidFilter, "%s compares with a string.", name)
	}
	if fa.kind == kTime {
		if op == filter.Co || op == filter.Sw || op == filter.Ew {
			return nil, scimErr(typeInvalidFilter, "%s is a dateTime; use eq, ne, gt, ge, lt or le.", name)
		}
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, scimErr(typeInvalidFilter, "%s compares with an RFC 3339 dateTime.", name)
		}
		return &gatehouse.Filter{Op: op, Attr: fa.domain, Value: tm}, nil
	}
	return &gatehouse.Filter{Op: op, Attr: fa.domain, Value: s, CaseExact: fa.caseExact}, nil
}

func constValue(c, v any) any {
	if _, ok := c.(bool); ok {
		if s, ok := v.(string); ok {
			return strings.EqualFold(s, "true")
		}
	}
	return v
}

func (s *Server) list(ctx context.Context, c *caller, rt *resourceType, lp listParams) (*result, error) {
	q, err := s.domainQuery(rt, lp, false)
	if err != nil {
		return nil, err
	}
	var resources []any
	var total int
	if fast, ok := gatehouse.StoreAs[scimUserQuerier](s.store); ok && rt == userType {
		resources, total, err = s.queryUsersFast(ctx, fast, c, q, lp.proj)
	} else {
		err = s.store.View(ctx, func(tx gatehouse.Tx) error {
			resources, total, err = s.query(ctx, tx, c, rt, q, lp.proj)
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	return s.listResponse(resources, total, q.Offset), nil
}

// scimUserQuerier is the store's one-statement user list for SCIM
// (sqlstore.QuerySCIMUsers): the users of q, and with groups the ids of
// the groups whose membership of each user SCIM manages, by group id.
type scimUserQuerier interface {
	QuerySCIMUsers(ctx context.Context, tenantID string, q gatehouse.Query, groups bool) ([]*gatehouse.User, [][]string, int, error)
}

// queryUsersFast is query for users through scimUserQuerier.
func (s *Server) queryUsersFast(ctx context.Context, fast scimUserQuerier, c *caller, q gatehouse.Query, proj projection) ([]any, int, error) {
	wantGroups := proj.wants(userType, "groups")
	users, groupIDs, total, err := fast.QuerySCIMUsers(ctx, c.tenantID, q, wantGroups)
	if err != nil {
		return nil, 0, err
	}
	out := make([]any, 0, len(users))
	for i, u := range users {
		var groups []*gatehouse.Membership
		if wantGroups {
			groups = make([]*gatehouse.Membership, len(groupIDs[i]))
			for j, id := range groupIDs[i] {
				groups[j] = &gatehouse.Membership{TenantID: c.tenantID, GroupID: id, UserID: u.ID, ManagedBy: gatehouse.ManagedBySCIM}
			}
		}
		out = append(out, proj.apply(userType, s.userDoc(u, groups)))
	}
	return out, total, nil
}

// query runs q for one type and renders the page.
func (s *Server) query(ctx context.Context, tx gatehouse.Tx, c *caller, rt *resourceType, q gatehouse.Query, proj projection) ([]any, int, error) {
	out := []any{}
	if rt == userType {
		users, total, err := tx.QueryUsers(ctx, c.tenantID, q)
		if err != nil {
			return nil, 0, err
		}
		for _, u := range users {
			var groups []*gatehouse.Membership
			if proj.wants(userType, "groups") {
				if groups, err = scimMemberships(ctx, tx, c.tenantID, u.ID); err != nil {
					return nil, 0, err
				}
			}
			out = append(out, proj.apply(userType, s.userDoc(u, groups)))
		}
		return out, total, nil
	}
	groups, total, err := tx.QueryGroups(ctx, c.tenantID, q)
	if err != nil {
		return nil, 0, err
	}
	for _, g := range groups {
		var members []string
		if proj.wants(groupType, "members") {
			if members, err = scimMembers(ctx, tx, c.tenantID, g.ID); err != nil {
				return nil, 0, err
			}
		}
		out = append(out, proj.apply(groupType, s.groupDoc(g, members)))
	}
	return out, total, nil
}

func (s *Server) listResponse(resources []any, total, offset int) *result {
	return &result{status: http.StatusOK, doc: map[string]any{
		"schemas":      []string{msgListResponse},
		"totalResults": total,
		"startIndex":   offset + 1,
		"itemsPerPage": len(resources),
		"Resources":    resources,
	}}
}

// searchPost answers POST /.search and POST /{type}/.search. The root
// search (rt nil) runs over users then groups as one list.
func (s *Server) searchPost(ctx context.Context, c *caller, rt *resourceType, body []byte) (*result, error) {
	lp, err := s.listParamsFromSearch(body)
	if err != nil {
		return nil, err
	}
	if rt != nil {
		return s.list(ctx, c, rt, lp)
	}
	uq, err := s.domainQuery(userType, lp, true)
	if err != nil {
		return nil, err
	}
	gq, err := s.domainQuery(groupType, lp, true)
	if err != nil {
		return nil, err
	}
	if lp.sortBy != "" {
		return nil, scimErr(typeInvalidValue, "sortBy is not supported on a search across resource types.")
	}
	var resources []any
	var total int
	err = s.store.View(ctx, func(tx gatehouse.Tx) error {
		// Count users first to split the page between the two types.
		count := uq
		count.Limit = 0
		_, nUsers, err := tx.QueryUsers(ctx, c.tenantID, count)
		if err != nil {
			return err
		}
		users, _, err := s.query(ctx, tx, c, userType, uq, lp.proj)
		if err != nil {
			return err
		}
		gq.Offset = max(0, uq.Offset-nUsers)
		gq.Limit = uq.Limit - len(users)
		groups, nGroups, err := s.query(ctx, tx, c, groupType, gq, lp.proj)
		if err != nil {
			return err
		}
		resources, total = append(users, groups...), nUsers+nGroups
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.listResponse(resources, total, uq.Offset), nil
}
