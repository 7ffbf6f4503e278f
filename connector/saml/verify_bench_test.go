package saml

import (
	"testing"

	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
)

// The SAML response check is most of Gatehouse's CPU per SAML login
// (docs/benchmarks.md). These split it: the whole Finish (our guard pass,
// crewjam's parse with its round-trip check, signature verification,
// assertion decoding, our checks, the replay cache), and the guard pass
// alone.
//
//	go test ./connector/saml -run '^$' -bench Verify -benchmem

func BenchmarkVerifyFinish(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts func(samltest.Options) samltest.Options
	}{
		{"assertion-signed", func(o samltest.Options) samltest.Options { o.SignAssertion = true; return o }},
		{"both-signed", signedBoth},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFixture(b, nil)
			const distinct = 64
			docs := make([][]byte, distinct)
			for i := range docs {
				o := tc.opts(f.opts())
				o.Attributes = map[string][]string{"email": {"ana@acme.com"}, "givenName": {"Ana"}}
				docs[i] = samltest.Bytes(f.idp.Response(o))
			}
			b.SetBytes(int64(len(docs[0])))
			i := 0
			for b.Loop() {
				if i%distinct == 0 {
					// Assertion IDs are single-use: forget them each round.
					f.replay.mu.Lock()
					clear(f.replay.seen)
					f.replay.mu.Unlock()
				}
				if _, err := f.finish(docs[i%distinct]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
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
