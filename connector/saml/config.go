package saml

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
)

// NameID formats (saml-core §8.3).
const (
	formatPersistent  = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	formatTransient   = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
	formatEmail       = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
	formatUnspecified = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
)

const (
	defaultClockSkew = 90
	// maxClockSkew is the largest skew a connection may configure: the
	// SAML library applies its own fixed 180 s bound to the same times.
	maxClockSkew = 180
	// spKeyBits is the size of the SP keys we generate.
	spKeyBits = 2048
	// spCertLifetime is the validity of our self-signed SP certificates.
	// IdPs treat them as key containers (SAML metadata interoperability
	// profile); a rollover replaces them.
	spCertLifetime = 10 * 365 * 24 * time.Hour
	// certWarning is how early Describe warns of an IdP certificate expiry.
	certWarning = 30 * 24 * time.Hour
)

// Config is a SAML connection's stored, non-secret configuration.
type Config struct {
	// IdP settings come from exactly one of: a metadata URL, metadata
	// XML, or the manual trio (SSO URL, entity ID, certificates).
	IdPMetadataURL string `json:"idp_metadata_url,omitempty"`
	// IdPMetadataXML is the metadata as pasted or, with a metadata URL,
	// as last fetched (the fallback when the URL cannot be reached).
	IdPMetadataXML  string   `json:"idp_metadata_xml,omitempty"`
	IdPSSOURL       string   `json:"idp_sso_url,omitempty"`
	IdPSSOBinding   string   `json:"idp_sso_binding,omitempty"` // "redirect" (default) or "post", manual only
	IdPEntityID     string   `json:"idp_entity_id,omitempty"`
	IdPCertificates []string `json:"idp_certificates,omitempty"` // PEM, manual only
	IdPSLOURL       string   `json:"idp_slo_url,omitempty"`

	AllowIdPInitiated  bool   `json:"allow_idp_initiated"`
	IdPInitiatedTarget string `json:"idp_initiated_target,omitempty"`
	SignAuthnRequests  bool   `json:"sign_authn_requests"`
	// AllowSHA1 accepts RSA-SHA1 signatures and SHA-1 digests.
	AllowSHA1 bool `json:"allow_sha1"`
	// AllowShortKeys accepts IdP RSA keys from 1024 to 2047 bits.
	AllowShortKeys   bool   `json:"allow_short_keys"`
	ClockSkewSeconds int    `json:"clock_skew_seconds"`
	NameIDFormat     string `json:"name_id_format"`
	SubjectAttribute string `json:"subject_attribute,omitempty"`
}

// Secrets is a SAML connection's sealed settings: the SP key pairs. The
// first signing pair signs; every pair is published in the metadata and
// every encryption key decrypts, so a rollover has two of each for a while.
type Secrets struct {
	Signing    []KeyPair `json:"signing"`
	Encryption []KeyPair `json:"encryption"`
}

// KeyPair is an RSA private key and its self-signed certificate, PEM.
type KeyPair struct {
	Key  string `json:"key"`
	Cert string `json:"cert"`
}

var nameIDFormats = map[string]string{
	"persistent":   formatPersistent,
	"emailAddress": formatEmail,
	"unspecified":  formatUnspecified,
}

// configFields are the protocol fields Configure accepts.
var configFields = map[string]bool{
	"idp_metadata_url": true, "idp_metadata_xml": true, "idp_sso_url": true, "idp_sso_binding": true,
	"idp_entity_id": true, "idp_certificate": true, "idp_certificates": true, "idp_slo_url": true,
	"allow_idp_initiated": true, "idp_initiated_target": true, "sign_authn_requests": true,
	"allow_sha1": true, "allow_short_keys": true, "clock_skew_seconds": true, "name_id_format": true,
	"subject_attribute": true, "sp_key_rollover": true,
}

