package sqlstore_test

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// The hot lookups use the intended index on both engines, with the query
// written as the store writes it ($n parameters, so a partial index is
// used only when the query repeats its WHERE) and, on PostgreSQL, as a
// generic plan (what a prepared statement runs after a few executions).
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	stores := map[string]*sql.DB{}
	for _, engine := range testdb.Engines {
		stores[engine] = openStore(t, engine).DB()
	}
	for _, tc := range []struct {
		name, query, index string
		args               []string
	}{
		{"user by email", `SELECT id FROM users WHERE tenant_id = $1 AND email_key = $2 AND email_key <> ''`, "users_email_key", []string{"t", "e"}},
		{"user by username", `SELECT id FROM users WHERE tenant_id = $1 AND username_key = $2 AND username_key <> '' AND deleted_at IS NULL`, "users_username_key", []string{"t", "u"}},
		{"user by external id", `SELECT id FROM users WHERE tenant_id = $1 AND external_id = $2 AND external_id <> '' AND deleted_at IS NULL`, "users_external_id", []string{"t", "x"}},
		{"identity", `SELECT user_id FROM federated_identities WHERE connection_id = $2 AND subject = $3 AND tenant_id = $1`, "federated_identities", []string{"t", "c", "s"}},
		{"api token by hash", `SELECT id FROM api_tokens WHERE hash = $1`, "api_tokens_hash", []string{"h"}},
		// A tenant's audit pages use the unique (tenant_id, id): an index on
		// SQLite, the primary key on PostgreSQL (migrations 00310, 00311).
		// The filters' plans are checked on SQLite only ("sqlite:" prefix): on an empty
		// table PostgreSQL's planner rightly finds the key's order as cheap.
		{"audit page", `SELECT id FROM audit_events WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT 101`, "audit_events_tenant_id|audit_events_pkey", []string{"t", "a"}},
		{"audit by action", `SELECT id FROM audit_events WHERE tenant_id = $1 AND action = $2 ORDER BY id DESC LIMIT 101`, "sqlite:audit_events_tenant_action", []string{"t", "login.succeeded"}},
		{"audit by target", `SELECT id FROM audit_events WHERE tenant_id = $1 AND target_id = $2 ORDER BY id DESC LIMIT 101`, "sqlite:audit_events_tenant_target", []string{"t", "usr_1"}},
		{"audit since", `SELECT id FROM audit_events WHERE tenant_id = $1 AND at >= $2 AND at < $3 ORDER BY id DESC LIMIT 101`, "audit_events_tenant_at|audit_events_tenant_id|audit_events_pkey", []string{"t", "1", "2"}},
		{"session by id", `SELECT user_id FROM sessions WHERE id = $1`, "sqlite_autoindex_sessions|sessions_pkey", []string{"s"}},
		{"groups of users", `SELECT DISTINCT m.user_id, g.name FROM memberships m JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
			WHERE m.tenant_id = $1 AND m.user_id IN ($2, $3)`, "memberships_user", []string{"t", "u1", "u2"}},
		{"sessions of a user", `SELECT id FROM sessions WHERE tenant_id = $1 AND user_id = $2`, "sessions_user", []string{"t", "u"}},
		{"expired sessions (purge)", `SELECT id FROM sessions WHERE expires_at < $1 ORDER BY expires_at LIMIT 1000`, "sessions_expires", []string{"1"}},
		// The token tables have one index each besides the refresh
		// tokens' hash (migrations 00300): a grant, given its user, and a
		// session, given its user, are read through it, and the expiry
		// sweep through the primary key (ids sort by expiry).
		{"access tokens of a grant", `SELECT id FROM op_tokens WHERE tenant_id = $1 AND revoked_at IS NULL AND grant_id = $2 AND user_id = $3`, "op_tokens_user", []string{"t", "g", "u"}},
		{"refresh tokens of a grant", `SELECT id FROM op_refresh_tokens WHERE tenant_id = $1 AND revoked_at IS NULL AND grant_id = $2 AND user_id = $3`, "op_refresh_tokens_user", []string{"t", "g", "u"}},
		// Not the user index, whose lead is user_id (00320): unanalyzed,
		// PostgreSQL took a tenant-led one and read the tenant's tokens.
		{"refresh token by hash", `SELECT id FROM op_refresh_tokens WHERE tenant_id = $1 AND hash = $2`, "op_refresh_tokens_hash", []string{"t", "h"}},
		{"access token by id", `SELECT id FROM op_tokens WHERE tenant_id = $1 AND id = $2`, "PRIMARY KEY (id=?)|op_tokens_pkey", []string{"t", "oat_1"}},
		{"a refresh grant's read", `SELECT a.id, r.id, u.id FROM apps a JOIN op_refresh_tokens r ON r.tenant_id = a.tenant_id AND r.hash = $3
			LEFT JOIN users u ON u.tenant_id = r.tenant_id AND u.id = r.user_id AND u.deleted_at IS NULL
			WHERE a.tenant_id = $1 AND a.client_id = $2`, "op_refresh_tokens_hash", []string{"t", "c", "h"}},
		{"access tokens of a session", `SELECT client_id FROM op_tokens WHERE tenant_id = $1 AND session_id = $2 AND user_id = $3`, "op_tokens_user", []string{"t", "s", "u"}},
		{"expired access tokens", `SELECT id FROM op_tokens WHERE id < $1 AND expires_at < $2`, "PRIMARY KEY (id<?)|op_tokens_pkey", []string{"oat_0", "1"}},
		{"expired refresh tokens", `SELECT id FROM op_refresh_tokens WHERE id < $1 AND expires_at < $2`, "PRIMARY KEY (id<?)|op_refresh_tokens_pkey", []string{"ort_0", "1"}},
	} {
		for _, engine := range testdb.Engines {
			index, ok := strings.CutPrefix(tc.index, "sqlite:")
			if ok && engine != "sqlite" {
				continue
			}
			plan := explain(t, ctx, stores[engine], engine, tc.query, tc.args)
			if !slices.ContainsFunc(strings.Split(index, "|"), func(ix string) bool { return strings.Contains(plan, ix) }) {
				t.Errorf("%s on %s does not use %s: %s", tc.name, engine, index, plan)
			}
		}
	}
}

func explain(t *testing.T, ctx context.Context, db *sql.DB, engine, query string, args []string) string {
	t.Helper()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var rows *sql.Rows
	if engine == "sqlite" {
		vals := make([]any, len(args))
		for i, a := range args {
			vals[i] = a
		}
		rows, err = conn.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, vals...)
	} else {
		for _, q := range []string{"SET enable_seqscan = off", "SET plan_cache_mode = force_generic_plan", "PREPARE plan_q AS " + query} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		defer conn.ExecContext(ctx, "DEALLOCATE plan_q")
		// EXECUTE takes literals (the test's values hold no quotes).
		rows, err = conn.QueryContext(ctx, "EXPLAIN EXECUTE plan_q('"+strings.Join(args, "', '")+"')")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, toString(vals[len(vals)-1]))
	}
	return strings.Join(lines, "; ")
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}
