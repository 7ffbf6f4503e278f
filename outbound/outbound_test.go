package outbound

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCheckAddresses(t *testing.T) {
	allow, err := ParseAllow(" 10.1.0.0/16 ,fd00:1::/32, 192.168.7.7")
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Allow: allow}
	for _, tc := range []struct {
		addr   string
		reason string // "" = allowed
	}{
		{"93.184.215.14", ""},
		{"2606:4700::1111", ""},
		{"127.0.0.1", "loopback"},
		{"127.8.9.10", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"10.0.0.1", "private"},
		{"10.1.2.3", ""}, // listed
		{"172.16.0.1", "private"},
		{"192.168.1.1", "private"},
		{"192.168.7.7", ""}, // listed as a bare address
		{"fc00::1", "private"},
		{"fd00:1::5", ""}, // listed
		{"fd00:ec2::254", "private"},
		{"169.254.169.254", "link-local"},
		{"::ffff:169.254.169.254", "link-local"},
		{"64:ff9b::a9fe:a9fe", "link-local"}, // NAT64 of the metadata address
		{"fe80::1", "link-local"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"100.100.100.200", "shared address space"},
		{"255.255.255.255", "reserved"},
	} {
		err := p.Check(netip.MustParseAddr(tc.addr))
		var be *BlockedError
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.addr, err)
		case tc.reason != "" && (!errors.As(err, &be) || be.Reason != tc.reason):
			t.Errorf("%s: got %v, want refusal %q", tc.addr, err, tc.reason)
		}
	}
	if err := (Policy{AllowLoopback: true}).Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("AllowLoopback: %v", err)
	}
	if err := (Policy{AllowLoopback: true}).Check(netip.MustParseAddr("10.0.0.1")); err == nil {
		t.Error("AllowLoopback allowed a private address")
	}
	if err := (Policy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}).Check(netip.MustParseAddr("224.0.0.1")); err == nil {
		t.Error("multicast allowed through a listed network")
	}
}

func TestParseAllow(t *testing.T) {
	got, err := ParseAllow("10.0.0.0/8, 2001:db8::/32,,")
	if err != nil || len(got) != 2 || got[1].String() != "2001:db8::/32" {
		t.Fatalf("got %v %v", got, err)
	}
	if got, err := ParseAllow(""); err != nil || got != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "nope", "10.0.0.0/8;", "::ffff:10.0.0.0/104"} {
		if _, err := ParseAllow(bad); err == nil || !strings.Contains(err.Error(), EnvAllow) {
			t.Errorf("%q: error %v does not name %s", bad, err, EnvAllow)
		}
	}
}

func TestCheckURL(t *testing.T) {
	lo := Policy{AllowLoopback: true}
	for _, tc := range []struct {
		url string
		p   Policy
		ok  bool
	}{
		{"https://idp.example.com/", Policy{}, true},
		{"http://idp.example.com/", lo, false},
		{"http://127.0.0.1:8080/", lo, true},
		{"http://localhost:8080/", lo, true},
		{"http://[::1]:8080/", lo, true},
		{"http://127.0.0.1:8080/", Policy{}, false},
		{"https://localhost/", Policy{}, false},
		{"https://10.0.0.1/", Policy{}, false},
		{"https://169.254.169.254/latest/meta-data/", lo, false},
		{"https://user:pw@idp.example.com/", Policy{}, false},
		{"ftp://idp.example.com/", Policy{}, false},
		{"/relative", Policy{}, false},
		{"https:///nohost", Policy{}, false},
	} {
		err := CheckURL(tc.url, tc.p)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q, loopback=%v) = %v, want ok=%v", tc.url, tc.p.AllowLoopback, err, tc.ok)
		}
	}
}

func blocked(t *testing.T, err error, reason string) {
	t.Helper()
	var be *BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("got %v, want a refusal (%s)", err, reason)
	}
	if be.Reason != reason {
		t.Fatalf("refused for %q, want %q", be.Reason, reason)
	}
}

func TestClientRefusesLoopbackByDefault(t *testing.T) {
	hit := false
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit = true }))
	defer srv.Close()
	c := NewClient(Policy{})
	c.Transport.(*transport).next.(*http.Transport).TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
	_, err := c.Get(srv.URL)
	blocked(t, err, "loopback")
	if hit {
		t.Fatal("the request reached the server")
	}
}

