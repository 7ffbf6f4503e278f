package sqlstore

// QueryUsers and QueryGroups translate a gatehouse.Filter into SQL. Nothing
// of the request reaches the SQL text: attribute names are looked up in the
// fixed column tables below (an unknown name is an error, never a column),
// operators come from a closed switch, and every value is a $n parameter.
// LIKE patterns escape their wildcards. The SQL is the same on both engines:
// case-exact substring tests use replace/substr (SQLite's LIKE ignores
// ASCII case), case-insensitive ones compare lower-cased keys with LIKE.

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-sso/gatehouse"
)

// columnKind says how a domain attribute compares.
type columnKind int

const (
	colText columnKind = iota
	colTime
	colMembership // EXISTS over memberships
)

type column struct {
	kind columnKind
	col  string // the column, qualified by the table alias
	// key is the lower-cased key column for case-insensitive comparisons
	// ("" means lower(col)); fold computes the key of an eq value.
	key  string
	fold func(string) string
	// member is the membership column matched against the value, and
	// owner the one joined to the queried row (colMembership).
	member, owner string
	// unique: no two rows of a tenant share the column's value (its key's,
	// for a keyed column): an eq on it matches at most one row.
	unique bool
}

var userColumnsByAttr = map[string]column{
	gatehouse.UserAttrID:          {col: "id", unique: true},
	gatehouse.UserAttrUsername:    {col: "username", key: "username_key", fold: gatehouse.FoldKey, unique: true},
	gatehouse.UserAttrEmail:       {col: "email", key: "email_key", fold: gatehouse.NormalizeEmail, unique: true},
	gatehouse.UserAttrExternalID:  {col: "external_id", unique: true},
	gatehouse.UserAttrDisplayName: {col: "display_name"},
	gatehouse.UserAttrGivenName:   {col: "given_name"},
	gatehouse.UserAttrFamilyName:  {col: "family_name"},
	gatehouse.UserAttrStatus:      {col: "status"},
	gatehouse.UserAttrSource:      {col: "source"},
	gatehouse.UserAttrCreatedAt:   {kind: colTime, col: "created_at"},
	gatehouse.UserAttrUpdatedAt:   {kind: colTime, col: "updated_at"},
	gatehouse.UserAttrGroupID:     {kind: colMembership, member: "group_id", owner: "user_id"},
}

var groupColumnsByAttr = map[string]column{
	gatehouse.GroupAttrID:         {col: "id", unique: true},
	gatehouse.GroupAttrName:       {col: "name", key: "name_key", fold: gatehouse.FoldKey, unique: true},
	gatehouse.GroupAttrExternalID: {col: "external_id", unique: true},
	gatehouse.GroupAttrSource:     {col: "source"},
	gatehouse.GroupAttrCreatedAt:  {kind: colTime, col: "created_at"},
	gatehouse.GroupAttrUpdatedAt:  {kind: colTime, col: "updated_at"},
	gatehouse.GroupAttrMemberID:   {kind: colMembership, member: "user_id", owner: "group_id"},
}

// Partial unique indexes (users_username_key ... WHERE key <> ”) are used
// by SQLite only when the query repeats the index's WHERE term, so eq on
// these keys adds it.
var partialIndexed = map[string]bool{"username_key": true, "email_key": true, "external_id": true}

// maxFilterNodes bounds the SQL a filter can produce, whatever the caller
// checked before.
const maxFilterNodes = 500

// filterSQL compiles filters into conditions of w.
type filterSQL struct {
	w         *where
	table     string // the queried table or its alias, for membership subqueries
	cols      map[string]column
	managedBy string
	nodes     int
}

