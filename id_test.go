package gatehouse

import (
	"sort"
	"testing"
)

func TestNewIDOrderedAndUnique(t *testing.T) {
	ids := make([]string, 5000)
	seen := map[string]bool{}
	for i := range ids {
		ids[i] = NewID("usr")
		if seen[ids[i]] {
			t.Fatalf("duplicate id %s", ids[i])
		}
		seen[ids[i]] = true
		if len(ids[i]) != len("usr_")+26 {
			t.Fatalf("bad length %q", ids[i])
		}
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids made in sequence do not sort in sequence")
	}
}

func TestValidEmail(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"ana@acme.com", true},
		{"Ana.Smith+x@sub.acme.co.uk", true},
		{"ana", false},
		{"ana@", false},
		{"@acme.com", false},
		{"ana@acme", false},
		{"ana@@acme.com", false},
		{"a b@acme.com", false},
		{"ana@acme..com", false},
		{"<ana@acme.com>", false},
	} {
		if got := ValidEmail(tc.in); got != tc.want {
			t.Errorf("ValidEmail(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestEmailDomain(t *testing.T) {
	if d := EmailDomain("Ana@ACME.com "); d != "acme.com" {
		t.Fatalf("got %q", d)
	}
	if d := EmailDomain("nodomain@"); d != "" {
		t.Fatalf("got %q", d)
	}
}
