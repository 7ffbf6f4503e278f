package sqlstore

// SCIMTokenTTL is the revocation delay on other replicas (scimtokens.go).
const SCIMTokenTTL = scimTokenTTL
