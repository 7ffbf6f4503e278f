package saml

import (
	"bytes"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

var formCases = []string{
	"",
	"SAMLResponse=PHNhbWxwOlJlc3BvbnNl%2BIHg9%2FIjEiPg%3D%3D&RelayState=r-1",
	"a=1&a=2&b=&c",
	"a+b=c+d%20e",
	"&&a=1&&",
	"%41%62=%7e%7E",
	"a=%",
	"a=%4",
	"a=%zz&b=2",
	"%=1&b=2",
	"a=1;b=2&c=3",
	"a=1&b=%gg&c=;",
	"=v&k=",
	"a=%C3%A9%00",
	"a==b=c",
	strings.Repeat("x=1&", maxFormPairs-1) + "x=1",
	strings.Repeat("x=1&", maxFormPairs) + "x=1",
}

// TestParseFormAsURL: the ACS's form parser reads every input as
// url.ParseQuery does, values and errors alike.
func TestParseFormAsURL(t *testing.T) {
	for _, in := range formCases {
		sameAsURL(t, in)
	}
}

func sameAsURL(t *testing.T, in string) {
	t.Helper()
	want, werr := url.ParseQuery(in)
	got, gerr := parseForm(in)
	if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
		short := in
		if len(short) > 80 {
			short = short[:80] + "…"
		}
		t.Errorf("%q: got %v, %v; url.ParseQuery %v, %v", short, len(got), gerr, len(want), werr)
	}
}

func FuzzParseForm(f *testing.F) {
	for _, in := range formCases[:len(formCases)-2] {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) { sameAsURL(t, in) })
}

// TestParsePostForm: an ACS post leaves the request as ParseForm would
// (PostForm, then Form with the URL's query), a multipart body goes to
// net/http's ParseForm, and the body limit holds.
func TestParsePostForm(t *testing.T) {
	post := func(body, ct string) *http.Request {
		r := httptest.NewRequest("POST", "/sso/saml/con_1/acs?q=1", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		return r
	}
	body := url.Values{"SAMLResponse": {"PHNhbWxwOlJlc3BvbnNl+/x=="}, "RelayState": {"a b&c"}}.Encode()
	r := post(body, "application/x-www-form-urlencoded; charset=utf-8")
	if err := parsePostForm(r, 1<<20); err != nil {
		t.Fatal(err)
	}
	if r.PostFormValue("SAMLResponse") != "PHNhbWxwOlJlc3BvbnNl+/x==" || r.FormValue("RelayState") != "a b&c" || r.FormValue("q") != "1" {
		t.Errorf("form %v, post form %v", r.Form, r.PostForm)
	}

	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	w.WriteField("SAMLResponse", "abc")
	w.Close()
	// The HTTP-POST binding is urlencoded (SAML Bindings §3.5.4); a
	// multipart body is left to ParseForm, which reads no fields from it.
	r = post(mp.String(), w.FormDataContentType())
	if err := parsePostForm(r, 1<<20); err != nil || len(r.PostForm) != 0 {
		t.Errorf("multipart: %v %v", err, r.PostForm)
	}

	r = post(body, "application/x-www-form-urlencoded")
	var mbe *http.MaxBytesError
	if err := parsePostForm(r, 10); !errors.As(err, &mbe) {
		t.Errorf("over the limit: %v", err)
	}
	r = post("a=%zz", "application/x-www-form-urlencoded")
	if err := parsePostForm(r, 1<<20); err == nil {
		t.Error("a bad escape parsed")
	}
}
