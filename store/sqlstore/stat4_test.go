package sqlstore

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
)

// TestNoStat4Samples: a SQLite database analyzed by ANALYZE (or by PRAGMA
// optimize at Close) keeps its sqlite_stat1 statistics but no STAT4
// samples once a Store has opened or closed it, so bound values never make
// SQLite re-prepare a lookup (see dropStat4).
func TestNoStat4Samples(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	te := seedUsers(t, s, 300)
	count := func(table string) int {
		t.Helper()
		var n int
		if err := s.writer.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := s.writer.ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	if count("sqlite_stat4") == 0 {
		t.Fatal("ANALYZE made no STAT4 samples: the test shows nothing")
	}
	if err := s.dropStat4(ctx); err != nil {
		t.Fatal(err)
	}
	if n, m := count("sqlite_stat4"), count("sqlite_stat1"); n != 0 || m == 0 {
		t.Errorf("after dropStat4: %d STAT4 samples, %d stat1 rows; want none and some", n, m)
	}
	// Open and Close do it too.
	if _, err := s.writer.ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(ctx, path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := count("sqlite_stat4"); n != 0 {
		t.Errorf("after Close and Open: %d STAT4 samples", n)
	}
	err = s.View(ctx, func(tx gatehouse.Tx) error {
		_, err := tx.GetUserByEmail(ctx, te.ID, "u7@acme.com")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLookupAfterAnalyze: a lookup by email on an analyzed database,
// with STAT4 samples (re-prepared for each new email) and without
// (dropStat4: the cached statement runs as prepared).
func BenchmarkLookupAfterAnalyze(b *testing.B) {
	ctx := context.Background()
	for _, samples := range []bool{true, false} {
		b.Run(fmt.Sprintf("stat4=%v", samples), func(b *testing.B) {
			s, err := Open(ctx, filepath.Join(b.TempDir(), "g.db"), Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			te := seedUsers(b, s, 2000)
			if _, err := s.writer.ExecContext(ctx, `ANALYZE`); err != nil {
				b.Fatal(err)
			}
			if !samples {
				if err := s.dropStat4(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				err := s.Update(ctx, func(tx gatehouse.Tx) error {
					_, err := tx.GetUserByEmail(ctx, te.ID, fmt.Sprintf("u%d@acme.com", i%2000))
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// seedUsers creates a tenant with n users u<i>@acme.com.
func seedUsers(tb testing.TB, s *Store, n int) *gatehouse.Tenant {
	tb.Helper()
	ctx := context.Background()
	te := &gatehouse.Tenant{Slug: "acme", Name: "Acme", Domains: []string{"acme.com"}}
	err := s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateTenant(ctx, te); err != nil {
			return err
		}
		for i := range n {
			u := &gatehouse.User{TenantID: te.ID, Email: fmt.Sprintf("u%d@acme.com", i), Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT}
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return te
}
