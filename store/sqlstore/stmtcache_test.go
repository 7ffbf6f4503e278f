package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
)

// The SQLite statement cache: a query run again while rows of the same
// text are open gets its own statement, and the cache survives more
// distinct queries than it holds.
func TestStatementCache(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "sqlite")
	db := s.DB()
	if _, err := db.ExecContext(ctx, `CREATE TABLE nums (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO nums (n) VALUES ($1)`, i); err != nil {
			t.Fatal(err)
		}
	}
	// The writer has one connection: both queries run on it.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = `SELECT n FROM nums WHERE n >= $1 ORDER BY n`
	outer, err := tx.QueryContext(ctx, q, 1)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for outer.Next() {
		var a int
		if err := outer.Scan(&a); err != nil {
			t.Fatal(err)
		}
		inner, err := tx.QueryContext(ctx, q, a)
		if err != nil {
			t.Fatal(err)
		}
		for inner.Next() {
			var b int
			if err := inner.Scan(&b); err != nil {
				t.Fatal(err)
			}
			pairs = append(pairs, fmt.Sprintf("%d%d", a, b))
		}
		if err := inner.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if got := fmt.Sprint(pairs); got != "[11 12 13 22 23 33]" {
		t.Errorf("nested queries of one text = %s", got)
	}
	// More distinct texts than the cache holds, then the first again.
	for i := 0; i < 300; i++ {
		var n int
		if err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) + %d FROM nums`, i)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 3+i {
			t.Fatalf("query %d = %d", i, n)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, q, 3).Scan(&n); err != nil || n != 3 {
		t.Errorf("after eviction: %d, %v", n, err)
	}
	// A failing statement leaves its cached statement usable.
	if _, err := tx.ExecContext(ctx, `INSERT INTO nums (n) VALUES ($1, $2)`, 1, 2); err == nil {
		t.Error("a bad statement succeeded")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO nums (n) VALUES ($1)`, 4); err != nil {
		t.Errorf("insert after an error: %v", err)
	}
	// So does a constraint violation of the cached statement itself.
	if _, err := tx.ExecContext(ctx, `CREATE UNIQUE INDEX nums_n ON nums (n)`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO nums (n) VALUES ($1)`, 4); err == nil {
		t.Error("a duplicate succeeded")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO nums (n) VALUES ($1)`, 5); err != nil {
		t.Errorf("the same statement after its violation: %v", err)
	}
}
