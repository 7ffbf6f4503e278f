//go:build soak

package e2e

// The soak (make soak): the real binary under a steady mix of logins, SCIM
// writes and token refreshes for SOAK_DURATION (default 10m) at SOAK_RATE
// requests per second (default 30), with zero errors allowed. The process's
// resident memory is sampled from /proc every SOAK_SAMPLE (default 10s)
// into testing/artifacts/soak.csv, and must stay flat: after the warm-up
// (the first fifth), the average of the last third is within 20% of the
// average of the first third.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

// refreshChain is one app session whose refresh token is rotated on every use.
type refreshChain struct {
	mu      sync.Mutex
	conf    oauth2.Config
	refresh string
}

func (c *refreshChain) refreshOnce(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	tok, err := c.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: c.refresh, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return err
	}
	if tok.RefreshToken == "" || tok.AccessToken == "" {
		return fmt.Errorf("refresh answered without tokens")
	}
	c.refresh = tok.RefreshToken
	return nil
}

// newRefreshChain signs user i in to the app (code flow with PKCE through
// the mock connection) and keeps the refresh token.
func newRefreshChain(t *testing.T, lt *loadTenant, clientID, secret, redirect string, i int) *refreshChain {
	issuer := lt.base + "/t/" + lt.slug
	conf := oauth2.Config{ClientID: clientID, ClientSecret: secret, RedirectURL: redirect,
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   []string{"openid", "email", "offline_access"}}
	verifier := oauth2.GenerateVerifier()
	browser := newJar()
	var code string
	browser.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirect) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := browser.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "soak-nonce"), oauth2.SetAuthURLParam("login_hint", lt.email(i))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code == "" {
		t.Fatalf("no authorization code (status %d)", resp.StatusCode)
	}
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: %v", err)
	}
	return &refreshChain{conf: conf, refresh: tok.RefreshToken}
}

