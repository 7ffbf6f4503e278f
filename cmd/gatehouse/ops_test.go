package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testAdminToken = "ops-test-admin-token-0123456789abcdef"

func TestCutFlag(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		val  string
		rest int
	}{
		{[]string{"--config", "a.yaml", "--dev"}, "a.yaml", 1},
		{[]string{"-config=b.yaml"}, "b.yaml", 0},
		{[]string{"--addr", ":1"}, "", 2},
		{[]string{"config"}, "", 1},
	} {
		val, rest := cutFlag(tc.in, "config")
		if val != tc.val || len(rest) != tc.rest {
			t.Errorf("cutFlag(%q) = %q %q", tc.in, val, rest)
		}
	}
}

// TestServeAppliesConfig: `serve --config` applies the file at start; a
// file the API refuses stops the start.
func TestServeAppliesConfig(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	t.Setenv("GATEHOUSE_DATA_DIR", dir)
	t.Setenv("GATEHOUSE_ADDR", addr)
	t.Setenv("GATEHOUSE_LOG_LEVEL", "error")
	t.Setenv("GATEHOUSE_ADMIN_TOKEN", testAdminToken)
	file := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(file, []byte("tenants:\n  - slug: acme\n    name: Acme\n    groups: [{name: Staff}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- run(ctx, []string{"serve", "--config", file}, &syncBuffer{}, &syncBuffer{}) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/tenants/acme/groups/Staff", nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the configured group never appeared")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d", code)
	}

	// A file the API refuses: serve stops with status 1.
	if err := os.WriteFile(file, []byte("tenants:\n  - slug: Not A Slug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut := &syncBuffer{}
	if code := run(context.Background(), []string{"serve", "--config=" + file}, &syncBuffer{}, errOut); code != 1 {
		t.Fatalf("serve with a bad config: %d %s", code, errOut.String())
	}
}

func TestBackupRestoreCommands(t *testing.T) {
	clearEnv(t)
	src, dst := t.TempDir(), t.TempDir()
	t.Setenv("GATEHOUSE_LOG_LEVEL", "error")
	var out, errOut syncBuffer
	if code := run(context.Background(), []string{"migrate", "--data-dir", src}, &out, &errOut); code != 0 {
		t.Fatalf("migrate: %s", errOut.String())
	}
	file := filepath.Join(t.TempDir(), "backup.db")
	if code := run(context.Background(), []string{"backup", file, "--data-dir", src}, &out, &errOut); code != 0 {
		t.Fatalf("backup: %d %s", code, errOut.String())
	}
	if code := run(context.Background(), []string{"restore", file, "--data-dir", dst}, &out, &errOut); code != 0 {
		t.Fatalf("restore: %d %s", code, errOut.String())
	}
	if code := run(context.Background(), []string{"restore", file, "--data-dir", dst}, &out, &errOut); code != 1 {
		t.Fatalf("restore over a database: %d", code)
	}
	if code := run(context.Background(), []string{"backup"}, &out, &errOut); code != 2 {
		t.Fatalf("backup without a file: %d", code)
	}
	if s := out.String(); !strings.Contains(s, "root key file "+filepath.Join(src, "root.key")) {
		t.Fatalf("no root key reminder: %s", s)
	}
}

// TestApplyBootstrapsAnEmptyInstance: apply --database-url writes the file
// into an empty database without a server; a non-empty one is refused.
func TestApplyBootstrapsAnEmptyInstance(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	t.Setenv("GATEHOUSE_LOG_LEVEL", "error")
	file := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(file, []byte("tenants:\n  - slug: acme\n    groups: [{name: Staff}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := "sqlite://" + filepath.Join(dir, "gatehouse.db")
	var out, errOut syncBuffer
	if code := run(context.Background(), []string{"apply", "-f", file, "--database-url", db, "--data-dir", dir, "--dry-run"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "+ tenant acme") {
		t.Fatalf("dry run: %d %s %s", code, out.String(), errOut.String())
	}
	if code := run(context.Background(), []string{"apply", "-f", file, "--database-url", db, "--data-dir", dir}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "with 2 change(s)") {
		t.Fatalf("bootstrap: %d %s %s", code, out.String(), errOut.String())
	}
	// The superuser token is still the first serve's to make and show.
	if _, err := os.Stat(filepath.Join(dir, "admin-token.sha256")); !os.IsNotExist(err) {
		t.Errorf("bootstrap made the superuser token: %v", err)
	}
	var errOut2 syncBuffer
	if code := run(context.Background(), []string{"apply", "-f", file, "--database-url", db, "--data-dir", dir}, &out, &errOut2); code != 1 || !strings.Contains(errOut2.String(), "only bootstraps an empty one") {
		t.Fatalf("second bootstrap: %d %s", code, errOut2.String())
	}
}
