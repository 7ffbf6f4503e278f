package sqlstore

// Joins that look a row up by its key from a column of the outer row.
//
// PostgreSQL plans a prepared statement once for any parameters (its
// generic plan, from the sixth execution on) and keeps that plan until the
// tables are analyzed again. Planned while users or groups were nearly
// empty and never analyzed (a new deployment's first logins, before
// autovacuum's first ANALYZE), "LEFT JOIN users u ON u.tenant_id =
// i.tenant_id AND u.id = i.user_id" with i.tenant_id = $1 became a scan of
// the tenant's users (Index Cond: tenant_id = $1) with the id as a join
// filter: every returning login then read all of its tenant's users
// (auto_explain: 496 and 688 rows for one login; PostgreSQL's CPU per
// returning SAML login 1.5–4.5 ms against 0.2–0.9 with the key).
//
// As a LATERAL subquery behind OFFSET 0, which the planner cannot pull up
// into the join, the lookup is planned on its own with both key columns
// bound to the outer row, and stays a probe of the unique (tenant_id, id)
// index whatever the statistics say (TestPostgresGenericPlansUseKeys).
// SQLite has no LATERAL and no generic plans: its planner probes the key
// of a plain join.

// engineSQL is a statement's text per engine.
type engineSQL map[*dialect]string

// perEngine builds a statement's text for each engine once.
func perEngine(build func(d *dialect) string) engineSQL {
	return engineSQL{sqliteDialect: build(sqliteDialect), postgresDialect: build(postgresDialect)}
}

// liveUserJoin is the LEFT JOIN, as u, of the live user (not a tombstone)
// whose key is the tenant_id and user_id columns of the outer row outer.
func liveUserJoin(d *dialect, outer string) string {
	if d == postgresDialect {
		return `LEFT JOIN LATERAL (SELECT * FROM users WHERE tenant_id = ` + outer + `.tenant_id AND id = ` + outer + `.user_id
			AND deleted_at IS NULL OFFSET 0) u ON true`
	}
	return `LEFT JOIN users u ON u.tenant_id = ` + outer + `.tenant_id AND u.id = ` + outer + `.user_id AND u.deleted_at IS NULL`
}

// groupOfMembershipJoin is the JOIN, as g, of the group of membership
// row m.
func groupOfMembershipJoin(d *dialect) string {
	if d == postgresDialect {
		return `JOIN LATERAL (SELECT * FROM groups WHERE tenant_id = m.tenant_id AND id = m.group_id OFFSET 0) g ON true`
	}
	return `JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id`
}
