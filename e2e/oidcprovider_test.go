package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// opAccount is one user of the real OpenID provider.
type opAccount struct {
	Sub           string   `json:"sub"`
	Email         string   `json:"email,omitempty"`
	EmailVerified *bool    `json:"email_verified,omitempty"`
	Name          string   `json:"name,omitempty"`
	GivenName     string   `json:"given_name,omitempty"`
	FamilyName    string   `json:"family_name,omitempty"`
	Groups        []string `json:"groups,omitempty"`
	// Deny makes the provider answer error=access_denied for this account.
	Deny bool `json:"deny,omitempty"`
}

type opOptions struct {
	ClientID, ClientSecret string
	// RedirectPrefix: redirect URIs starting with it are accepted (the
	// connection id in Gatehouse's callback is not known in advance).
	RedirectPrefix string
	// ClaimsIn is "id_token" (every claim in the ID token too) or
	// "userinfo" (profile claims only from the userinfo endpoint).
	ClaimsIn string
	Accounts []opAccount
	// ClientJWKS, when set, registers a second client "<ClientID>-pkjwt"
	// that authenticates with private_key_jwt (RFC 7523) using these keys.
	ClientJWKS json.RawMessage
}

// realOP is panva's oidc-provider (testing/oidc-provider/server.mjs) running
// as a child process on a free loopback port.
type realOP struct {
	Issuer       string
	ClientID     string
	ClientSecret string
}

func boolp(b bool) *bool { return &b }

// repoRoot is the module root (this file lives in e2e/).
func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// requireTool fails under CI=true and skips otherwise: CI must never skip
// the end-to-end suite, a developer without the tools may.
func requireTool(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	msg := what + " is missing: run `make test-deps` (it runs npm install in testing/)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// startOP starts the real provider and stops it when the test ends.
func startOP(t *testing.T, o opOptions) *realOP {
	t.Helper()
	root := repoRoot(t)
	node, err := exec.LookPath("node")
	requireTool(t, err == nil, "node")
	_, err = os.Stat(filepath.Join(root, "testing", "node_modules", "oidc-provider", "package.json"))
	requireTool(t, err == nil, "testing/node_modules/oidc-provider")
	if o.ClientID == "" {
		o.ClientID = "gatehouse-e2e"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "e2e-client-secret-0123456789abcdefghijkl"
	}
	if o.ClaimsIn == "" {
		o.ClaimsIn = "id_token"
	}
	accounts, err := json.Marshal(o.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(root, "testing", "oidc-provider", "server.mjs"),
		"--port", "0", "--client-id", o.ClientID, "--client-secret", o.ClientSecret,
		"--redirect-uri-prefix", o.RedirectPrefix, "--claims", o.ClaimsIn)
	cmd.Env = append(os.Environ(), "OP_ACCOUNTS="+string(accounts), "NODE_NO_WARNINGS=1")
	if o.ClientJWKS != nil {
		cmd.Env = append(cmd.Env, "OP_CLIENT_JWKS="+string(o.ClientJWKS))
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start oidc-provider: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("oidc-provider stderr:\n%s", stderr.String())
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- url
			}
		}
		close(ready)
	}()
	select {
	case url, ok := <-ready:
		if !ok {
			t.Fatalf("oidc-provider exited before it was ready:\n%s", stderr.String())
		}
		return &realOP{Issuer: url, ClientID: o.ClientID, ClientSecret: o.ClientSecret}
	case <-time.After(30 * time.Second):
		t.Fatalf("oidc-provider not ready after 30s:\n%s", stderr.String())
	}
	return nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
