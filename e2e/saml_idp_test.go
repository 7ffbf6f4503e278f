package e2e

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
)

// simpleSAML is a real SAML 2.0 IdP for the end-to-end tests: SimpleSAMLphp
// from Debian (packages simplesamlphp, php-cli, php-xml; see
// scripts/test-deps.sh) served by PHP's built-in server on a loopback port,
// configured from testing/saml. Users (password "pw"): ana (mail, names,
// groups eng and admins) and bo (mail only).
type simpleSAML struct {
	URL         string // base URL, ending in "/"
	MetadataURL string
	EntityID    string
	dir         string

	mu  sync.Mutex
	sps map[string]map[string]any
}

const simpleSAMLWWW = "/usr/share/simplesamlphp/www"

// startSimpleSAMLphp starts the IdP and stops it when t ends. Without the
// packages the test fails in CI and is skipped (loudly) elsewhere, like the
// PostgreSQL tests.
func startSimpleSAMLphp(t *testing.T) *simpleSAML {
	t.Helper()
	php, err := exec.LookPath("php")
	if err == nil {
		_, err = os.Stat(filepath.Join(simpleSAMLWWW, "saml2", "idp", "SSOService.php"))
	}
	if err == nil {
		if out, e := exec.Command(php, "-m").Output(); e != nil || !strings.Contains(string(out), "dom") {
			err = fmt.Errorf("php has no dom extension (install php-xml)")
		}
	}
	if err != nil {
		msg := fmt.Sprintf("SimpleSAMLphp is not installed (%v); run scripts/test-deps.sh (Debian packages simplesamlphp php-cli php-xml)", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING SIMPLESAMLPHP TEST: " + msg)
	}
	configDir, err := filepath.Abs(filepath.Join("..", "testing", "saml", "config"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	signer := samltest.NewSigner("SimpleSAMLphp test IdP", 2048)
	key, _ := x509.MarshalPKCS8PrivateKey(signer.Key)
	writeFile(t, filepath.Join(dir, "idp.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}))
	writeFile(t, filepath.Join(dir, "idp.crt"), []byte(signer.CertPEM()))
	writeFile(t, filepath.Join(dir, "sp-remote.json"), []byte("{}"))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	s := &simpleSAML{URL: "http://" + addr + "/", dir: dir, sps: map[string]map[string]any{}}
	s.MetadataURL = s.URL + "saml2/idp/metadata.php"
	s.EntityID = s.MetadataURL
	logf, err := os.Create(filepath.Join(dir, "php.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(php, "-S", addr, "-t", simpleSAMLWWW)
	cmd.Env = append(os.Environ(), "SIMPLESAMLPHP_CONFIG_DIR="+configDir, "GH_SSP_BASEURL="+s.URL, "GH_SSP_DIR="+dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start php: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
		if t.Failed() {
			for _, name := range []string{"simplesamlphp.log", "php.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
					t.Logf("%s:\n%s", name, tail(string(b), 4000))
				}
			}
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.MetadataURL)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), "IDPSSODescriptor") {
				break
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, tail(string(body), 500))
		}
		if time.Now().After(deadline) {
			t.Fatalf("SimpleSAMLphp did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// addSP registers a Gatehouse SAML connection with the IdP, from the SP
// metadata Gatehouse publishes (no token needed): entity ID, ACS, SLO and
// certificates. The NameID is persistent, valued with the uid attribute.
func (s *simpleSAML) addSP(t *testing.T, spMetadataURL string, encrypt bool) {
	t.Helper()
	resp, err := http.Get(spMetadataURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SP metadata: %s: %s", resp.Status, body)
	}
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal(body, &ed); err != nil || len(ed.SPSSODescriptors) != 1 {
		t.Fatalf("SP metadata: %v\n%s", err, body)
	}
	spd := ed.SPSSODescriptors[0]
	var keys []map[string]any
	for _, kd := range spd.KeyDescriptors {
		for _, c := range kd.KeyInfo.X509Data.X509Certificates {
			keys = append(keys, map[string]any{
				"type": "X509Certificate", "X509Certificate": strings.Join(strings.Fields(c.Data), ""),
				"signing": kd.Use == "signing", "encryption": kd.Use == "encryption",
			})
		}
	}
	var acs []map[string]any
	for _, e := range spd.AssertionConsumerServices {
		acs = append(acs, map[string]any{"Binding": e.Binding, "Location": e.Location, "index": e.Index})
	}
	sp := map[string]any{
		"entityid":                   ed.EntityID,
		"AssertionConsumerService":   acs,
		"keys":                       keys,
		"NameIDFormat":               "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
		"simplesaml.nameidattribute": "uid",
		"attributes.NameFormat":      "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
		"assertion.encryption":       encrypt,
		"saml20.sign.assertion":      true,
		"saml20.sign.response":       true,
		"validate.authnrequest":      false,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sps[ed.EntityID] = sp
	b, err := json.MarshalIndent(s.sps, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(s.dir, "sp-remote.json"), b)
}

// idpInitiatedURL starts an IdP-initiated login to the SP spEntityID.
func (s *simpleSAML) idpInitiatedURL(spEntityID string) string {
	return s.URL + "saml2/idp/SSOService.php?" + url.Values{"spentityid": {spEntityID}}.Encode()
}

// lastSAMLResponse is the last response throughIdP posted (tests using it
// do not run in parallel).
var lastSAMLResponse string

var (
	formRe  = regexp.MustCompile(`(?is)<form[^>]*>`)
	inputRe = regexp.MustCompile(`(?is)<input[^>]*>`)
	attrRe  = regexp.MustCompile(`(?is)\b(name|value|action|type)\s*=\s*"([^"]*)"`)
)

// htmlForm reads the first form of an HTML page: its action (resolved
// against base) and its named inputs.
func htmlForm(base *url.URL, page string) (string, url.Values, bool) {
	f := formRe.FindString(page)
	if f == "" {
		return "", nil, false
	}
	action := ""
	for _, m := range attrRe.FindAllStringSubmatch(f, -1) {
		if strings.EqualFold(m[1], "action") {
			action = html.UnescapeString(m[2])
		}
	}
	u, err := base.Parse(action)
	if err != nil {
		return "", nil, false
	}
	vals := url.Values{}
	for _, in := range inputRe.FindAllString(page[strings.Index(page, f):], -1) {
		var name, value string
		for _, m := range attrRe.FindAllStringSubmatch(in, -1) {
			switch strings.ToLower(m[1]) {
			case "name":
				name = html.UnescapeString(m[2])
			case "value":
				value = html.UnescapeString(m[2])
			}
		}
		if name != "" {
			vals.Set(name, value)
		}
	}
	return u.String(), vals, true
}

// throughIdP drives a browser that has reached SimpleSAMLphp: it fills the
// login form when one is shown (user, password "pw"), then submits the
// HTTP-POST binding form SimpleSAMLphp answers with (SAMLResponse and
// RelayState to the ACS), as the page's script would, and returns the
// final response and page. The decoded SAMLResponse it posted is kept in
// lastSAMLResponse, for checks on what the IdP sent.
func throughIdP(t *testing.T, b *http.Client, resp *http.Response, user string) (*http.Response, string) {
	t.Helper()
	lastSAMLResponse = ""
	for i := 0; i < 4; i++ {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(body)
		action, vals, ok := htmlForm(resp.Request.URL, page)
		switch {
		case !ok:
			return resp, page
		case vals.Has("SAMLResponse"):
			x, _ := base64.StdEncoding.DecodeString(vals.Get("SAMLResponse"))
			lastSAMLResponse = string(x)
		case vals.Has("username") || vals.Has("password"):
			vals.Set("username", user)
			vals.Set("password", "pw")
			if vals.Get("AuthState") == "" {
				vals.Set("AuthState", resp.Request.URL.Query().Get("AuthState"))
			}
			action = resp.Request.URL.String()
		default:
			return resp, page
		}
		var err error
		resp, err = b.PostForm(action, vals)
		if err != nil {
			t.Fatalf("post %s: %v", action, err)
		}
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}
