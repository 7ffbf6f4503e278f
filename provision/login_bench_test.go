package provision_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// BenchmarkJITLoginTx: the write transaction of a first login as the
// callback runs it: the resolution creating the user (link, default
// group, two audit rows) and the login's session in the same commit.
// cpu-µs/op (user + system of the whole process) holds on a loaded
// machine where ns/op does not.
//
//	go test ./provision -run '^$' -bench JITLoginTx -benchtime 3000x -count 3
func BenchmarkJITLoginTx(b *testing.B) {
	for _, engine := range testdb.Engines {
		b.Run(engine, func(b *testing.B) {
			f := newFixture(b, openStore(b, engine))
			f.conn.JIT.DefaultGroups = []string{"Everyone"}
			ctx := provision.WithAfterApply(f.ctx, func(ctx context.Context, tx gatehouse.Tx, res *provision.Result) error {
				now := time.Now()
				return tx.CreateSession(ctx, &gatehouse.Session{ID: secret.DigestString(secret.NewToken("")), TenantID: res.User.TenantID,
					UserID: res.User.ID, ConnectionID: f.conn.ID, AuthTime: now, CreatedAt: now, LastSeenAt: now,
					IdleExpiry: now.Add(time.Hour), ExpiresAt: now.Add(8 * time.Hour)})
			})
			i := 0
			cpu0 := testdb.ProcessCPU()
			for b.Loop() {
				i++
				res, err := f.r.Resolve(ctx, f.tenant, f.conn, f.identity(fmt.Sprintf("sub-%d", i), f.email(fmt.Sprintf("u%d", i))), provision.Apply)
				if err != nil || res.Outcome != provision.OutcomeCreated {
					b.Fatal(err, res)
				}
			}
			b.ReportMetric(float64((testdb.ProcessCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
