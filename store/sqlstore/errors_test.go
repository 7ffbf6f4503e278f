package sqlstore

import (
	"database/sql/driver"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse-sso/gatehouse"
)

// TestMapErrUnavailable: every way a database can go away mid-request maps
// to EUNAVAILABLE (503 for users), never to an internal error.
func TestMapErrUnavailable(t *testing.T) {
	for name, err := range map[string]error{
		"conn closed mid-query": fmt.Errorf("query: %w", pgconn.ErrConnClosed),
		"bad conn":              driver.ErrBadConn,
		"admin shutdown":        &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"},
		"crash shutdown":        &pgconn.PgError{Code: "57P02"},
		"cannot connect now":    &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"},
		"connection failure":    &pgconn.PgError{Code: "08006"},
	} {
		if got := gatehouse.ErrorCode(mapErr(err)); got != gatehouse.EUNAVAILABLE {
			t.Errorf("%s: %s, want %s", name, got, gatehouse.EUNAVAILABLE)
		}
	}
	if got := gatehouse.ErrorCode(mapErr(&pgconn.PgError{Code: "42601"})); got == gatehouse.EUNAVAILABLE {
		t.Error("a syntax error counts as unavailable")
	}
}