func configure(ctx context.Context, env connector.Env, c *gatehouse.Connection, oldSecrets json.RawMessage, in map[string]json.RawMessage) (json.RawMessage, json.RawMessage, error) {
	cfg := Config{ClockSkewSeconds: defaultClockSkew, NameIDFormat: "persistent"}
	if c != nil && len(c.Config) > 0 {
		if err := json.Unmarshal(c.Config, &cfg); err != nil {
			return nil, nil, fmt.Errorf("saml: stored config: %w", err)
		}
	}
	for k := range in {
		if !configFields[k] {
			return nil, nil, gatehouse.FieldError(k, "Unknown field %q for a SAML connection.", k)
		}
	}
	str := func(name string, dst *string) error {
		raw, ok := in[name]
		if !ok {
			return nil
		}
		*dst = ""
		if string(raw) == "null" {
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return gatehouse.FieldError(name, "%s must be a string.", name)
		}
		*dst = strings.TrimSpace(*dst)
		return nil
	}
	boolean := func(name string, dst *bool) error {
		raw, ok := in[name]
		if !ok {
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return gatehouse.FieldError(name, "%s must be true or false.", name)
		}
		return nil
	}
	// A new IdP source replaces the others.
	_, setURL := in["idp_metadata_url"]
	_, setXML := in["idp_metadata_xml"]
	_, setCert := in["idp_certificate"]
	_, setCerts := in["idp_certificates"]
	_, setSSO := in["idp_sso_url"]
	manual := setCert || setCerts || setSSO
	if setURL || setXML || manual {
		if n := btoi(setURL && string(in["idp_metadata_url"]) != "null") + btoi(setXML && string(in["idp_metadata_xml"]) != "null") + btoi(manual); n > 1 {
			return nil, nil, gatehouse.FieldError("idp_metadata_url", "Give one of idp_metadata_url, idp_metadata_xml, or idp_sso_url with idp_entity_id and idp_certificate.")
		}
		if !manual {
			cfg.IdPSSOURL, cfg.IdPSSOBinding, cfg.IdPCertificates = "", "", nil
			if _, ok := in["idp_entity_id"]; !ok {
				cfg.IdPEntityID = ""
			}
		}
		if !setURL {
			cfg.IdPMetadataURL = ""
		}
		if !setXML && !setURL {
			cfg.IdPMetadataXML = ""
		}
	}
	var rollover string
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"idp_metadata_url", &cfg.IdPMetadataURL}, {"idp_metadata_xml", &cfg.IdPMetadataXML},
		{"idp_sso_url", &cfg.IdPSSOURL}, {"idp_sso_binding", &cfg.IdPSSOBinding},
		{"idp_entity_id", &cfg.IdPEntityID}, {"idp_slo_url", &cfg.IdPSLOURL},
		{"idp_initiated_target", &cfg.IdPInitiatedTarget}, {"name_id_format", &cfg.NameIDFormat},
		{"subject_attribute", &cfg.SubjectAttribute}, {"sp_key_rollover", &rollover},
	} {
		if err := str(f.name, f.dst); err != nil {
			return nil, nil, err
		}
	}
	for _, f := range []struct {
		name string
		dst  *bool
	}{
		{"allow_idp_initiated", &cfg.AllowIdPInitiated}, {"sign_authn_requests", &cfg.SignAuthnRequests},
		{"allow_sha1", &cfg.AllowSHA1}, {"allow_short_keys", &cfg.AllowShortKeys},
	} {
		if err := boolean(f.name, f.dst); err != nil {
			return nil, nil, err
		}
	}
	if raw, ok := in["clock_skew_seconds"]; ok {
		if err := json.Unmarshal(raw, &cfg.ClockSkewSeconds); err != nil || cfg.ClockSkewSeconds < 0 || cfg.ClockSkewSeconds > maxClockSkew {
			return nil, nil, gatehouse.FieldError("clock_skew_seconds", "clock_skew_seconds must be a whole number from 0 to %d.", maxClockSkew)
		}
	}
	if setCert || setCerts {
		name := "idp_certificate"
		if setCerts {
			name = "idp_certificates"
		}
		pems, err := parseCertInput(in[name], cfg.AllowShortKeys, env.Clock)
		if err != nil {
			return nil, nil, gatehouse.FieldError(name, "%s", err.Error())
		}
		cfg.IdPCertificates = pems
	}
	if cfg.NameIDFormat == "" {
		cfg.NameIDFormat = "persistent"
	}
	if _, ok := nameIDFormats[cfg.NameIDFormat]; !ok {
		return nil, nil, gatehouse.FieldError("name_id_format", "name_id_format must be persistent, emailAddress or unspecified.")
	}
	if cfg.IdPInitiatedTarget != "" && !localPath(cfg.IdPInitiatedTarget) {
		return nil, nil, gatehouse.FieldError("idp_initiated_target", "idp_initiated_target must be a local path starting with a single /.")
	}
	if cfg.IdPSLOURL != "" {
		if err := checkURL(cfg.IdPSLOURL, env.Dev); err != nil {
			return nil, nil, gatehouse.FieldError("idp_slo_url", "idp_slo_url %s", err)
		}
	}

	// Resolve the IdP settings now, so a bad metadata document or
	// certificate is an error on the request that sets it.
	switch {
	case cfg.IdPMetadataURL != "":
		if err := checkURL(cfg.IdPMetadataURL, env.Dev); err != nil {
			return nil, nil, gatehouse.FieldError("idp_metadata_url", "idp_metadata_url %s", err)
		}
		if setURL || cfg.IdPMetadataXML == "" {
			doc, err := fetchMetadata(ctx, env.HTTPClient, cfg.IdPMetadataURL)
			if err != nil {
				return nil, nil, &gatehouse.Error{Code: gatehouse.EINVALID, Field: "idp_metadata_url",
					Message: "The IdP metadata could not be fetched from idp_metadata_url: " + publicCause(err), Err: err}
			}
			cfg.IdPMetadataXML = string(doc)
		}
		if _, err := parseIdPMetadata([]byte(cfg.IdPMetadataXML), cfg.IdPEntityID, cfg.AllowShortKeys, env.Clock); err != nil {
			return nil, nil, &gatehouse.Error{Code: gatehouse.EINVALID, Field: "idp_metadata_url", Message: "The IdP metadata is not usable: " + publicCause(err), Err: err}
		}
	case cfg.IdPMetadataXML != "":
		if _, err := parseIdPMetadata([]byte(cfg.IdPMetadataXML), cfg.IdPEntityID, cfg.AllowShortKeys, env.Clock); err != nil {
			return nil, nil, &gatehouse.Error{Code: gatehouse.EINVALID, Field: "idp_metadata_xml", Message: "The IdP metadata is not usable: " + publicCause(err), Err: err}
		}
	default:
		if cfg.IdPSSOURL == "" {
			return nil, nil, gatehouse.FieldError("idp_metadata_url", "Give idp_metadata_url, idp_metadata_xml, or idp_sso_url with idp_entity_id and idp_certificate.")
		}
		if err := checkURL(cfg.IdPSSOURL, env.Dev); err != nil {
			return nil, nil, gatehouse.FieldError("idp_sso_url", "idp_sso_url %s", err)
		}
		if cfg.IdPEntityID == "" {
			return nil, nil, gatehouse.FieldError("idp_entity_id", "idp_entity_id is required with idp_sso_url.")
		}
		if len(cfg.IdPCertificates) == 0 {
			return nil, nil, gatehouse.FieldError("idp_certificate", "idp_certificate is required with idp_sso_url.")
		}
		switch cfg.IdPSSOBinding {
		case "", "redirect", "post":
		default:
			return nil, nil, gatehouse.FieldError("idp_sso_binding", "idp_sso_binding must be redirect or post.")
		}
	}

	// SP key pairs: generated on create, kept on update, rolled over on
	// request ("start" publishes new pairs next to the old ones; "finish"
	// signs with the new pair and drops the old).
	var sec Secrets
	if len(oldSecrets) > 0 {
		if err := json.Unmarshal(oldSecrets, &sec); err != nil {
			return nil, nil, fmt.Errorf("saml: stored secrets: %w", err)
		}
	}
	now := clockOf(env).Now()
	switch rollover {
	case "":
	case "start":
		if len(sec.Signing) != 1 || len(sec.Encryption) != 1 {
			return nil, nil, gatehouse.FieldError("sp_key_rollover", "A key rollover is already in progress; finish it first.")
		}
		if err := addKeyPairs(&sec, c, now); err != nil {
			return nil, nil, err
		}
	case "finish":
		if len(sec.Signing) < 2 {
			return nil, nil, gatehouse.FieldError("sp_key_rollover", "No key rollover is in progress.")
		}
		sec.Signing = sec.Signing[len(sec.Signing)-1:]
		sec.Encryption = sec.Encryption[len(sec.Encryption)-1:]
	default:
		return nil, nil, gatehouse.FieldError("sp_key_rollover", "sp_key_rollover must be start or finish.")
	}
	if len(sec.Signing) == 0 || len(sec.Encryption) == 0 {
		sec = Secrets{}
		if err := addKeyPairs(&sec, c, now); err != nil {
			return nil, nil, err
		}
	}
	config, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	secrets, err := json.Marshal(sec)
	if err != nil {
		return nil, nil, err
	}
	return config, secrets, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func clockOf(env connector.Env) gatehouse.Clock {
	if env.Clock == nil {
		return gatehouse.SystemClock{}
	}
	return env.Clock
}

