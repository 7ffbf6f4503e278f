package sqlstore

// AllowOPPurge lets the next authorize request purge expired OpenID
// provider rows at once, for tests that cannot wait out the minute.
func AllowOPPurge(s *Store) { s.opPurged.Store(0); s.opTokensPurged.Store(0) }

// PostgresKeyedStatements are the PostgreSQL texts of the statements that
// look rows up by keys from other rows (keyedjoin.go), by name.
func PostgresKeyedStatements() map[string]string {
	pg := postgresDialect
	return map[string]string{
		"GetLinkedUser":                linkedUserQuery[pg],
		"ListUserMembershipRefs":       membershipRefsQuery[pg],
		"fillUserGroups":               userGroupsQuery(pg, 2),
		"ReadRefreshGrant":             readRefreshGrantQuery[pg],
		"ReadRefreshGrantOfApp":        readRefreshOfAppQuery[pg],
		"SpendOPAuthCodeOfAppWithUser": spendCodeOfAppWithUserQuery,
		"FirstLoginProbe":              firstLoginProbeQuery,
	}
}
