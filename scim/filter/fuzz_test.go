package filter

import (
	"testing"
)

// The fuzzers check that no input panics, that limits hold, and that what
// parses prints as text that parses to the same tree. Seeds are in
// testdata/fuzz/<FuzzName>/.

func FuzzParse(f *testing.F) {
	f.Add(`userName eq "bjensen"`)
	f.Add(`emails[type eq "work" and value co "@example.com"] or not (title pr)`)
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s, Limits{})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if depth(e) > 40 {
			t.Fatalf("tree depth %d beyond the limits", depth(e))
		}
		again, err := Parse(e.String(), Limits{MaxLength: 1 << 20, MaxDepth: 64, MaxTerms: 1000})
		if err != nil {
			t.Fatalf("%q printed as %q, which does not parse: %v", s, e.String(), err)
		}
		if again.String() != e.String() {
			t.Fatalf("round trip changed %q into %q", e.String(), again.String())
		}
	})
}

func FuzzParsePatchPath(f *testing.F) {
	f.Add(`emails[type eq "work"].value`)
	f.Add(`members[value eq "x"]`)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePatchPath(s, Limits{})
		if err != nil {
			return
		}
		again, err := ParsePatchPath(p.String(), Limits{MaxLength: 1 << 20, MaxDepth: 64, MaxTerms: 1000})
		if err != nil {
			t.Fatalf("%q printed as %q, which does not parse: %v", s, p.String(), err)
		}
		if again.String() != p.String() {
			t.Fatalf("round trip changed %q into %q", p.String(), again.String())
		}
	})
}

func depth(e *Expr) int {
	d := 0
	for _, c := range e.Children {
		if cd := depth(c); cd > d {
			d = cd
		}
	}
	return d + 1
}
