package sqlstore

import (
	"context"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// TestLazySavepoints: on PostgreSQL a transaction whose guarded writes all
// succeed runs once without savepoints; one whose guarded write fails runs
// again with them, and only that run's result is committed. SQLite never
// needs the second run.
func TestLazySavepoints(t *testing.T) {
	ctx := context.Background()
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			s := openEngine(t, engine)
			te := &gatehouse.Tenant{Slug: "acme", Name: "Acme", Domains: []string{"acme.com"}}
			if err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateTenant(ctx, te) }); err != nil {
				t.Fatal(err)
			}
			user := func(email string) *gatehouse.User {
				return &gatehouse.User{TenantID: te.ID, Email: email, Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT}
			}
			type run struct {
				lazy bool
				err  error
			}
			var runs []run
			err := s.Update(ctx, func(gtx gatehouse.Tx) error {
				err := gtx.CreateUser(ctx, user("ana@acme.com"))
				runs = append(runs, run{gtx.(*tx).lazy, err})
				return err
			})
			if err != nil || len(runs) != 1 || runs[0].lazy != (engine == "postgres") {
				t.Fatalf("clean write: err %v, runs %+v; want one run, lazy on postgres", err, runs)
			}

			runs = nil
			err = s.Update(ctx, func(gtx gatehouse.Tx) error {
				err := gtx.CreateUser(ctx, user("ANA@acme.com")) // taken
				runs = append(runs, run{gtx.(*tx).lazy, err})
				if gatehouse.IsCode(err, gatehouse.ECONFLICT) {
					return gtx.CreateUser(ctx, user("bo@acme.com")) // go on after the conflict
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if engine == "postgres" {
				want = 2
				if !runs[0].lazy || runs[0].err != errNeedSavepoints || runs[1].lazy {
					t.Errorf("runs %+v: want a lazy run that needs savepoints, then one with them", runs)
				}
			}
			if len(runs) != want || !gatehouse.IsCode(runs[len(runs)-1].err, gatehouse.ECONFLICT) {
				t.Fatalf("conflicting write: runs %+v; want %d, the last one ECONFLICT", runs, want)
			}
			var n int
			if err := s.DB().QueryRow(`SELECT COUNT(*) FROM users WHERE tenant_id = $1`, te.ID).Scan(&n); err != nil || n != 2 {
				t.Errorf("users = %d, %v; want ana and bo", n, err)
			}

			// A fn that swallows the failed write's error still gets a
			// second run: its first transaction is aborted on PostgreSQL.
			runs = nil
			err = s.Update(ctx, func(gtx gatehouse.Tx) error {
				err := gtx.CreateUser(ctx, user("bo@acme.com"))
				runs = append(runs, run{gtx.(*tx).lazy, err})
				return nil
			})
			if err != nil || len(runs) != want {
				t.Errorf("swallowed conflict: err %v, runs %+v; want nil after %d runs", err, runs, want)
			}
		})
	}
}
