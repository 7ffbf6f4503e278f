package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Transport is shared by every simulated browser: keep-alive connections
// to each host, as a fleet of browsers behind one egress would have.
func NewTransport(concurrency int) *http.Transport {
	return &http.Transport{
		MaxIdleConns:        4 * concurrency,
		MaxIdleConnsPerHost: 2 * concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// Browser is one simulated browser for one flow: its own cookies (per
// host), redirects followed by hand so each step can be checked.
type Browser struct {
	client  *http.Client
	cookies map[string]map[string]string // host -> name -> value
	// route, when set, rewrites a request's host (replicas behind one
	// public URL); cookies stay keyed by the public host.
	route func(*url.URL)
}

// NewBrowser returns a browser with no cookies over rt.
func NewBrowser(rt http.RoundTripper) *Browser {
	return &Browser{
		client: &http.Client{Transport: rt, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		cookies: map[string]map[string]string{},
	}
}

// Cookie returns the value of a cookie set by host.
func (b *Browser) Cookie(host, name string) string { return b.cookies[host][name] }

// Response is a read response.
type Response struct {
	Status   int
	Location *url.URL
	Header   http.Header
	Body     []byte
}

// Do sends one request with the browser's cookies for its host and keeps
// the cookies the answer sets.
func (b *Browser) Do(ctx context.Context, method, u string, form url.Values, header http.Header) (*Response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	host := req.URL.Host
	if b.route != nil {
		b.route(req.URL)
		req.Host = req.URL.Host
	}
	if jar := b.cookies[host]; len(jar) > 0 {
		var cs []string
		for k, v := range jar {
			cs = append(cs, k+"="+v)
		}
		req.Header.Set("Cookie", strings.Join(cs, "; "))
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	for _, c := range resp.Cookies() {
		if b.cookies[host] == nil {
			b.cookies[host] = map[string]string{}
		}
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies[host], c.Name)
		} else {
			b.cookies[host][c.Name] = c.Value
		}
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
	if loc := resp.Header.Get("Location"); loc != "" {
		base := *req.URL
		base.Host = host
		if r.Location, err = base.Parse(loc); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Follow starts at u and follows redirects (GET) until stop says the
// Location is where the flow ends, and returns that Location. Any answer
// other than a redirect is an error, with the page's text.
func (b *Browser) Follow(ctx context.Context, method, u string, form url.Values, stop func(*url.URL) bool) (*url.URL, error) {
	for hop := 0; hop < 12; hop++ {
		r, err := b.Do(ctx, method, u, form, nil)
		if err != nil {
			return nil, err
		}
		if r.Location == nil || r.Status/100 != 3 {
			return nil, fmt.Errorf("%s %s: %d %s", method, redact(u), r.Status, trimBody(r.Body))
		}
		if stop(r.Location) {
			return r.Location, nil
		}
		method, u, form = http.MethodGet, r.Location.String(), nil
	}
	return nil, fmt.Errorf("too many redirects from %s", redact(u))
}

// FollowToPost starts at u and follows redirects (GET) until a page that
// posts a form to action (OAuth 2.0 Form Post Response Mode), and returns
// the form's fields. A redirect to action, or any other answer, is an
// error.
func (b *Browser) FollowToPost(ctx context.Context, u, action string) (url.Values, error) {
	for hop := 0; hop < 12; hop++ {
		r, err := b.Do(ctx, http.MethodGet, u, nil, nil)
		if err != nil {
			return nil, err
		}
		if r.Status == http.StatusOK {
			return postedForm(r.Body, action)
		}
		if r.Location == nil || r.Status/100 != 3 {
			return nil, fmt.Errorf("GET %s: %d %s", redact(u), r.Status, trimBody(r.Body))
		}
		if strings.HasPrefix(r.Location.String(), action) {
			return nil, fmt.Errorf("redirected to the app (%s) instead of a form_post page", redact(r.Location.String()))
		}
		u = r.Location.String()
	}
	return nil, fmt.Errorf("too many redirects from %s", redact(u))
}

var (
	formRE  = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	inputRE = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// postedForm reads the fields of the page's form, which must post to
// action.
func postedForm(page []byte, action string) (url.Values, error) {
	m := formRE.FindSubmatch(page)
	if m == nil || html.UnescapeString(string(m[1])) != action {
		return nil, fmt.Errorf("no form posting to %s: %s", action, trimBody(page))
	}
	v := url.Values{}
	for _, in := range inputRE.FindAllSubmatch(page, -1) {
		v.Add(html.UnescapeString(string(in[1])), html.UnescapeString(string(in[2])))
	}
	return v, nil
}

func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

// PostJSON sends a form (or nothing) and decodes a JSON answer of the
// wanted status.
func PostForm(ctx context.Context, c *http.Client, u string, form url.Values, user, pass string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return doJSON(c, req, want, out)
}

func doJSON(c *http.Client, req *http.Request, want int, out any) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", req.Method, redact(req.URL.String()), resp.StatusCode, trimBody(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode: %v", req.Method, redact(req.URL.String()), err)
		}
	}
	return nil
}
