// Package servertest starts whole Gatehouse instances for end-to-end tests:
// the real server wiring over httptest, on a fresh SQLite or PostgreSQL
// database, with a known superuser token.
package servertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/config"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/server"
)

// AdminToken is the superuser token of every test instance.
const AdminToken = "gh_su_test-superuser-token-0123456789abcdef"

// Options for Start.
type Options struct {
	// Engine is "sqlite" (default) or "postgres"; ignored when DatabaseURL is set.
	Engine string
	// DatabaseURL shares a database between instances (replicas).
	DatabaseURL string
	// RootKey shares the root key between instances (replicas); random when nil.
	RootKey []byte
	// Dev enables the mock connector.
	Dev bool
	// Env adds GATEHOUSE_* variables.
	Env map[string]string
}

// Instance is a running Gatehouse.
type Instance struct {
	URL         string
	DatabaseURL string
	RootKey     []byte
	Server      *server.Server
	Store       gatehouse.Store
	HTTP        *httptest.Server
}

// Start starts an instance and stops it when t ends.
func Start(t testing.TB, opts Options) *Instance {
	t.Helper()
	if opts.Engine == "" {
		opts.Engine = "sqlite"
	}
	if opts.DatabaseURL == "" {
		opts.DatabaseURL = testdb.URL(t, opts.Engine)
	}
	if opts.RootKey == nil {
		opts.RootKey = make([]byte, 32)
		_, _ = rand.Read(opts.RootKey)
	}
	hs := httptest.NewUnstartedServer(nil)
	url := "http://" + hs.Listener.Addr().String()
	env := map[string]string{
		"GATEHOUSE_ADDR":         hs.Listener.Addr().String(),
		"GATEHOUSE_PUBLIC_URL":   url,
		"GATEHOUSE_DATA_DIR":     t.TempDir(),
		"GATEHOUSE_DATABASE_URL": opts.DatabaseURL,
		"GATEHOUSE_ADMIN_TOKEN":  AdminToken,
		"GATEHOUSE_ROOT_KEY":     base64.StdEncoding.EncodeToString(opts.RootKey),
		"GATEHOUSE_LOG_LEVEL":    "warn",
	}
	if opts.Dev {
		env["GATEHOUSE_DEV"] = "1"
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	cfg, err := config.Load(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("servertest: config: %v", err)
	}
	var logOut io.Writer = io.Discard
	if os.Getenv("GATEHOUSE_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: cfg.LogLevel}))
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := srv.Open(ctx); err != nil {
		t.Fatalf("servertest: open: %v", err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		_ = srv.Close()
	})
	return &Instance{URL: url, DatabaseURL: opts.DatabaseURL, RootKey: opts.RootKey, Server: srv, Store: srv.Store(), HTTP: hs}
}

// Browser returns an HTTP client with a cookie jar that follows redirects,
// like a browser.
func Browser(t testing.TB) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// API calls the admin API as the superuser (or with token when not "")
// and decodes the JSON answer into out when out is not nil. It returns the
// status code.
func (i *Instance) API(t testing.TB, method, path string, body any, out any) int {
	t.Helper()
	return i.APIWithToken(t, AdminToken, method, path, body, out)
}

// APIWithToken is API with a chosen bearer token.
func (i *Instance) APIWithToken(t testing.TB, token, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, i.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, truncate(string(data)), err)
		}
	}
	return resp.StatusCode
}

func truncate(s string) string {
	if len(s) > 500 {
		return s[:500] + "..."
	}
	return strings.TrimSpace(s)
}
