package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestReadProc(t *testing.T) {
	st, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS <= 0 || st.CPU < 0 {
		t.Fatalf("%+v", st)
	}
}

func TestRunBounds(t *testing.T) {
	res, err := Run(context.Background(), "x", RunConfig{Concurrency: 3, N: 10, Duration: 10 * time.Second}, func(ctx context.Context, i int) error {
		if i%5 == 0 {
			return errors.New("odd one out")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Flows != 8 || res.Errors != 2 || len(res.FirstErrors) != 1 {
		t.Fatalf("%+v", res)
	}
	res, err = Run(context.Background(), "y", RunConfig{Concurrency: 2, Duration: 50 * time.Millisecond}, func(ctx context.Context, i int) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
			return nil
		}
	})
	if err != nil || res.Flows == 0 || res.Errors != 0 || res.Elapsed > time.Second {
		t.Fatalf("duration bound: %v %+v", err, res)
	}
	// Flows in flight at the deadline finish and count, uncancelled: a
	// request cut off mid-way would close the server's database
	// connections and lose their CPU from the measure.
	res, err = Run(context.Background(), "z", RunConfig{Concurrency: 2, Duration: 20 * time.Millisecond}, func(ctx context.Context, i int) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
			return nil
		}
	})
	if err != nil || res.Flows != 2 || res.Errors != 0 || res.Elapsed < 100*time.Millisecond {
		t.Fatalf("drain: %v %+v", err, res)
	}
}

// TestIdP runs the upstream IdP's code flow as a relying party would:
// authorize with login_hint and PKCE, the code exchanged with the client
// secret, the ES256 ID token verified against the JWKS; a reused code and
// a wrong verifier are refused.
func TestIdP(t *testing.T) {
	idp, err := StartIdP("127.0.0.1:0", "rp", "rp-secret", "example.org")
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	ctx := context.Background()
	e := &Env{Transport: NewTransport(1)}
	c := &oidcClient{authorize: idp.Issuer + "/authorize", token: idp.Issuer + "/token", clientID: "rp", secret: "rp-secret",
		redirectURI: "http://rp.example/cb", scopes: "openid email", e: e}
	code, verifier, err := c.code(ctx, NewBrowser(e.Transport), "ana@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.redeem(ctx, code, "wrong-verifier-wrong-verifier-wrong-verifier"); err == nil {
		t.Fatal("wrong PKCE verifier accepted")
	}
	code, verifier, err = c.code(ctx, NewBrowser(e.Transport), "ana@example.org")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.redeem(ctx, code, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.redeem(ctx, code, verifier); err == nil {
		t.Fatal("code redeemed twice")
	}
	resp, err := http.Get(idp.Issuer + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	jws, err := jose.ParseSigned(tok.IDToken, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify(set.Keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	if claims["email"] != "ana@example.org" || claims["aud"] != "rp" || claims["iss"] != idp.Issuer || claims["nonce"] == nil ||
		claims["sub"] != UserClaims("ana@example.org")["sub"] {
		t.Fatalf("claims %v", claims)
	}
	// Without login_hint every sign-in is a new user.
	b := NewBrowser(e.Transport)
	loc, err := b.Follow(ctx, "GET", idp.Issuer+"/authorize?"+url.Values{"client_id": {"rp"}, "response_type": {"code"},
		"redirect_uri": {"http://rp.example/cb"}}.Encode(), nil, func(u *url.URL) bool { return isUnder(u, "http://rp.example/cb") })
	if err != nil || loc.Query().Get("code") == "" || loc.Query().Get("iss") != idp.Issuer {
		t.Fatalf("fresh user: %v %v", err, loc)
	}
}

// TestResultLine: the scripts (bench-ab.sh, bench-peers.sh) read the
// printed line by its field names; the measured process is named as what
// it is, Gatehouse or another broker.
func TestResultLine(t *testing.T) {
	for _, tc := range []struct {
		server, want, not string
	}{
		{"", " gatehouse_cpu=2.000ms/flow ", "broker_cpu"},
		{"broker", " broker_cpu=2.000ms/flow ", "gatehouse_cpu"},
	} {
		r := &Result{Scenario: "app-broker", Flows: 10, Elapsed: time.Second, ServerCPU: 20 * time.Millisecond, Server: tc.server}
		line := r.String()
		if !strings.Contains(line, tc.want) || strings.Contains(line, tc.not) || !strings.Contains(line, " rate=10/s ") {
			t.Errorf("server %q: %s", tc.server, line)
		}
	}
}

// TestIdPHostName: an IdP started on a host name keeps the name in its
// issuer and in its discovery document (relying parties such as
// openid-client allow plain HTTP to "localhost" only).
func TestIdPHostName(t *testing.T) {
	for _, tc := range []struct{ addr, prefix string }{
		{"localhost:0", "http://localhost:"},
		{"127.0.0.1:0", "http://127.0.0.1:"},
	} {
		idp, err := StartIdP(tc.addr, "rp", "rp-secret", "example.org")
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Issuer    string `json:"issuer"`
			Authorize string `json:"authorization_endpoint"`
		}
		resp, err := http.Get(idp.Issuer + "/.well-known/openid-configuration")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&d)
			resp.Body.Close()
		}
		idp.Close()
		if err != nil || !strings.HasPrefix(idp.Issuer, tc.prefix) || d.Issuer != idp.Issuer || d.Authorize != idp.Issuer+"/authorize" {
			t.Errorf("%s: issuer %q, discovery %+v, %v", tc.addr, idp.Issuer, d, err)
		}
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestPeersRatios: bench-peers.sh's summary of a run (testdata/peers-lines.txt:
// two Gatehouse binaries, Dex in memory and on SQLite, a peer that failed,
// two concurrencies in round 1 and the flags' own in round 2) compares each
// Gatehouse line with the fastest and the leanest other broker per round and
// concurrency, and each broker's best over the concurrencies of a round.
func TestPeersRatios(t *testing.T) {
	out, err := exec.Command("bash", "../scripts/bench-peers.sh", "--ratios", "testdata/peers-lines.txt").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	golden := filepath.Join("testdata", "peers-ratios.golden")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(want) {
		t.Errorf("bench-peers.sh --ratios:\n%s\nwant (%s):\n%s", out, golden, want)
	}
}