// A host name that resolves to a loopback address is refused at dial time:
// the check runs on the resolved address, so no name can smuggle a private
// destination past it (nor a DNS answer that changes after a check).
func TestDialTimeCheckOnResolvedAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	d := &net.Dialer{Timeout: time.Second, ControlContext: Policy{}.control}
	_, err = d.DialContext(context.Background(), "tcp", net.JoinHostPort("localhost", strconv.Itoa(port)))
	blocked(t, err, "loopback")

	// Through the whole client with a name that is not "localhost" (the
	// machine's own host name, when it resolves to loopback).
	host, _ := os.Hostname()
	addrs, _ := net.LookupHost(host)
	if len(addrs) == 0 || !netip.MustParseAddr(addrs[0]).IsLoopback() {
		return
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, sport, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	_, err = NewClient(Policy{}).Get("https://" + host + ":" + sport + "/")
	blocked(t, err, "loopback")
}

func TestRedirectsIntoPrivateSpaceRefused(t *testing.T) {
	// The origin is allowed (loopback on a test instance); it redirects
	// into link-local, private and IPv4-mapped metadata addresses.
	for _, target := range []string{
		"https://169.254.169.254/latest/meta-data/",
		"https://10.0.0.1/admin",
		"https://[::ffff:169.254.169.254]/",
		"https://[fd00:ec2::254]/",
	} {
		srv := httptest.NewServer(http.RedirectHandler(target, http.StatusFound))
		_, err := NewClient(Policy{AllowLoopback: true, Timeout: 2 * time.Second}).Get(srv.URL)
		srv.Close()
		var be *BlockedError
		if !errors.As(err, &be) {
			t.Errorf("redirect to %s: got %v, want a refusal", target, err)
		}
	}
	// A redirect that downgrades to plain http off loopback is refused too.
	srv := httptest.NewServer(http.RedirectHandler("http://idp.example.com/", http.StatusFound))
	defer srv.Close()
	if _, err := NewClient(Policy{AllowLoopback: true}).Get(srv.URL); err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("downgrade redirect: %v", err)
	}
}

func TestRedirectLimit(t *testing.T) {
	var srv *httptest.Server
	n := 0
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		http.Redirect(w, r, srv.URL+"/again", http.StatusFound)
	}))
	defer srv.Close()
	_, err := NewClient(Policy{AllowLoopback: true}).Get(srv.URL)
	if err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Fatalf("got %v", err)
	}
	if n != MaxRedirects {
		t.Fatalf("server saw %d requests, want %d", n, MaxRedirects)
	}
}

func TestBodyLimitAndTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/exact":
			w.Write([]byte(strings.Repeat("a", 100)))
		case "/big":
			w.Write([]byte(strings.Repeat("a", 101)))
		case "/chunked":
			for i := 0; i < 10; i++ {
				w.Write([]byte(strings.Repeat("b", 50)))
				w.(http.Flusher).Flush()
			}
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}
	}))
	defer srv.Close()
	c := NewClient(Policy{AllowLoopback: true, MaxBody: 100, Timeout: 300 * time.Millisecond})
	get := func(path string) ([]byte, error) {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	if b, err := get("/exact"); err != nil || len(b) != 100 {
		t.Fatalf("exact: %d %v", len(b), err)
	}
	if _, err := get("/big"); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("big: %v", err)
	}
	if _, err := get("/chunked"); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("chunked: %v", err)
	}
	start := time.Now()
	if _, err := get("/slow"); err == nil || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("slow: %v after %v", err, time.Since(start))
	}
}

func TestPlainHTTPOnlyToLoopback(t *testing.T) {
	// Even when a private network is listed, plain http to it is refused
	// at dial time (the URL check catches names; this catches addresses).
	p := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	ctx := context.WithValue(context.Background(), plainHTTPKey{}, true)
	if err := p.control(ctx, "tcp", "10.1.1.1:80", nil); err == nil || !strings.Contains(err.Error(), "plain http") {
		t.Fatalf("got %v", err)
	}
	if err := p.control(context.Background(), "tcp", "10.1.1.1:443", nil); err != nil {
		t.Fatalf("https to a listed network: %v", err)
	}
}
