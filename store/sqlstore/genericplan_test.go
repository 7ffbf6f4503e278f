package sqlstore_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// The statements that look up a user or a group by the key of another row
// keep that key in their PostgreSQL plans even when planned generically
// (as a prepared statement is from its sixth execution on) on tables never
// analyzed: a new deployment's first logins. A lookup planned without it
// reads all of a tenant's users (or groups) per login until autovacuum
// analyzes the table (keyedjoin.go).
func TestPostgresGenericPlansUseKeys(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "postgres")
	conn, err := s.DB().Conn(ctx)
	must(t, err)
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	// A scan of a tenant's users or groups by the tenant alone, or of the
	// whole table, or a join whose key is checked after the scan.
	unkeyed := regexp.MustCompile(`Scan (using \S+ )?on (users|groups)\b[^\n]*\n\s*(Index|Recheck) Cond: \(tenant_id = \$1\)\n|Seq Scan on (users|groups)\b|Join Filter`)
	params := regexp.MustCompile(`\$\d+`)
	i := 0
	for name, stmt := range sqlstore.PostgresKeyedStatements() {
		i++
		prepared := "stmt" + strconv.Itoa(i)
		t.Run(name, func(t *testing.T) {
			if _, err := conn.ExecContext(ctx, `PREPARE `+prepared+` AS `+stmt); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, p := range params.FindAllString(stmt, -1) {
				k, _ := strconv.Atoi(p[1:])
				n = max(n, k)
			}
			rows, err := conn.QueryContext(ctx, `EXPLAIN EXECUTE `+prepared+`(`+strings.TrimSuffix(strings.Repeat("NULL,", n), ",")+`)`)
			must(t, err)
			var plan strings.Builder
			for rows.Next() {
				var line string
				must(t, rows.Scan(&line))
				plan.WriteString(line + "\n")
			}
			must(t, rows.Err())
			if m := unkeyed.FindString(plan.String()); m != "" {
				t.Errorf("generic plan without the key (%q):\n%s", m, plan.String())
			}
		})
	}
}
