package saml

import (
	"context"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/gatehouse-sso/gatehouse"
)

const (
	// maxMetadataBytes bounds a fetched or pasted metadata document. One
	// IdP's metadata is a few kilobytes; federation aggregates are not
	// supported (give the IdP's own metadata URL).
	maxMetadataBytes = 5 << 20
	// metadataRefresh is how long a fetched metadata document is used
	// before it is fetched again; metadataRetry is the wait after a failed
	// fetch, during which the last good copy keeps serving.
	metadataRefresh = time.Hour
	metadataRetry   = 5 * time.Minute
)

// idpInfo is what we use of an IdP's metadata (or manual settings).
type idpInfo struct {
	EntityID      string
	SSORedirect   string
	SSOPost       string
	SLORedirect   string
	Certs         []*x509.Certificate
	NameIDFormats []string
}

// fetchMetadata GETs a metadata document with the outbound-policy client.
func fetchMetadata(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	if client == nil {
		return nil, errors.New("no outbound HTTP client is configured")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/samlmetadata+xml, application/xml, text/xml")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxMetadataBytes {
		return nil, fmt.Errorf("metadata is larger than %d bytes", maxMetadataBytes)
	}
	return body, nil
}

// parseIdPMetadata reads an EntityDescriptor, or the IdP's entity in an
// EntitiesDescriptor (chosen by entityID when there are several).
func parseIdPMetadata(doc []byte, entityID string, allowShort bool, clock gatehouse.Clock) (*idpInfo, error) {
	if len(doc) > maxMetadataBytes {
		return nil, errors.New("metadata is too large")
	}
	// The same lexical checks as responses: no DOCTYPE, entities, comments
	// are fine to refuse here too, but IdP metadata often carries
	// comments, so only directives and depth are checked.
	if err := checkMetadataXML(doc); err != nil {
		return nil, err
	}
	var root struct{ XMLName xml.Name }
	if err := xml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("not XML: %v", err)
	}
	const nsMD = "urn:oasis:names:tc:SAML:2.0:metadata"
	var candidates []crewjam.EntityDescriptor
	switch root.XMLName {
	case xml.Name{Space: nsMD, Local: "EntityDescriptor"}:
		var ed crewjam.EntityDescriptor
		if err := xml.Unmarshal(doc, &ed); err != nil {
			return nil, fmt.Errorf("cannot read EntityDescriptor: %v", err)
		}
		candidates = append(candidates, ed)
	case xml.Name{Space: nsMD, Local: "EntitiesDescriptor"}:
		var eds crewjam.EntitiesDescriptor
		if err := xml.Unmarshal(doc, &eds); err != nil {
			return nil, fmt.Errorf("cannot read EntitiesDescriptor: %v", err)
		}
		candidates = flattenEntities(&eds)
	default:
		return nil, fmt.Errorf("root element is %s, not md:EntityDescriptor", root.XMLName.Local)
	}
	var idps []crewjam.EntityDescriptor
	for _, ed := range candidates {
		if len(ed.IDPSSODescriptors) > 0 && (entityID == "" || ed.EntityID == entityID) {
			idps = append(idps, ed)
		}
	}
	switch {
	case len(idps) == 0 && entityID != "":
		return nil, fmt.Errorf("no IdP with entityID %q in the metadata", entityID)
	case len(idps) == 0:
		return nil, errors.New("the metadata has no IDPSSODescriptor")
	case len(idps) > 1:
		return nil, errors.New("the metadata describes several IdPs; set idp_entity_id to choose one")
	}
	ed := idps[0]
	info := &idpInfo{EntityID: ed.EntityID}
	if info.EntityID == "" {
		return nil, errors.New("the EntityDescriptor has no entityID")
	}
	for _, d := range ed.IDPSSODescriptors {
		for _, s := range d.SingleSignOnServices {
			switch s.Binding {
			case crewjam.HTTPRedirectBinding:
				info.SSORedirect = first(info.SSORedirect, s.Location)
			case crewjam.HTTPPostBinding:
				info.SSOPost = first(info.SSOPost, s.Location)
			}
		}
		for _, s := range d.SingleLogoutServices {
			if s.Binding == crewjam.HTTPRedirectBinding {
				info.SLORedirect = first(info.SLORedirect, s.Location)
			}
		}
		for _, f := range d.NameIDFormats {
			info.NameIDFormats = append(info.NameIDFormats, strings.TrimSpace(string(f)))
		}
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "" && kd.Use != "signing" {
				continue
			}
			for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
				certs, err := parseCertificates(xc.Data)
				if err != nil {
					return nil, fmt.Errorf("signing certificate %w", err)
				}
				for _, c := range certs {
					if err := checkIdPKey(c, allowShort); err != nil {
						return nil, err
					}
					info.Certs = appendCert(info.Certs, c)
				}
			}
		}
	}
	if info.SSORedirect == "" && info.SSOPost == "" {
		return nil, errors.New("the IdP offers no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding")
	}
	if len(info.Certs) == 0 {
		return nil, errors.New("the IdP metadata has no signing certificate")
	}
	return info, nil
}

