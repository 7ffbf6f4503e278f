//go:build faults

package e2e

// Database faults against the real binary (make faults): PostgreSQL absent
// at start, PostgreSQL stopped in the middle of a load, and kill -9 of
// Gatehouse on SQLite in the middle of a burst of writes.

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// TestFaultDatabaseDownAtStart: Gatehouse starts while PostgreSQL is down,
// says so on every surface in the caller's format, and becomes ready by
// itself once PostgreSQL starts.
func TestFaultDatabaseDownAtStart(t *testing.T) {
	pg := newPGCluster(t) // initialised, not started
	gh := startGatehouse(t, t.TempDir(), map[string]string{"GATEHOUSE_DATABASE_URL": pg.URL()})

	if code, _ := httpStatus(gh.URL + "/healthz"); code != 200 {
		t.Fatalf("/healthz with the database down: %d, want 200 (the process is alive)", code)
	}
	if code, body := httpGetBody(gh.URL + "/readyz"); code != 503 {
		t.Fatalf("/readyz with the database down: %d %s, want 503", code, body)
	}
	code, body, _ := call(gh.URL, faultAdminToken, "GET", "/api/v1/tenants", "", nil, nil)
	if code != 503 || !strings.Contains(body, `"code":"unavailable"`) {
		t.Fatalf("API with the database down: %d %s", code, body)
	}
	code, body, _ = call(gh.URL, "x", "GET", "/scim/v2/Users", "", nil, nil)
	if code != 503 || !strings.Contains(body, `"status":"503"`) {
		t.Fatalf("SCIM with the database down: %d %s", code, body)
	}
	code, body = httpGetBody(gh.URL + "/t/acme/login")
	if code != 503 || !strings.Contains(body, "<h1>") || !strings.Contains(strings.ToLower(body), "try again") {
		t.Fatalf("login page with the database down: %d %s", code, body)
	}

	started := time.Now()
	pg.start()
	gh.waitReady(30 * time.Second)
	t.Logf("ready %.1fs after PostgreSQL started (retry backoff caps at 5 s)", time.Since(started).Seconds())
	if code := adminAPI(t, gh.URL, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme"}, nil); code != 201 {
		t.Fatalf("API after recovery: %d", code)
	}
}

// outcome is one request of a load run.
type outcome struct {
	kind   string // "login" or "scim"
	key    string // the email signed in, or the SCIM id created
	status int
	err    error
	body   string
	at     time.Time
}

// runLoad sends JIT logins (each a new user) and SCIM creates from workers
// until stop closes, and returns every outcome.
func runLoad(lt *loadTenant, workers int, stop <-chan struct{}, next *atomic.Int64) []outcome {
	var mu sync.Mutex
	var out []outcome
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(next.Add(1))
				var o outcome
				if w%2 == 0 {
					code, body, err := lt.login(i)
					o = outcome{kind: "login", key: lt.email(i), status: code, err: err, body: body}
				} else {
					code, id, body, err := lt.scimCreateBody(fmt.Sprint("scim", i))
					o = outcome{kind: "scim", key: id, status: code, err: err}
					if code != 201 {
						o.body = body
					}
				}
				o.at = time.Now()
				if len(o.body) > 3000 {
					o.body = o.body[:3000]
				}
				mu.Lock()
				out = append(out, o)
				mu.Unlock()
				if o.err != nil || o.status >= 500 {
					time.Sleep(20 * time.Millisecond) // a client backing off
				}
			}
		}()
	}
	wg.Wait()
	return out
}

func summarize(outs []outcome) string {
	counts := map[string]int{}
	for _, o := range outs {
		k := fmt.Sprintf("%s:%d", o.kind, o.status)
		if o.err != nil {
			k = o.kind + ":transport-error"
		}
		counts[k]++
	}
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, counts[k])
	}
	return b.String()
}

// checkAcknowledged verifies that every acknowledged write (a 200 login, a
// 201 SCIM create) is in the database, and that nothing is partial: every
// just-in-time user has its identity link and its audit event, every SCIM
// user its audit event, and no audit event names a user that is not there.
func checkAcknowledged(t *testing.T, dbURL, tenantSlug string, outs []outcome) {
	t.Helper()
	ctx, cancel := withTimeout(time.Minute)
	defer cancel()
	st, err := sqlstore.Open(ctx, dbURL, sqlstore.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", dbURL, err)
	}
	defer st.Close()
	db := st.DB()
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	acked := 0
	for _, o := range outs {
		if o.err != nil {
			continue
		}
		switch {
		case o.kind == "login" && o.status == 200:
			acked++
			if n := count("SELECT count(*) FROM users WHERE email_key = $1 AND deleted_at IS NULL", strings.ToLower(o.key)); n != 1 {
				t.Errorf("acknowledged login of %s: %d users", o.key, n)
			}
		case o.kind == "scim" && o.status == 201:
			acked++
			if n := count("SELECT count(*) FROM users WHERE id = $1", o.key); n != 1 {
				t.Errorf("acknowledged SCIM create %s is missing", o.key)
			}
		}
	}
	partial := map[string]string{
		"JIT user without identity link":      "SELECT count(*) FROM users u WHERE u.source = 'jit' AND NOT EXISTS (SELECT 1 FROM federated_identities f WHERE f.user_id = u.id)",
		"JIT user without user.jit_created":   "SELECT count(*) FROM users u WHERE u.source = 'jit' AND NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.target_id = u.id AND a.action = 'user.jit_created')",
		"SCIM user without scim.user.created": "SELECT count(*) FROM users u WHERE u.source = 'scim' AND NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.target_id = u.id AND a.action = 'scim.user.created')",
		"user.jit_created without its user":   "SELECT count(*) FROM audit_events a WHERE a.action = 'user.jit_created' AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = a.target_id)",
		"scim.user.created without its user":  "SELECT count(*) FROM audit_events a WHERE a.action = 'scim.user.created' AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = a.target_id)",
		"identity link without its user":      "SELECT count(*) FROM federated_identities f WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = f.user_id)",
		"session without its user":            "SELECT count(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id)",
	}
	for what, q := range partial {
		if n := count(q); n != 0 {
			t.Errorf("partial write: %d × %s", n, what)
		}
	}
	users := count("SELECT count(*) FROM users")
	t.Logf("%d acknowledged writes, all present; %d users in the database; no partial writes", acked, users)
}

