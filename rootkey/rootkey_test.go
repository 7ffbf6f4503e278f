package rootkey_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/rootkey"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/store/migrations"
)

// TestEveryBinaryColumnIsKnown: every binary column of the schema is either
// sealed (re-wrapped by rotation) or a digest. A new secret column must be
// added to rootkey.Columns, or rotation would leave it under the old key.
func TestEveryBinaryColumnIsKnown(t *testing.T) {
	known := map[string]bool{}
	for _, c := range append(append([]rootkey.Column(nil), rootkey.Columns...), rootkey.DigestColumns...) {
		known[c.Table+"."+c.Sealed] = true
	}
	table := regexp.MustCompile(`(?i)^\s*CREATE TABLE\s+(?:IF NOT EXISTS\s+)?(\w+)`)
	alter := regexp.MustCompile(`(?i)^\s*ALTER TABLE\s+(\w+)\s+ADD\s+(?:COLUMN\s+)?(\w+)\s+BYTEA`)
	column := regexp.MustCompile(`(?i)^\s*(\w+)\s+BYTEA\b`)
	files, err := fs.Glob(migrations.FS, "postgres/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v", err)
	}
	found := 0
	for _, f := range files {
		data, _ := fs.ReadFile(migrations.FS, f)
		cur := ""
		for _, line := range strings.Split(string(data), "\n") {
			if m := table.FindStringSubmatch(line); m != nil {
				cur = strings.ToLower(m[1])
				continue
			}
			name := ""
			if m := alter.FindStringSubmatch(line); m != nil {
				name = strings.ToLower(m[1] + "." + m[2])
			} else if m := column.FindStringSubmatch(line); m != nil && cur != "" {
				name = cur + "." + strings.ToLower(m[1])
			}
			if name == "" {
				continue
			}
			found++
			if !known[name] {
				t.Errorf("%s: binary column %s is neither in rootkey.Columns (sealed) nor rootkey.DigestColumns", f, name)
			}
		}
	}
	if found < len(rootkey.Columns)+len(rootkey.DigestColumns) {
		t.Errorf("found %d binary columns in the migrations, fewer than the %d listed", found, len(rootkey.Columns)+len(rootkey.DigestColumns))
	}
}

type instance struct {
	*servertest.Instance
	keyFile string
}

// start runs Gatehouse with a root key file (not GATEHOUSE_ROOT_KEY) that
// it reloads as `gatehouse serve` does.
func start(t *testing.T, engine string) *instance {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "root.key")
	if _, _, err := secret.LoadOrCreateKeyring(keyFile); err != nil {
		t.Fatal(err)
	}
	gh := servertest.Start(t, servertest.Options{Engine: engine, Dev: true, Env: map[string]string{
		"GATEHOUSE_ROOT_KEY": "", "GATEHOUSE_ROOT_KEY_FILE": keyFile,
	}})
	stop := secret.WatchKeyFile(gh.Server.Keyring(), keyFile, 20*time.Millisecond, nil)
	t.Cleanup(stop)
	return &instance{gh, keyFile}
}

func login(t *testing.T, gh *instance, email string) error {
	b := servertest.Browser(t)
	resp, err := b.Get(gh.URL + "/t/acme/login?login_hint=" + url.QueryEscape(email))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(email)) {
		return fmt.Errorf("login %s: %d %.200s", email, resp.StatusCode, body)
	}
	return nil
}

func oauth2Conn(name string) map[string]any {
	return map[string]any{"type": "oauth2", "name": name, "enabled": false,
		"authorize_url": "https://idp.example.com/authorize", "token_url": "https://idp.example.com/token",
		"userinfo_url": "https://idp.example.com/userinfo", "client_id": "client-" + name, "client_secret": "secret-" + name}
}

// prevSuffix marks a webhook's previous secret in sealedRows (same aad).
const prevSuffix = "#previous"

// aadOf is the aad of a sealedRows key.
func aadOf(key string) []byte { return []byte(strings.TrimSuffix(key, prevSuffix)) }

