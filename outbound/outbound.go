// Package outbound makes the HTTP client for every request to a
// tenant-supplied URL (OIDC discovery, JWKS, token and userinfo endpoints,
// SAML metadata, webhooks). A tenant admin chooses those URLs, so without a
// policy they could point Gatehouse at its own network (server-side request
// forgery): the cloud metadata service at 169.254.169.254, a database on
// 10.0.0.5, the admin port on 127.0.0.1.
//
// The policy is enforced when a connection is dialed, on the IP address the
// name resolved to (net.Dialer.ControlContext), not on the URL: a name that
// resolves to a private address, a DNS answer that changes between check and
// use (DNS rebinding) and a redirect into private space are all refused the
// same way.
package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Defaults applied when a Policy field is zero.
const (
	DefaultTimeout = 10 * time.Second
	DefaultMaxBody = 2 << 20 // 2 MiB: discovery documents, key sets and metadata are far smaller
	// MaxRedirects bounds the redirects one request follows.
	MaxRedirects = 5
)

// EnvAllow is the environment variable that lists extra allowed networks.
const EnvAllow = "GATEHOUSE_OUTBOUND_ALLOW"

// Policy says where outbound requests may go.
type Policy struct {
	// Allow lists networks that are reachable although they are not public
	// (an IdP on the company network), from GATEHOUSE_OUTBOUND_ALLOW.
	Allow []netip.Prefix
	// AllowLoopback permits 127.0.0.0/8 and ::1. The server sets it when
	// its own public URL is on loopback (a development or test instance).
	AllowLoopback bool
	// Timeout bounds each request, body included. Zero means DefaultTimeout.
	Timeout time.Duration
	// MaxBody caps each response body; reading past it fails. Zero means
	// DefaultMaxBody.
	MaxBody int64
}

// BlockedError reports a refused destination.
type BlockedError struct {
	Addr   netip.Addr
	Reason string // "loopback", "private", "link-local", ...
	// URL is set when the refusal comes from the URL's host name rather
	// than a dialed address.
	URL string
}

func (e *BlockedError) Error() string {
	if e.URL != "" {
		return fmt.Sprintf("outbound: %s is a %s address, not allowed on this server; list it in %s to allow it", e.URL, e.Reason, EnvAllow)
	}
	return fmt.Sprintf("outbound: address %s is not allowed (%s); list it in %s to allow it", e.Addr, e.Reason, EnvAllow)
}

// ErrBodyTooLarge is returned by a response body read past Policy.MaxBody.
var ErrBodyTooLarge = errors.New("outbound: response body exceeds the size limit")

// Special-purpose IPv4 and IPv6 ranges that are never a public service
// (RFC 6890 registry) beyond what netip's predicates cover.
var reserved = []struct {
	p      netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space"}, // RFC 6598 (carrier NAT; some clouds' metadata)
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // includes 255.255.255.255
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard"},
}

// nat64 is the well-known NAT64 prefix (RFC 6052): its last 32 bits are an
// IPv4 address, checked like one, so 64:ff9b::a9fe:a9fe cannot reach
// 169.254.169.254.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// classify returns why ip is not a public address, or "" when it is.
func classify(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() && nat64.Contains(ip) {
		b := ip.As16()
		return classify(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	}
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, r := range reserved {
		if r.p.Contains(ip) {
			return r.reason
		}
	}
	return ""
}

// Check reports whether the policy lets a connection reach ip.
func (p Policy) Check(ip netip.Addr) error {
	ip = ip.Unmap()
	reason := classify(ip)
	if reason == "" {
		return nil
	}
	if reason == "loopback" && p.AllowLoopback {
		return nil
	}
	// Multicast and unspecified addresses are never a server, even when a
	// listed network happens to contain them.
	if reason != "multicast" && reason != "unspecified" && reason != "invalid" {
		for _, a := range p.Allow {
			if a.Contains(ip) {
				return nil
			}
		}
	}
	return &BlockedError{Addr: ip, Reason: reason}
}

type plainHTTPKey struct{}

// control is the dialer's hook: it refuses addresses the policy does not
// allow, and plain http to anything but loopback.
func (p Policy) control(ctx context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("outbound: unexpected dial address %q: %w", address, err)
	}
	if err := p.Check(ap.Addr()); err != nil {
		return err
	}
	// Plain http carries tokens and codes in the clear: only to this
	// machine.
	if plain, _ := ctx.Value(plainHTTPKey{}).(bool); plain && !ap.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("outbound: plain http to %s refused: only loopback may be reached without TLS", ap.Addr())
	}
	return nil
}