// TestFaultPostgresStopsMidLoad stops PostgreSQL (immediate: a crash, every
// connection cut) under a burst of JIT logins and SCIM writes, starts it
// again, and checks: failures are 503 with a clear message, never a hang or
// a 500; Gatehouse recovers without a restart; every acknowledged write is
// there and none is partial.
func TestFaultPostgresStopsMidLoad(t *testing.T) {
	pg := newPGCluster(t)
	pg.start()
	gh := startGatehouse(t, t.TempDir(), map[string]string{"GATEHOUSE_DATABASE_URL": pg.URL()})
	gh.waitReady(30 * time.Second)
	lt := setupLoadTenant(t, gh.URL, "acme", 4000)

	var next atomic.Int64
	stop := make(chan struct{})
	done := make(chan []outcome)
	go func() { done <- runLoad(lt, 8, stop, &next) }()
	time.Sleep(2 * time.Second)
	down := time.Now()
	pg.stop("immediate")
	time.Sleep(3 * time.Second)
	if code, _ := httpStatus(gh.URL + "/readyz"); code != 503 {
		t.Errorf("/readyz with PostgreSQL stopped: %d", code)
	}
	up := time.Now()
	pg.start()
	time.Sleep(3 * time.Second)
	close(stop)
	outs := <-done
	t.Logf("load: %s", summarize(outs))

	var during, after []outcome
	for _, o := range outs {
		switch {
		case o.at.After(down) && o.at.Before(up):
			during = append(during, o)
		case o.at.After(up.Add(time.Second)):
			after = append(after, o)
		}
	}
	failed503 := 0
	for _, o := range outs {
		if o.err != nil {
			t.Errorf("%s: transport error (the server must answer): %v", o.kind, o.err)
			continue
		}
		if o.status == 200 || o.status == 201 {
			continue
		}
		if o.status != 503 {
			t.Errorf("%s %s: status %d, want 503: %s\nserver log: %s", o.kind, o.key, o.status, o.body, gh.logFor(o.body))
			continue
		}
		failed503++
		if o.kind == "login" && !strings.Contains(strings.ToLower(o.body), "try again") {
			t.Errorf("503 login page does not say what to do: %s", o.body)
		}
	}
	if failed503 == 0 || len(during) == 0 {
		t.Errorf("no request failed while PostgreSQL was down (%d during): the fault did not bite", len(during))
	}
	// Recovery without restarting Gatehouse: a fresh round all succeeds.
	gh.waitReady(30 * time.Second)
	for i := range 20 {
		if code, body, err := lt.login(int(next.Add(1))); err != nil || code != 200 {
			t.Fatalf("login %d after recovery: %d %v %.300s", i, code, err, body)
		}
		if code, _, err := lt.scimCreate(fmt.Sprint("after", i)); err != nil || code != 201 {
			t.Fatalf("SCIM %d after recovery: %d %v", i, code, err)
		}
	}
	ok := 0
	for _, o := range after {
		if o.status == 200 || o.status == 201 {
			ok++
		}
	}
	t.Logf("while down: %d requests (%d answered 503); after restart: %d/%d succeeded", len(during), failed503, ok, len(after))
	checkAcknowledged(t, pg.URL(), "acme", outs)
}

// TestFaultKill9DuringWrites kills `gatehouse serve` (SIGKILL) on SQLite
// during a burst of JIT logins and SCIM writes, restarts it on the same
// data, and checks that every write that was acknowledged (2xx received)
// is there and none is partial.
func TestFaultKill9DuringWrites(t *testing.T) {
	for _, mode := range []string{"NORMAL", "FULL"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			gh := startGatehouse(t, dir, map[string]string{"GATEHOUSE_SQLITE_SYNCHRONOUS": mode})
			gh.waitReady(30 * time.Second)
			lt := setupLoadTenant(t, gh.URL, "acme", 4000)
			var next atomic.Int64
			var all []outcome
			for round := range 3 {
				stop := make(chan struct{})
				done := make(chan []outcome)
				go func() { done <- runLoad(lt, 8, stop, &next) }()
				time.Sleep(time.Duration(800+round*300) * time.Millisecond)
				gh.kill9()
				close(stop)
				outs := <-done
				all = append(all, outs...)
				t.Logf("round %d: %s", round, summarize(outs))
				gh.restart()
				gh.waitReady(30 * time.Second)
			}
			u, _ := url.Parse("sqlite://" + dir + "/gatehouse.db")
			checkAcknowledged(t, u.String(), "acme", all)
			// The restarted server serves the users it acknowledged.
			if code, body, err := lt.login(1); err == nil && code != 200 {
				t.Errorf("login after restarts: %d %.200s", code, body)
			}
		})
	}
}
