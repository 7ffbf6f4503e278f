package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// SpendOPAuthCodeOfAppWithUser spends a code and reads its user in one
// PostgreSQL statement (two on SQLite): the user as GetUserWithoutGroups
// reads it, nil once deleted, and nothing spent when the app is not as
// the caller read it or the code is spent.
func TestSpendOPAuthCodeOfAppWithUser(t *testing.T) {
	type spender interface {
		SpendOPAuthCodeOfAppWithUser(ctx context.Context, tenantID string, codeHash []byte, at time.Time, clientID, appID string, appUpdated time.Time) (*gatehouse.OPAuthRequest, *gatehouse.User, error)
		GetUserWithoutGroups(ctx context.Context, tenantID, id string) (*gatehouse.User, error)
	}
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			te := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			app := &gatehouse.App{Name: "Wiki", ClientID: "wiki", RedirectURIs: []string{"https://x/cb"}, SecretHash: []byte("a")}
			live := &gatehouse.User{Email: "ada@acme.test", Username: "ada", GivenName: "Ada", Status: gatehouse.StatusActive}
			gone := &gatehouse.User{Email: "bob@acme.test", Status: gatehouse.StatusActive}
			must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
				if err := tx.CreateTenant(ctx, te); err != nil {
					return err
				}
				app.TenantID, live.TenantID, gone.TenantID = te.ID, te.ID, te.ID
				for _, u := range []*gatehouse.User{live, gone} {
					if err := tx.CreateUser(ctx, u); err != nil {
						return err
					}
				}
				if err := tx.CreateApp(ctx, app); err != nil {
					return err
				}
				return tx.DeleteUser(ctx, te.ID, gone.ID)
			}))
			must(t, s.View(ctx, func(tx gatehouse.Tx) (err error) {
				app, err = tx.GetAppByClientID(ctx, te.ID, "wiki")
				return err
			}))
			now := time.Now()
			code := func(name string, userID string) []byte {
				hash := []byte("code-" + name)
				must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
					return tx.CreateOPAuthRequest(ctx, &gatehouse.OPAuthRequest{ID: gatehouse.NewID("oar"), TenantID: te.ID, ClientID: "wiki",
						Request: []byte(`{}`), UserID: userID, AuthTime: now, SessionID: "sid", Done: true, CodeHash: hash, ExpiresAt: now.Add(time.Minute)})
				}))
				return hash
			}
			spend := func(hash []byte, appUpdated time.Time) (row *gatehouse.OPAuthRequest, u, want *gatehouse.User, err error) {
				err = s.Update(ctx, func(tx gatehouse.Tx) error {
					var err error
					if row, u, err = tx.(spender).SpendOPAuthCodeOfAppWithUser(ctx, te.ID, hash, now, "wiki", app.ID, appUpdated); err != nil || row == nil {
						return err
					}
					if want, err = tx.(spender).GetUserWithoutGroups(ctx, te.ID, row.UserID); gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
						want, err = nil, nil
					}
					return err
				})
				return row, u, want, err
			}
			for _, tc := range []struct {
				name       string
				user       string
				appUpdated time.Time
				spendTwice bool
				wantSpent  bool
				wantUser   bool
			}{
				{name: "live user", user: live.ID, appUpdated: app.UpdatedAt, wantSpent: true, wantUser: true},
				{name: "deleted user", user: gone.ID, appUpdated: app.UpdatedAt, wantSpent: true},
				{name: "unknown user", user: "usr_none", appUpdated: app.UpdatedAt, wantSpent: true},
				{name: "app changed", user: live.ID, appUpdated: app.UpdatedAt.Add(time.Second)},
				{name: "code spent", user: live.ID, appUpdated: app.UpdatedAt, spendTwice: true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					hash := code(tc.name, tc.user)
					if tc.spendTwice {
						if row, _, _, err := spend(hash, tc.appUpdated); err != nil || row == nil {
							t.Fatalf("first spend: %v %v", row, err)
						}
					}
					row, u, want, err := spend(hash, tc.appUpdated)
					if !tc.wantSpent {
						if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) || row != nil {
							t.Fatalf("spent: %v, %v", row, err)
						}
						return
					}
					if err != nil || row == nil || row.UserID != tc.user || row.CodeUsedAt == nil {
						t.Fatalf("not spent: %+v, %v", row, err)
					}
					if !tc.wantUser {
						if u != nil {
							t.Fatalf("user %+v, want none", u)
						}
						return
					}
					if u == nil || want == nil || u.ID != live.ID || u.Email != want.Email || u.Username != want.Username ||
						u.GivenName != want.GivenName || u.Version != want.Version || !u.CreatedAt.Equal(want.CreatedAt) || u.Groups != nil {
						t.Fatalf("user %+v, want %+v", u, want)
					}
				})
			}
		})
	}
}
