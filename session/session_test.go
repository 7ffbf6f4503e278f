package session

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

type safeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *safeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *safeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }
func (c *safeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

type fixture struct {
	t      *testing.T
	ctx    context.Context
	store  gatehouse.Store
	clock  *safeClock
	m      *Manager
	tenant *gatehouse.Tenant
	user   *gatehouse.User
}

func newFixture(t *testing.T, engine string) *fixture {
	ctx := context.Background()
	clk := &safeClock{t: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlstore.Open(ctx, testdb.URL(t, engine), sqlstore.Options{Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := New(Config{Store: st, Keyring: testKeyring(t, 3), PublicURL: "https://sso.example.com", Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, store: st, clock: clk, m: m}
	f.tenant, f.user = f.newTenant("acme", 0, 0)
	return f
}

func (f *fixture) newTenant(slug string, idle, absolute time.Duration) (*gatehouse.Tenant, *gatehouse.User) {
	te := &gatehouse.Tenant{Slug: slug, Name: slug, SessionIdle: idle, SessionAbsolute: absolute}
	u := &gatehouse.User{Email: "ana@" + slug + ".com", Username: "ana", Status: gatehouse.StatusActive, Source: gatehouse.SourceAdmin}
	f.update(func(tx gatehouse.Tx) error {
		if err := tx.CreateTenant(f.ctx, te); err != nil {
			return err
		}
		u.TenantID = te.ID
		return tx.CreateUser(f.ctx, u)
	})
	return te, u
}

func (f *fixture) update(fn func(tx gatehouse.Tx) error) {
	f.t.Helper()
	if err := f.store.Update(f.ctx, fn); err != nil {
		f.t.Fatal(err)
	}
}

// start signs in and returns a request carrying the session cookie.
func (f *fixture) start(te *gatehouse.Tenant, u *gatehouse.User) (*http.Request, *gatehouse.Session) {
	f.t.Helper()
	rec := httptest.NewRecorder()
	s, err := f.m.Start(f.ctx, rec, te, u, "con_x", "idx-1")
	if err != nil {
		f.t.Fatal(err)
	}
	cs := rec.Result().Cookies()
	if len(cs) != 1 || cs[0].Name != CookieName || !cs[0].HttpOnly || !cs[0].Secure || cs[0].SameSite != http.SameSiteLaxMode || cs[0].Path != "/" {
		f.t.Fatalf("session cookie %+v", cs)
	}
	if s.ID == cs[0].Value || s.ID == "" {
		f.t.Fatal("the store must keep the token's digest, not the token")
	}
	r := httptest.NewRequest("GET", "/t/acme/", nil)
	r.AddCookie(&http.Cookie{Name: CookieName, Value: cs[0].Value})
	return r, s
}

func (f *fixture) stored(id string) (*gatehouse.Session, error) {
	var s *gatehouse.Session
	err := f.store.View(f.ctx, func(tx gatehouse.Tx) (err error) {
		s, err = tx.GetSession(f.ctx, id)
		return err
	})
	return s, err
}

func TestSessions(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			f := newFixture(t, engine)
			noSession := func(t *testing.T, r *http.Request, tenantID string) {
				t.Helper()
				if _, _, err := f.m.Current(f.ctx, r, tenantID); err != ErrNoSession {
					t.Fatalf("want ErrNoSession, have %v", err)
				}
			}

			t.Run("current and touch economy", func(t *testing.T) {
				r, s := f.start(f.tenant, f.user)
				got, u, err := f.m.Current(f.ctx, r, f.tenant.ID)
				if err != nil || got.ID != s.ID || u.ID != f.user.ID || got.SessionIndex != "idx-1" {
					t.Fatalf("%+v %+v %v", got, u, err)
				}
				f.clock.Advance(30 * time.Second)
				if _, _, err := f.m.Current(f.ctx, r, f.tenant.ID); err != nil {
					t.Fatal(err)
				}
				st, _ := f.stored(s.ID)
				if !st.LastSeenAt.Equal(s.LastSeenAt) {
					t.Error("touched within the touch interval")
				}
				f.clock.Advance(31 * time.Second)
				if _, _, err := f.m.Current(f.ctx, r, f.tenant.ID); err != nil {
					t.Fatal(err)
				}
				st, _ = f.stored(s.ID)
				if !st.LastSeenAt.Equal(f.clock.Now()) || !st.IdleExpiry.Equal(f.clock.Now().Add(DefaultIdle)) {
					t.Errorf("not touched: %+v", st)
				}
			})

			t.Run("idle expiry", func(t *testing.T) {
				r, _ := f.start(f.tenant, f.user)
				f.clock.Advance(DefaultIdle - time.Second)
				if _, _, err := f.m.Current(f.ctx, r, f.tenant.ID); err != nil {
					t.Fatal(err)
				}
				f.clock.Advance(DefaultIdle - time.Second) // extended by the touch
				if _, _, err := f.m.Current(f.ctx, r, f.tenant.ID); err != nil {
					t.Fatal(err)
				}
				f.clock.Advance(DefaultIdle)
				noSession(t, r, f.tenant.ID)
			})

			t.Run("absolute expiry", func(t *testing.T) {
				r, _ := f.start(f.tenant, f.user)
				for range 23 {
					f.clock.Advance(time.Hour)
					if _, _, err := f.m.Current(f.ctx, r, f.tenant.ID); err != nil {
						t.Fatal(err)
					}
				}
				f.clock.Advance(time.Hour)
				noSession(t, r, f.tenant.ID)
			})

			t.Run("per-tenant lifetimes", func(t *testing.T) {
				te, u := f.newTenant("short", 10*time.Minute, time.Hour)
				r, s := f.start(te, u)
				if !s.IdleExpiry.Equal(f.clock.Now().Add(10*time.Minute)) || !s.ExpiresAt.Equal(f.clock.Now().Add(time.Hour)) {
					t.Fatalf("%+v", s)
				}
				f.clock.Advance(11 * time.Minute)
				noSession(t, r, te.ID)
			})

			t.Run("another tenant's session", func(t *testing.T) {
				te, _ := f.newTenant("other", 0, 0)
				r, _ := f.start(f.tenant, f.user)
				noSession(t, r, te.ID)
			})

			t.Run("deactivated user ends at once", func(t *testing.T) {
				te, u := f.newTenant("deact", 0, 0)
				r, s := f.start(te, u)
				u.Status = gatehouse.StatusDeactivated
				f.update(func(tx gatehouse.Tx) error { return tx.UpdateUser(f.ctx, u) })
				noSession(t, r, te.ID)
				if _, err := f.stored(s.ID); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("session kept: %v", err)
				}
			})

			t.Run("end", func(t *testing.T) {
				r, s := f.start(f.tenant, f.user)
				rec := httptest.NewRecorder()
				if err := f.m.End(f.ctx, rec, r); err != nil {
					t.Fatal(err)
				}
				if c := rec.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
					t.Errorf("cookie not cleared: %+v", c)
				}
				if _, err := f.stored(s.ID); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("session kept: %v", err)
				}
				noSession(t, r, f.tenant.ID)
				// Ending twice is fine.
				if err := f.m.End(f.ctx, httptest.NewRecorder(), r); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("replace ends the previous session", func(t *testing.T) {
				r, old := f.start(f.tenant, f.user)
				te, u := f.newTenant("next", 0, 0)
				rec := httptest.NewRecorder()
				s, err := f.m.Replace(f.ctx, rec, r, te, u, "con_y", "")
				if err != nil || s.ID == old.ID {
					t.Fatalf("%+v %v", s, err)
				}
				if _, err := f.stored(old.ID); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("previous session kept: %v", err)
				}
				if c := rec.Result().Cookies(); len(c) != 1 || c[0].Name != CookieName {
					t.Errorf("cookies %+v", c)
				}
				// With no previous session, or one already gone, it just starts.
				if _, err := f.m.Replace(f.ctx, httptest.NewRecorder(), r, te, u, "con_y", ""); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("no or forged cookie", func(t *testing.T) {
				noSession(t, httptest.NewRequest("GET", "/", nil), f.tenant.ID)
				for _, v := range []string{"x", tokenPrefix + "forged", tokenPrefix + string(make([]byte, 200))} {
					r := httptest.NewRequest("GET", "/", nil)
					r.AddCookie(&http.Cookie{Name: CookieName, Value: v})
					noSession(t, r, f.tenant.ID)
				}
			})
		})
	}
}
