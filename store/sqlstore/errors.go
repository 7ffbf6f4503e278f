package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// uniqueFields names the API field behind each unique column, keyed by
// "table.column" (the last column of the unique key). Both engines report
// the violated key's table and columns, so one table serves both.
var uniqueFields = map[string]string{
	"tenants.id":                   "id",
	"tenants.slug_key":             "slug",
	"tenant_domains.domain":        "domain",
	"users.id":                     "id",
	"users.email_key":              "email",
	"users.username_key":           "username",
	"users.external_id":            "external_id",
	"groups.id":                    "id",
	"groups.name_key":              "name",
	"groups.external_id":           "external_id",
	"connections.id":               "id",
	"federated_identities.subject": "subject",
	"apps.id":                      "id",
	"apps.client_id":               "client_id",
	"api_tokens.id":                "id",
	"api_tokens.hash":              "hash",
	"scim_tokens.id":               "id",
	"scim_tokens.hash":             "hash",
	"signing_keys.id":              "id",
	"sessions.id":                  "id",
	"audit_events.id":              "id",
	"outbox.id":                    "id",
	"used_once.key":                "key",
}

// conflict is the ECONFLICT error for a unique violation on table.column.
func conflict(table, column string, cause error) error {
	field := uniqueFields[table+"."+column]
	if field == "" {
		field = column
	}
	what := strings.ReplaceAll(field, "_", " ")
	return &gatehouse.Error{
		Code:    gatehouse.ECONFLICT,
		Field:   field,
		Message: "This " + what + " is already in use.",
		Err:     cause,
	}
}

func notFoundRef(cause error) error {
	return &gatehouse.Error{
		Code:    gatehouse.ENOTFOUND,
		Message: "A referenced object does not exist.",
		Err:     cause,
	}
}

func unavailable(cause error) error {
	return &gatehouse.Error{
		Code:    gatehouse.EUNAVAILABLE,
		Message: "The database is not available; try again shortly.",
		Err:     cause,
	}
}

// IsUnavailable reports whether err means the database cannot be reached
// (down, refusing connections, locked for too long): a condition that may
// pass, unlike a bad query.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if gatehouse.IsCode(err, gatehouse.EUNAVAILABLE) {
		return true
	}
	return transientConn(err)
}

// transientConn recognises connection-level failures of either driver.
func transientConn(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	var oe *net.OpError
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &ce), errors.As(err, &oe), errors.As(err, &ne):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		// A connection cut mid-query while PostgreSQL goes down.
		errors.Is(err, pgconn.ErrConnClosed):
		return true
	case errors.As(err, &pe):
		// Class 08 (connection exception) and 57P01-57P03 (admin or crash
		// shutdown, cannot connect now): the server is going or gone.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	return false
}

// pgDetailKey matches the key list of a unique violation's detail:
// `Key (tenant_id, email_key)=(...) already exists.`
var pgDetailKey = regexp.MustCompile(`^Key \(([^)]*)\)=`)

// sqliteUnique matches `UNIQUE constraint failed: users.tenant_id, users.email_key`.
var sqliteUnique = regexp.MustCompile(`UNIQUE constraint failed: ([A-Za-z0-9_., ]+)`)

// mapErr turns a driver error into a *gatehouse.Error where the contract
// names one; any other error is returned wrapped, as internal. Both
// drivers' errors are recognised whatever the dialect.
func (d *dialect) mapErr(err error) error { return mapErr(err) }

func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var ge *gatehouse.Error
	if errors.As(err, &ge) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return &gatehouse.Error{Code: gatehouse.ENOTFOUND, Message: "Not found.", Err: err}
	}
	if errors.Is(err, context.Canceled) {
		// The caller gave up: nothing to report to anyone.
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The database did not answer in time (or the writer stayed busy):
		// a 503 to retry, not a bug. errors.Is still sees the deadline.
		return unavailable(err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return mapPgError(pe, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return mapSQLiteError(se, err)
	}
	if transientConn(err) {
		return unavailable(err)
	}
	return errInternal("database", err)
}

func mapPgError(pe *pgconn.PgError, err error) error {
	switch {
	case pe.Code == "23505": // unique_violation
		column := ""
		if m := pgDetailKey.FindStringSubmatch(pe.Detail); m != nil {
			cols := strings.Split(m[1], ",")
			column = strings.TrimSpace(cols[len(cols)-1])
		}
		if column == "" {
			// No detail: guess the column from the constraint name
			// (indexes are named table_column).
			column = strings.TrimPrefix(pe.ConstraintName, pe.TableName+"_")
		}
		return conflict(pe.TableName, column, err)
	case pe.Code == "23503": // foreign_key_violation
		return notFoundRef(err)
	case pe.Code == "40001", pe.Code == "40P01":
		// Still failing after Update's retries: a crowd, not a bug.
		return unavailable(err)
	case strings.HasPrefix(pe.Code, "08"), // connection exception
		strings.HasPrefix(pe.Code, "53"),                           // insufficient resources (too many connections)
		pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // shutdown, cannot connect now
		return unavailable(err)
	case pe.Code == "28P01", pe.Code == "28000", pe.Code == "3D000":
		return &gatehouse.Error{Code: gatehouse.EINVALID, Field: "database_url",
			Message: "PostgreSQL refused the connection: check the user, password and database name in the database URL.", Err: err}
	}
	return errInternal("postgres", err)
}

func mapSQLiteError(se *sqlite.Error, err error) error {
	code := se.Code()
	switch code {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		table, column := "", ""
		if m := sqliteUnique.FindStringSubmatch(se.Error()); m != nil {
			cols := strings.Split(m[1], ",")
			last := strings.TrimSpace(cols[len(cols)-1])
			table, column, _ = strings.Cut(last, ".")
		}
		return conflict(table, column, err)
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return notFoundRef(err)
	}
	switch code & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_NOTADB:
		return unavailable(err)
	}
	return errInternal("sqlite", err)
}

// retryable reports whether Update may run fn again: PostgreSQL
// serialization failures and deadlocks, which the server resolves by
// aborting one transaction that would succeed when re-run.
func (d *dialect) retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}
