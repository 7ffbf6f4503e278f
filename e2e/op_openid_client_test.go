package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// rpScript is a relying party built on the npm package openid-client
// (testing/package.json), run with `node --input-type=module -e` from
// testing/ so it resolves testing/node_modules. It speaks JSON lines: it
// prints {"url"} to send the browser to, reads the callback URL from
// stdin, then redeems the code (PKCE, state, nonce checked by the
// library), calls userinfo and refreshes, and prints the outcome.
const rpScript = `
import * as client from 'openid-client';
import readline from 'node:readline';
const [issuer, clientId, secret, redirectUri] = process.argv.slice(1);
const rl = readline.createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
try {
  const config = await client.discovery(new URL(issuer), clientId, secret, undefined,
    { execute: [client.allowInsecureRequests] });
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState(), nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: 'openid email profile groups offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    state, nonce, login_hint: 'ada@example.com',
  });
  out({ url: url.href });
  const callback = (await lines.next()).value;
  const tokens = await client.authorizationCodeGrant(config, new URL(callback),
    { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  out({ claims, userinfo, refreshed: !!refreshed.access_token && refreshed.refresh_token !== tokens.refresh_token });
} catch (e) {
  out({ error: String(e && e.stack || e), cause: e && e.cause ? String(JSON.stringify(e.cause)) : '' });
}
process.exit(0);
`

type nodeRP struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startNodeRP(t *testing.T, issuer string, a *gatehouse.App, sec string) *nodeRP {
	t.Helper()
	root := repoRoot(t)
	node, err := exec.LookPath("node")
	requireTool(t, err == nil, "node")
	_, err = os.Stat(filepath.Join(root, "testing", "node_modules", "openid-client", "package.json"))
	requireTool(t, err == nil, "testing/node_modules/openid-client")
	cmd := exec.Command(node, "--input-type=module", "-e", rpScript, issuer, a.ClientID, sec, a.RedirectURIs[0])
	cmd.Dir = filepath.Join(root, "testing")
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	in, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("openid-client RP stderr:\n%s", stderr.String())
		}
	})
	return &nodeRP{cmd: cmd, in: in, out: bufio.NewScanner(stdout)}
}

func (n *nodeRP) next(t *testing.T, v any) {
	t.Helper()
	done := make(chan bool, 1)
	go func() { done <- n.out.Scan() }()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("the openid-client RP exited")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the openid-client RP did not answer in 30s")
	}
	if err := json.Unmarshal(n.out.Bytes(), v); err != nil {
		t.Fatalf("RP output %q: %v", n.out.Text(), err)
	}
}

// TestOPOpenIDClientTwoApps: the npm package openid-client signs in to two
// apps through Gatehouse; one login at the real upstream provider serves
// both.
func TestOPOpenIDClientTwoApps(t *testing.T) {
	s := newOPStack(t)
	issuer := s.srv.URL + "/t/acme"
	browser, ct := s.browser()
	type result struct {
		URL      string         `json:"url"`
		Error    string         `json:"error"`
		Cause    string         `json:"cause"`
		Claims   map[string]any `json:"claims"`
		Userinfo map[string]any `json:"userinfo"`
		Refresh  bool           `json:"refreshed"`
	}
	signIn := func(a *gatehouse.App, sec string) result {
		t.Helper()
		rp := startNodeRP(t, issuer, a, sec)
		var start result
		rp.next(t, &start)
		if start.URL == "" {
			t.Fatalf("RP did not start: %s %s", start.Error, start.Cause)
		}
		resp, err := browser.Get(start.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("browser ended with %d at %s", resp.StatusCode, resp.Request.URL)
		}
		_, _ = io.WriteString(rp.in, resp.Header.Get("Location")+"\n")
		var res result
		rp.next(t, &res)
		if res.Error != "" {
			t.Fatalf("openid-client: %s %s", res.Error, res.Cause)
		}
		return res
	}

	wiki, wsec := s.app(t, "Wiki", "https://wiki.example/cb")
	crm, csec := s.app(t, "CRM", "https://crm.example/cb")
	r1 := signIn(wiki, wsec)
	hits := ct.n.Load()
	if hits == 0 {
		t.Fatal("the first sign-in did not visit the upstream provider")
	}
	if r1.Claims["email"] != "ada@example.com" || r1.Userinfo["sub"] != r1.Claims["sub"] || !r1.Refresh {
		t.Fatalf("first app: %+v", r1)
	}
	r2 := signIn(crm, csec)
	if ct.n.Load() != hits {
		t.Fatal("the second app went to the upstream provider again")
	}
	if aud, _ := r2.Claims["aud"].([]any); r2.Claims["sub"] != r1.Claims["sub"] || len(aud) != 1 || aud[0] != crm.ClientID {
		t.Fatalf("second app: %+v", r2.Claims)
	}
}
