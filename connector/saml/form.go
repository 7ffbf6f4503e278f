package saml

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// The ACS's form, read as net/http reads it, but decoded faster: url's
// unescape appends the output a byte at a time, which for the few kilobytes
// of a percent-encoded SAMLResponse was 7 % of the CPU of a SAML login.
// FuzzParseForm checks that both agree on every input.

// parsePostForm sets r.PostForm from an application/x-www-form-urlencoded
// body of at most limit bytes; any other body goes to r.ParseForm. Later
// calls of ParseForm, FormValue and PostFormValue see the same values.
func parsePostForm(r *http.Request, limit int64) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" {
		r.Body = http.MaxBytesReader(nil, r.Body, limit)
		return r.ParseForm()
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		return err
	}
	vals, err := parseForm(string(body))
	r.PostForm = vals
	return err
}

// maxFormPairs is url.ParseQuery's default limit (GODEBUG
// urlmaxqueryparams).
const maxFormPairs = 10000

// parseForm is url.ParseQuery: at most maxFormPairs pairs separated by '&',
// a semicolon in one an error (Go 1.17 and later), empty pairs skipped, the
// first error returned with everything that did parse.
func parseForm(body string) (url.Values, error) {
	vals := url.Values{}
	if strings.Count(body, "&") >= maxFormPairs {
		return vals, errors.New("number of URL query parameters exceeded limit")
	}
	var first error
	for body != "" {
		var pair string
		pair, body, _ = strings.Cut(body, "&")
		if strings.Contains(pair, ";") {
			first = firstErr(first, errors.New("invalid semicolon separator in query"))
			continue
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := unescapeForm(k)
		if err != nil {
			first = firstErr(first, err)
			continue
		}
		v, err = unescapeForm(v)
		if err != nil {
			first = firstErr(first, err)
			continue
		}
		vals[k] = append(vals[k], v)
	}
	return vals, first
}

// firstErr keeps the first error seen.
func firstErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// unescapeForm is url.QueryUnescape: "+" is a space, "%XX" a byte, and a
// '%' without two hex digits an error. It copies runs of plain bytes at
// once.
func unescapeForm(s string) (string, error) {
	i := strings.IndexAny(s, "%+")
	if i < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i >= 0 {
		b = append(b, s[:i]...)
		if s[i] == '+' {
			b = append(b, ' ')
			s = s[i+1:]
		} else {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				esc := s[i:min(i+3, len(s))]
				return "", fmt.Errorf("invalid URL escape %q", esc)
			}
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			s = s[i+3:]
		}
		i = strings.IndexAny(s, "%+")
	}
	return string(append(b, s...)), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
