package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

type groupJSON struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	ExternalID  string    `json:"external_id"`
	Source      string    `json:"source"`
	MemberCount int       `json:"member_count"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func groupOut(g *gatehouse.Group) groupJSON {
	return groupJSON{ID: g.ID, Name: g.Name, ExternalID: g.ExternalID, Source: g.Source,
		MemberCount: g.MemberCount, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt}
}

// groupInput is the body of POST and PATCH on groups.
type groupInput struct {
	Name       *string `json:"name"`
	ExternalID *string `json:"external_id"`
}

func (in *groupInput) apply(g *gatehouse.Group) error {
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if err := checkName("name", n, 256); err != nil {
			return err
		}
		g.Name = n
	}
	if in.ExternalID != nil {
		v := strings.TrimSpace(*in.ExternalID)
		if len(v) > 256 || hasControl(v) {
			return gatehouse.FieldError("external_id", "external_id must be at most 256 characters, without control characters.")
		}
		g.ExternalID = v
	}
	return nil
}

// findGroup finds a group by id or, failing that, by name (names are unique
// in a tenant, case-insensitively).
func findGroup(ctx context.Context, tx gatehouse.Tx, tenantID, ref string) (*gatehouse.Group, error) {
	if strings.HasPrefix(ref, "grp_") {
		g, err := tx.GetGroup(ctx, tenantID, ref)
		if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return g, err
		}
	}
	g, err := tx.GetGroupByName(ctx, tenantID, ref)
	return g, notFound(err, "Group")
}

// nameFree refuses a group name another group of the tenant has.
func nameFree(ctx context.Context, tx gatehouse.Tx, tenantID, groupID, name string) error {
	other, err := tx.GetGroupByName(ctx, tenantID, name)
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil
	}
	if err != nil {
		return err
	}
	if other.ID != groupID {
		return &gatehouse.Error{Code: gatehouse.ECONFLICT, Field: "name", Message: "Another group (" + other.ID + ") already has this name."}
	}
	return nil
}

func (s *server) createGroup(w http.ResponseWriter, r *http.Request, c *call) error {
	var in groupInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if in.Name == nil {
		return gatehouse.FieldError("name", "name is required.")
	}
	now := s.clock.Now().UTC()
	g := &gatehouse.Group{ID: gatehouse.NewID("grp"), TenantID: c.tenant.ID, Source: gatehouse.SourceAdmin, CreatedAt: now, UpdatedAt: now}
	if err := in.apply(g); err != nil {
		return err
	}
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		if err := nameFree(r.Context(), tx, g.TenantID, g.ID, g.Name); err != nil {
			return err
		}
		if err := tx.CreateGroup(r.Context(), g); err != nil {
			return err
		}
		if err := s.audit(r.Context(), tx, g.TenantID, c.actor(r), "group.created", "group", g.ID, map[string]any{"name": g.Name}); err != nil {
			return err
		}
		return s.provisioned(r.Context(), tx, g.TenantID, "group.created", map[string]any{"group": g})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, groupOut(g))
	return nil
}

func (s *server) listGroups(w http.ResponseWriter, r *http.Request, c *call) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	var gs []*gatehouse.Group
	var next string
	err = s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		gs, next, err = tx.ListGroups(r.Context(), c.tenant.ID, p)
		return err
	})
	if err != nil {
		return err
	}
	out := list[groupJSON]{Items: []groupJSON{}, NextCursor: next}
	for _, g := range gs {
		out.Items = append(out.Items, groupOut(g))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getGroup(w http.ResponseWriter, r *http.Request, c *call) error {
	var g *gatehouse.Group
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		g, err = findGroup(r.Context(), tx, c.tenant.ID, r.PathValue("id"))
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, groupOut(g))
	return nil
}

func (s *server) updateGroup(w http.ResponseWriter, r *http.Request, c *call) error {
	var in groupInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	var g *gatehouse.Group
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		ctx := r.Context()
		var err error
		if g, err = findGroup(ctx, tx, c.tenant.ID, r.PathValue("id")); err != nil {
			return err
		}
		old := g.Name
		if err := in.apply(g); err != nil {
			return err
		}
		if gatehouse.FoldKey(old) != gatehouse.FoldKey(g.Name) {
			if err := nameFree(ctx, tx, g.TenantID, g.ID, g.Name); err != nil {
				return err
			}
		}
		g.UpdatedAt = s.clock.Now().UTC()
		if err := tx.UpdateGroup(ctx, g); err != nil {
			return err
		}
		details := map[string]any{"name": g.Name}
		if old != g.Name {
			details["old_name"] = old
		}
		if err := s.audit(ctx, tx, g.TenantID, c.actor(r), "group.updated", "group", g.ID, details); err != nil {
			return err
		}
		return s.provisioned(ctx, tx, g.TenantID, "group.updated", map[string]any{"group": g})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, groupOut(g))
	return nil
}

func (s *server) deleteGroup(w http.ResponseWriter, r *http.Request, c *call) error {
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		ctx := r.Context()
		g, err := findGroup(ctx, tx, c.tenant.ID, r.PathValue("id"))
		if err != nil {
			return err
		}
		if err := tx.DeleteGroup(ctx, c.tenant.ID, g.ID); err != nil {
			return err
		}
		if err := s.audit(ctx, tx, c.tenant.ID, c.actor(r), "group.deleted", "group", g.ID, map[string]any{"name": g.Name}); err != nil {
			return err
		}
		return s.provisioned(ctx, tx, c.tenant.ID, "group.deleted", map[string]any{"group_id": g.ID})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusNoContent, nil)
	return nil
}

// memberJSON is one membership of a group, with who manages it: "admin"
// (set by hand here), "scim", or "connection:<id>" (synced at login).
type memberJSON struct {
	UserID      string    `json:"user_id"`
	Email       string    `json:"email"`
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name"`
	ManagedBy   string    `json:"managed_by"`
	CreatedAt   time.Time `json:"created_at"`
}

