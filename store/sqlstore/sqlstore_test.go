package sqlstore_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
	"github.com/gatehouse-sso/gatehouse/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openStore opens a fresh database of engine for tb and closes it at the end.
func openStore(tb testing.TB, engine string) *sqlstore.Store {
	tb.Helper()
	s, err := sqlstore.Open(context.Background(), testdb.URL(tb, engine), sqlstore.Options{Logger: quiet})
	if err != nil {
		tb.Fatalf("Open(%s): %v", engine, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) gatehouse.Store { return openStore(t, engine) })
		})
	}
}