func (c *filterSQL) compile(f *gatehouse.Filter) (string, error) {
	c.nodes++
	if c.nodes > maxFilterNodes {
		return "", gatehouse.FieldError("filter", "The filter is too complex.")
	}
	switch f.Op {
	case gatehouse.FilterTrue:
		return "1 = 1", nil
	case gatehouse.FilterFalse:
		return "1 = 0", nil
	case gatehouse.FilterAnd, gatehouse.FilterOr:
		if len(f.Children) == 0 {
			return "", gatehouse.FieldError("filter", "%q needs operands.", f.Op)
		}
		parts := make([]string, len(f.Children))
		for i, ch := range f.Children {
			s, err := c.compile(ch)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return "(" + strings.Join(parts, " "+strings.ToUpper(f.Op)+" ") + ")", nil
	case gatehouse.FilterNot:
		if len(f.Children) != 1 {
			return "", gatehouse.FieldError("filter", "\"not\" takes one operand.")
		}
		s, err := c.compile(f.Children[0])
		if err != nil {
			return "", err
		}
		return "(NOT " + s + ")", nil
	}
	col, ok := c.cols[f.Attr]
	if !ok {
		return "", gatehouse.FieldError("filter", "Filtering on %q is not supported.", f.Attr)
	}
	switch col.kind {
	case colMembership:
		return c.membership(f, col)
	case colTime:
		return c.timeCond(f, col)
	}
	return c.textCond(f, col)
}

func (c *filterSQL) membership(f *gatehouse.Filter, col column) (string, error) {
	sub := "SELECT 1 FROM memberships m WHERE m.tenant_id = " + c.table + ".tenant_id AND m." + col.owner + " = " + c.table + ".id"
	if c.managedBy != "" {
		sub += " AND m.managed_by = " + c.text(c.managedBy)
	}
	switch f.Op {
	case gatehouse.FilterPr:
		return "EXISTS (" + sub + ")", nil
	case gatehouse.FilterEq, gatehouse.FilterNe:
		v, ok := f.Value.(string)
		if !ok {
			return "", gatehouse.FieldError("filter", "%q compares with a string.", f.Attr)
		}
		cond := "EXISTS (" + sub + " AND m." + col.member + " = " + c.text(v) + ")"
		if f.Op == gatehouse.FilterNe {
			cond = "NOT " + cond
		}
		return cond, nil
	}
	return "", gatehouse.FieldError("filter", "%q supports only eq, ne and pr.", f.Attr)
}

var compareSQL = map[string]string{
	gatehouse.FilterEq: "=", gatehouse.FilterNe: "<>",
	gatehouse.FilterGt: ">", gatehouse.FilterGe: ">=", gatehouse.FilterLt: "<", gatehouse.FilterLe: "<=",
}

func (c *filterSQL) timeCond(f *gatehouse.Filter, col column) (string, error) {
	if f.Op == gatehouse.FilterPr {
		return col.col + " <> 0", nil
	}
	op, ok := compareSQL[f.Op]
	if !ok {
		return "", gatehouse.FieldError("filter", "%q is a time; use eq, ne, gt, ge, lt, le or pr.", f.Attr)
	}
	t, ok := f.Value.(time.Time)
	if !ok {
		return "", gatehouse.FieldError("filter", "%q compares with a time.", f.Attr)
	}
	return col.col + " " + op + " " + c.w.arg(ts(normTime(t))), nil
}

func (c *filterSQL) textCond(f *gatehouse.Filter, col column) (string, error) {
	if f.Op == gatehouse.FilterPr {
		return col.col + " <> ''", nil
	}
	v, ok := f.Value.(string)
	if !ok {
		return "", gatehouse.FieldError("filter", "%q compares with a string.", f.Attr)
	}
	if f.CaseExact {
		switch f.Op {
		case gatehouse.FilterCo, gatehouse.FilterSw, gatehouse.FilterEw:
			if v == "" {
				return "1 = 1", nil
			}
		}
		switch f.Op {
		case gatehouse.FilterCo:
			// replace() removes every occurrence: the text changes iff v occurs.
			return "replace(" + col.col + ", " + c.w.arg(v) + ", '') <> " + col.col, nil
		case gatehouse.FilterSw:
			return "substr(" + col.col + ", 1, " + c.w.arg(utf8.RuneCountInString(v)) + ") = " + c.w.arg(v), nil
		case gatehouse.FilterEw:
			n := utf8.RuneCountInString(v)
			return "(length(" + col.col + ") >= " + c.w.arg(n) + " AND substr(" + col.col + ", length(" + col.col + ") - " +
				c.w.arg(n-1) + ") = " + c.w.arg(v) + ")", nil
		}
		op, ok := compareSQL[f.Op]
		if !ok {
			return "", gatehouse.FieldError("filter", "Unknown operator %q.", f.Op)
		}
		if f.Op == gatehouse.FilterEq && v != "" && partialIndexed[col.col] {
			// externalId: its unique index holds only non-empty values.
			return "(" + col.col + " = " + c.text(v) + " AND " + col.col + " <> '')", nil
		}
		return col.col + " " + op + " " + c.text(v), nil
	}
	key := col.key
	if key == "" {
		key = "lower(" + col.col + ")"
	}
	lower := strings.ToLower(v)
	switch f.Op {
	case gatehouse.FilterCo:
		return key + ` LIKE ` + c.text("%"+escapeLike(lower)+"%") + ` ESCAPE '\'`, nil
	case gatehouse.FilterSw:
		return key + ` LIKE ` + c.text(escapeLike(lower)+"%") + ` ESCAPE '\'`, nil
	case gatehouse.FilterEw:
		return key + ` LIKE ` + c.text("%"+escapeLike(lower)) + ` ESCAPE '\'`, nil
	case gatehouse.FilterEq:
		if col.fold != nil {
			k := col.fold(v)
			if k != "" && partialIndexed[col.key] {
				return "(" + key + " = " + c.text(k) + " AND " + key + " <> '')", nil
			}
			return key + " = " + c.text(k), nil
		}
	}
	op, ok := compareSQL[f.Op]
	if !ok {
		return "", gatehouse.FieldError("filter", "Unknown operator %q.", f.Op)
	}
	return key + " " + op + " " + c.text(lower), nil
}

// text binds a string that is compared with a column, as CAST($n AS TEXT).
// The CAST hides the value from SQLite's planner: a bare $n compared with
// an indexed column that has STAT4 samples (ANALYZE and PRAGMA optimize
// write them), or used as a LIKE pattern on a text column, makes SQLite
// plan the statement again whenever the value changes
// (sqlite3VdbeReprepareOnBind), i.e. on every request. That re-planning
// was three quarters of a userName eq lookup over an analyzed tenant and a
// quarter of Gatehouse's CPU per SCIM filter request. The plans need no
// value: the text keys looked up are unique per tenant (userName, email,
// externalId, id) and the LIKE patterns cannot use the BINARY key indexes
// anyway. The meaning is unchanged on both engines: the value is text and
// so is the column.
func (c *filterSQL) text(v string) string { return "CAST(" + c.w.arg(v) + " AS TEXT)" }

// orderBy returns the ORDER BY clause of q; ties and the default go by id,
// which is creation order.
func orderBy(q gatehouse.Query, cols map[string]column) (string, error) {
	dir := ""
	if q.Descending {
		dir = " DESC"
	}
	if q.SortBy == "" || q.SortBy == "id" {
		return " ORDER BY id" + dir, nil
	}
	col, ok := cols[q.SortBy]
	if !ok || col.kind == colMembership {
		return "", gatehouse.FieldError("sortBy", "Sorting by %q is not supported.", q.SortBy)
	}
	expr := col.col
	if col.kind == colText {
		expr = col.key
		if expr == "" {
			expr = "lower(" + col.col + ")"
		}
	}
	return " ORDER BY " + expr + dir + ", id" + dir, nil
}

// compileQuery builds the WHERE clause of q over table, on top of base.
func compileQuery(w *where, table string, cols map[string]column, q gatehouse.Query) (string, error) {
	if q.Filter != nil {
		c := &filterSQL{w: w, table: table, cols: cols, managedBy: q.ManagedBy}
		cond, err := c.compile(q.Filter)
		if err != nil {
			return "", err
		}
		w.conds = append(w.conds, cond)
	}
	order, err := orderBy(q, cols)
	if err == nil && q.Filter != nil && atMostOne(q.Filter, cols) {
		// One row at most has no order to keep, and then PostgreSQL has
		// none to prefer: planned generically on a table not yet analyzed
		// (an IdP's first SCIM sync, which looks each userName up before
		// creating it), "ORDER BY id LIMIT" made it walk the tenant's rows
		// in id order and filter the key instead of probing the key's
		// index (TestPostgresGenericPlansUseKeys).
		order = ""
	}
	return order, err
}

// atMostOne reports whether f matches at most one row of a tenant: an eq
// on a unique column with a value that is not empty (many rows have no
// externalId or userName), alone or in an and.
func atMostOne(f *gatehouse.Filter, cols map[string]column) bool {
	switch f.Op {
	case gatehouse.FilterEq:
		col := cols[f.Attr]
		v, ok := f.Value.(string)
		if ok && col.fold != nil && !f.CaseExact {
			v = col.fold(v)
		}
		return col.unique && ok && v != ""
	case gatehouse.FilterAnd:
		return slices.ContainsFunc(f.Children, func(c *gatehouse.Filter) bool { return atMostOne(c, cols) })
	}
	return false
}

// pageClause returns LIMIT/OFFSET for q, with its arguments in w.
func pageClause(w *where, q gatehouse.Query) (clause string, limit, offset int) {
	limit = q.Limit
	if limit > 10*maxLimit {
		limit = 10 * maxLimit
	}
	offset = q.Offset
	if offset < 0 {
		offset = 0
	}
	return " LIMIT " + w.arg(limit) + " OFFSET " + w.arg(offset), limit, offset
}

// querySpec describes one queryable table for queryPage.
type querySpec[T any] struct {
	from    string // table, with its alias if any
	alias   string // name membership subqueries use for the row
	columns string
	cols    map[string]column
	scan    func(scanner) (T, error)
	base    []string // conditions besides the tenant
}

// pageSQL is the SQL of one page of a query and of its total.
type pageSQL struct {
	page, count   string
	args          []any // the page's; the count's are args[:countArgs]
	countArgs     int
	limit, offset int
}

// conclusive reports whether n rows on the page tell the total without
// counting: some rows but fewer than the limit, or none at offset 0, mean
// the page reached the end of the result, so the total is offset + n.
func (p *pageSQL) conclusive(n int) bool {
	return p.limit > 0 && n < p.limit && (n > 0 || p.offset == 0)
}

// buildPage compiles q over spec in the tenant.
func buildPage[T any](tenantID string, q gatehouse.Query, spec querySpec[T]) (*pageSQL, error) {
	w := &where{}
	w.add(`tenant_id = CAST(? AS TEXT)`, tenantID) // CAST: see filterSQL.text
	for _, c := range spec.base {
		w.add(c)
	}
	order, err := compileQuery(w, spec.alias, spec.cols, q)
	if err != nil {
		return nil, err
	}
	p := &pageSQL{count: `SELECT COUNT(*) FROM ` + spec.from + w.String(), countArgs: len(w.args)}
	// The page's LIMIT/OFFSET arguments follow the condition arguments,
	// which the count shares.
	var clause string
	clause, p.limit, p.offset = pageClause(w, q)
	p.page = `SELECT ` + spec.columns + ` FROM ` + spec.from + w.String() + order + clause
	p.args = w.args
	return p, nil
}

// queryPage reads one page of the rows of spec matching q in the tenant
// and their total. The page query runs first: when it is conclusive (see
// pageSQL.conclusive) the SELECT COUNT(*) (about half the store's work for
// a SCIM userName eq lookup) is skipped. Both queries run in the caller's
// transaction, so the total agrees with the page either way. The count
// still runs for a full page, for an empty page past offset 0 (the total
// may be below the offset), and when no rows are asked for.
func queryPage[T any](ctx context.Context, t *tx, tenantID string, q gatehouse.Query, spec querySpec[T]) ([]T, int, error) {
	p, err := buildPage(tenantID, q, spec)
	if err != nil {
		return nil, 0, err
	}
	list := []T{}
	if q.Limit > 0 {
		err = t.each(ctx, func(sc scanner) error {
			v, err := spec.scan(sc)
			if err == nil {
				list = append(list, v)
			}
			return err
		}, p.page, p.args...)
		if err != nil {
			return nil, 0, err
		}
		if p.conclusive(len(list)) {
			return list, p.offset + len(list), nil
		}
	}
	var total int
	if err := t.get(ctx, "", func(sc scanner) error { return sc.Scan(&total) }, p.count, p.args[:p.countArgs]...); err != nil {
		return nil, 0, err
	}
	return list, total, nil
}

func (t *tx) QueryUsers(ctx context.Context, tenantID string, q gatehouse.Query) ([]*gatehouse.User, int, error) {
	list, total, err := queryPage(ctx, t, tenantID, q, querySpec[*gatehouse.User]{
		from: "users", alias: "users", columns: userColumns, cols: userColumnsByAttr, scan: scanUser,
		base: []string{`deleted_at IS NULL`},
	})
	if err != nil {
		return nil, 0, err
	}
	if err := t.fillUserGroups(ctx, tenantID, list...); err != nil {
		return nil, 0, err
	}
	return list, total, nil
}

func (t *tx) QueryGroups(ctx context.Context, tenantID string, q gatehouse.Query) ([]*gatehouse.Group, int, error) {
	return queryPage(ctx, t, tenantID, q, groupSpec)
}

// groupSpec is QueryGroups' table.
var groupSpec = querySpec[*gatehouse.Group]{
	from: "groups g", alias: "g", columns: groupColumns, cols: groupColumnsByAttr, scan: scanGroup,
}