func TestSoak(t *testing.T) {
	duration := envDuration(t, "SOAK_DURATION", 10*time.Minute)
	sample := envDuration(t, "SOAK_SAMPLE", 10*time.Second)
	rate := 30.0
	if v := os.Getenv("SOAK_RATE"); v != "" {
		var err error
		if rate, err = strconv.ParseFloat(v, 64); err != nil || rate <= 0 {
			t.Fatalf("SOAK_RATE=%q", v)
		}
	}
	env := map[string]string{}
	if u := os.Getenv("SOAK_DATABASE_URL"); u != "" {
		env["GATEHOUSE_DATABASE_URL"] = u
	}
	gh := startGatehouse(t, t.TempDir(), env)
	gh.waitReady(30 * time.Second)
	lt := setupLoadTenant(t, gh.URL, "acme", 3000)
	var app struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	redirect := "https://app.acme.test/cb"
	if code := adminAPI(t, gh.URL, "POST", "/api/v1/tenants/acme/apps", map[string]any{"name": "App", "redirect_uris": []string{redirect}, "grant_types": []string{"authorization_code", "refresh_token"}}, &app); code != 201 {
		t.Fatalf("app: %d", code)
	}
	var chains []*refreshChain
	for i := range 8 {
		chains = append(chains, newRefreshChain(t, lt, app.ClientID, app.ClientSecret, redirect, i))
	}

	csvPath := filepath.Join(repoRoot(nil), "testing", "artifacts", "soak.csv")
	if err := os.MkdirAll(filepath.Dir(csvPath), 0o755); err != nil {
		t.Fatal(err)
	}
	csv, err := os.Create(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer csv.Close()
	fmt.Fprintln(csv, "elapsed_s,rss_mib,goroutines,requests,errors,logins,scim_writes,refreshes")

	var requests, failures, logins, scimWrites, refreshes, skipped atomic.Int64
	var errMu sync.Mutex
	var firstErrs []string
	fail := func(format string, a ...any) {
		failures.Add(1)
		errMu.Lock()
		if len(firstErrs) < 10 {
			firstErrs = append(firstErrs, fmt.Sprintf(format, a...))
		}
		errMu.Unlock()
	}
	var scimIDs sync.Map // index → id, for updates
	var scimCount atomic.Int64
	op := func(n int64) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		switch n % 3 {
		case 0:
			code, body, err := lt.login(int(n / 3))
			if err != nil || code != 200 {
				fail("login: %d %v %.200s", code, err, body)
				return
			}
			logins.Add(1)
		case 1:
			// Two creates, then an update of an earlier user.
			k := n / 3
			if k%3 == 2 && scimCount.Load() > 0 {
				idx := (k * 7919) % scimCount.Load()
				id, ok := scimIDs.Load(idx)
				if ok {
					code, body, err := call(lt.base, lt.scimToken, "PATCH", "/scim/v2/Users/"+id.(string), "application/scim+json", map[string]any{
						"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
						"Operations": []map[string]any{{"op": "replace", "path": "displayName", "value": fmt.Sprint("Soak ", n)}},
					}, nil)
					if err != nil || code != 200 {
						fail("SCIM patch: %d %v %.200s", code, err, body)
						return
					}
					scimWrites.Add(1)
					return
				}
			}
			code, id, body, err := lt.scimCreateBody(fmt.Sprint("soak", n))
			if err != nil || code != 201 {
				fail("SCIM create: %d %v %.200s", code, err, body)
				return
			}
			scimIDs.Store(scimCount.Add(1)-1, id)
			scimWrites.Add(1)
		case 2:
			if err := chains[(n/3)%int64(len(chains))].refreshOnce(ctx); err != nil {
				fail("refresh: %v", err)
				return
			}
			refreshes.Add(1)
		}
	}

	type point struct {
		at  time.Duration
		rss float64
	}
	var curve []point
	start := time.Now()
	record := func() {
		rss := float64(gh.rssBytes()) / (1 << 20)
		el := time.Since(start)
		curve = append(curve, point{el, rss})
		fmt.Fprintf(csv, "%.0f,%.1f,%.0f,%d,%d,%d,%d,%d\n", el.Seconds(), rss, gh.metric("go_goroutines"),
			requests.Load(), failures.Load(), logins.Load(), scimWrites.Load(), refreshes.Load())
	}
	record()
	// A steady rate: one request per tick, at most 32 in flight; a tick
	// with every slot busy is counted as skipped (the server fell behind).
	slots := make(chan struct{}, 32)
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	sampler := time.NewTicker(sample)
	defer sampler.Stop()
	end := time.After(duration)
	var wg sync.WaitGroup
	var n int64
loop:
	for {
		select {
		case <-end:
			break loop
		case <-sampler.C:
			record()
		case <-tick.C:
			select {
			case slots <- struct{}{}:
				requests.Add(1)
				wg.Add(1)
				go func(n int64) {
					defer wg.Done()
					defer func() { <-slots }()
					op(n)
				}(n)
				n++
			default:
				skipped.Add(1)
			}
		}
	}
	wg.Wait()
	record()

	el := time.Since(start)
	t.Logf("soak: %s at %.0f req/s: %d requests (%d logins, %d SCIM writes, %d refreshes), %d errors, %d ticks skipped; throughput %.1f req/s",
		el.Round(time.Second), rate, requests.Load(), logins.Load(), scimWrites.Load(), refreshes.Load(), failures.Load(), skipped.Load(), float64(requests.Load())/el.Seconds())
	if failures.Load() > 0 {
		t.Errorf("%d errors; first: %v", failures.Load(), firstErrs)
	}
	if skipped.Load() > 0 {
		t.Errorf("%d ticks skipped: the server did not keep the rate", skipped.Load())
	}
	// Flat memory: drop the warm-up fifth, compare the thirds of the rest.
	warm := curve[len(curve)/5:]
	if len(warm) < 6 {
		t.Logf("only %d samples after warm-up: too short to judge memory (RSS %.1f → %.1f MiB)", len(warm), curve[0].rss, curve[len(curve)-1].rss)
		return
	}
	avg := func(ps []point) float64 {
		s := 0.0
		for _, p := range ps {
			s += p.rss
		}
		return s / float64(len(ps))
	}
	third := len(warm) / 3
	first, last := avg(warm[:third]), avg(warm[len(warm)-third:])
	peak := 0.0
	for _, p := range curve {
		peak = max(peak, p.rss)
	}
	t.Logf("RSS: start %.1f MiB, first third after warm-up %.1f MiB, last third %.1f MiB (%+.1f%%), peak %.1f MiB; curve in %s",
		curve[0].rss, first, last, 100*(last-first)/first, peak, csvPath)
	if last > first*1.2 {
		t.Errorf("memory grew: last third %.1f MiB vs first third %.1f MiB (more than 20%%)", last, first)
	}
}
