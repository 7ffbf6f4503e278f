package scim

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

func asError(err error, target **gatehouse.Error) bool { return errors.As(err, target) }

// groupDoc renders a group with its SCIM-managed members (members nil:
// not wanted). Memberships set by admins or by logins are not SCIM's and
// never shown here.
func (s *Server) groupDoc(g *gatehouse.Group, members []string) map[string]any {
	doc := map[string]any{
		"schemas":     []any{SchemaGroup},
		"id":          g.ID,
		"displayName": g.Name,
		"meta":        s.meta(groupType, g.ID, g.CreatedAt, g.UpdatedAt, g.Version),
	}
	if g.ExternalID != "" {
		doc["externalId"] = g.ExternalID
	}
	if members != nil {
		list := make([]any, 0, len(members))
		for _, id := range members {
			list = append(list, map[string]any{"value": id, "$ref": s.location(userType, id), "type": "User"})
		}
		doc["members"] = list
	}
	return doc
}

// groupFromDoc applies a full canonical Group document to g and returns
// the member user IDs it names, sorted and without duplicates.
func groupFromDoc(doc map[string]any, g *gatehouse.Group) ([]string, error) {
	name := strings.TrimSpace(getString(doc, "displayName"))
	if name == "" {
		return nil, &gatehouse.Error{Code: gatehouse.EINVALID, Reason: typeInvalidValue, Field: "displayName", Message: "displayName is required."}
	}
	if len(name) > 256 {
		return nil, &gatehouse.Error{Code: gatehouse.EINVALID, Reason: typeInvalidValue, Field: "displayName", Message: "displayName is longer than 256 characters."}
	}
	g.Name = name
	g.ExternalID = strings.TrimSpace(getString(doc, "externalId"))
	seen := map[string]bool{}
	members := []string{}
	for _, it := range getList(doc, "members") {
		m, _ := it.(map[string]any)
		id := strings.TrimSpace(getString(m, "value"))
		if id == "" {
			return nil, scimErr(typeInvalidValue, "Every member needs a value (the user's id).")
		}
		if t := getString(m, "type"); t != "" && !strings.EqualFold(t, "User") {
			return nil, scimErr(typeInvalidValue, "Only users can be members; nested groups are not supported.")
		}
		if !seen[id] {
			seen[id] = true
			members = append(members, id)
		}
	}
	sort.Strings(members)
	return members, nil
}

// scimMembers lists the user IDs of a group's SCIM-managed memberships.
func scimMembers(ctx context.Context, tx gatehouse.Tx, tenantID, groupID string) ([]string, error) {
	ms, err := tx.ListGroupMembers(ctx, tenantID, groupID, gatehouse.ManagedBySCIM)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.UserID)
	}
	sort.Strings(out)
	return out, nil
}

// setMembers makes the group's SCIM-managed members exactly want, leaving
// every other manager's memberships alone, and returns what it added and
// removed.
func (s *Server) setMembers(ctx context.Context, tx gatehouse.Tx, tenantID, groupID string, have, want []string) (added, removed []string, err error) {
	haveSet := map[string]bool{}
	for _, id := range have {
		haveSet[id] = true
	}
	wantSet := map[string]bool{}
	for _, id := range want {
		wantSet[id] = true
		if haveSet[id] {
			continue
		}
		// The member must be a live user of this tenant.
		if _, err := tx.GetUser(ctx, tenantID, id); err != nil {
			if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				return nil, nil, scimErr(typeInvalidValue, "Member %q is not a user of this tenant.", id)
			}
			return nil, nil, err
		}
		if err := tx.AddMembership(ctx, &gatehouse.Membership{TenantID: tenantID, GroupID: groupID, UserID: id,
			ManagedBy: gatehouse.ManagedBySCIM, CreatedAt: s.clock.Now()}); err != nil {
			return nil, nil, err
		}
		added = append(added, id)
	}
	for _, id := range have {
		if wantSet[id] {
			continue
		}
		if err := tx.RemoveMembership(ctx, tenantID, groupID, id, gatehouse.ManagedBySCIM); err != nil {
			return nil, nil, err
		}
		removed = append(removed, id)
	}
	return added, removed, nil
}

func groupPayload(g *gatehouse.Group, added, removed []string) map[string]any {
	p := map[string]any{"group": g}
	if len(added) > 0 {
		p["members_added"] = added
	}
	if len(removed) > 0 {
		p["members_removed"] = removed
	}
	return p
}

