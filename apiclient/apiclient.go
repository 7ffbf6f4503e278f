// Package apiclient is a small client of the admin API (package api) for
// the commands that drive it in bulk: apply, export and import.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"
)

// Client calls the admin API at BaseURL with a bearer token.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// New returns a client with a sensible timeout.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 5 * time.Minute}}
}

// InProcess returns a client that calls h directly, without a listener:
// `gatehouse serve --config` applies its file through the API handler.
func InProcess(h http.Handler, token string) *Client {
	return &Client{BaseURL: "http://gatehouse.internal", Token: token, HTTP: &http.Client{Transport: handlerTransport{h}}}
}

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	// A client request becomes a server request from loopback.
	r = r.Clone(r.Context())
	r.RemoteAddr, r.RequestURI = "127.0.0.1:0", r.URL.RequestURI()
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// Error is an error answer of the API.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
	// Body is the whole answer, for routes that say more beside the error.
	Body []byte `json:"-"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s (%d %s", e.Message, e.Status, e.Code)
	if e.Field != "" {
		s += ", field " + e.Field
	}
	return s + ")"
}

// IsNotFound reports whether err is the API's 404.
func IsNotFound(err error) bool {
	e, ok := err.(*Error)
	return ok && e.Status == http.StatusNotFound
}

// Do sends one request with body (JSON-encoded unless []byte) and decodes
// the JSON answer into out when out is not nil.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	if c.Token == "" {
		return fmt.Errorf("no API token: pass --token or set GATEHOUSE_TOKEN")
	}
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return err
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var eb struct {
			Error Error `json:"error"`
		}
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			return fmt.Errorf("%s %s: HTTP %d: %.300s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
		}
		eb.Error.Status, eb.Error.Body = resp.StatusCode, data
		return &eb.Error
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// List fetches every page of a list route into items.
func List[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	var all []T
	cursor := ""
	for {
		p := path
		q := url.Values{"limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		sep := "?"
		if strings.Contains(p, "?") {
			sep = "&"
		}
		var page struct {
			Items      []T    `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := c.Do(ctx, "GET", p+sep+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// TenantPath is /api/v1/tenants/{slug} followed by parts, escaped.
func TenantPath(slug string, parts ...string) string {
	p := "/api/v1/tenants/" + url.PathEscape(slug)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}
