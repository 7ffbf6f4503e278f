package sqlstore

import "github.com/gatehouse-sso/gatehouse"

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
		"QuerySCIMUsers userName eq":   scimPage(scimPageSQL("ten", eqQuery(gatehouse.UserAttrUsername), scimUserSpec(true), true)),
		"QuerySCIMUsers externalId eq": scimPage(scimPageSQL("ten", eqQuery(gatehouse.UserAttrExternalID), scimUserSpec(false), false)),
		"QueryGroups displayName eq":   page(buildPage("ten", eqQuery(gatehouse.GroupAttrName), groupSpec)),
	}
}

// eqQuery is a page of the rows whose attr eq "x", as the SCIM layer
// asks it (externalId is caseExact, RFC 7643 section 3.1).
func eqQuery(attr string) gatehouse.Query {
	f := eq(attr, "x")
	f.CaseExact = attr == gatehouse.UserAttrExternalID
	return gatehouse.Query{Filter: f, Limit: 100}
}

func scimPage(sql string, _ *pageSQL, err error) string {
	if err != nil {
		panic(err)
	}
	return sql
}

func page(p *pageSQL, err error) string {
	if err != nil {
		panic(err)
	}
	return p.page
}