// createGroup creates a group, or adopts the admin-made group of the same
// displayName that no SCIM client manages yet (audit scim.group.adopted):
// the admin's memberships stay, SCIM's are added beside them.
func (s *Server) createGroup(ctx context.Context, c *caller, raw map[string]any, proj projection) (*result, error) {
	doc, err := canonicalize(groupType, raw)
	if err != nil {
		return nil, err
	}
	var g *gatehouse.Group
	var members []string
	err = s.update(ctx, precond{}, func(tx gatehouse.Tx) error {
		g = &gatehouse.Group{TenantID: c.tenantID, Source: gatehouse.SourceSCIM}
		want, err := groupFromDoc(doc, g)
		if err != nil {
			return err
		}
		action := "scim.group.created"
		details := map[string]any{"name": g.Name, "external_id": g.ExternalID}
		event := "group.created"
		existing, err := tx.GetGroupByName(ctx, c.tenantID, g.Name)
		switch {
		case err == nil:
			if existing.Source == gatehouse.SourceSCIM || existing.ExternalID != "" {
				return &gatehouse.Error{Code: gatehouse.ECONFLICT, Field: "displayName", Message: "A group with this displayName already exists."}
			}
			details["previous_source"] = existing.Source
			existing.ExternalID, existing.Source = g.ExternalID, gatehouse.SourceSCIM
			if err := tx.UpdateGroup(ctx, existing); err != nil {
				return err
			}
			g, action, event = existing, "scim.group.adopted", "group.updated"
		case gatehouse.IsCode(err, gatehouse.ENOTFOUND):
			g.ID = gatehouse.NewID("grp")
			if err := tx.CreateGroup(ctx, g); err != nil {
				return err
			}
		default:
			return err
		}
		have, err := scimMembers(ctx, tx, c.tenantID, g.ID)
		if err != nil {
			return err
		}
		added, removed, err := s.setMembers(ctx, tx, c.tenantID, g.ID, have, want)
		if err != nil {
			return err
		}
		members = want
		details["members_added"] = len(added)
		return s.record(ctx, tx, c, action, "group", g.ID, details, event, groupPayload(g, added, removed))
	})
	if err != nil {
		return nil, uniquenessError(err)
	}
	return &result{status: http.StatusCreated, doc: proj.apply(groupType, s.groupDoc(g, members)), version: g.Version, location: s.location(groupType, g.ID)}, nil
}

func (s *Server) getGroup(ctx context.Context, c *caller, id string, pc precond, proj projection) (*result, error) {
	var g *gatehouse.Group
	var members []string
	err := s.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		if g, err = tx.GetGroup(ctx, c.tenantID, id); err != nil {
			return err
		}
		if proj.wants(groupType, "members") {
			members, err = scimMembers(ctx, tx, c.tenantID, id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := pc.check(g.Version, true); err != nil {
		return nil, err
	}
	return &result{status: http.StatusOK, doc: proj.apply(groupType, s.groupDoc(g, members)), version: g.Version}, nil
}

// modifyGroup runs PUT or PATCH on a group. Only SCIM-managed memberships
// are read and written, so an admin's manual memberships survive any
// replace.
func (s *Server) modifyGroup(ctx context.Context, c *caller, id string, patch bool, raw map[string]any, pc precond, proj projection) (*result, error) {
	var g *gatehouse.Group
	var members []string
	err := s.update(ctx, pc, func(tx gatehouse.Tx) error {
		cur, err := tx.GetGroup(ctx, c.tenantID, id)
		if err != nil {
			return err
		}
		if err := pc.check(cur.Version, false); err != nil {
			return err
		}
		have, err := scimMembers(ctx, tx, c.tenantID, id)
		if err != nil {
			return err
		}
		var doc map[string]any
		if patch {
			doc = s.groupDoc(cur, have)
			if err := s.applyPatch(groupType, doc, raw); err != nil {
				return err
			}
		} else if doc, err = canonicalize(groupType, raw); err != nil {
			return err
		}
		next := *cur
		want, err := groupFromDoc(doc, &next)
		if err != nil {
			return err
		}
		added, removed, err := s.setMembers(ctx, tx, c.tenantID, id, have, want)
		if err != nil {
			return err
		}
		members = want
		renamed := next.Name != cur.Name || next.ExternalID != cur.ExternalID
		if !renamed && len(added) == 0 && len(removed) == 0 {
			g = cur
			return nil
		}
		// The version is the group's ETag, so a membership change bumps it too.
		if err := tx.UpdateGroup(ctx, &next); err != nil {
			return err
		}
		g = &next
		details := map[string]any{"members_added": added, "members_removed": removed}
		if renamed {
			details["name"], details["external_id"] = g.Name, g.ExternalID
		}
		return s.record(ctx, tx, c, "scim.group.updated", "group", id, details, "group.updated", groupPayload(g, added, removed))
	})
	if err != nil {
		return nil, uniquenessError(err)
	}
	if !proj.wants(groupType, "members") {
		members = nil
	}
	return &result{status: http.StatusOK, doc: proj.apply(groupType, s.groupDoc(g, members)), version: g.Version}, nil
}

func (s *Server) deleteGroup(ctx context.Context, c *caller, id string, pc precond) (*result, error) {
	err := s.update(ctx, pc, func(tx gatehouse.Tx) error {
		g, err := tx.GetGroup(ctx, c.tenantID, id)
		if err != nil {
			return err
		}
		if err := pc.check(g.Version, false); err != nil {
			return err
		}
		if err := tx.DeleteGroup(ctx, c.tenantID, id); err != nil {
			return err
		}
		return s.record(ctx, tx, c, "scim.group.deleted", "group", id, map[string]any{"name": g.Name}, "group.deleted", map[string]any{"group_id": id})
	})
	if err != nil {
		return nil, err
	}
	return &result{status: http.StatusNoContent}, nil
}
