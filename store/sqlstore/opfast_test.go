package sqlstore_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// TestOPFastPaths compares the OpenID provider's fast paths with the
// Store and Tx methods they stand for, on both engines.
func TestOPFastPaths(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			acme := &gatehouse.Tenant{Slug: "Acme", Name: "Acme", SupportContact: "it@acme.test", Domains: []string{"acme.test"}}
			u := &gatehouse.User{Email: "ana@acme.test", Username: "ana", DisplayName: "Ana", Status: gatehouse.StatusActive, Source: gatehouse.SourceAdmin}
			must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
				if err := tx.CreateTenant(ctx, acme); err != nil {
					return err
				}
				u.TenantID = acme.ID
				if err := tx.CreateUser(ctx, u); err != nil {
					return err
				}
				g := &gatehouse.Group{TenantID: acme.ID, Name: "Staff", Source: gatehouse.SourceAdmin}
				if err := tx.CreateGroup(ctx, g); err != nil {
					return err
				}
				return tx.AddMembership(ctx, &gatehouse.Membership{TenantID: acme.ID, GroupID: g.ID, UserID: u.ID, ManagedBy: gatehouse.ManagedByAdmin})
			}))

			// LookupTenantRef is GetTenantBySlug without the domains.
			for _, slug := range []string{"acme", "ACME", "nobody"} {
				var want *gatehouse.Tenant
				wantErr := s.View(ctx, func(tx gatehouse.Tx) (err error) { want, err = tx.GetTenantBySlug(ctx, slug); return err })
				got, err := s.LookupTenantRef(ctx, slug)
				if gatehouse.ErrorCode(err) != gatehouse.ErrorCode(wantErr) {
					t.Fatalf("LookupTenantRef(%q): %v, GetTenantBySlug: %v", slug, err, wantErr)
				}
				if want != nil {
					want.Domains = nil
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("LookupTenantRef(%q) = %+v, want %+v", slug, got, want)
					}
				}
			}

			// LookupAppByClientID is GetAppByClientID.
			app := &gatehouse.App{TenantID: acme.ID, Name: "Wiki", ClientID: "cli_1", RedirectURIs: []string{"https://x/cb"}, AllowedGroups: []string{"Staff"}}
			must(t, s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateApp(ctx, app) }))
			for _, tc := range []struct{ tenant, client string }{{acme.ID, "cli_1"}, {acme.ID, "nobody"}, {"other", "cli_1"}} {
				var want *gatehouse.App
				wantErr := s.View(ctx, func(tx gatehouse.Tx) (err error) {
					want, err = tx.GetAppByClientID(ctx, tc.tenant, tc.client)
					return err
				})
				got, err := s.LookupAppByClientID(ctx, tc.tenant, tc.client)
				if gatehouse.ErrorCode(err) != gatehouse.ErrorCode(wantErr) || !reflect.DeepEqual(got, want) {
					t.Fatalf("LookupAppByClientID(%s, %s) = %+v %v, want %+v %v", tc.tenant, tc.client, got, err, want, wantErr)
				}
			}

			type fast interface {
				GetUserWithoutGroups(ctx context.Context, tenantID, id string) (*gatehouse.User, error)
				SpendOPAuthCode(ctx context.Context, tenantID string, codeHash []byte, at time.Time) (*gatehouse.OPAuthRequest, error)
				SpendOPRefreshToken(ctx context.Context, tenantID string, hash []byte, clientID string, at time.Time) (*gatehouse.OPRefreshToken, error)
			}
			// GetUserWithoutGroups is GetUser without the groups.
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				want, err := tx.GetUser(ctx, acme.ID, u.ID)
				if err != nil || len(want.Groups) != 1 {
					t.Fatalf("GetUser: %v %v", want, err)
				}
				got, err := tx.(fast).GetUserWithoutGroups(ctx, acme.ID, u.ID)
				if err != nil {
					return err
				}
				want.Groups = nil
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("GetUserWithoutGroups = %+v, want %+v", got, want)
				}
				if _, err := tx.(fast).GetUserWithoutGroups(ctx, "other", u.ID); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Fatalf("another tenant's user: %v", err)
				}
				return nil
			}))
			must(t, s.Update(ctx, func(tx gatehouse.Tx) error { return tx.DeleteUser(ctx, acme.ID, u.ID) }))
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				if _, err := tx.(fast).GetUserWithoutGroups(ctx, acme.ID, u.ID); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Fatalf("deleted user: %v", err)
				}
				return nil
			}))

			// SpendOPAuthCode answers as UseOPAuthCode: the request when
			// unspent, ECONFLICT with it when spent, ENOTFOUND otherwise.
			now := time.Now().UTC().Truncate(time.Microsecond)
			codes := map[bool][]byte{}
			for _, spend := range []bool{true, false} {
				ar := &gatehouse.OPAuthRequest{ID: gatehouse.NewID("oar"), TenantID: acme.ID, ClientID: "app1",
					Request: []byte(`{}`), UserID: "usr_1", SessionID: "sid", Done: true, AuthTime: now, ExpiresAt: now.Add(time.Hour)}
				codes[spend] = []byte(ar.ID)
				must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
					if err := tx.CreateOPAuthRequest(ctx, ar); err != nil {
						return err
					}
					return tx.SetOPAuthCode(ctx, acme.ID, ar.ID, codes[spend], now.Add(time.Minute))
				}))
			}
			type result struct {
				row  *gatehouse.OPAuthRequest
				code string
			}
			use := func(spend bool, code []byte, tenant string) (got [2]result) {
				for i := range got {
					must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
						var r *gatehouse.OPAuthRequest
						var err error
						if spend {
							r, err = tx.(fast).SpendOPAuthCode(ctx, tenant, code, now)
						} else {
							r, err = tx.UseOPAuthCode(ctx, tenant, code, now)
						}
						got[i] = result{r, gatehouse.ErrorCode(err)}
						return nil
					}))
				}
				return got
			}
			// LookupOPAuthRequest is GetOPAuthRequest.
			for _, tc := range []struct{ tenant, id string }{{acme.ID, string(codes[true])}, {"other", string(codes[true])}, {acme.ID, "oar_none"}} {
				var want *gatehouse.OPAuthRequest
				wantErr := s.View(ctx, func(tx gatehouse.Tx) (err error) { want, err = tx.GetOPAuthRequest(ctx, tc.tenant, tc.id); return err })
				got, err := s.LookupOPAuthRequest(ctx, tc.tenant, tc.id)
				if gatehouse.ErrorCode(err) != gatehouse.ErrorCode(wantErr) || !reflect.DeepEqual(got, want) {
					t.Fatalf("LookupOPAuthRequest(%s, %s) = %+v %v, want %+v %v", tc.tenant, tc.id, got, err, want, wantErr)
				}
			}
			ours, theirs := use(true, codes[true], acme.ID), use(false, codes[false], acme.ID)
			for i := range ours {
				if ours[i].code != theirs[i].code || (ours[i].row == nil) != (theirs[i].row == nil) {
					t.Fatalf("use %d: SpendOPAuthCode %+v, UseOPAuthCode %+v", i, ours[i], theirs[i])
				}
				if r := ours[i].row; r != nil {
					o := *theirs[i].row
					o.ID, o.CodeHash, o.CreatedAt = r.ID, r.CodeHash, r.CreatedAt // the two requests differ only there
					if !reflect.DeepEqual(*r, o) || r.CodeUsedAt == nil || !r.CodeUsedAt.Equal(now) {
						t.Fatalf("use %d: SpendOPAuthCode %+v, UseOPAuthCode %+v", i, *r, o)
					}
				}
			}
			if ours[0].code != "" || ours[1].code != gatehouse.ECONFLICT {
				t.Fatalf("first use %q, second %q", ours[0].code, ours[1].code)
			}
			for _, tc := range []struct {
				code   []byte
				tenant string
			}{{[]byte("nothing"), acme.ID}, {nil, acme.ID}, {codes[true], "other"}} {
				if got := use(true, tc.code, tc.tenant); got[0].code != gatehouse.ENOTFOUND || got[0].row != nil {
					t.Fatalf("code %q tenant %s: %+v", tc.code, tc.tenant, got[0])
				}
			}

			// SpendOPRefreshToken spends only a live token of the client,
			// once; otherwise it returns the token as it is (ECONFLICT).
			rts := map[string]*gatehouse.OPRefreshToken{}
			for _, name := range []string{"live", "expired", "revoked"} {
				rt := &gatehouse.OPRefreshToken{ID: gatehouse.NewID("ort"), TenantID: acme.ID, Hash: []byte("h-" + name), ClientID: "app1",
					UserID: "usr_1", GrantID: "oar_1", Scopes: []string{"openid"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
				if name == "expired" {
					rt.ExpiresAt = now
				}
				rts[name] = rt
				must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
					if err := tx.CreateOPRefreshToken(ctx, rt); err != nil {
						return err
					}
					if name == "revoked" {
						_, err := tx.RevokeOPTokens(ctx, acme.ID, gatehouse.OPTokenFilter{TokenID: rt.ID}, now)
						return err
					}
					return nil
				}))
			}
			spend := func(hash, client string) (rt *gatehouse.OPRefreshToken, err error) {
				must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
					rt, err = tx.(fast).SpendOPRefreshToken(ctx, acme.ID, []byte(hash), client, now)
					return nil
				}))
				return rt, err
			}
			for _, tc := range []struct {
				hash, client string
				code         string
				used         bool
			}{
				{"h-live", "app2", gatehouse.ECONFLICT, false}, // another client's: not spent
				{"h-live", "app1", "", true},
				{"h-live", "app1", gatehouse.ECONFLICT, true}, // spent before
				{"h-expired", "app1", gatehouse.ECONFLICT, false},
				{"h-revoked", "app1", gatehouse.ECONFLICT, false},
				{"h-nothing", "app1", gatehouse.ENOTFOUND, false},
			} {
				rt, err := spend(tc.hash, tc.client)
				if gatehouse.ErrorCode(err) != tc.code || (tc.code != gatehouse.ENOTFOUND && (rt == nil || string(rt.Hash) != tc.hash || (rt.UsedAt != nil) != tc.used)) {
					t.Fatalf("spend %s by %s: %+v %v", tc.hash, tc.client, rt, err)
				}
			}
			if rt, err := spend("h-revoked", "app1"); err == nil || rt.RevokedAt == nil {
				t.Fatalf("revoked token: %+v %v", rt, err)
			}
		})
	}
}
