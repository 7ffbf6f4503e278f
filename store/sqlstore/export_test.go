package sqlstore

// AllowOPPurge lets the next authorize request purge expired OpenID
// provider rows at once, for tests that cannot wait out the minute.
func AllowOPPurge(s *Store) { s.opPurged.Store(0); s.opTokensPurged.Store(0) }