func flattenEntities(eds *crewjam.EntitiesDescriptor) []crewjam.EntityDescriptor {
	out := append([]crewjam.EntityDescriptor(nil), eds.EntityDescriptors...)
	for i := range eds.EntitiesDescriptors {
		out = append(out, flattenEntities(&eds.EntitiesDescriptors[i])...)
	}
	return out
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func appendCert(list []*x509.Certificate, c *x509.Certificate) []*x509.Certificate {
	for _, have := range list {
		if have.Equal(c) {
			return list
		}
	}
	return append(list, c)
}

// checkMetadataXML applies the directive and size checks to a metadata
// document (entities and DOCTYPEs are refused everywhere).
func checkMetadataXML(doc []byte) error {
	d := xml.NewDecoder(strings.NewReader(string(doc)))
	d.Strict = true
	depth := 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not well-formed XML: %v", err)
		}
		switch tok.(type) {
		case xml.Directive:
			return errors.New("DOCTYPE and entity declarations are not accepted")
		case xml.StartElement:
			depth++
			if depth > maxDepth {
				return errors.New("XML nested too deep")
			}
		case xml.EndElement:
			depth--
		}
	}
}

// metadataCache keeps fetched IdP metadata per connection in memory, so a
// metadata URL is fetched at most once per refresh period per process. An
// entry serves only the settings it was read for (URL and idp_entity_id):
// when an admin points the connection at another IdP of the same
// aggregate, the previous IdP's certificates stop being trusted at once,
// not at the next refresh.
var metadataCache = struct {
	sync.Mutex
	m map[string]*cachedMetadata
}{m: map[string]*cachedMetadata{}}

type cachedMetadata struct {
	url       string
	entityID  string // the configured idp_entity_id ("": the only IdP)
	info      *idpInfo
	nextFetch time.Time
}

// idpFromMetadataURL returns the IdP settings for a connection whose IdP
// metadata comes from a URL: the cached copy while fresh, else a new fetch,
// else (fetch failed) the last good copy or the snapshot in the config.
func (c *Connector) idpFromMetadataURL(ctx context.Context) (*idpInfo, error) {
	now := clockOf(c.env).Now()
	key := c.conn.ID
	metadataCache.Lock()
	entry := metadataCache.m[key]
	metadataCache.Unlock()
	same := entry != nil && entry.url == c.cfg.IdPMetadataURL && entry.entityID == c.cfg.IdPEntityID
	if same && now.Before(entry.nextFetch) {
		return entry.info, nil
	}
	var fallback *idpInfo
	if same {
		fallback = entry.info
	} else if c.cfg.IdPMetadataXML != "" {
		fallback, _ = parseIdPMetadata([]byte(c.cfg.IdPMetadataXML), c.cfg.IdPEntityID, c.cfg.AllowShortKeys, c.env.Clock)
	}
	next := &cachedMetadata{url: c.cfg.IdPMetadataURL, entityID: c.cfg.IdPEntityID, nextFetch: now.Add(metadataRefresh)}
	doc, err := fetchMetadata(ctx, c.env.HTTPClient, c.cfg.IdPMetadataURL)
	if err == nil {
		next.info, err = parseIdPMetadata(doc, c.cfg.IdPEntityID, c.cfg.AllowShortKeys, c.env.Clock)
	}
	if err != nil {
		if fallback == nil {
			return nil, fmt.Errorf("%w: %v", ErrMetadata, err)
		}
		c.logger().Warn("saml: IdP metadata refresh failed; using the last good copy",
			"connection", c.conn.ID, "url", c.cfg.IdPMetadataURL, "err", err)
		next.info, next.nextFetch = fallback, now.Add(metadataRetry)
	}
	metadataCache.Lock()
	metadataCache.m[key] = next
	metadataCache.Unlock()
	return next.info, nil
}

// idp returns the connection's IdP settings.
func (c *Connector) idp(ctx context.Context) (*idpInfo, error) {
	if c.fixedIdP != nil {
		return c.fixedIdP, nil
	}
	return c.idpFromMetadataURL(ctx)
}

// staticIdP builds the IdP settings of a connection configured by metadata
// XML or by hand; nil for a metadata URL.
func staticIdP(cfg *Config, clock gatehouse.Clock) (*idpInfo, error) {
	switch {
	case cfg.IdPMetadataURL != "":
		return nil, nil
	case cfg.IdPMetadataXML != "":
		info, err := parseIdPMetadata([]byte(cfg.IdPMetadataXML), cfg.IdPEntityID, cfg.AllowShortKeys, clock)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMetadata, err)
		}
		if cfg.IdPSLOURL == "" {
			cfg.IdPSLOURL = info.SLORedirect
		}
		return info, nil
	}
	info := &idpInfo{EntityID: cfg.IdPEntityID, SLORedirect: cfg.IdPSLOURL}
	if cfg.IdPSSOBinding == "post" {
		info.SSOPost = cfg.IdPSSOURL
	} else {
		info.SSORedirect = cfg.IdPSSOURL
	}
	for _, p := range cfg.IdPCertificates {
		certs, err := parseCertificates(p)
		if err != nil {
			return nil, fmt.Errorf("%w: idp certificate %v", ErrMetadata, err)
		}
		for _, cert := range certs {
			info.Certs = appendCert(info.Certs, cert)
		}
	}
	return info, nil
}
