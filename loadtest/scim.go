package loadtest

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	_ "modernc.org/sqlite" // SQLite driver for seeding
)

// scimToken makes a SCIM token for the bench tenant.
func (e *Env) scimToken(ctx context.Context) (string, error) {
	if err := e.EnsureTenant(ctx); err != nil {
		return "", err
	}
	var t struct {
		Token string `json:"token"`
	}
	err := e.API(ctx, "POST", "/api/v1/tenants/"+e.Tenant+"/scim-tokens", map[string]any{"name": "bench " + randHex(3)}, &t)
	if err == nil && t.Token == "" {
		err = fmt.Errorf("no token in the SCIM token answer")
	}
	return t.Token, err
}

func (e *Env) scim(ctx context.Context, token, method, path string, body any, want int, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.URLs[int(e.rr.Add(1))%len(e.URLs)]+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	return doJSON(e.Client(), req, want, out)
}

// SCIMCreate: POST /scim/v2/Users, one new user per flow, as an IdP's
// initial sync sends them.
func SCIMCreate(ctx context.Context, e *Env) (Flow, error) {
	tok, err := e.scimToken(ctx)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, i int) error {
		return e.scim(ctx, tok, "POST", "/scim/v2/Users", scimUser(e.Email("scim", i), i), http.StatusCreated, nil)
	}, nil
}

// scimUser is the SCIM user the create scenarios push.
func scimUser(email string, i int) map[string]any {
	return map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName":   email,
		"externalId": "ext-" + email,
		"name":       map[string]string{"givenName": "Bench", "familyName": fmt.Sprint(i)},
		"emails":     []map[string]any{{"value": email, "type": "work", "primary": true}},
		"active":     true,
	}
}

// SCIMSync: an IdP's first push of a directory, as Okta and Entra ID do
// it: for each user, GET /scim/v2/Users?filter=userName eq "..." (which
// must find none) and then POST /scim/v2/Users, into a tenant that starts
// empty. Each lookup goes over all the users pushed so far, so a plan
// that scans the tenant instead of probing the key shows here.
func SCIMSync(ctx context.Context, e *Env) (Flow, error) {
	tok, err := e.scimToken(ctx)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, i int) error {
		email := e.Email("sync", i)
		if n, err := e.usersNamed(ctx, tok, email); err != nil || n != 0 {
			return cmp.Or(err, fmt.Errorf("filter found %d users before the push, want 0", n))
		}
		return e.scim(ctx, tok, "POST", "/scim/v2/Users", scimUser(email, i), http.StatusCreated, nil)
	}, nil
}

// SCIMFilter: GET /scim/v2/Users?filter=userName eq "..." over a tenant
// of Seed users, bulk-inserted by SQL in setup (the SCIM path would take
// minutes for a million). Each flow looks up a random seeded user and
// must find exactly one.
func SCIMFilter(seed int) Scenario {
	return func(ctx context.Context, e *Env) (Flow, error) {
		tok, err := e.scimToken(ctx)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := e.seedUsers(ctx, seed); err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		e.logf("seeded %d users by SQL in %s", seed, time.Since(t0).Round(time.Millisecond))
		return func(ctx context.Context, i int) error {
			k := rand.IntN(seed)
			n, err := e.usersNamed(ctx, tok, fmt.Sprintf("seed%d-%s@%s", k, e.RunID, e.Domain))
			if err == nil && n != 1 {
				err = fmt.Errorf("filter found %d users, want 1", n)
			}
			return err
		}, nil
	}
}

// usersNamed is the totalResults of GET /scim/v2/Users?filter=userName eq
// userName.
func (e *Env) usersNamed(ctx context.Context, tok, userName string) (int, error) {
	q := url.Values{"filter": {fmt.Sprintf(`userName eq "%s"`, userName)}}
	var out struct {
		TotalResults int `json:"totalResults"`
	}
	err := e.scim(ctx, tok, "GET", "/scim/v2/Users?"+q.Encode(), nil, 200, &out)
	return out.TotalResults, err
}

// seedUsers inserts n active SCIM users into the bench tenant with one
// INSERT ... SELECT over a generated series (a recursive CTE on SQLite,
// generate_series on PostgreSQL), in batches.
func (e *Env) seedUsers(ctx context.Context, n int) error {
	driver, dsn := "pgx", e.DatabaseURL
	if !strings.HasPrefix(dsn, "postgres") {
		driver, dsn = "sqlite", strings.TrimPrefix(dsn, "sqlite://")+"?_pragma=busy_timeout(30000)&_pragma=synchronous(OFF)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now().UnixMicro()
	email := `'seed' || n || '-` + e.RunID + `@` + e.Domain + `'`
	cols := `INSERT INTO users (id, tenant_id, email, email_key, username, username_key, display_name, given_name, family_name,
		status, external_id, source, attributes, created_at, updated_at, version) `
	sel := `SELECT 'usr_seed` + e.RunID + `_' || n, $1, ` + email + `, ` + email + `, ` + email + `, ` + email +
		`, 'Seed ' || n, 'Seed', 'User' || n, 'active', 'seed-` + e.RunID + `-' || n, 'scim', '{}', $2, $2, 1`
	const batch = 100000
	for lo := 0; lo < n; lo += batch {
		hi := min(n, lo+batch) - 1
		var q string
		if driver == "pgx" {
			q = cols + sel + fmt.Sprintf(` FROM generate_series(%d, %d) AS s(n)`, lo, hi)
		} else {
			q = fmt.Sprintf(`WITH RECURSIVE s(n) AS (SELECT %d UNION ALL SELECT n + 1 FROM s WHERE n < %d) `, lo, hi) + cols + sel + ` FROM s`
		}
		if _, err := db.ExecContext(ctx, q, e.tenantID, now); err != nil {
			return err
		}
	}
	if driver == "pgx" {
		_, err = db.ExecContext(ctx, `ANALYZE users`)
	} else {
		// The statistics Gatehouse keeps: sqlite_stat1, no STAT4 samples
		// (sqlstore drops them; they make SQLite re-prepare lookups).
		_, err = db.ExecContext(ctx, `ANALYZE; DELETE FROM sqlite_stat4; ANALYZE sqlite_schema`)
	}
	return err
}
