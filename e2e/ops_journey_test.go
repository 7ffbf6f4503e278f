package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse/apiclient"
	"github.com/gatehouse-sso/gatehouse/declarative"
	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/webhook"
)

// roundRobin is a load balancer in front of replicas: each request goes to
// the next one, and it remembers which replica served which path.
type roundRobin struct {
	*httptest.Server
	mu      sync.Mutex
	proxies []*httputil.ReverseProxy
	next    atomic.Uint64
	served  []string // "path replica"
}

func newRoundRobin(t *testing.T) *roundRobin {
	lb := &roundRobin{}
	lb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lb.mu.Lock()
		i := int(lb.next.Add(1)) % len(lb.proxies)
		p := lb.proxies[i]
		lb.served = append(lb.served, r.URL.Path+" "+strconv.Itoa(i))
		lb.mu.Unlock()
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(lb.Close)
	return lb
}

func (lb *roundRobin) add(u string) {
	target, _ := url.Parse(u)
	lb.mu.Lock()
	lb.proxies = append(lb.proxies, httputil.NewSingleHostReverseProxy(target))
	lb.mu.Unlock()
}

// replicaOf says which replica served the first request whose path
// matches re.
func (lb *roundRobin) replicaOf(re string) string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, s := range lb.served {
		if path, replica, _ := strings.Cut(s, " "); regexp.MustCompile(re).MatchString(path) {
			return replica
		}
	}
	return ""
}

// TestJourneyAcmeGrows is journey 7: three replicas on PostgreSQL behind a
// load balancer; the configuration is a YAML file applied from "CI" over
// the admin API (twice: the second run changes nothing); Ana's login starts
// on one replica and finishes on another; the tenant's webhook receives
// her creation once although every replica runs a delivery worker; and
// /metrics counts the login.
func TestJourneyAcmeGrows(t *testing.T) {
	dbURL := testdb.URL(t, "postgres")
	lb := newRoundRobin(t)
	rootKey := make([]byte, 32)
	_, _ = rand.Read(rootKey)
	var replicas []*servertest.Instance
	for range 3 {
		r := servertest.Start(t, servertest.Options{DatabaseURL: dbURL, RootKey: rootKey, Dev: true,
			Env: map[string]string{"GATEHOUSE_PUBLIC_URL": lb.URL}})
		replicas = append(replicas, r)
		lb.add(r.URL)
	}

	var mu sync.Mutex
	received := map[string]int{}
	var secret []byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if secret == nil || webhook.Verify(secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), 0) != nil {
			http.Error(w, "unverified", http.StatusUnauthorized)
			return
		}
		var ev struct{ ID, Type string }
		_ = json.Unmarshal(body, &ev)
		received[ev.Type+" "+ev.ID]++
	}))
	defer hook.Close()

	config := fmt.Sprintf(`
tenants:
  - slug: acme
    name: Acme
    domains: [acme.com]
    groups: [{name: Engineering}]
    connections:
      - name: Acme IdP
        type: mock
        config:
          users: [{subject: ana-1, email: ana@acme.com, email_verified: true, name: Ana Lima}]
        jit: {enabled: true, default_groups: [Engineering]}
    webhooks:
      - url: %s/gatehouse
        events: ["user.*"]
`, hook.URL)
	ctx := context.Background()
	ci := apiclient.New(lb.URL, servertest.AdminToken)
	file, err := declarative.Parse(strings.NewReader(config))
	if err != nil {
		t.Fatal(err)
	}
	var secrets strings.Builder
	plan, err := declarative.NewPlan(ctx, ci, file, declarative.Options{SecretsOut: &secrets})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Apply(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, value, ok := strings.Cut(strings.TrimSpace(secrets.String()), "=")
	if !ok {
		t.Fatalf("no webhook secret kept: %q", secrets.String())
	}
	mu.Lock()
	secret = []byte(value)
	mu.Unlock()
	if again, err := declarative.NewPlan(ctx, ci, file, declarative.Options{}); err != nil || again.Changes() != 0 {
		t.Fatalf("second apply from CI: %v changes, %v", again.Changes(), err)
	}

	// Ana signs in through the load balancer.
	browser := servertest.Browser(t)
	resp, err := browser.Get(lb.URL + "/t/acme/login?login_hint=" + url.QueryEscape("ana@acme.com"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "ana@acme.com") {
		t.Fatalf("login: %d %.300s", resp.StatusCode, page)
	}
	start, finish := lb.replicaOf(`^/t/acme/login$`), lb.replicaOf(`^/sso/mock/.*/callback$`)
	if start == "" || finish == "" || start == finish {
		t.Fatalf("login started on replica %q and finished on %q; want two replicas", start, finish)
	}

	// The creation reaches the webhook once, whichever worker sends it.
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2500 * time.Millisecond) // every worker polls at least twice more
	mu.Lock()
	created := 0
	for k, n := range received {
		if strings.HasPrefix(k, "user.created ") {
			created++
			if n != 1 {
				t.Errorf("%s delivered %d times", k, n)
			}
		}
	}
	mu.Unlock()
	if created != 1 {
		t.Fatalf("user.created deliveries: %v", received)
	}

	// The replica that finished the login counts it.
	i, _ := strconv.Atoi(finish)
	mresp, err := http.Get(replicas[i].URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !regexp.MustCompile(`gatehouse_logins_total\{connection="con_[^"]+",outcome="created",tenant="acme"\} 1`).Match(metrics) {
		t.Errorf("replica %s /metrics lacks the login", finish)
	}
}
