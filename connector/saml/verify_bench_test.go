package saml

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"testing"

	"github.com/beevik/etree"

	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
)

// The SAML response check was most of Gatehouse's CPU per SAML login
// (docs/benchmarks.md). These measure it:
//
//   - VerifyFinish: the whole Finish (form, base64, the one-pass check,
//     our checks, the identity, the replay cache);
//   - VerifyPath: the check alone, by the one-pass verifier and by the
//     crewjam path it replaced (verifyCrewjam), in the same binary;
//   - VerifyParse: parsing the response with our parser, with etree (which
//     crewjam and goxmldsig used) and tokenizing it with encoding/xml (the
//     old guard pass), the choice the one-pass verifier made;
//   - VerifyGuardPass: the old guard pass alone (checkXML).
//
//	go test ./connector/saml -run '^$' -bench Verify -benchmem

var benchShapes = []struct {
	name string
	opts func(samltest.Options) samltest.Options
}{
	{"assertion-signed", func(o samltest.Options) samltest.Options { o.SignAssertion = true; return o }},
	{"both-signed", signedBoth},
}

// benchDocs returns distinct valid responses of one shape.
func benchDocs(f *fixture, opts func(samltest.Options) samltest.Options) [][]byte {
	docs := make([][]byte, 64)
	for i := range docs {
		o := opts(f.opts())
		o.Attributes = map[string][]string{"email": {"ana@acme.com"}, "givenName": {"Ana"}}
		docs[i] = samltest.Bytes(f.idp.Response(o))
	}
	return docs
}

func BenchmarkVerifyFinish(b *testing.B) {
	for _, tc := range benchShapes {
		b.Run(tc.name, func(b *testing.B) {
			f := newFixture(b, nil)
			docs := benchDocs(f, tc.opts)
			b.SetBytes(int64(len(docs[0])))
			i := 0
			for b.Loop() {
				if i%len(docs) == 0 {
					// Assertion IDs are single-use: forget them each round.
					f.replay.mu.Lock()
					clear(f.replay.seen)
					f.replay.mu.Unlock()
				}
				if _, err := f.finish(docs[i%len(docs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkVerifyPath(b *testing.B) {
	for _, path := range []string{"crewjam", "onepass"} {
		for _, tc := range benchShapes {
			b.Run(path+"/"+tc.name, func(b *testing.B) {
				f := newFixture(b, nil)
				c := f.c.(*Connector)
				docs := benchDocs(f, tc.opts)
				b.SetBytes(int64(len(docs[0])))
				ctx := context.Background()
				i := 0
				for b.Loop() {
					var err error
					if path == "crewjam" {
						_, err = c.verifyCrewjam(ctx, f.flow, docs[i%len(docs)])
					} else {
						_, _, err = c.verify(ctx, f.flow, docs[i%len(docs)], false)
					}
					if err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

func BenchmarkVerifyParse(b *testing.B) {
	f := newFixture(b, nil)
	doc := samltest.Bytes(f.idp.Response(signedBoth(f.opts())))
	b.Run("ours", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if _, err := parseXML(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("etree", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if err := etree.NewDocument().ReadFromBytes(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-xml-tokens", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			d := xml.NewDecoder(bytes.NewReader(doc))
			for {
				if _, err := d.RawToken(); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

func BenchmarkVerifyGuardPass(b *testing.B) {
	f := newFixture(b, nil)
	doc := samltest.Bytes(f.idp.Response(signedBoth(f.opts())))
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if err := checkXML(doc); err != nil {
			b.Fatal(err)
		}
	}
}
