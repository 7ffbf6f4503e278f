package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/gatehouse-sso/gatehouse/connector"
)

// Golden files for the wire formats we emit: SP metadata and the
// AuthnRequest. Random parts (certificates, IDs) are replaced by
// placeholders; the fixture's clock fixes the times. Rewrite with
// GATEHOUSE_UPDATE_GOLDEN=1.
func TestGolden(t *testing.T) {
	f := newFixture(t, map[string]any{"idp_slo_url": "https://idp.example.org/idp/slo"})
	md, err := f.c.(*Connector).Metadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	flow := &connector.Flow{ID: "flw_g", State: "relay-state-handle"}
	act, err := f.c.Begin(context.Background(), flow)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(act.RedirectURL)
	raw, _ := base64.StdEncoding.DecodeString(u.Query().Get("SAMLRequest"))
	req, err := io.ReadAll(flate.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	certs := regexp.MustCompile(`<X509Certificate[^>]*>[^<]+</X509Certificate>`)
	ids := regexp.MustCompile(`ID="id-[0-9a-f]+"`)
	for name, got := range map[string][]byte{
		"sp-metadata.xml":   certs.ReplaceAll(md, []byte(`<X509Certificate>CERT</X509Certificate>`)),
		"authn-request.xml": ids.ReplaceAll(req, []byte(`ID="id-REQUEST"`)),
	} {
		path := filepath.Join("testdata", name)
		if os.Getenv("GATEHOUSE_UPDATE_GOLDEN") == "1" {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden file:\n%s", name, got)
		}
	}
}
