package scim_test

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// benchUsers is the tenant size the benchmarks run against.
const benchUsers = 100_000

// BenchmarkSCIM100k measures create, patch and filter-by-userName through
// the HTTP handler against a tenant of 100k users, on both engines:
//
//	go test ./scim -run XXX -bench SCIM100k -benchtime 2000x
func BenchmarkSCIM100k(b *testing.B) {
	for _, engine := range testdb.Engines {
		b.Run(engine, func(b *testing.B) {
			e := newEnv(b, engine)
			start := time.Now()
			seedUsers(b, e, benchUsers)
			b.Logf("%s: seeded %d users in %v", engine, benchUsers, time.Since(start).Round(time.Millisecond))

			b.Run("create", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					r := e.do("POST", "/scim/v2/Users", map[string]any{
						"userName": fmt.Sprintf("new%d-%d@bench.test", b.N, i), "externalId": fmt.Sprintf("new-%d-%d", b.N, i),
						"name": map[string]any{"givenName": "New", "familyName": "User"}, "active": true,
					})
					if r.status != 201 {
						b.Fatalf("%d %s", r.status, r.raw)
					}
				}
			})
			b.Run("patch", func(b *testing.B) {
				ids := userIDs(b, e, 1000)
				for i := 0; i < b.N; i++ {
					r := e.do("PATCH", "/scim/v2/Users/"+ids[i%len(ids)], ops(
						map[string]any{"op": "Replace", "path": "displayName", "value": "Name " + strconv.Itoa(i)},
						map[string]any{"op": "Replace", "path": "active", "value": "True"}))
					if r.status != 200 {
						b.Fatalf("%d %s", r.status, r.raw)
					}
				}
			})
			b.Run("filter-userName", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					name := fmt.Sprintf("user%06d@bench.test", (i*7919)%benchUsers)
					r := e.do("GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "`+strings.ToUpper(name)+`"`)+"&startIndex=1&count=100", nil)
					if r.status != 200 || r.doc["totalResults"].(float64) != 1 {
						b.Fatalf("%d %s", r.status, r.raw)
					}
				}
			})
		})
	}
}

// seedUsers inserts n users in one transaction with multi-row INSERTs,
// straight into the table: going through CreateUser would make the setup
// take longer than the benchmark.
func seedUsers(b *testing.B, e *env, n int) {
	const batch = 500
	tx, err := e.store.DB().BeginTx(e.ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := e.clock.Now().UnixMicro()
	for from := 0; from < n; from += batch {
		var sb strings.Builder
		sb.WriteString(`INSERT INTO users (id, tenant_id, email, email_key, username, username_key, status, external_id, source, created_at, updated_at, version) VALUES `)
		var args []any
		for i := from; i < from+batch && i < n; i++ {
			if i > from {
				sb.WriteString(", ")
			}
			sb.WriteString("(")
			for c := 0; c < 12; c++ {
				if c > 0 {
					sb.WriteString(", ")
				}
				fmt.Fprintf(&sb, "$%d", len(args)+c+1)
			}
			sb.WriteString(")")
			name := fmt.Sprintf("user%06d@bench.test", i)
			args = append(args, gatehouse.NewID("usr"), e.tenant.ID, name, name, name, name, gatehouse.StatusActive,
				fmt.Sprintf("ext-%d", i), gatehouse.SourceSCIM, now, now, 1)
		}
		if _, err := tx.ExecContext(e.ctx, sb.String(), args...); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if e.store.Engine() == "postgres" {
		if _, err := e.store.DB().ExecContext(e.ctx, "ANALYZE users"); err != nil {
			b.Fatal(err)
		}
	}
}

func userIDs(b *testing.B, e *env, n int) []string {
	var ids []string
	e.view(func(tx gatehouse.Tx) error {
		users, _, err := tx.QueryUsers(e.ctx, e.tenant.ID, gatehouse.Query{Limit: n, Offset: benchUsers / 2})
		for _, u := range users {
			ids = append(ids, u.ID)
		}
		return err
	})
	return ids
}