// localPath reports whether p is a path on this site: it starts with one
// slash, and no backslash or scheme can turn it into another origin.
func localPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n\t") {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == ""
}

// checkURL requires an absolute https URL; http only on a development
// instance or for a loopback host (a test IdP on the same machine; the
// outbound policy still decides whether Gatehouse may fetch from it).
func checkURL(s string, dev bool) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return errors.New("must be an absolute URL")
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && (dev || loopbackHost(u.Hostname()))) {
		return errors.New("must be an https URL")
	}
	return nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// publicCause returns the first line of err, for admin-facing messages.
func publicCause(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// parseCertInput accepts one certificate or a list (PEM, or base64 DER as
// IdP admin consoles show it) and returns them as PEM.
func parseCertInput(raw json.RawMessage, allowShort bool, clock gatehouse.Clock) ([]string, error) {
	var list []string
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		list = []string{one}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("must be a certificate (PEM or base64 DER) or a list of them")
	}
	var out []string
	for _, s := range list {
		certs, err := parseCertificates(s)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			if err := checkIdPKey(c, allowShort); err != nil {
				return nil, err
			}
			out = append(out, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("must hold at least one certificate")
	}
	return out, nil
}

// parseCertificates reads PEM blocks or a bare base64 DER certificate.
func parseCertificates(s string) ([]*x509.Certificate, error) {
	s = strings.TrimSpace(s)
	var out []*x509.Certificate
	if strings.Contains(s, "-----BEGIN") {
		rest := []byte(s)
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("is not a valid X.509 certificate: %v", err)
			}
			out = append(out, c)
		}
		if len(out) == 0 {
			return nil, errors.New("holds no PEM CERTIFICATE block")
		}
		return out, nil
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, errors.New("is neither PEM nor base64 DER")
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("is not a valid X.509 certificate: %v", err)
	}
	return []*x509.Certificate{c}, nil
}

