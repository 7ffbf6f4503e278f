package scim

import (
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// FuzzPatch applies arbitrary PATCH bodies to a user and a group: any
// input may be refused, none may panic, and what is accepted must read
// back as a valid resource or a clean error. Seeds: testdata/fuzz/FuzzPatch.
func FuzzPatch(f *testing.F) {
	f.Add(`{"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"a@b.io"}]}`)
	f.Add(`{"Operations":[{"op":"remove","path":"members[value eq \"usr_1\"]"}]}`)
	s := NewServer(Config{PublicURL: "https://x.test"})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body string) {
		raw, err := s.decode([]byte(body))
		if err != nil {
			return
		}
		u := &gatehouse.User{ID: "usr_1", Username: "ana", Email: "ana@acme.com", Status: gatehouse.StatusActive,
			CreatedAt: now, UpdatedAt: now, Version: 1,
			Attributes: map[string]any{SchemaEnterprise: map[string]any{"department": "R&D"}}}
		doc := s.userDoc(u, []*gatehouse.Membership{{GroupID: "grp_1"}})
		if err := s.applyPatch(userType, doc, raw); err == nil {
			next := *u
			_ = userFromDoc(doc, &next)
		}
		g := &gatehouse.Group{ID: "grp_1", Name: "Eng", CreatedAt: now, UpdatedAt: now, Version: 1}
		gdoc := s.groupDoc(g, []string{"usr_1", "usr_2"})
		if err := s.applyPatch(groupType, gdoc, raw); err == nil {
			next := *g
			_, _ = groupFromDoc(gdoc, &next)
		}
	})
}
