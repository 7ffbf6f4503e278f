package sqlstore_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// TestMigration310KeepsEventsAndSessions: the audit events and sessions of
// a database at schema 00201 survive 00310 and 00311 (audit_events unique
// by (tenant_id, id) without an index of id alone, sessions without
// sessions_expires; on SQLite both tables rebuilt twice), on both engines: every column, the
// newest-first order, the filters, a session's lookup and the cascade
// from its user. Going down and up again keeps them too.
func TestMigration310KeepsEventsAndSessions(t *testing.T) {
	ctx := context.Background()
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			url := testdb.URL(t, engine)
			db, p := testdb.Migrator(t, engine, url)
			defer db.Close()
			if engine == "sqlite" {
				// One connection, so the pragma holds for every statement.
				db.SetMaxOpenConns(1)
				if _, err := db.ExecContext(ctx, `PRAGMA foreign_keys = ON`); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := p.UpTo(ctx, 201); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC).UnixMicro()
			for _, q := range []string{
				`INSERT INTO tenants (id, slug, slug_key, name, created_at, updated_at) VALUES ('ten_a', 'a', 'a', 'A', 1, 1)`,
				`INSERT INTO users (id, tenant_id, email, email_key, status, source, created_at, updated_at, version) VALUES ('usr_1', 'ten_a', 'x@a.com', 'x@a.com', 'active', 'jit', 1, 1, 1)`,
				`INSERT INTO users (id, tenant_id, email, email_key, status, source, created_at, updated_at, version) VALUES ('usr_2', 'ten_a', 'y@a.com', 'y@a.com', 'active', 'jit', 1, 1, 1)`,
				`INSERT INTO sessions (id, tenant_id, user_id, connection_id, session_index, auth_time, created_at, last_seen_at, idle_expiry, expires_at) VALUES ('ses_1', 'ten_a', 'usr_1', 'con_1', 'ix', 5, 6, 7, 4000000000000000, 4000000000000001)`,
				`INSERT INTO sessions (id, tenant_id, user_id, auth_time, created_at, last_seen_at, idle_expiry, expires_at) VALUES ('ses_2', 'ten_a', 'usr_2', 5, 6, 7, 4000000000000000, 4000000000000001)`,
			} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			ins := `INSERT INTO audit_events (id, tenant_id, at, actor_type, actor_id, action, target_type, target_id, request_id, details) VALUES ($1, $2, $3, 'admin', 'adm_1', $4, 'user', $5, 'req_1', '{"k":"v"}')`
			for _, e := range [][]any{
				{"aud_1", "ten_a", at, "user.created", "usr_1"},
				{"aud_2", "ten_a", at + 1, "login.succeeded", "usr_1"},
				{"aud_3", "ten_a", at + 2, "login.succeeded", "usr_2"},
				{"aud_4", "ten_b", at + 3, "login.succeeded", "usr_9"},
			} {
				if _, err := db.ExecContext(ctx, ins, e...); err != nil {
					t.Fatal(err)
				}
			}
			check := func(when string) {
				t.Helper()
				st, err := sqlstore.Open(ctx, url, sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatalf("%s: open: %v", when, err)
				}
				defer st.Close()
				err = st.View(ctx, func(tx gatehouse.Tx) error {
					all, _, err := tx.ListAudit(ctx, "ten_a", gatehouse.AuditFilter{}, gatehouse.Page{Limit: 10})
					if err != nil {
						return err
					}
					if ids := auditIDs(all); ids != "aud_3 aud_2 aud_1" {
						t.Errorf("%s: ten_a events %s", when, ids)
					}
					e := all[2]
					if e.TenantID != "ten_a" || !e.Time.Equal(time.UnixMicro(at).UTC()) || e.ActorType != "admin" || e.ActorID != "adm_1" ||
						e.Action != "user.created" || e.TargetType != "user" || e.TargetID != "usr_1" || e.RequestID != "req_1" || e.Details["k"] != "v" {
						t.Errorf("%s: event %+v", when, e)
					}
					page, next, err := tx.ListAudit(ctx, "ten_a", gatehouse.AuditFilter{Action: "login.succeeded"}, gatehouse.Page{Limit: 1})
					if err != nil {
						return err
					}
					rest, _, err := tx.ListAudit(ctx, "ten_a", gatehouse.AuditFilter{Action: "login.succeeded"}, gatehouse.Page{Limit: 1, Cursor: next})
					if err != nil {
						return err
					}
					if a, b := auditIDs(page), auditIDs(rest); a != "aud_3" || b != "aud_2" {
						t.Errorf("%s: login pages %q %q", when, a, b)
					}
					byTarget, _, err := tx.ListAudit(ctx, "ten_a", gatehouse.AuditFilter{TargetID: "usr_1", Since: time.UnixMicro(at + 1)}, gatehouse.Page{Limit: 10})
					if err != nil {
						return err
					}
					if ids := auditIDs(byTarget); ids != "aud_2" {
						t.Errorf("%s: usr_1 since at+1: %s", when, ids)
					}
					other, _, err := tx.ListAudit(ctx, "ten_b", gatehouse.AuditFilter{}, gatehouse.Page{Limit: 10})
					if err != nil {
						return err
					}
					if ids := auditIDs(other); ids != "aud_4" {
						t.Errorf("%s: ten_b events %s", when, ids)
					}
					s, err := tx.GetSession(ctx, "ses_1")
					if err != nil {
						return err
					}
					if s.TenantID != "ten_a" || s.UserID != "usr_1" || s.ConnectionID != "con_1" || s.SessionIndex != "ix" {
						t.Errorf("%s: session %+v", when, s)
					}
					return nil
				})
				if err != nil {
					t.Fatalf("%s: %v", when, err)
				}
			}
			check("after 00310 and 00311")
			// Down to 00201 and up again (the Down rebuilds the old shape).
			if _, err := p.DownTo(ctx, 201); err != nil {
				t.Fatalf("down: %v", err)
			}
			check("after down and up")
			// The cascade from users still reaches the rebuilt sessions,
			// and a duplicate event id within a tenant is still refused.
			st, err := sqlstore.Open(ctx, url, sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.Update(ctx, func(tx gatehouse.Tx) error { return tx.PurgeUser(ctx, "ten_a", "usr_2") }); err != nil {
				t.Fatal(err)
			}
			err = st.Update(ctx, func(tx gatehouse.Tx) error {
				return tx.AppendAudit(ctx, &gatehouse.AuditEvent{ID: "aud_1", TenantID: "ten_a", Action: "x", TargetID: "t"})
			})
			// SQLite refuses the insert itself (ECONFLICT); PostgreSQL's
			// leaves with COMMIT (a deferred write), whose refusal is the
			// transaction's, an internal error naming the constraint.
			if !gatehouse.IsCode(err, gatehouse.ECONFLICT) &&
				!(engine == "postgres" && gatehouse.IsCode(err, gatehouse.EINTERNAL) && strings.Contains(err.Error(), "audit_events_pkey")) {
				t.Errorf("duplicate audit id: %v, want it refused", err)
			}
			err = st.View(ctx, func(tx gatehouse.Tx) error {
				_, err := tx.GetSession(ctx, "ses_2")
				return err
			})
			if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				t.Errorf("session of a deleted user: %v, want ENOTFOUND", err)
			}
		})
	}
}

func auditIDs(es []*gatehouse.AuditEvent) string {
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	return strings.Join(ids, " ")
}
