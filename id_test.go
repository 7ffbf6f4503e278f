package gatehouse

import (
	"sort"
	"testing"
	"time"
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

// TestIDFloor: IDs made for a time sort at or above that time's floor and
// below the next millisecond's, whichever of NewID and NewIDAt made them,
// so a sweep of id < IDFloor(cutoff) takes exactly the IDs of earlier times.
func TestIDFloor(t *testing.T) {
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, d := range []time.Duration{0, time.Millisecond, time.Hour, 30 * 24 * time.Hour} {
		at := base.Add(d)
		floor, next := IDFloor("ort", at), IDFloor("ort", at.Add(time.Millisecond))
		for range 200 {
			id := NewIDAt("ort", at.Add(999*time.Microsecond))
			if id < floor || id >= next || len(id) != len("ort_")+26 {
				t.Fatalf("NewIDAt(%v) = %s outside [%s, %s)", at, id, floor, next)
			}
		}
		if a, b := NewIDAt("ort", at), NewIDAt("ort", at); a == b {
			t.Fatalf("two NewIDAt(%v) are equal: %s", at, a)
		}
	}
	if now := NewID("ort"); now < IDFloor("ort", time.Now().Add(-time.Second)) || now >= IDFloor("ort", time.Now().Add(time.Second)) {
		t.Fatalf("NewID %s outside the floors of the second around now", now)
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