func (s *server) listMembers(w http.ResponseWriter, r *http.Request, c *call) error {
	out := list[memberJSON]{Items: []memberJSON{}}
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		ctx := r.Context()
		g, err := findGroup(ctx, tx, c.tenant.ID, r.PathValue("id"))
		if err != nil {
			return err
		}
		ms, err := tx.ListGroupMembers(ctx, c.tenant.ID, g.ID, "")
		if err != nil {
			return err
		}
		users := map[string]*gatehouse.User{}
		for _, m := range ms {
			u, ok := users[m.UserID]
			if !ok {
				u, err = tx.GetUser(ctx, c.tenant.ID, m.UserID)
				if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					continue
				}
				if err != nil {
					return err
				}
				users[m.UserID] = u
			}
			out.Items = append(out.Items, memberJSON{UserID: u.ID, Email: u.Email, Username: u.Username,
				DisplayName: u.DisplayName, ManagedBy: m.ManagedBy, CreatedAt: m.CreatedAt})
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// addMember sets an admin-managed membership; it is idempotent and needs
// no body. Logins and SCIM never remove it (they manage their own).
func (s *server) addMember(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.changeMember(w, r, c, true)
}

// removeMember removes the admin-managed membership only; one that SCIM or
// a connection manages stays, since its manager would put it back.
func (s *server) removeMember(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.changeMember(w, r, c, false)
}

func (s *server) changeMember(w http.ResponseWriter, r *http.Request, c *call, add bool) error {
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		ctx := r.Context()
		g, err := findGroup(ctx, tx, c.tenant.ID, r.PathValue("id"))
		if err != nil {
			return err
		}
		u, err := tx.GetUser(ctx, c.tenant.ID, r.PathValue("user_id"))
		if err != nil {
			return notFound(err, "User")
		}
		// PUT and DELETE are idempotent: repeating one answers 204 again
		// but changes nothing, so it writes no audit or outbox event.
		ms, err := tx.ListUserMemberships(ctx, c.tenant.ID, u.ID)
		if err != nil {
			return err
		}
		has := slices.ContainsFunc(ms, func(m *gatehouse.Membership) bool {
			return m.GroupID == g.ID && m.ManagedBy == gatehouse.ManagedByAdmin
		})
		if has == add {
			return nil
		}
		action := "group.member_removed"
		if add {
			action = "group.member_added"
			err = tx.AddMembership(ctx, &gatehouse.Membership{TenantID: c.tenant.ID, GroupID: g.ID, UserID: u.ID,
				ManagedBy: gatehouse.ManagedByAdmin, CreatedAt: s.clock.Now().UTC()})
		} else {
			err = tx.RemoveMembership(ctx, c.tenant.ID, g.ID, u.ID, gatehouse.ManagedByAdmin)
		}
		if err != nil {
			return err
		}
		if err := s.audit(ctx, tx, c.tenant.ID, c.actor(r), action, "group", g.ID,
			map[string]any{"user_id": u.ID, "group": g.Name, "managed_by": gatehouse.ManagedByAdmin}); err != nil {
			return err
		}
		change := "members_removed"
		if add {
			change = "members_added"
		}
		return s.provisioned(ctx, tx, c.tenant.ID, "group.updated", map[string]any{"group": g, change: []string{u.ID}})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusNoContent, nil)
	return nil
}
