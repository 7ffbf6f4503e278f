package api

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// TestBadInput: every malformed request gets a 4xx with its code (and the
// field at fault), and nothing is written.
func TestBadInput(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		tid := e.tenant("acme", "acme.com")
		e.must(201, "POST", "/api/v1/tenants/acme/groups", rootToken, map[string]any{"name": "Everyone"})
		uid := e.must(201, "POST", "/api/v1/tenants/acme/users", rootToken, map[string]any{"email": "ana@acme.com"})["id"].(string)
		users := "/api/v1/tenants/acme/users"
		conns := "/api/v1/tenants/acme/connections"
		apps := "/api/v1/tenants/acme/apps"
		big := `{"email":"` + strings.Repeat("a", 1<<20) + `@acme.com"}`
		for _, tc := range []struct {
			name, method, path string
			body               any
			status             int
			code, field        string
		}{
			{"malformed JSON", "POST", users, `{"email":`, 400, "invalid", ""},
			{"not JSON", "POST", users, `email=a@b.c`, 400, "invalid", ""},
			{"empty body", "POST", users, ``, 400, "invalid", ""},
			{"trailing data", "POST", users, `{"email":"b@acme.com"} {}`, 400, "invalid", ""},
			{"array body", "POST", users, `[]`, 400, "invalid", ""},
			{"unknown field", "POST", users, `{"email":"b@acme.com","emial":"x"}`, 400, "invalid", "emial"},
			{"field in another case", "POST", users, `{"EMAIL":"b@acme.com"}`, 400, "invalid", "EMAIL"},
			{"nested field in another case", "POST", conns, `{"type":"apitest","name":"x","url":"https://i.example","jit":{"Enabled":false}}`, 400, "invalid", "jit.Enabled"},
			{"wrong type", "POST", users, `{"email":42}`, 400, "invalid", "email"},
			{"wrong type bool", "PATCH", users + "/" + uid, `{"active":"no"}`, 400, "invalid", "active"},
			{"oversized body", "POST", users, big, 413, "invalid", ""},
			{"invalid email", "POST", users, `{"email":"not an email"}`, 400, "invalid", "email"},
			{"missing email", "POST", users, `{"username":"bo"}`, 400, "invalid", "email"},
			{"bad status", "PATCH", users + "/" + uid, `{"status":"gone"}`, 400, "invalid", "status"},
			{"status and active disagree", "PATCH", users + "/" + uid, `{"status":"active","active":false}`, 400, "invalid", "active"},
			{"bad limit", "GET", users + "?limit=abc", nil, 400, "invalid", "limit"},
			{"bad status filter", "GET", users + "?status=zombie", nil, 400, "invalid", "status"},
			{"unknown user", "PATCH", users + "/usr_nope", `{"display_name":"x"}`, 404, "not_found", ""},
			{"bad slug", "POST", "/api/v1/tenants", `{"slug":"Not A Slug"}`, 400, "invalid", "slug"},
			{"bad domain", "POST", "/api/v1/tenants", `{"slug":"ok","domains":["not a domain"]}`, 400, "invalid", "domains"},
			{"ip domain", "POST", "/api/v1/tenants", `{"slug":"ok","domains":["10.0.0.1"]}`, 400, "invalid", "domains"},
			{"tenant unknown field", "PATCH", "/api/v1/tenants/acme", `{"id":"ten_x"}`, 400, "invalid", "id"},
			{"unknown connection type", "POST", conns, `{"type":"smoke-signals","name":"x"}`, 400, "invalid", "type"},
			{"missing connection type", "POST", conns, `{"name":"x"}`, 400, "invalid", "type"},
			{"unknown protocol field", "POST", conns, `{"type":"apitest","name":"x","url":"https://i.example","bogus":1}`, 400, "invalid", "bogus"},
			{"unknown jit field", "POST", conns, `{"type":"apitest","name":"x","url":"https://i.example","jit":{"enabeld":true}}`, 400, "invalid", "jit.enabeld"},
			{"jit wrong type", "POST", conns, `{"type":"apitest","name":"x","url":"https://i.example","jit":{"enabled":"yes"}}`, 400, "invalid", "jit.enabled"},
			{"unknown default group", "POST", conns, `{"type":"apitest","name":"x","url":"https://i.example","jit":{"default_groups":["Nobody"]}}`, 400, "invalid", "jit.default_groups"},
			{"bad allowed domain", "POST", conns, `{"type":"apitest","name":"x","url":"https://i.example","jit":{"allowed_domains":["@@"]}}`, 400, "invalid", "jit.allowed_domains"},
			{"unknown mapping field", "POST", conns, `{"type":"apitest","name":"x","url":"https://i.example","mapping":{"mail":"x"}}`, 400, "invalid", "mapping.mail"},
			{"bad mapping expression", "POST", conns, `{"type":"apitest","name":"x","url":"https://i.example","mapping":{"expressions":{"email":"claims.("}}}`, 400, "invalid", "mapping.expressions.email"},
			{"enabled null", "POST", conns, `{"type":"apitest","name":"x","url":"https://i.example","enabled":null}`, 400, "invalid", "enabled"},
			{"protocol validation", "POST", conns, `{"type":"apitest","name":"x"}`, 400, "invalid", "url"},
			{"relative redirect", "POST", apps, `{"name":"a","redirect_uris":["/cb"]}`, 400, "invalid", "redirect_uris"},
			{"fragment redirect", "POST", apps, `{"name":"a","redirect_uris":["https://a.example/cb#x"]}`, 400, "invalid", "redirect_uris"},
			{"javascript redirect", "POST", apps, `{"name":"a","redirect_uris":["javascript:alert(1)"]}`, 400, "invalid", "redirect_uris"},
			{"bad alg", "POST", apps, `{"name":"a","redirect_uris":["https://a.example/cb"],"id_token_signing_alg":"HS256"}`, 400, "invalid", "id_token_signing_alg"},
			{"unknown app group", "POST", apps, `{"name":"a","redirect_uris":["https://a.example/cb"],"allowed_groups":["Nobody"]}`, 400, "invalid", "allowed_groups"},
			{"public client credentials", "POST", apps, `{"name":"a","public":true,"redirect_uris":["https://a.example/cb"],"grant_types":["client_credentials"]}`, 400, "invalid", "grant_types"},
			{"no redirect", "POST", apps, `{"name":"a"}`, 400, "invalid", "redirect_uris"},
			{"bad token role", "POST", "/api/v1/tenants/acme/api-tokens", `{"name":"a","role":"root"}`, 400, "invalid", "role"},
			{"bad audit time", "GET", "/api/v1/tenants/acme/audit?since=yesterday", nil, 400, "invalid", "since"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a0, u0 := e.counts(tid)
				r := e.do(tc.method, tc.path, rootToken, tc.body)
				code, field := r.errCode()
				if r.Status != tc.status || code != tc.code || field != tc.field {
					t.Fatalf("%d %s %s, want %d %s %s: %s", r.Status, code, field, tc.status, tc.code, tc.field, r.Body)
				}
				if a1, u1 := e.counts(tid); a1 != a0 || u1 != u0 {
					t.Fatalf("a refused request wrote: audit %d→%d users %d→%d", a0, a1, u0, u1)
				}
			})
		}
	})
}

