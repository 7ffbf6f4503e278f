package sqlstore

import (
	"reflect"
	"strconv"
	"testing"
)

func TestUnpackIDs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{"", []string{}, false},
		{"3:abc", []string{"abc"}, false},
		{"3:abc10:grp_12:x,3", []string{"abc", "grp_12:x,3"}, false},
		{"0:", []string{""}, false},
		{"4:abc", nil, true},
		{"abc", nil, true},
		{"-1:a", nil, true},
		{"x:a", nil, true},
		{"01:a", nil, true},
		{"+1:a", nil, true},
	} {
		got, err := unpackIDs(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("unpackIDs(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func FuzzUnpackIDs(f *testing.F) {
	f.Add("3:abc10:grp_12:x,3")
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := unpackIDs(s)
		if err != nil {
			return
		}
		// What parses re-packs to the same text (octet lengths).
		packed := ""
		for _, id := range ids {
			packed += strconv.Itoa(len(id)) + ":" + id
		}
		if packed != s && !(s == "" && len(ids) == 0) {
			t.Errorf("unpackIDs(%q) = %q, which packs to %q", s, ids, packed)
		}
	})
}
