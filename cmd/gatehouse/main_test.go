package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is written by serve's goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "GATEHOUSE_") {
			t.Setenv(k, "")
		}
	}
}

func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	last := 0
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			last = resp.StatusCode
			if last == want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: status %d, want %d", url, last, want)
}

// TestServeFirstStart is journey 1: a bare `gatehouse serve` creates its
// database and prints a superuser token that works, once.
func TestServeFirstStart(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	t.Setenv("GATEHOUSE_DATA_DIR", dir)
	t.Setenv("GATEHOUSE_ADDR", addr)
	t.Setenv("GATEHOUSE_LOG_LEVEL", "warn")

	start := func() (*syncBuffer, context.CancelFunc, chan int) {
		ctx, cancel := context.WithCancel(context.Background())
		out, errOut := &syncBuffer{}, &syncBuffer{}
		done := make(chan int)
		go func() { done <- run(ctx, []string{"serve"}, out, errOut) }()
		waitStatus(t, "http://"+addr+"/readyz", 200)
		return out, cancel, done
	}
	out, cancel, done := start()
	token := regexp.MustCompile(`gh_su_[A-Za-z0-9_-]{43}`).FindString(out.String())
	if token == "" {
		t.Fatalf("no superuser token printed:\n%s", out)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/tenants", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("printed token does not work: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	for _, f := range []string{"gatehouse.db", "root.key", "admin-token.sha256"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data dir lacks %s", f)
		}
	}
	data, _ := os.ReadFile(filepath.Join(dir, "admin-token.sha256"))
	if strings.Contains(string(data), token) {
		t.Fatal("the token itself is stored")
	}

	// The second start prints no token: it was shown once.
	out, cancel, done = start()
	cancel()
	<-done
	if strings.Contains(out.String(), "gh_su_") {
		t.Fatalf("token printed again:\n%s", out)
	}
}

// TestServeWaitsForDatabase: with the database unreachable, serve stays up
// with /healthz 200 and /readyz 503, retrying.
func TestServeWaitsForDatabase(t *testing.T) {
	clearEnv(t)
	addr := freeAddr(t)
	t.Setenv("GATEHOUSE_DATA_DIR", t.TempDir())
	t.Setenv("GATEHOUSE_ADDR", addr)
	t.Setenv("GATEHOUSE_LOG_LEVEL", "error")
	t.Setenv("GATEHOUSE_DATABASE_URL", "postgres://nobody@"+freeAddr(t)+"/none?sslmode=disable&connect_timeout=1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- run(ctx, []string{"serve"}, &syncBuffer{}, &syncBuffer{}) }()
	waitStatus(t, "http://"+addr+"/healthz", 200)
	waitStatus(t, "http://"+addr+"/readyz", 503)
	resp, err := http.Get("http://" + addr + "/api/v1/tenants")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("API without a token while the database is down: %d, want 401 (authentication first)", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/tenants", nil)
	req.Header.Set("Authorization", "Bearer some-token-that-cannot-be-checked-yet")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("API with a token while the database is down: %d", resp.StatusCode)
	}
	cancel()
	<-done
}

func TestOneShotCommandsFailClearly(t *testing.T) {
	clearEnv(t)
	t.Setenv("GATEHOUSE_DATABASE_URL", "postgres://nobody@"+freeAddr(t)+"/none?sslmode=disable&connect_timeout=1")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"migrate"}, &out, &errOut); code == 0 {
		t.Fatal("migrate succeeded against an unreachable database")
	}
	if !strings.Contains(errOut.String(), "gatehouse migrate") {
		t.Fatalf("unclear message: %q", errOut.String())
	}
	t.Setenv("GATEHOUSE_DATABASE_URL", "")
	t.Setenv("GATEHOUSE_ADMIN_TOKEN", "short")
	errOut.Reset()
	if code := run(context.Background(), []string{"serve"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "GATEHOUSE_ADMIN_TOKEN") {
		t.Fatalf("bad config: %d %q", code, errOut.String())
	}
}

func TestMigrateAndStatusOnSQLite(t *testing.T) {
	clearEnv(t)
	// A data dir that does not exist yet is created, as serve does.
	t.Setenv("GATEHOUSE_DATA_DIR", filepath.Join(t.TempDir(), "new", "data"))
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"migrate"}, &out, &errOut); code != 0 {
		t.Fatalf("migrate: %d %s", code, errOut.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"migrate", "--status"}, &out, &errOut); code != 0 || out.Len() == 0 {
		t.Fatalf("migrate --status: %d %q %s", code, out.String(), errOut.String())
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "gatehouse ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
}
