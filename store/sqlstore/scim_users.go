package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

// SCIM's user list in one statement (PERF).
//
// GET /Users?filter=userName eq "..." is what Okta and Entra send before
// every create and on every sync. Through QueryUsers it was a read
// transaction (BEGIN, COMMIT: ~10 % of the request's CPU on SQLite), the
// page query, fillUserGroups (group names SCIM never shows) and, per user,
// ListUserMemberships: four statements for one user. QuerySCIMUsers reads
// the page and each user's SCIM-managed group ids in one statement, on the
// reader pool, outside a transaction (a single statement reads one
// consistent snapshot on both engines). When that page cannot tell the
// total by itself (pageSQL.conclusive: a full first page) or starts past
// offset 0, the page and the count run in one read transaction instead, as
// QueryUsers does, so the total still agrees with the page.

// scimGroupsOf lists the SCIM-managed group ids of the user row alias in
// one text, each as "<octet length>:<id>" in group id order: unambiguous
// whatever an id holds. It uses the memberships_user index.
func scimGroupsOf(alias string) string {
	return `(SELECT string_agg(octet_length(m.group_id) || ':' || m.group_id, '' ORDER BY m.group_id)
	FROM memberships m WHERE m.tenant_id = ` + alias + `.tenant_id AND m.user_id = ` + alias + `.id AND m.managed_by = '` + gatehouse.ManagedBySCIM + `')`
}

// scimUser is a user with the ids of its SCIM-managed groups.
type scimUser struct {
	user   *gatehouse.User
	groups []string
}

// QuerySCIMUsers is QueryUsers (with Query.ManagedBy for membership
// filters) for SCIM: Groups of each user is left nil; with groups, the
// second result holds for each user the ids of the groups whose
// membership of it SCIM manages (ordered by id, as ListUserMemberships),
// else it is nil.
func (s *Store) QuerySCIMUsers(ctx context.Context, tenantID string, q gatehouse.Query, groups bool) ([]*gatehouse.User, [][]string, int, error) {
	spec := scimUserSpec(groups)
	var list []scimUser
	var total int
	done := false
	if q.Limit > 0 && q.Offset <= 0 {
		query, p, err := scimPageSQL(tenantID, q, spec, groups)
		if err != nil {
			return nil, nil, 0, err
		}
		if list, err = readerAll(ctx, s, spec.scan, query, p.args...); err != nil {
			return nil, nil, 0, err
		}
		total, done = len(list), p.conclusive(len(list))
	}
	if !done {
		err := s.View(ctx, func(gtx gatehouse.Tx) (err error) {
			list, total, err = queryPage(ctx, gtx.(*tx), tenantID, q, spec)
			return err
		})
		if err != nil {
			return nil, nil, 0, err
		}
	}
	users := make([]*gatehouse.User, len(list))
	var ids [][]string
	if groups {
		ids = make([][]string, len(list))
	}
	for i, su := range list {
		users[i] = su.user
		if groups {
			ids[i] = su.groups
		}
	}
	return users, ids, total, nil
}

// scimUserSpec is QuerySCIMUsers' table: live users, with the ids of
// their SCIM-managed groups packed in one column when groups is set.
func scimUserSpec(groups bool) querySpec[scimUser] {
	col := "NULL"
	if groups {
		col = scimGroupsOf("users")
	}
	return querySpec[scimUser]{
		from: "users", alias: "users", columns: userColumns + ", " + col, cols: userColumnsByAttr, scan: scanSCIMUser,
		base: []string{`deleted_at IS NULL`},
	}
}

// scimPageSQL is the one-statement page of QuerySCIMUsers. Ordered by id
// (every lookup), the groups column is computed over the limited page in an
// outer query: with it inside, PostgreSQL's generic plan of the prepared
// statement costs more than a custom one (it adds the subquery before the
// LIMIT), so PostgreSQL planned it afresh on every execution — 0.4 ms, more
// than the query, and more PostgreSQL CPU per request than before this
// path. Wrapped, the generic plan is chosen after five executions, as for
// QueryUsers. Other orders keep the column inside (the outer query would
// need the sort key).
func scimPageSQL(tenantID string, q gatehouse.Query, spec querySpec[scimUser], groups bool) (string, *pageSQL, error) {
	byID := q.SortBy == "" || q.SortBy == "id"
	if groups && byID {
		spec.columns = userColumns
	}
	p, err := buildPage(tenantID, q, spec)
	if err != nil {
		return "", nil, err
	}
	if !groups || !byID {
		return p.page, p, nil
	}
	dir := ""
	if q.Descending {
		dir = " DESC"
	}
	return `SELECT p.*, ` + scimGroupsOf("p") + ` FROM (` + p.page + `) p ORDER BY p.id` + dir, p, nil
}

// scanSCIMUser reads userColumns and the groups column.
func scanSCIMUser(sc scanner) (scimUser, error) {
	var packed sql.NullString
	u, err := scanUser(withExtra{sc, &packed})
	if err != nil {
		return scimUser{}, err
	}
	u.Groups = nil
	ids, err := unpackIDs(packed.String)
	return scimUser{user: u, groups: ids}, err
}

// withExtra scans one more column after the scanner's caller's.
type withExtra struct {
	sc    scanner
	extra any
}

func (w withExtra) Scan(dest ...any) error { return w.sc.Scan(append(dest, w.extra)...) }

// unpackIDs splits a scimGroupsColumn value; "" (or NULL) is no ids.
func unpackIDs(packed string) ([]string, error) {
	ids := []string{}
	for packed != "" {
		n, rest, ok := strings.Cut(packed, ":")
		size, err := strconv.Atoi(n)
		if !ok || err != nil || size < 0 || size > len(rest) || strconv.Itoa(size) != n {
			return nil, errors.New("sqlstore: malformed group id list")
		}
		ids = append(ids, rest[:size])
		packed = rest[size:]
	}
	return ids, nil
}

// readerAll runs one query on the reader pool, outside a transaction, and
// decodes every row with scan.
func readerAll[T any](ctx context.Context, s *Store, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.d.mapErr(err)
	}
	defer rows.Close()
	var list []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.d.mapErr(err)
		}
		list = append(list, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.mapErr(err)
	}
	return list, s.d.mapErr(rows.Close())
}
