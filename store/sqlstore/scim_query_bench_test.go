package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// seedAnalyzed inserts n users (user0 ... user<n-1>) into the tenant by
// SQL, then runs ANALYZE: the planner then has statistics, on SQLite with
// STAT4 samples, as a database has after a PRAGMA optimize (run by Close)
// or the load tool's seeding.
func seedAnalyzed(tb testing.TB, s gatehouse.Store, tenantID string, n int) {
	tb.Helper()
	ctx := context.Background()
	db := s.(*sqlstore.Store).DB()
	sqlTx, err := db.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer sqlTx.Rollback()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("user%d", i)
		email := name + "@acme.com"
		if _, err := sqlTx.ExecContext(ctx, `INSERT INTO users (id, tenant_id, email, email_key, username, username_key,
			display_name, given_name, family_name, status, external_id, source, attributes, created_at, updated_at, version)
			VALUES ($1, $2, $3, $3, $4, $4, '', 'Seed', $4, 'active', $5, 'scim', '{}', 1, 1, 1)`,
			fmt.Sprintf("usr_seed%07d", i), tenantID, email, name, "ext-"+name); err != nil {
			tb.Fatal(err)
		}
	}
	if err := sqlTx.Commit(); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `ANALYZE`); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkQueryUsersByUsername: the lookup Okta and Entra send before
// every create (filter=userName eq "..."), as SCIM runs it (QueryUsers in
// a View), over an analyzed tenant of 20,000 users.
func BenchmarkQueryUsersByUsername(b *testing.B) {
	const users = 20000
	forEngines(b, func(b *testing.B, s gatehouse.Store, parallel bool) {
		ctx := context.Background()
		te, _ := benchTenant(b, s)
		seedAnalyzed(b, s, te.ID, users)
		run(b, parallel, func(i int64) error {
			return s.View(ctx, func(tx gatehouse.Tx) error {
				list, total, err := tx.QueryUsers(ctx, te.ID, gatehouse.Query{Limit: 100,
					Filter: &gatehouse.Filter{Op: gatehouse.FilterEq, Attr: gatehouse.UserAttrUsername, Value: fmt.Sprintf("user%d", i%users)}})
				if err == nil && (len(list) != 1 || total != 1) {
					err = fmt.Errorf("found %d (total %d), want 1", len(list), total)
				}
				return err
			})
		})
	})
}

// The SCIM filter SQL binds its text values as CAST($n AS TEXT) (see
// filterSQL.text); the lookups still use the unique indexes on both
// engines, with planner statistics present.
func TestSCIMFilterPlans(t *testing.T) {
	ctx := context.Background()
	for _, engine := range testdb.Engines {
		s := openStore(t, engine)
		seedAnalyzed(t, s, mustTenant(t, s), 300)
		for _, tc := range []struct {
			name, query, index string
			args               []string
		}{
			{"userName eq", `SELECT id FROM users WHERE tenant_id = CAST($1 AS TEXT) AND deleted_at IS NULL
				AND (username_key = CAST($2 AS TEXT) AND username_key <> '') ORDER BY id LIMIT 100 OFFSET 0`, "users_username_key", []string{"t", "u"}},
			{"userName eq with SCIM groups", `SELECT id, ` + sqlstore.SCIMGroupsColumn + ` FROM users WHERE tenant_id = CAST($1 AS TEXT) AND deleted_at IS NULL
				AND (username_key = CAST($2 AS TEXT) AND username_key <> '') ORDER BY id LIMIT 100 OFFSET 0`, "memberships_user", []string{"t", "u"}},
			{"emails eq", `SELECT id FROM users WHERE tenant_id = CAST($1 AS TEXT) AND deleted_at IS NULL
				AND (email_key = CAST($2 AS TEXT) AND email_key <> '') ORDER BY id LIMIT 100 OFFSET 0`, "users_email_key", []string{"t", "e"}},
		} {
			plan := explain(t, ctx, s.DB(), engine, tc.query, tc.args)
			if !strings.Contains(plan, tc.index) {
				t.Errorf("%s on %s does not use %s: %s", tc.name, engine, tc.index, plan)
			}
		}
	}
}

func mustTenant(t *testing.T, s gatehouse.Store) string {
	t.Helper()
	ctx := context.Background()
	te := &gatehouse.Tenant{Slug: "plans", Name: "Plans"}
	if err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateTenant(ctx, te) }); err != nil {
		t.Fatal(err)
	}
	return te.ID
}
