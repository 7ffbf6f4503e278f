//go:build faults

package e2e

// An upstream identity provider that is slow, down or answering garbage,
// against the real binary: every login ends in bounded time on a clear
// error page, connection setup fails cleanly, and the process keeps no
// goroutines or memory from it.

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector/oidc/oidctest"
)

// faultyIdP wraps the in-process test OpenID provider: while mode is set,
// the endpoints it names misbehave.
type faultyIdP struct {
	*oidctest.Provider
	mode atomic.Value // string
}

// newFaultyIdP starts a provider whose endpoints with a path ending in
// suffix misbehave while mode is set.
func newFaultyIdP(t *testing.T, suffix string) *faultyIdP {
	p := oidctest.New(gatehouse.SystemClock{}, "client-1", "secret-1")
	release := make(chan struct{})
	t.Cleanup(func() { close(release); p.Close() })
	f := &faultyIdP{Provider: p}
	f.mode.Store("")
	inner := p.Server.Config.Handler
	p.Server.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mode, _ := f.mode.Load().(string)
		if mode == "" || !strings.HasSuffix(r.URL.Path, suffix) {
			inner.ServeHTTP(w, r)
			return
		}
		switch mode {
		case "slow":
			// Longer than any sane timeout; give up when the client does
			// (noticed once the body is read) or the test ends.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-release:
			case <-time.After(2 * time.Minute):
			}
		case "down":
			hj, ok := w.(http.Hijacker)
			if !ok {
				panic("no hijacker")
			}
			c, _, _ := hj.Hijack()
			c.Close()
		case "garbage":
			b := make([]byte, 64<<10)
			_, _ = rand.Read(b)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
		case "wrong-json":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":5,"id_token":{"a":[1,2,3]},"token_type":null,"issuer":7,"keys":"x"}`))
		case "huge":
			// 20 MiB of valid-looking JSON: the body cap must stop it.
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"`))
			chunk := []byte(strings.Repeat("a", 1<<20))
			for range 20 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			_, _ = w.Write([]byte(`"}`))
		case "error500":
			http.Error(w, "<html>upstream exploded</html>", http.StatusInternalServerError)
		}
	})
	return f
}

// TestFaultUpstreamIdP runs logins against an IdP whose token endpoint is
// slow, down, or answers garbage, and connection setups against one whose
// discovery does; then checks goroutines and memory came back.
func TestFaultUpstreamIdP(t *testing.T) {
	idp := newFaultyIdP(t, "/token")
	idp.Claims = map[string]any{"sub": "ada-1", "email": "ada@example.com", "email_verified": true, "name": "Ada"}
	gh := startGatehouse(t, t.TempDir(), nil)
	gh.waitReady(30 * time.Second)
	if code := adminAPI(t, gh.URL, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme", "domains": []string{"example.com"}}, nil); code != 201 {
		t.Fatalf("tenant: %d", code)
	}
	connection := func(issuer string) (int, string, time.Duration) {
		start := time.Now()
		code, body, err := call(gh.URL, faultAdminToken, "POST", "/api/v1/tenants/acme/connections", "application/json", map[string]any{
			"type": "oidc", "name": fmt.Sprint("IdP ", time.Now().UnixNano()), "enabled": true, "issuer": issuer,
			"client_id": "client-1", "client_secret": "secret-1", "jit": map[string]any{"enabled": true},
		}, nil)
		if err != nil {
			t.Fatalf("create connection: %v", err)
		}
		return code, body, time.Since(start)
	}
	if code, body, _ := connection(idp.Issuer); code != 201 {
		t.Fatalf("connection to the healthy IdP: %d %s", code, body)
	}
	login := func() (int, string, time.Duration) {
		start := time.Now()
		resp, err := newJar().Get(gh.URL + "/t/acme/login?login_hint=" + url.QueryEscape("ada@example.com"))
		if err != nil {
			return 0, err.Error(), time.Since(start)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 32<<10)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String(), time.Since(start)
	}
	for range 10 {
		if code, body, _ := login(); code != 200 || !strings.Contains(body, "ada@example.com") {
			t.Fatalf("healthy login: %d %.300s", code, body)
		}
	}
	// Idle keep-alive connections to the IdP hold two goroutines each;
	// close them on the IdP's side so the counts compare like with like.
	settle := func() {
		idp.Server.CloseClientConnections()
		time.Sleep(time.Second)
	}
	settle()
	g0, rss0 := gh.metric("go_goroutines"), gh.rssBytes()
	t.Logf("baseline: %v goroutines, RSS %.1f MiB", g0, float64(rss0)/(1<<20))

	// The outbound client's timeout is 10 s (outbound.DefaultTimeout); a
	// login makes at most a token request and a key-set fetch.
	const bound = 25 * time.Second
	for _, mode := range []string{"slow", "down", "garbage", "wrong-json", "huge", "error500"} {
		t.Run("token endpoint "+mode, func(t *testing.T) {
			idp.mode.Store(mode)
			defer idp.mode.Store("")
			var wg sync.WaitGroup
			var worst atomic.Int64
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					code, body, took := login()
					if took > time.Duration(worst.Load()) {
						worst.Store(int64(took))
					}
					if took > bound {
						t.Errorf("login took %s (bound %s)", took, bound)
					}
					if code < 400 || code == 500 {
						t.Errorf("login with the IdP %s: %d, want a 4xx or 502/503/504 page: %.300s", mode, code, body)
					}
					low := strings.ToLower(body)
					if !strings.Contains(low, "<h1") || strings.Contains(low, "goroutine") || strings.Contains(low, "panic") || strings.Contains(body, "secret-1") {
						t.Errorf("login with the IdP %s: not a clean error page: %.500s", mode, body)
					}
				}()
			}
			wg.Wait()
			t.Logf("token endpoint %s: 16 logins refused, slowest %s", mode, time.Duration(worst.Load()).Round(time.Millisecond))
		})
	}
	// Discovery faults at connection setup (a new issuer is fetched then).
	for _, mode := range []string{"slow", "down", "garbage", "wrong-json", "huge", "error500"} {
		t.Run("discovery "+mode, func(t *testing.T) {
			other := newFaultyIdP(t, "/.well-known/openid-configuration")
			other.mode.Store(mode)
			code, body, took := connection(other.Issuer)
			if took > bound || code < 400 || code == 500 || !strings.Contains(body, `"error"`) {
				t.Errorf("connection to an IdP whose discovery is %s: %d after %s: %.300s", mode, code, took, body)
			}
			t.Logf("discovery %s: %d in %s", mode, code, took.Round(time.Millisecond))
		})
	}
	// Healthy again: logins work at once.
	if code, body, _ := login(); code != 200 {
		t.Fatalf("login after the IdP recovered: %d %.300s", code, body)
	}
	// Goroutines come back to the baseline; memory does not grow.
	var g1 float64
	deadline := time.Now().Add(30 * time.Second)
	for {
		settle()
		g1 = gh.metric("go_goroutines")
		if g1 <= g0+2 || time.Now().After(deadline) {
			break
		}
	}
	rss1 := gh.rssBytes()
	t.Logf("after: %v goroutines (baseline %v), RSS %.1f MiB (baseline %.1f MiB)", g1, g0, float64(rss1)/(1<<20), float64(rss0)/(1<<20))
	if g1 > g0+2 {
		t.Errorf("goroutines grew from %v to %v", g0, g1)
	}
	if rss1 > rss0+64<<20 {
		t.Errorf("RSS grew from %.1f to %.1f MiB", float64(rss0)/(1<<20), float64(rss1)/(1<<20))
	}
}