// failingStore answers every transaction with err.
type failingStore struct {
	gatehouse.Store
	err error
}

func (f failingStore) Update(context.Context, func(gatehouse.Tx) error) error { return f.err }
func (f failingStore) View(context.Context, func(gatehouse.Tx) error) error   { return f.err }

func TestStoreFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"database down", &gatehouse.Error{Code: gatehouse.EUNAVAILABLE, Message: "The database is not available; try again shortly.", Err: errors.New("dial tcp: refused")}, 503, "unavailable"},
		{"unexpected", errors.New("pq: secret table name leaked"), 500, "internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvWithStore(t, failingStore{err: tc.err}, nil)
			// An API token needs the store to authenticate.
			r := e.do("GET", "/api/v1/whoami", "gh_api_x", nil)
			if code, _ := r.errCode(); r.Status != tc.status || code != tc.code {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			r = e.do("GET", "/api/v1/tenants/acme/users", rootToken, nil)
			if code, _ := r.errCode(); r.Status != tc.status || code != tc.code {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			if strings.Contains(string(r.Body), "leaked") || strings.Contains(string(r.Body), "dial") {
				t.Fatalf("private cause shown: %s", r.Body)
			}
			if tc.code == "internal" && (!strings.Contains(string(r.Body), "Internal error.") || !strings.Contains(e.logs.String(), "req-test-0001")) {
				t.Fatalf("internal error: body %s log %s", r.Body, e.logs)
			}
		})
	}
}

// TestDatabaseUnavailable cuts a real PostgreSQL database off under the
// API: requests answer 503 unavailable.
func TestDatabaseUnavailable(t *testing.T) {
	url := testdb.Postgres(t)
	st, err := sqlstore.Open(context.Background(), url, sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := newEnvWithStore(t, st, st)
	e.tenant("acme")
	admin, err := sql.Open("pgx", testdb.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := url[strings.LastIndex(url, "/")+1:]
	if i := strings.IndexByte(name, '?'); i >= 0 {
		name = name[:i]
	}
	for _, q := range []string{"ALTER DATABASE " + name + " ALLOW_CONNECTIONS false",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + name + "'"} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	r := e.do("GET", "/api/v1/tenants/acme", rootToken, nil)
	if code, _ := r.errCode(); r.Status != 503 || code != "unavailable" {
		t.Fatalf("database cut off: %d %s", r.Status, r.Body)
	}
}

// TestClosedDatabase uses the real store after it closed.
func TestClosedDatabase(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.tenant("acme")
	e.store.Close()
	r := e.do("GET", "/api/v1/tenants/acme", rootToken, nil)
	if r.Status < 500 {
		t.Fatalf("closed database: %d %s", r.Status, r.Body)
	}
	t.Logf("closed database answers %d %s", r.Status, r.Body)
}

// TestConcurrentCreates: simultaneous creates of one email or group name
// give one 201 and 409s, never a 500 or a duplicate.
func TestConcurrentCreates(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		tid := e.tenant("acme")
		const n = 16
		for _, tc := range []struct{ path, body string }{
			{"/api/v1/tenants/acme/users", `{"email":"Same@acme.com"}`},
			{"/api/v1/tenants/acme/groups", `{"name":"Same"}`},
		} {
			statuses := make(chan int, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body := tc.body
					if i%2 == 1 { // the same key in another case
						body = strings.Replace(body, "Same", "SAME", 1)
					}
					statuses <- e.do("POST", tc.path, rootToken, body).Status
				}()
			}
			wg.Wait()
			close(statuses)
			count := map[int]int{}
			for s := range statuses {
				count[s]++
			}
			if count[201] != 1 || count[409] != n-1 {
				t.Errorf("%s: statuses %v", tc.path, count)
			}
		}
		if _, users := e.counts(tid); users != 1 {
			t.Fatalf("%d users", users)
		}
	})
}
