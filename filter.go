package gatehouse

// Filter is a storage-neutral query predicate over domain attribute names,
// built by protocol code (SCIM filters) and translated by the store into
// parameterized SQL. Attribute names come from a fixed list (the User*/
// Group* constants below); a store refuses any other name, so request text
// never reaches SQL.
type Filter struct {
	// Op is one of the Filter* operators.
	Op string
	// Attr is a domain attribute name (comparisons only).
	Attr string
	// Value is a string, int64, float64, bool or time.Time.
	Value any
	// CaseExact compares strings as sent; otherwise case-insensitively.
	CaseExact bool
	// Children of and/or (two or more) and not (one).
	Children []*Filter
}

// Filter operators. The comparison names follow SCIM (RFC 7644 §3.4.2.2).
const (
	FilterAnd = "and"
	FilterOr  = "or"
	FilterNot = "not"
	FilterEq  = "eq"
	FilterNe  = "ne"
	FilterCo  = "co" // contains
	FilterSw  = "sw" // starts with
	FilterEw  = "ew" // ends with
	FilterPr  = "pr" // present: not null and not empty
	FilterGt  = "gt"
	FilterGe  = "ge"
	FilterLt  = "lt"
	FilterLe  = "le"
	// FilterTrue and FilterFalse are constants, for predicates the caller
	// could decide without the database.
	FilterTrue  = "true"
	FilterFalse = "false"
)

// Filterable user attributes.
const (
	UserAttrID          = "id"
	UserAttrUsername    = "username"
	UserAttrEmail       = "email"
	UserAttrExternalID  = "external_id"
	UserAttrDisplayName = "display_name"
	UserAttrGivenName   = "given_name"
	UserAttrFamilyName  = "family_name"
	UserAttrStatus      = "status"
	UserAttrSource      = "source"
	UserAttrCreatedAt   = "created_at"
	UserAttrUpdatedAt   = "updated_at"
	// UserAttrGroupID matches users with a membership in the group (Value),
	// counting only memberships of Query.ManagedBy when it is set.
	UserAttrGroupID = "group_id"
)

// Filterable group attributes.
const (
	GroupAttrID         = "id"
	GroupAttrName       = "name"
	GroupAttrExternalID = "external_id"
	GroupAttrSource     = "source"
	GroupAttrCreatedAt  = "created_at"
	GroupAttrUpdatedAt  = "updated_at"
	// GroupAttrMemberID matches groups having the user (Value) as member,
	// counting only memberships of Query.ManagedBy when it is set.
	GroupAttrMemberID = "member_id"
)

// Query asks for a filtered, sorted page of users or groups. Tombstoned
// users are never returned.
type Query struct {
	Filter *Filter // nil: everything
	// SortBy is a filterable attribute name; "" sorts by creation order.
	SortBy     string
	Descending bool
	Offset     int // rows skipped
	Limit      int // rows returned; 0 returns none (only the total)
	// ManagedBy restricts membership predicates to one manager ("" = any).
	ManagedBy string
}

// FilterAll joins filters with "and", dropping nils; nil when none remain.
func FilterAll(fs ...*Filter) *Filter {
	var kept []*Filter
	for _, f := range fs {
		if f != nil {
			kept = append(kept, f)
		}
	}
	switch len(kept) {
	case 0:
		return nil
	case 1:
		return kept[0]
	}
	return &Filter{Op: FilterAnd, Children: kept}
}