// sealedRows returns every sealed value by its row id, read through the store.
func sealedRows(t *testing.T, st gatehouse.Store) map[string][]byte {
	out := map[string][]byte{}
	err := st.View(context.Background(), func(tx gatehouse.Tx) error {
		ts, _, err := tx.ListTenants(context.Background(), gatehouse.Page{Limit: 1000})
		if err != nil {
			return err
		}
		for _, tn := range ts {
			cs, err := tx.ListConnections(context.Background(), tn.ID)
			if err != nil {
				return err
			}
			for _, c := range cs {
				if len(c.Secrets) > 0 {
					out[c.ID] = c.Secrets
				}
			}
			ks, err := tx.ListSigningKeys(context.Background(), tn.ID)
			if err != nil {
				return err
			}
			for _, k := range ks {
				out[k.ID] = k.Private
			}
			ws, err := tx.ListWebhooks(context.Background(), tn.ID)
			if err != nil {
				return err
			}
			for _, w := range ws {
				out[w.ID] = w.Secret
				if len(w.PreviousSecret) > 0 {
					out[w.ID+prevSuffix] = w.PreviousSecret
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRotateWhileServing seals secrets under k1, rotates to k2 while logins
// and API writes go on, and checks: every row names k2, nothing failed,
// logins and the API work after the old key is retired, and a keyring with
// k2 alone opens everything.
func TestRotateWhileServing(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			gh := start(t, engine)
			k1 := gh.Server.Keyring().Primary()
			must := func(code, want int, what string) {
				t.Helper()
				if code != want {
					t.Fatalf("%s: %d, want %d", what, code, want)
				}
			}
			must(gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme", "domains": []string{"acme.com"}}, nil), 201, "tenant")
			users := []map[string]any{}
			for i := range 4 {
				users = append(users, map[string]any{"subject": fmt.Sprint("s", i), "email": fmt.Sprintf("u%d@acme.com", i)})
			}
			must(gh.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{"type": "mock", "name": "Mock", "enabled": true, "jit": map[string]any{"enabled": true}, "users": users}, nil), 201, "mock")
			var conns []string
			for i := range 7 {
				var c struct{ ID string }
				must(gh.API(t, "POST", "/api/v1/tenants/acme/connections", oauth2Conn(fmt.Sprint("idp", i)), &c), 201, "oauth2 connection")
				conns = append(conns, c.ID)
			}
			must(gh.API(t, "POST", "/api/v1/tenants/acme/keys/rotate", nil, nil), 200, "signing keys")
			var hook struct{ ID string }
			must(gh.API(t, "POST", "/api/v1/tenants/acme/webhooks", map[string]any{"url": "https://hooks.example.com/a", "events": []string{"*"}, "enabled": false}, &hook), 201, "webhook")
			// A rotated webhook secret keeps the previous one sealed too.
			must(gh.API(t, "POST", "/api/v1/tenants/acme/webhooks/"+hook.ID+"/rotate-secret", nil, nil), 200, "webhook secret rotation")
			before := sealedRows(t, gh.Store)
			for id, box := range before {
				if kid, _ := secret.KeyID(box); kid != k1 {
					t.Fatalf("%s sealed under %q before rotation", id, kid)
				}
			}

			// Load while rotating: logins and connection writes (each seals
			// a new secret) must all succeed.
			var wg sync.WaitGroup
			var failures atomic.Int32
			var made sync.Map
			stop := make(chan struct{})
			var errs []string
			var mu sync.Mutex
			fail := func(err error) {
				failures.Add(1)
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
			}
			// repeat runs fn with 0, 1, 2... until stop closes.
			repeat := func(fn func(i int)) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						fn(i)
					}
				}()
			}
			repeat(func(i int) {
				if err := login(t, gh, fmt.Sprintf("u%d@acme.com", i%4)); err != nil {
					fail(err)
				}
			})
			repeat(func(i int) {
				var c struct{ ID string }
				if code := gh.API(t, "POST", "/api/v1/tenants/acme/connections", oauth2Conn(fmt.Sprint("live", i)), &c); code != 201 {
					fail(fmt.Errorf("create connection during rotation: %d", code))
					return
				}
				made.Store(c.ID, true)
				// Reading back opens the secret with whatever key sealed it.
				if code := gh.API(t, "PATCH", "/api/v1/tenants/acme/connections/"+c.ID, map[string]any{"name": fmt.Sprint("live", i, "b")}, nil); code != 200 {
					fail(fmt.Errorf("update connection during rotation: %d", code))
				}
				time.Sleep(5 * time.Millisecond)
			})
			var out bytes.Buffer
			k2, err := rootkey.Rotate(ctx, gh.Server.Store().DB(), rootkey.Options{KeyFile: gh.keyFile, Wait: 150 * time.Millisecond, Batch: 3, Out: &out})
			if err != nil {
				t.Fatalf("rotate: %v\n%s", err, out.String())
			}
			time.Sleep(100 * time.Millisecond)
			close(stop)
			wg.Wait()
			if failures.Load() > 0 {
				t.Fatalf("%d requests failed during rotation: %v", failures.Load(), errs[:min(len(errs), 5)])
			}
			if gh.Server.Keyring().Primary() != k2 {
				t.Fatalf("serving keyring's primary %q, want %q", gh.Server.Keyring().Primary(), k2)
			}
			// Rows written by the load after the last scan may still name
			// k1 only if they were sealed before the primary changed; the
			// waits rule that out, so everything names k2 now.
			census, err := rootkey.Census(ctx, gh.Server.Store().DB())
			if err != nil {
				t.Fatal(err)
			}
			if len(census) != 1 || census[k2] == 0 {
				t.Fatalf("after rotation: census %v, want only %s\n%s", census, k2, out.String())
			}
			t.Logf("rotation: %s", strings.ReplaceAll(out.String(), "\n", " | "))

			// A lagging replica seals one more secret under k1: retiring
			// re-wraps it first.
			oldOnly, err := secret.NewKeyring(k1, keyBytes(t, gh.keyFile, k1))
			if err != nil {
				t.Fatal(err)
			}
			err = gh.Store.Update(ctx, func(tx gatehouse.Tx) error {
				c, err := tx.GetConnection(ctx, mustTenant(t, gh), conns[0])
				if err != nil {
					return err
				}
				pt, err := gh.Server.Keyring().Open(c.Secrets, []byte(c.ID))
				if err != nil {
					return err
				}
				if c.Secrets, err = oldOnly.Seal(pt, []byte(c.ID)); err != nil {
					return err
				}
				return tx.UpdateConnection(ctx, c)
			})
			if err != nil {
				t.Fatal(err)
			}
			gone, err := rootkey.Retire(ctx, gh.Server.Store().DB(), rootkey.Options{KeyFile: gh.keyFile, Out: io.Discard})
			if err != nil || len(gone) != 1 || gone[0] != k1 {
				t.Fatalf("retire: %v %v", gone, err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(gh.Server.Keyring().KeyIDs()) != 1 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if ids := gh.Server.Keyring().KeyIDs(); len(ids) != 1 || ids[0] != k2 {
				t.Fatalf("serving keyring after retirement: %v", ids)
			}

			// A keyring with k2 alone opens every sealed secret.
			onlyK2, err := secret.NewKeyring(k2, keyBytes(t, gh.keyFile, k2))
			if err != nil {
				t.Fatal(err)
			}
			after := sealedRows(t, gh.Store)
			if len(after) < len(before)+1 {
				t.Fatalf("sealed rows: %d after, %d before", len(after), len(before))
			}
			for id, box := range after {
				if kid, _ := secret.KeyID(box); kid != k2 {
					t.Errorf("%s names %q after retirement", id, kid)
				}
				if _, err := onlyK2.Open(box, aadOf(id)); err != nil {
					t.Errorf("%s does not open with k2 alone: %v", id, err)
				}
			}
			// Logins and the API (which opens secrets on update) still work.
			if err := login(t, gh, "u1@acme.com"); err != nil {
				t.Fatal(err)
			}
			for _, id := range conns {
				must(gh.API(t, "PATCH", "/api/v1/tenants/acme/connections/"+id, map[string]any{"name": "renamed " + id}, nil), 200, "update after retirement")
			}
			var c struct{ ID string }
			must(gh.API(t, "POST", "/api/v1/tenants/acme/connections", oauth2Conn("after"), &c), 201, "create after retirement")
			if st := gh.Server.Store(); st != nil {
				rows := sealedRows(t, gh.Store)
				if kid, _ := secret.KeyID(rows[c.ID]); kid != k2 {
					t.Fatalf("new secret sealed under %q", kid)
				}
			}
			made.Range(func(k, _ any) bool {
				if _, ok := after[k.(string)]; !ok {
					t.Errorf("connection %s made during rotation has no sealed secret", k)
				}
				return true
			})
			if code, _ := httpGet(gh.URL + "/t/acme/jwks"); code != 200 {
				t.Fatalf("jwks after retirement: %d", code)
			}
		})
	}
}

func mustTenant(t *testing.T, gh *instance) string {
	var id string
	err := gh.Store.View(context.Background(), func(tx gatehouse.Tx) error {
		tn, err := tx.GetTenantBySlug(context.Background(), "acme")
		if err == nil {
			id = tn.ID
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// keyBytes reads one key out of the key file.
func keyBytes(t *testing.T, path, kid string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Keys map[string]string }
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(f.Keys[kid])
	if err != nil || len(key) != 32 {
		t.Fatalf("key %s in %s: %v", kid, path, err)
	}
	return key
}

func httpGet(u string) (int, error) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
