package sqlstore

// Exports for the SCIM fast-path tests.

// SCIMTokenTTL is the revocation delay on other replicas (scimtokens.go).
const SCIMTokenTTL = scimTokenTTL

// SCIMGroupsColumn is the group-id list column of QuerySCIMUsers.
var SCIMGroupsColumn = scimGroupsOf("users")
