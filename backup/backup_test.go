package backup_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/backup"
	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/secret"
)

func login(t *testing.T, base, connID string) {
	t.Helper()
	resp, err := servertest.Browser(t).Get(base + "/t/acme/login?connection=" + connID + "&login_hint=" + url.QueryEscape("ana@acme.com"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "ana@acme.com") {
		t.Fatalf("login: %d %.300s", resp.StatusCode, body)
	}
}

type userList struct {
	Items []struct{ ID, Email, Source string } `json:"items"`
}

// TestBackupRestoreSignIn: a backup taken while the server keeps writing
// restores into a fresh data directory, where the same user signs in
// again (mock connector) with the same root key; the sealed connection
// secret opens only under that key.
func TestBackupRestoreSignIn(t *testing.T) {
	ctx := context.Background()
	gh := servertest.Start(t, servertest.Options{Dev: true})
	if st := gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "domains": []string{"acme.com"}}, nil); st != 201 {
		t.Fatalf("tenant: %d", st)
	}
	var e struct{ ID string }
	if st := gh.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{"type": "mock", "name": "Mock",
		"users": []map[string]any{{"subject": "ana-1", "email": "ana@acme.com", "email_verified": true}}}, &e); st != 201 {
		t.Fatalf("mock connection: %d %v", st, e)
	}
	var sealed struct{ ID string }
	if st := gh.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{"type": "oauth2", "name": "GitHub",
		"authorize_url": "https://gh.example/authorize", "token_url": "https://gh.example/token", "userinfo_url": "https://gh.example/user",
		"client_id": "id", "client_secret": "the-client-secret", "subject_path": "id"}, &sealed); st != 201 {
		t.Fatalf("oauth2 connection: %d", st)
	}
	login(t, gh.URL, e.ID)
	var before userList
	gh.API(t, "GET", "/api/v1/tenants/acme/users", nil, &before)

	// Writes keep coming while the backup runs.
	dst := filepath.Join(t.TempDir(), "gatehouse-backup.db")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			gh.API(t, "POST", "/api/v1/tenants/acme/groups", map[string]any{"name": fmt.Sprintf("g%d", i)}, nil)
		}
	}()
	err := backup.Backup(ctx, gh.DatabaseURL, dst)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := backup.Backup(ctx, gh.DatabaseURL, dst); err == nil {
		t.Error("backup over an existing file")
	}

	fresh := "sqlite://" + filepath.Join(t.TempDir(), "data", "gatehouse.db")
	if err := backup.Restore(ctx, dst, fresh); err != nil {
		t.Fatal(err)
	}
	if err := backup.Restore(ctx, dst, fresh); err == nil || !strings.Contains(err.Error(), "fresh data directory") {
		t.Fatalf("restore over a database: %v", err)
	}
	gh2 := servertest.Start(t, servertest.Options{Dev: true, DatabaseURL: fresh, RootKey: gh.RootKey})
	login(t, gh2.URL, e.ID)
	var after userList
	gh2.API(t, "GET", "/api/v1/tenants/acme/users", nil, &after)
	if len(after.Items) != 1 || len(before.Items) != 1 || after.Items[0].ID != before.Items[0].ID {
		t.Fatalf("users before %+v, after restore and sign-in %+v", before.Items, after.Items)
	}
	var conn *gatehouse.Connection
	_ = gh2.Store.View(ctx, func(tx gatehouse.Tx) (err error) {
		conn, err = tx.GetConnectionByID(ctx, sealed.ID)
		return err
	})
	if pt, err := gh2.Server.Keyring().Open(conn.Secrets, []byte(conn.ID)); err != nil || !strings.Contains(string(pt), "the-client-secret") {
		t.Fatalf("secret under the same root key: %v", err)
	}
	other := make([]byte, 32)
	_, _ = rand.Read(other)
	wrong, _ := secret.NewKeyring("env", other)
	if _, err := wrong.Open(conn.Secrets, []byte(conn.ID)); err == nil {
		t.Fatal("a different root key opened the restored secret")
	}
}

func TestBackupRefusesPostgresAndJunk(t *testing.T) {
	ctx := context.Background()
	if err := backup.Backup(ctx, "postgres://x@127.0.0.1/db", "out.db"); err != backup.ErrPostgres {
		t.Fatalf("postgres: %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.db")
	_ = writeFile(junk, "not a database")
	if err := backup.Restore(ctx, junk, "sqlite://"+filepath.Join(t.TempDir(), "g.db")); err == nil {
		t.Fatal("restored junk")
	}
}