// NewClient returns a client that enforces p on every connection it dials,
// including those of redirects.
func NewClient(p Policy) *http.Client {
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.MaxBody <= 0 {
		p.MaxBody = DefaultMaxBody
	}
	dialer := &net.Dialer{
		Timeout:   p.Timeout,
		KeepAlive: 30 * time.Second,
		// ControlContext runs after name resolution, once per address
		// tried, just before connect(2): the address checked is the
		// address used.
		ControlContext: p.control,
	}
	tr := &http.Transport{
		// No proxy from the environment: the dial-time check must see
		// the destination, not a proxy.
		Proxy:             nil,
		DialContext:       dialer.DialContext,
		ForceAttemptHTTP2: true,
		MaxIdleConns:      256,
		// A burst of logins through one IdP calls its token endpoint
		// concurrently; over HTTP/1.1 (on-premises IdPs, loopback) each
		// call needs a connection of its own, and with net/http's default
		// of 2 (or a small cap) most are closed after one use and dialled
		// again: a connect, a close and often a TLS handshake per login.
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    p.Timeout,
		ResponseHeaderTimeout:  p.Timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: &transport{next: tr, policy: p},
		Timeout:   p.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= MaxRedirects {
				return fmt.Errorf("outbound: stopped after %d redirects", MaxRedirects)
			}
			return CheckURL(req.URL.String(), p)
		},
	}
}

// transport checks each request's URL, marks plain-http requests for the
// dialer and caps response bodies.
type transport struct {
	next   http.RoundTripper
	policy Policy
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := CheckURL(req.URL.String(), t.policy); err != nil {
		return nil, err
	}
	if req.URL.Scheme == "http" {
		req = req.WithContext(context.WithValue(req.Context(), plainHTTPKey{}, true))
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.policy.MaxBody {
		resp.Body.Close()
		return nil, fmt.Errorf("%w (%d bytes announced, limit %d)", ErrBodyTooLarge, resp.ContentLength, t.policy.MaxBody)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.policy.MaxBody}
	return resp, nil
}

// limitedBody fails, rather than silently truncating, once more than its
// limit has been read: a truncated JSON document must not parse as a
// shorter valid one.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, ErrBodyTooLarge
	}
	// Read one byte beyond the limit to tell "exactly at" from "past".
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n + int(b.left), ErrBodyTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// CheckURL validates a tenant-supplied URL before it is stored or used: an
// absolute http(s) URL without credentials, https unless the host is
// loopback (and loopback is allowed), and an IP-literal host the policy
// accepts. Host names are checked again at dial time on what they resolve to.
func CheckURL(raw string, p Policy) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a valid URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("URL %q must use https", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("URL %q has no host", raw)
	}
	if u.User != nil {
		return fmt.Errorf("URL %q must not carry credentials", u.Redacted())
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	ip, ipErr := netip.ParseAddr(host)
	if ipErr != nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
		// RFC 6761 §6.3: localhost names are loopback.
		ip, ipErr = netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	}
	if ipErr != nil {
		if u.Scheme == "http" {
			return fmt.Errorf("URL %q must use https (plain http is accepted only on loopback)", raw)
		}
		return nil // checked at dial time on what it resolves to
	}
	if u.Scheme == "http" && !ip.Unmap().IsLoopback() {
		return fmt.Errorf("URL %q must use https (plain http is accepted only on loopback)", raw)
	}
	if err := p.Check(ip); err != nil {
		var be *BlockedError
		if errors.As(err, &be) {
			be.URL = raw
		}
		return err
	}
	return nil
}

// ParseAllow parses GATEHOUSE_OUTBOUND_ALLOW: comma-separated CIDRs (a bare
// address means that one address). Empty means none.
func ParseAllow(env string) ([]netip.Prefix, error) {
	out, err := ParsePrefixes(env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvAllow, err)
	}
	return out, nil
}

// ParsePrefixes parses comma-separated CIDRs or bare addresses, the syntax
// of every list of networks in the configuration.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR or an IP address", f)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pf, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR (want e.g. 10.1.0.0/16)", f)
		}
		if pf.Addr().Is4In6() {
			return nil, fmt.Errorf("%q: write IPv4 networks in IPv4 form", f)
		}
		out = append(out, pf.Masked())
	}
	return out, nil
}

// GetJSON fetches url with client and decodes a JSON object into dst. It
// accepts only 200 with a JSON content type (RFC 8414 §3.2, OIDC Discovery
// §4.2 and RFC 7517 all serve application/json); header adds request
// headers (an Authorization for userinfo). The error says what went wrong
// for the operator's log; callers wrap it in a user-safe message.
func GetJSON(ctx context.Context, client *http.Client, url string, header http.Header, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, snippet(body))
	}
	ct := strings.ToLower(resp.Header.Get("Content-Type"))
	if ct != "" && !strings.Contains(ct, "json") {
		return fmt.Errorf("GET %s: content type %q, want JSON", url, ct)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: invalid JSON: %w", url, err)
	}
	return nil
}

// snippet returns the start of a response body for a log line.
func snippet(b []byte) string {
	const max = 200
	s := strings.ToValidUTF8(string(b), "?")
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
