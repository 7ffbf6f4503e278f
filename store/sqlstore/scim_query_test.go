package sqlstore

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

func eq(attr string, v any) *gatehouse.Filter {
	return &gatehouse.Filter{Op: gatehouse.FilterEq, Attr: attr, Value: v}
}

func TestFilterSQL(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		f       *gatehouse.Filter
		managed string
		sql     string
		args    []any
	}{
		{"username eq folds and repeats the partial index term", eq("username", " Ana "),
			"", `(username_key = CAST($1 AS TEXT) AND username_key <> '')`, []any{"ana"}},
		{"email eq", eq("email", "Ana@Acme.com"), "", `(email_key = CAST($1 AS TEXT) AND email_key <> '')`, []any{"ana@acme.com"}},
		{"co escapes LIKE wildcards", &gatehouse.Filter{Op: "co", Attr: "username", Value: `50%_off\`},
			"", `username_key LIKE CAST($1 AS TEXT) ESCAPE '\'`, []any{`%50\%\_off\\%`}},
		{"sw", &gatehouse.Filter{Op: "sw", Attr: "display_name", Value: "Ab"}, "", `lower(display_name) LIKE CAST($1 AS TEXT) ESCAPE '\'`, []any{"ab%"}},
		{"ew", &gatehouse.Filter{Op: "ew", Attr: "email", Value: "@X.io"}, "", `email_key LIKE CAST($1 AS TEXT) ESCAPE '\'`, []any{"%@x.io"}},
		{"gt case-insensitive", &gatehouse.Filter{Op: "gt", Attr: "family_name", Value: "M"}, "", `lower(family_name) > CAST($1 AS TEXT)`, []any{"m"}},
		{"exact eq", &gatehouse.Filter{Op: "eq", Attr: "external_id", Value: "X'1", CaseExact: true}, "", `(external_id = CAST($1 AS TEXT) AND external_id <> '')`, []any{"X'1"}},
		{"exact eq empty", &gatehouse.Filter{Op: "eq", Attr: "external_id", Value: "", CaseExact: true}, "", `external_id = CAST($1 AS TEXT)`, []any{""}},
		{"exact eq unindexed", &gatehouse.Filter{Op: "eq", Attr: "display_name", Value: "X", CaseExact: true}, "", `display_name = CAST($1 AS TEXT)`, []any{"X"}},
		{"exact co uses replace", &gatehouse.Filter{Op: "co", Attr: "external_id", Value: "%", CaseExact: true}, "",
			`replace(external_id, $1, '') <> external_id`, []any{"%"}},
		{"exact sw", &gatehouse.Filter{Op: "sw", Attr: "id", Value: "usr_", CaseExact: true}, "", `substr(id, 1, $1) = $2`, []any{4, "usr_"}},
		{"exact ew", &gatehouse.Filter{Op: "ew", Attr: "external_id", Value: "é1", CaseExact: true}, "",
			`(length(external_id) >= $1 AND substr(external_id, length(external_id) - $2) = $3)`, []any{2, 1, "é1"}},
		{"exact co empty is true", &gatehouse.Filter{Op: "co", Attr: "external_id", Value: "", CaseExact: true}, "", `1 = 1`, nil},
		{"pr", &gatehouse.Filter{Op: "pr", Attr: "external_id"}, "", `external_id <> ''`, nil},
		{"time", &gatehouse.Filter{Op: "ge", Attr: "created_at", Value: t0}, "", `created_at >= $1`, []any{t0.UnixMicro()}},
		{"membership", eq("group_id", "grp_1"), "scim",
			`EXISTS (SELECT 1 FROM memberships m WHERE m.tenant_id = users.tenant_id AND m.user_id = users.id AND m.managed_by = CAST($1 AS TEXT) AND m.group_id = CAST($2 AS TEXT))`,
			[]any{"scim", "grp_1"}},
		{"membership ne, any manager", &gatehouse.Filter{Op: "ne", Attr: "group_id", Value: "g"}, "",
			`NOT EXISTS (SELECT 1 FROM memberships m WHERE m.tenant_id = users.tenant_id AND m.user_id = users.id AND m.group_id = CAST($1 AS TEXT))`, []any{"g"}},
		{"and/or/not", &gatehouse.Filter{Op: "or", Children: []*gatehouse.Filter{
			{Op: "and", Children: []*gatehouse.Filter{eq("status", "active"), {Op: "not", Children: []*gatehouse.Filter{{Op: "pr", Attr: "email"}}}}},
			{Op: "false"},
		}}, "", `((lower(status) = CAST($1 AS TEXT) AND (NOT email <> '')) OR 1 = 0)`, []any{"active"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &where{}
			c := &filterSQL{w: w, table: "users", cols: userColumnsByAttr, managedBy: tc.managed}
			got, err := c.compile(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.sql {
				t.Errorf("sql\n got %s\nwant %s", got, tc.sql)
			}
			if !reflect.DeepEqual(w.args, tc.args) {
				t.Errorf("args %#v, want %#v", w.args, tc.args)
			}
		})
	}

	// Names outside the allow-list never become SQL.
	for _, f := range []*gatehouse.Filter{
		eq("username; DROP TABLE users", "x"),
		eq("password", "x"),
		{Op: "co", Attr: "created_at", Value: "2026"},
		{Op: "eq", Attr: "username", Value: 42},
		{Op: "sw", Attr: "group_id", Value: "g"},
		{Op: "xx", Attr: "username", Value: "a"},
		{Op: "and"},
	} {
		c := &filterSQL{w: &where{}, table: "users", cols: userColumnsByAttr}
		if s, err := c.compile(f); err == nil || gatehouse.ErrorCode(err) != gatehouse.EINVALID {
			t.Errorf("%+v compiled to %q, %v", f, s, err)
		}
	}
	if _, err := orderBy(gatehouse.Query{SortBy: "username desc; --"}, userColumnsByAttr); err == nil {
		t.Error("sortBy outside the allow-list accepted")
	}
}

func TestQueryUsersEngines(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, testdb.URL(t, engine), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var te gatehouse.Tenant
			err = s.Update(ctx, func(tx gatehouse.Tx) error {
				te = gatehouse.Tenant{Slug: "q", Name: "Q"}
				if err := tx.CreateTenant(ctx, &te); err != nil {
					return err
				}
				for _, u := range []gatehouse.User{
					{Username: "Ana", Email: "ana@acme.com", ExternalID: "Ext-1"},
					{Username: "a_b", Email: "ab@acme.com", ExternalID: "ext-2"},
					{Username: "a%c", ExternalID: "x%y"},
					{Username: "gone", Email: "gone@acme.com"},
				} {
					u.TenantID = te.ID
					if err := tx.CreateUser(ctx, &u); err != nil {
						return err
					}
					if u.Username == "gone" {
						if err := tx.DeleteUser(ctx, te.ID, u.ID); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				f    *gatehouse.Filter
				want []string
			}{
				{eq("username", "ANA"), []string{"Ana"}},
				{eq("username", "x' OR 1=1 --"), nil},
				{eq("username", `x" OR "1"="1`), nil},
				{&gatehouse.Filter{Op: "co", Attr: "username", Value: "_"}, []string{"a_b"}},
				{&gatehouse.Filter{Op: "co", Attr: "username", Value: "%"}, []string{"a%c"}},
				{&gatehouse.Filter{Op: "sw", Attr: "username", Value: "A"}, []string{"Ana", "a%c", "a_b"}},
				{&gatehouse.Filter{Op: "sw", Attr: "external_id", Value: "ext", CaseExact: true}, []string{"a_b"}},
				{&gatehouse.Filter{Op: "co", Attr: "external_id", Value: "%", CaseExact: true}, []string{"a%c"}},
				{&gatehouse.Filter{Op: "ew", Attr: "external_id", Value: "T-1", CaseExact: true}, nil},
				{&gatehouse.Filter{Op: "ew", Attr: "external_id", Value: "t-1", CaseExact: true}, []string{"Ana"}},
				{eq("email", "gone@acme.com"), nil}, // tombstones never match
				{&gatehouse.Filter{Op: "pr", Attr: "email"}, []string{"Ana", "a_b"}},
			} {
				var got []string
				var total int
				err := s.View(ctx, func(tx gatehouse.Tx) error {
					users, n, err := tx.QueryUsers(ctx, te.ID, gatehouse.Query{Filter: tc.f, Limit: 10})
					for _, u := range users {
						got = append(got, u.Username)
					}
					total = n
					return err
				})
				if err != nil {
					t.Fatalf("%+v: %v", tc.f, err)
				}
				sort.Strings(got)
				if !reflect.DeepEqual(got, tc.want) || total != len(tc.want) {
					t.Errorf("%+v: got %v (total %d), want %v", tc.f, got, total, tc.want)
				}
			}
			// Sorting and paging.
			err = s.View(ctx, func(tx gatehouse.Tx) error {
				users, total, err := tx.QueryUsers(ctx, te.ID, gatehouse.Query{SortBy: "username", Descending: true, Offset: 1, Limit: 1})
				if err != nil {
					return err
				}
				if total != 3 || len(users) != 1 || users[0].Username != "a_b" {
					t.Errorf("page: total %d, %v", total, users)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if engine == "sqlite" {
				// userName eq is answered from the unique partial index.
				var plan []string
				w := &where{}
				w.add(`tenant_id = ?`, te.ID)
				w.add(`deleted_at IS NULL`)
				c := &filterSQL{w: w, table: "users", cols: userColumnsByAttr}
				cond, _ := c.compile(eq("username", "ana"))
				w.conds = append(w.conds, cond)
				rows, err := s.DB().QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT id FROM users`+w.String(), w.args...)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var a, b, c2 int
					var d string
					if err := rows.Scan(&a, &b, &c2, &d); err != nil {
						t.Fatal(err)
					}
					plan = append(plan, d)
				}
				rows.Close()
				if p := strings.Join(plan, "; "); !strings.Contains(p, "users_username_key") {
					t.Errorf("userName eq does not use the index: %s", p)
				}
			}
		})
	}
}

// TestQueryPageTotals checks totalResults for full, partial and empty pages
// now that the count is skipped when the page itself shows the end.
func TestQueryPageTotals(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, testdb.URL(t, engine), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var te gatehouse.Tenant
			err = s.Update(ctx, func(tx gatehouse.Tx) error {
				te = gatehouse.Tenant{Slug: "totals", Name: "Totals"}
				if err := tx.CreateTenant(ctx, &te); err != nil {
					return err
				}
				for _, name := range []string{"u1", "u2", "u3", "u4", "u5"} {
					if err := tx.CreateUser(ctx, &gatehouse.User{TenantID: te.ID, Username: name}); err != nil {
						return err
					}
				}
				for _, name := range []string{"g1", "g2", "g3"} {
					if err := tx.CreateGroup(ctx, &gatehouse.Group{TenantID: te.ID, Name: name}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			none := eq("username", "nobody")
			for _, tc := range []struct {
				name                string
				f                   *gatehouse.Filter
				offset, limit       int
				wantRows, wantTotal int
			}{
				{"partial first page", nil, 0, 10, 5, 5},
				{"exactly full first page", nil, 0, 5, 5, 5},
				{"full first page", nil, 0, 2, 2, 5},
				{"full middle page", nil, 2, 2, 2, 5},
				{"partial last page", nil, 4, 2, 1, 5},
				{"empty page at the end", nil, 5, 2, 0, 5},
				{"empty page past the end", nil, 9, 2, 0, 5},
				{"negative offset", nil, -3, 10, 5, 5},
				{"no rows asked", nil, 0, 0, 0, 5},
				{"no rows asked past the end", nil, 7, 0, 0, 5},
				{"userName eq", eq("username", "U3"), 0, 100, 1, 1},
				{"no match", none, 0, 10, 0, 0},
				{"no match, offset", none, 3, 10, 0, 0},
				{"filtered partial", &gatehouse.Filter{Op: "sw", Attr: "username", Value: "u"}, 3, 10, 2, 5},
			} {
				err := s.View(ctx, func(tx gatehouse.Tx) error {
					q := gatehouse.Query{Filter: tc.f, Offset: tc.offset, Limit: tc.limit}
					users, total, err := tx.QueryUsers(ctx, te.ID, q)
					if err != nil {
						return err
					}
					if len(users) != tc.wantRows || total != tc.wantTotal {
						t.Errorf("users, %s: %d rows, total %d; want %d, %d", tc.name, len(users), total, tc.wantRows, tc.wantTotal)
					}
					return nil
				})
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
			}
			for _, tc := range []struct {
				offset, limit, wantRows, wantTotal int
			}{{0, 10, 3, 3}, {0, 3, 3, 3}, {1, 1, 1, 3}, {2, 5, 1, 3}, {3, 5, 0, 3}, {8, 5, 0, 3}, {0, 0, 0, 3}} {
				err := s.View(ctx, func(tx gatehouse.Tx) error {
					groups, total, err := tx.QueryGroups(ctx, te.ID, gatehouse.Query{Offset: tc.offset, Limit: tc.limit})
					if err != nil {
						return err
					}
					if len(groups) != tc.wantRows || total != tc.wantTotal {
						t.Errorf("groups %+v: %d rows, total %d", tc, len(groups), total)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// A filter that matches at most one row (an eq on a unique column with a
// value) leaves the page unordered, so that PostgreSQL's generic plan
// probes the column's index (TestPostgresGenericPlansUseKeys); any other
// keeps the order by id.
func TestOrderOfAtMostOneRow(t *testing.T) {
	and := func(fs ...*gatehouse.Filter) *gatehouse.Filter { return &gatehouse.Filter{Op: "and", Children: fs} }
	or := func(fs ...*gatehouse.Filter) *gatehouse.Filter { return &gatehouse.Filter{Op: "or", Children: fs} }
	exact := func(f *gatehouse.Filter) *gatehouse.Filter { f.CaseExact = true; return f }
	for _, tc := range []struct {
		name    string
		cols    map[string]column
		filter  *gatehouse.Filter
		ordered bool
	}{
		{"userName", userColumnsByAttr, eq("username", "Ana"), false},
		{"email", userColumnsByAttr, eq("email", "ana@acme.test"), false},
		{"externalId", userColumnsByAttr, exact(eq("external_id", "00u1")), false},
		{"id", userColumnsByAttr, exact(eq("id", "usr_1")), false},
		{"group name", groupColumnsByAttr, eq("name", "Eng"), false},
		{"in an and", userColumnsByAttr, and(eq("status", "active"), eq("username", "ana")), false},
		{"empty userName", userColumnsByAttr, eq("username", ""), true},
		{"empty externalId", userColumnsByAttr, exact(eq("external_id", "")), true},
		{"userName folding to nothing", userColumnsByAttr, eq("username", "   "), true},
		{"not unique", userColumnsByAttr, eq("display_name", "Ana"), true},
		{"in an or", userColumnsByAttr, or(eq("username", "ana"), eq("username", "bo")), true},
		{"ne", userColumnsByAttr, &gatehouse.Filter{Op: "ne", Attr: "username", Value: "ana"}, true},
		{"no filter", userColumnsByAttr, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order, err := compileQuery(&where{}, "users", tc.cols, gatehouse.Query{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			if got := order != ""; got != tc.ordered {
				t.Errorf("order %q, want ordered %v", order, tc.ordered)
			}
		})
	}
}
