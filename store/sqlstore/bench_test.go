package sqlstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// Run with:
//
//	go test ./store/sqlstore -run '^$' -bench . -benchtime 2s
//
// "serial" is one caller after another (latency); "parallel" is
// GOMAXPROCS×4 callers at once (throughput, what a burst of logins sees).

func benchTenant(b *testing.B, s gatehouse.Store) (*gatehouse.Tenant, *gatehouse.Connection) {
	ctx := context.Background()
	te := &gatehouse.Tenant{Slug: "acme", Name: "Acme", Domains: []string{"acme.com"}}
	c := &gatehouse.Connection{Type: gatehouse.ConnOIDC, Name: "okta", Enabled: true, JIT: gatehouse.DefaultJITPolicy()}
	err := s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateTenant(ctx, te); err != nil {
			return err
		}
		c.TenantID = te.ID
		return tx.CreateConnection(ctx, c)
	})
	if err != nil {
		b.Fatal(err)
	}
	return te, c
}

func forEngines(b *testing.B, fn func(b *testing.B, s gatehouse.Store, parallel bool)) {
	for _, engine := range testdb.Engines {
		for _, mode := range []string{"serial", "parallel"} {
			b.Run(engine+"/"+mode, func(b *testing.B) {
				fn(b, openStore(b, engine), mode == "parallel")
			})
		}
	}
}

// run calls op(i) b.N times, serially or from parallel goroutines.
func run(b *testing.B, parallel bool, op func(i int64) error) {
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	if parallel {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(n.Add(1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for i := 0; i < b.N; i++ {
			if err := op(n.Add(1)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
	// CPU time per op (user + system, the whole test process) holds steady
	// on a shared, loaded machine where ns/op (wall time) does not.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// processCPU is the process's user + system CPU time so far.
var processCPU = testdb.ProcessCPU

// BenchmarkCreateUser: one JIT-style creation per transaction (user,
// identity, audit event).
func BenchmarkCreateUser(b *testing.B) {
	forEngines(b, func(b *testing.B, s gatehouse.Store, parallel bool) {
		ctx := context.Background()
		te, c := benchTenant(b, s)
		run(b, parallel, func(i int64) error {
			return s.Update(ctx, func(tx gatehouse.Tx) error {
				u := &gatehouse.User{TenantID: te.ID, Email: fmt.Sprintf("user%d@acme.com", i), Username: fmt.Sprintf("user%d", i),
					Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT}
				if err := tx.CreateUser(ctx, u); err != nil {
					return err
				}
				if err := tx.CreateIdentity(ctx, &gatehouse.FederatedIdentity{TenantID: te.ID, ConnectionID: c.ID, Subject: u.Username, UserID: u.ID}); err != nil {
					return err
				}
				return tx.AppendAudit(ctx, &gatehouse.AuditEvent{TenantID: te.ID, ActorType: "connection", ActorID: c.ID,
					Action: "user.jit_created", TargetType: "user", TargetID: u.ID})
			})
		})
	})
}

// BenchmarkLoginReturningUser: the login of a known user, as provisioning
// does it: GetIdentity + GetUser + TouchUserLogin + AppendAudit in one
// Update, over 1000 users.
func BenchmarkLoginReturningUser(b *testing.B) {
	const users = 1000
	forEngines(b, func(b *testing.B, s gatehouse.Store, parallel bool) {
		ctx := context.Background()
		te, c := benchTenant(b, s)
		g := &gatehouse.Group{TenantID: te.ID, Name: "Everyone"}
		err := s.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.CreateGroup(ctx, g); err != nil {
				return err
			}
			for i := 0; i < users; i++ {
				u := &gatehouse.User{TenantID: te.ID, Email: fmt.Sprintf("user%d@acme.com", i), Username: fmt.Sprintf("user%d", i),
					Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT}
				if err := tx.CreateUser(ctx, u); err != nil {
					return err
				}
				if err := tx.CreateIdentity(ctx, &gatehouse.FederatedIdentity{TenantID: te.ID, ConnectionID: c.ID, Subject: fmt.Sprintf("sub%d", i), UserID: u.ID}); err != nil {
					return err
				}
				if err := tx.AddMembership(ctx, &gatehouse.Membership{TenantID: te.ID, GroupID: g.ID, UserID: u.ID, ManagedBy: gatehouse.ManagedByAdmin}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		run(b, parallel, func(i int64) error {
			return s.Update(ctx, func(tx gatehouse.Tx) error {
				fi, err := tx.GetIdentity(ctx, te.ID, c.ID, fmt.Sprintf("sub%d", i%users))
				if err != nil {
					return err
				}
				u, err := tx.GetUser(ctx, te.ID, fi.UserID)
				if err != nil {
					return err
				}
				now := time.Now()
				if err := tx.TouchUserLogin(ctx, te.ID, u.ID, now); err != nil {
					return err
				}
				return tx.AppendAudit(ctx, &gatehouse.AuditEvent{TenantID: te.ID, Time: now, ActorType: "user", ActorID: u.ID,
					Action: "login.succeeded", TargetType: "user", TargetID: u.ID, Details: map[string]any{"connection_id": c.ID}})
			})
		})
	})
}
