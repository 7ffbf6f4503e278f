package sqlstore

import "testing"

func TestSubscribed(t *testing.T) {
	for _, tc := range []struct {
		events []string
		typ    string
		want   bool
	}{
		{[]string{"*"}, "user.created", true},
		{[]string{"user.created"}, "user.created", true},
		{[]string{"user.created"}, "user.updated", false},
		{[]string{"user.*"}, "user.deactivated", true},
		{[]string{"user.*"}, "group.created", false},
		{[]string{"group.*", "user.linked"}, "user.linked", true},
		{[]string{"user"}, "user.created", false},
		{nil, "user.created", false},
	} {
		if got := subscribed(tc.events, tc.typ); got != tc.want {
			t.Errorf("subscribed(%v, %s) = %v", tc.events, tc.typ, got)
		}
	}
}
