package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-sso/gatehouse/connector/oauth2"
	"github.com/gatehouse-sso/gatehouse/internal/servertest"
)

// githubLike is a GitHub-shaped OAuth 2.0 provider: a code, a form-encoded
// token answer, numeric user ids and a separate emails API.
type githubLike struct {
	mu         sync.Mutex
	srv        *httptest.Server
	challenges map[string]string
	verified   bool
}

func newGitHubLike(t *testing.T) *githubLike {
	g := &githubLike{challenges: map[string]string{}, verified: true}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("code_challenge_method") != "S256" {
			http.Error(w, "PKCE S256 expected", 400)
			return
		}
		g.mu.Lock()
		g.challenges["code-1"] = q.Get("code_challenge")
		g.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {"code-1"}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		g.mu.Lock()
		ch := g.challenges[r.PostForm.Get("code")]
		delete(g.challenges, r.PostForm.Get("code"))
		g.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if r.PostForm.Get("client_secret") != "gh-e2e-secret" || ch == "" || base64.RawURLEncoding.EncodeToString(sum[:]) != ch {
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			w.Write([]byte("error=bad_verification_code"))
			return
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		w.Write([]byte("access_token=gho_e2e&scope=read%3Auser%2Cuser%3Aemail&token_type=bearer"))
	})
	api := func(v func() any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer gho_e2e" {
				w.WriteHeader(401)
				return
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			json.NewEncoder(w).Encode(v())
		}
	}
	mux.HandleFunc("GET /user", api(func() any { return map[string]any{"id": 9001, "login": "octo", "name": "Octo Cat", "email": nil} }))
	mux.HandleFunc("GET /user/emails", api(func() any {
		g.mu.Lock()
		defer g.mu.Unlock()
		return []map[string]any{{"email": "octo@example.com", "primary": true, "verified": g.verified}}
	}))
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	return g
}

// TestOAuth2EndToEnd: a GitHub-style connection through the whole server,
// on the /sso/oauth2/{id}/callback route.
func TestOAuth2EndToEnd(t *testing.T) {
	oauth2.Register() // idempotent; the server registers its types on start too
	gh := newGitHubLike(t)
	inst := servertest.Start(t, servertest.Options{})
	e := &oidcE2E{t: t, inst: inst}
	e.mustAPI("POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme", "domains": []string{"example.com"}}, nil, http.StatusCreated)
	var conn map[string]any
	e.mustAPI("POST", "/api/v1/tenants/acme/connections", map[string]any{
		"type": "oauth2", "preset": "github", "name": "GitHub", "enabled": true,
		"authorize_url": gh.srv.URL + "/login/oauth/authorize", "token_url": gh.srv.URL + "/login/oauth/access_token",
		"userinfo_url": gh.srv.URL + "/user", "emails_url": gh.srv.URL + "/user/emails",
		"client_id": "Iv1.e2e", "client_secret": "gh-e2e-secret", "jit": map[string]any{"enabled": true},
	}, &conn, http.StatusCreated)
	id, _ := conn["id"].(string)
	if conn["redirect_uri"] != inst.URL+"/sso/oauth2/"+id+"/callback" || conn["client_secret"] != nil {
		t.Fatalf("connection %v", conn)
	}

	e.mustLogin(id, "")
	us := e.users("octo@example.com")
	if len(us) != 1 || us[0].DisplayName != "Octo Cat" || us[0].Source != "jit" {
		t.Fatalf("users %+v", us)
	}
	// A second login is the same user (keyed on the numeric id).
	e.mustLogin(id, "")
	if again := e.users("octo@example.com"); len(again) != 1 || again[0].ID != us[0].ID {
		t.Fatalf("users %+v", again)
	}
	// GitHub answers token errors with 200 and an error field: still an
	// error page, naming the code.
	e.mustAPI("PATCH", "/api/v1/tenants/acme/connections/"+id, map[string]any{"client_secret": "rotated"}, nil, http.StatusOK)
	if status, body := e.login(id, ""); status != http.StatusForbidden || !strings.Contains(body, "bad_verification_code") {
		t.Fatalf("wrong secret %d: %s", status, body)
	}
}
