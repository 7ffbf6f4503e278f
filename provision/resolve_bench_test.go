package provision_test

import (
	"fmt"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/provision"
)

// BenchmarkResolveLargeTenant: JIT and returning logins in a tenant whose
// default group ("Everyone") already has many members. The cost of a
// login must not grow with the tenant: before the group look-ups skipped
// the member count, each login counted every member of "Everyone"
// (docs/benchmarks.md).
//
//	go test ./provision -run '^$' -bench LargeTenant -benchtime 2000x
func BenchmarkResolveLargeTenant(b *testing.B) {
	for _, engine := range testdb.Engines {
		for _, size := range []int{100, 20000} {
			b.Run(fmt.Sprintf("%s/members=%d", engine, size), func(b *testing.B) {
				f := newFixture(b, openStore(b, engine))
				f.conn.JIT.DefaultGroups = []string{"Everyone"}
				everyone := f.groups["Everyone"].ID
				f.update(func(tx gatehouse.Tx) error {
					for i := 0; i < size; i++ {
						u := &gatehouse.User{TenantID: f.tenant.ID, Email: f.email(fmt.Sprintf("seed%d", i)), Source: gatehouse.SourceSCIM}
						if err := tx.CreateUser(f.ctx, u); err != nil {
							return err
						}
						if err := tx.AddMembership(f.ctx, &gatehouse.Membership{TenantID: f.tenant.ID, GroupID: everyone, UserID: u.ID, ManagedBy: "admin"}); err != nil {
							return err
						}
					}
					return nil
				})
				ret := f.identity("sub-ret", f.email("ret"))
				if _, err := f.resolve(ret, provision.Apply); err != nil {
					b.Fatal(err)
				}
				b.Run("create", func(b *testing.B) {
					i := 0
					cpu0 := testdb.ProcessCPU()
					for b.Loop() {
						i++
						res, err := f.resolve(f.identity(fmt.Sprintf("sub-%d", i), f.email(fmt.Sprintf("u%d", i))), provision.Apply)
						if err != nil || res.Outcome != provision.OutcomeCreated {
							b.Fatal(err, res)
						}
					}
					b.ReportMetric(float64((testdb.ProcessCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
				})
				b.Run("returning", func(b *testing.B) {
					cpu0 := testdb.ProcessCPU()
					for b.Loop() {
						res, err := f.resolve(ret, provision.Apply)
						if err != nil || res.Outcome != provision.OutcomeExisting {
							b.Fatal(err, res)
						}
					}
					b.ReportMetric(float64((testdb.ProcessCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
				})
			})
		}
	}
}
