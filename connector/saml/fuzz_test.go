package saml

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
)

// FuzzVerifyResponse feeds arbitrary documents to the whole verification
// path (the one-pass parser and its guard rules, signature verification,
// decryption, our checks). It must never panic, and whatever it accepts
// must carry a subject. Seeds: testdata/fuzz/FuzzVerifyResponse (static
// documents: XSW shapes, DOCTYPE, comments...) plus fresh valid responses
// signed by this run's test IdP. Encrypted assertions are left to the unit
// tests: an RSA private-key operation under the fuzzer's coverage
// instrumentation takes seconds, which stalls the fuzzer.
//
// Run it with minimization off, as minimizing a multi-kilobyte signed
// response takes minutes per new input:
//
//	go test ./connector/saml -run '^$' -fuzz FuzzVerifyResponse -fuzzminimizetime 0 -fuzztime 60s
//
// (measured: about 3,000 executions a second on one core, no failure in
// 147,000).
func FuzzVerifyResponse(f *testing.F) {
	fx := newFixture(f, nil)
	sp := fx.c.(*Connector)
	for _, o := range []func(o *samltest_Options){
		func(o *samltest_Options) { o.SignResponse = true },
		func(o *samltest_Options) { o.SignAssertion = true },
	} {
		opts := fx.opts()
		o(&opts)
		f.Add(samltest.Bytes(fx.idp.Response(opts)))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		id, err := sp.VerifyResponse(context.Background(), fx.flow, doc)
		if err == nil && (id == nil || id.Subject == "") {
			t.Fatalf("accepted without a subject: %+v", id)
		}
	})
}

type samltest_Options = samltest.Options

// TestWriteFuzzSeeds regenerates the static seed corpus when
// GATEHOUSE_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("GATEHOUSE_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set GATEHOUSE_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	fx := newFixture(t, nil)
	both := signedBoth(fx.opts())
	assertion := fx.opts()
	assertion.SignAssertion = true
	seeds := map[string][]byte{
		"signed-both": samltest.Bytes(fx.idp.Response(both)),
		"xsw3":        samltest.Bytes(samltest.XSW(3, fx.idp.Response(assertion), "evil")),
		"xsw7":        samltest.Bytes(samltest.XSW(7, fx.idp.Response(assertion), "evil")),
		"comment":     samltest.Bytes(samltest.InjectComment(fx.idp.Response(both), 3)),
		"doctype":     append([]byte(`<!DOCTYPE r [<!ENTITY x "y">]>`), samltest.Bytes(fx.idp.Response(both))...),
		"empty":       []byte(""),
		"minimal":     []byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Assertion ID="a"/></samlp:Response>`),
		"colon-attr":  []byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" :ID="x"/>`),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzVerifyResponse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzCheckXML fuzzes the lexical and structural checks alone, which run
// on untrusted bytes before any other parser: no panic, and a document
// they accept must tokenize to one samlp:Response root.
func FuzzCheckXML(f *testing.F) {
	f.Add([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Assertion ID="a"/></samlp:Response>`))
	f.Add([]byte(`<!DOCTYPE r [<!ENTITY x "y">]><r/>`))
	f.Add([]byte(`<a :b="1" xmlns:="x"><!-- c --></a>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if err := checkXML(doc); err == nil {
			if err := checkStructure(doc); err != nil {
				t.Fatalf("accepted, then structure fails: %v", err)
			}
		}
	})
}

// FuzzParseResponse compares the one-pass parser's guard rules with the
// guard pass they replaced (checkXML, which ran before crewjam): neither
// may accept what the other refuses, except by the parser's documented
// stricter rules (errStricter). (TestParseResponseGuard checks that both
// give the same sentinel error on the table's single-fault documents.)
func FuzzParseResponse(f *testing.F) {
	for _, tc := range guardCases() {
		f.Add([]byte(tc.doc))
	}
	f.Add([]byte(`<?xml version="1.0"?><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><x xmlns="urn:oasis:names:tc:SAML:2.0:assertion"><![CDATA[a]]>b&#x41;&amp;</x><Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion" a:b="c" xmlns:a="urn:a"/></samlp:Response>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		_, _, newErr := parseResponse(doc)
		oldErr := checkXML(doc)
		switch {
		case newErr == nil && oldErr != nil:
			t.Fatalf("parser accepted what checkXML refused (%v):\n%q", oldErr, doc)
		case oldErr == nil && newErr != nil && !errors.Is(newErr, errStricter):
			t.Fatalf("parser refused what checkXML accepted (%v):\n%q", newErr, doc)
		}
	})
}