// checkIdPKey refuses IdP keys we would not verify with: RSA under 2048
// bits (1024 with allowShort) and key types XML signatures of SAML IdPs do
// not use.
func checkIdPKey(c *x509.Certificate, allowShort bool) error {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		min := 2048
		if allowShort {
			min = 1024
		}
		if k.N.BitLen() < min {
			return fmt.Errorf("certificate %q has a %d-bit RSA key; at least %d bits are required (allow_short_keys accepts 1024)", c.Subject.CommonName, k.N.BitLen(), min)
		}
	default:
		if c.PublicKeyAlgorithm != x509.ECDSA {
			return fmt.Errorf("certificate %q has an unsupported key type %s", c.Subject.CommonName, c.PublicKeyAlgorithm)
		}
	}
	return nil
}

func addKeyPairs(sec *Secrets, c *gatehouse.Connection, now time.Time) error {
	name := "Gatehouse SAML SP"
	if c != nil && c.ID != "" {
		name += " " + c.ID
	}
	for _, dst := range []*[]KeyPair{&sec.Signing, &sec.Encryption} {
		kp, err := newKeyPair(name, now)
		if err != nil {
			return err
		}
		*dst = append(*dst, kp)
	}
	return nil
}

// newKeyPair makes an RSA key and a self-signed certificate for it. The
// certificate is only a key container for the IdP, so its fields beyond the
// key and validity matter little.
func newKeyPair(cn string, now time.Time) (KeyPair, error) {
	key, err := rsa.GenerateKey(rand.Reader, spKeyBits)
	if err != nil {
		return KeyPair{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return KeyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(spCertLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{
		Key:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(key)})),
		Cert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	}, nil
}

func mustPKCS8(key *rsa.PrivateKey) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	return b
}

// parsedPair is a KeyPair ready for use.
type parsedPair struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func (kp KeyPair) parse() (parsedPair, error) {
	kb, _ := pem.Decode([]byte(kp.Key))
	cb, _ := pem.Decode([]byte(kp.Cert))
	if kb == nil || cb == nil {
		return parsedPair{}, errors.New("saml: SP key pair is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return parsedPair{}, fmt.Errorf("saml: SP key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return parsedPair{}, errors.New("saml: SP key is not RSA")
	}
	c, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return parsedPair{}, fmt.Errorf("saml: SP certificate: %w", err)
	}
	return parsedPair{key: rk, cert: c}, nil
}

// certInfo describes a certificate for Describe.
func certInfo(c *x509.Certificate, now time.Time) map[string]any {
	sum := sha256.Sum256(c.Raw)
	return map[string]any{
		"subject":      c.Subject.String(),
		"not_after":    c.NotAfter.UTC(),
		"sha256":       hex.EncodeToString(sum[:]),
		"expires_soon": c.NotAfter.Sub(now) < certWarning,
		"expired":      !now.Before(c.NotAfter),
		"rsa_key_bits": rsaBits(c),
	}
}

func rsaBits(c *x509.Certificate) int {
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok {
		return k.N.BitLen()
	}
	return 0
}
