package sqlstore

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

func TestUnpackIDs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{"", []string{}, false},
		{"3:abc", []string{"abc"}, false},
		{"3:abc10:grp_12:x,3", []string{"abc", "grp_12:x,3"}, false},
		{"0:", []string{""}, false},
		{"4:abc", nil, true},
		{"abc", nil, true},
		{"-1:a", nil, true},
		{"x:a", nil, true},
		{"01:a", nil, true},
		{"+1:a", nil, true},
	} {
		got, err := unpackIDs(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("unpackIDs(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func FuzzUnpackIDs(f *testing.F) {
	f.Add("3:abc10:grp_12:x,3")
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := unpackIDs(s)
		if err != nil {
			return
		}
		// What parses re-packs to the same text (octet lengths).
		packed := ""
		for _, id := range ids {
			packed += strconv.Itoa(len(id)) + ":" + id
		}
		if packed != s && !(s == "" && len(ids) == 0) {
			t.Errorf("unpackIDs(%q) = %q, which packs to %q", s, ids, packed)
		}
	})
}

// TestSCIMPagePlanIsCached: PostgreSQL settles on a generic plan for the
// userName lookup of QuerySCIMUsers, as it does for QueryUsers, instead of
// planning it on every execution (see scimPageSQL).
func TestSCIMPagePlanIsCached(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, testdb.URL(t, "postgres"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := gatehouse.Query{Limit: 100, ManagedBy: gatehouse.ManagedBySCIM,
		Filter: &gatehouse.Filter{Op: gatehouse.FilterEq, Attr: gatehouse.UserAttrUsername, Value: "ana@acme.com"}}
	spec := querySpec[scimUser]{from: "users", alias: "users", columns: userColumns + ", " + scimGroupsOf("users"),
		cols: userColumnsByAttr, scan: scanSCIMUser, base: []string{`deleted_at IS NULL`}}
	query, _, err := scimPageSQL("ten_1", q, spec, true)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PREPARE scim_page AS "+query); err != nil {
		t.Fatal(err)
	}
	var plan string
	for i := 0; i < 7; i++ {
		rows, err := conn.QueryContext(ctx, `EXPLAIN EXECUTE scim_page('ten_1', 'ana@acme.com', 100, 0)`)
		if err != nil {
			t.Fatal(err)
		}
		plan = ""
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan += line + "\n"
		}
		rows.Close()
	}
	if !strings.Contains(plan, "$1") {
		t.Errorf("still a custom plan after 7 executions:\n%s", plan)
	}
}
