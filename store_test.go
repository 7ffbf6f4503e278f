package gatehouse

import "testing"

// fastStore is a Store with an optional fast path beyond the interface.
type fastStore struct{ Store }

func (fastStore) Generation() uint64 { return 7 }

// wrapStore wraps a Store the way tracing does.
type wrapStore struct{ Store }

func (w wrapStore) Unwrap() Store { return w.Store }

func TestStoreAs(t *testing.T) {
	type generation interface{ Generation() uint64 }
	for _, tc := range []struct {
		name string
		st   Store
		want bool
	}{
		{"the store itself", fastStore{}, true},
		{"through one wrapper", wrapStore{fastStore{}}, true},
		{"through two wrappers", wrapStore{wrapStore{fastStore{}}}, true},
		{"a store without it", wrapStore{wrapStore{}}, false},
		{"nil", nil, false},
	} {
		g, ok := StoreAs[generation](tc.st)
		if ok != tc.want || (ok && g.Generation() != 7) {
			t.Errorf("%s: StoreAs = %v, %v; want found %v", tc.name, g, ok, tc.want)
		}
	}
}
