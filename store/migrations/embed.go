// Package migrations holds the database schema, one directory per engine
// (sqlite/, postgres/), embedded in the binary and applied by goose when
// store/sqlstore opens a database.
package migrations

import "embed"

// FS holds sqlite/*.sql and postgres/*.sql.
//
//go:embed sqlite/*.sql postgres/*.sql
var FS embed.FS
