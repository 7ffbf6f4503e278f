//go:build faults || soak

package e2e

// The harness of the long runs (make faults, make soak): the real
// `gatehouse serve` binary as a child process, a throwaway PostgreSQL
// cluster of its own (never the shared server), and small clients for the
// admin API, the mock-connector login and SCIM.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
)

const faultAdminToken = servertest.AdminToken

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// gatehouseBinary builds cmd/gatehouse once per test binary.
func gatehouseBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gatehouse-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "gatehouse")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/gatehouse")
		cmd.Dir = repoRoot(nil)
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=go1.27.3")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ghProc is one `gatehouse serve` process.
type ghProc struct {
	t       testing.TB
	URL     string
	cmd     *exec.Cmd
	env     []string
	addr    string
	logFile string
	done    chan struct{}
}

// startGatehouse starts `gatehouse serve` with env (GATEHOUSE_* on top of
// defaults: a data dir, the test superuser token, dev mode, warn logs) and
// waits for /healthz (not /readyz: the database may be down on purpose).
func startGatehouse(t testing.TB, dataDir string, env map[string]string) *ghProc {
	t.Helper()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := &ghProc{t: t, URL: "http://" + addr, addr: addr, logFile: filepath.Join(dataDir, fmt.Sprintf("gatehouse-%d.log", port))}
	base := map[string]string{
		"GATEHOUSE_ADDR": addr, "GATEHOUSE_DATA_DIR": dataDir, "GATEHOUSE_ADMIN_TOKEN": faultAdminToken,
		"GATEHOUSE_DEV": "1", "GATEHOUSE_LOG_LEVEL": "warn",
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		p.env = append(p.env, k+"="+v)
	}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *ghProc) start() {
	t := p.t
	t.Helper()
	log, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(gatehouseBinary(t), "serve")
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, p.env...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); log.Close(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if code, _ := httpStatus(p.URL + "/healthz"); code == 200 {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("gatehouse exited at start:\n%s", p.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("gatehouse did not answer /healthz:\n%s", p.logTail())
}

// waitReady waits for /readyz 200.
func (p *ghProc) waitReady(d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if code, _ := httpStatus(p.URL + "/readyz"); code == 200 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("gatehouse not ready after %s:\n%s", d, p.logTail())
}

// kill9 kills the process with SIGKILL: no shutdown, no flush.
func (p *ghProc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// restart starts the same process again (same address, env and data).
func (p *ghProc) restart() { p.start() }

func (p *ghProc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// rssBytes reads the process's resident set size from /proc.
func (p *ghProc) rssBytes() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func (p *ghProc) logTail() string {
	data, _ := os.ReadFile(p.logFile)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

var refPattern = regexp.MustCompile(`Reference: <code>([a-z0-9]+)</code>`)

// logFor returns the server's log lines about the request an error page
// names (its reference is the request id).
func (p *ghProc) logFor(page string) string {
	m := refPattern.FindStringSubmatch(page)
	if m == nil {
		return "(no reference on the page)"
	}
	data, _ := os.ReadFile(p.logFile)
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, m[1]) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// metric reads one unlabelled value from /metrics.
func (p *ghProc) metric(name string) float64 {
	_, body := httpGetBody(p.URL + "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return -1
}

var plainClient = &http.Client{Timeout: 30 * time.Second}

func httpStatus(u string) (int, error) {
	resp, err := plainClient.Get(u)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func httpGetBody(u string) (int, string) {
	resp, err := plainClient.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// call sends one request with a bearer token and decodes a JSON answer.
func call(base, token, method, path, contentType string, body any, out any) (int, string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, "", err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, string(data), err
		}
	}
	return resp.StatusCode, string(data), nil
}

func adminAPI(t testing.TB, base, method, path string, body, out any) int {
	t.Helper()
	code, text, err := call(base, faultAdminToken, method, path, "application/json", body, out)
	if err != nil {
		t.Fatalf("%s %s: %v (%s)", method, path, err, text)
	}
	return code
}

// loadTenant is a tenant with a mock connection that knows users
// user{0..n-1}@<slug>.test, JIT on, and a SCIM token.
type loadTenant struct {
	base, slug, conn, scimToken string
	users                       int
}

func setupLoadTenant(t testing.TB, base, slug string, users int) *loadTenant {
	t.Helper()
	lt := &loadTenant{base: base, slug: slug, users: users}
	if code := adminAPI(t, base, "POST", "/api/v1/tenants", map[string]any{"slug": slug, "name": slug, "domains": []string{slug + ".test"}}, nil); code != 201 {
		t.Fatalf("tenant: %d", code)
	}
	var mu []map[string]any
	for i := range users {
		mu = append(mu, map[string]any{"subject": fmt.Sprint("sub-", i), "email": fmt.Sprintf("user%d@%s.test", i, slug), "name": fmt.Sprint("User ", i)})
	}
	var c struct{ ID string }
	if code := adminAPI(t, base, "POST", "/api/v1/tenants/"+slug+"/connections", map[string]any{"type": "mock", "name": "Mock", "enabled": true, "jit": map[string]any{"enabled": true}, "users": mu}, &c); code != 201 {
		t.Fatalf("connection: %d", code)
	}
	lt.conn = c.ID
	var tok struct{ Token string }
	if code := adminAPI(t, base, "POST", "/api/v1/tenants/"+slug+"/scim-tokens", map[string]any{"name": "idp", "connection_id": c.ID}, &tok); code != 201 {
		t.Fatalf("scim token: %d", code)
	}
	lt.scimToken = tok.Token
	return lt
}

func (lt *loadTenant) email(i int) string {
	return fmt.Sprintf("user%d@%s.test", i%lt.users, lt.slug)
}

func newJar() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// login signs user i (modulo the mock's users) in through the mock
// connection in a fresh browser and returns the final status and body.
func (lt *loadTenant) login(i int) (int, string, error) {
	email := lt.email(i)
	resp, err := newJar().Get(lt.base + "/t/" + lt.slug + "/login?login_hint=" + url.QueryEscape(email))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// scimCreate creates a SCIM user and returns its id (and the body when it
// failed).
func (lt *loadTenant) scimCreate(name string) (int, string, error) {
	code, id, _, err := lt.scimCreateBody(name)
	return code, id, err
}

func (lt *loadTenant) scimCreateBody(name string) (int, string, string, error) {
	var out struct{ ID string }
	code, text, err := call(lt.base, lt.scimToken, "POST", "/scim/v2/Users", "application/scim+json", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": name + "@" + lt.slug + ".test",
		"externalId": "ext-" + name, "name": map[string]any{"givenName": name, "familyName": "Load"},
		"emails": []map[string]any{{"value": name + "@" + lt.slug + ".test", "primary": true}}, "active": true,
	}, &out)
	if err == nil && code == 201 && out.ID == "" {
		err = fmt.Errorf("no id in %s", text)
	}
	return code, out.ID, text, err
}

// pgCluster is a PostgreSQL cluster of the test's own, in a temporary
// directory, on a free port, owned by the postgres user.
type pgCluster struct {
	t    testing.TB
	dir  string
	port int
}

const pgBin = "/usr/lib/postgresql/15/bin"

// asPostgres runs a PostgreSQL tool as the postgres user (initdb refuses root).
func asPostgres(name string, args ...string) *exec.Cmd {
	full := append([]string{"-u", "postgres", "--", filepath.Join(pgBin, name)}, args...)
	if os.Geteuid() != 0 {
		return exec.Command(filepath.Join(pgBin, name), args...)
	}
	return exec.Command("runuser", full...)
}

func newPGCluster(t testing.TB) *pgCluster {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		t.Skipf("PostgreSQL 15 binaries not found in %s", pgBin)
	}
	dir, err := os.MkdirTemp("", "gatehouse-faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v %s", err, out)
		}
	}
	c := &pgCluster{t: t, dir: dir, port: freePort(t)}
	if out, err := asPostgres("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_ = asPostgres("pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "stop").Run()
		os.RemoveAll(dir)
	})
	return c
}

// URL is the cluster's database URL (the postgres database).
func (c *pgCluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

func (c *pgCluster) start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", c.port, c.dir)
	if out, err := asPostgres("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "log"), "-o", opts, "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		c.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// stop stops the cluster; "immediate" is a crash (no checkpoint, every
// connection cut), "fast" a clean stop that still cuts connections.
func (c *pgCluster) stop(mode string) {
	c.t.Helper()
	if out, err := asPostgres("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", mode, "-w", "stop").CombinedOutput(); err != nil {
		c.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// psql runs one query and returns its unaligned output.
func (c *pgCluster) psql(query string) string {
	c.t.Helper()
	out, err := asPostgres("psql", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", "postgres", "-d", "postgres", "-At", "-c", query).CombinedOutput()
	if err != nil {
		c.t.Fatalf("psql %q: %v\n%s", query, err, out)
	}
	return strings.TrimSpace(string(out))
}

func withTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
