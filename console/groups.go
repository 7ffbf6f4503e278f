package console

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gatehouse-sso/gatehouse"
)

type groupRow struct {
	Group   *gatehouse.Group
	Members int
}

func (c *Console) groupsPage(w http.ResponseWriter, r *http.Request, k *call) error {
	return c.renderGroups(w, r, k, &view{Form: url.Values{}})
}

func (c *Console) renderGroups(w http.ResponseWriter, r *http.Request, k *call, v *view) error {
	ctx := r.Context()
	var rows []groupRow
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		gs, _, err := tx.ListGroups(ctx, k.t.ID, gatehouse.Page{Limit: 1000})
		if err != nil {
			return err
		}
		for _, g := range gs {
			ms, err := tx.ListGroupMembers(ctx, k.t.ID, g.ID, "")
			if err != nil {
				return err
			}
			users := map[string]bool{}
			for _, m := range ms {
				users[m.UserID] = true
			}
			rows = append(rows, groupRow{g, len(users)})
		}
		return err
	})
	if err != nil {
		return err
	}
	v.D = rows
	return c.render(w, r, k, http.StatusOK, "groups", "Groups", "groups", v)
}

func (c *Console) groupCreate(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	now := c.clock.Now().UTC()
	g := &gatehouse.Group{ID: gatehouse.NewID("grp"), TenantID: k.t.ID, Source: gatehouse.SourceAdmin, CreatedAt: now, UpdatedAt: now}
	var err error
	if g.Name, err = textField("name", "The group name", r.PostForm.Get("name"), true, 256); err == nil {
		err = c.store.Update(ctx, func(tx gatehouse.Tx) error {
			if other, err := tx.GetGroupByName(ctx, k.t.ID, g.Name); err == nil {
				return &gatehouse.Error{Code: gatehouse.ECONFLICT, Field: "name", Message: "There is already a group named " + other.Name + "."}
			} else if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				return err
			}
			if err := tx.CreateGroup(ctx, g); err != nil {
				return err
			}
			return c.audit(ctx, tx, r, k, k.t.ID, "group.created", "group", g.ID, map[string]any{"name": g.Name})
		})
	}
	if err != nil {
		v := &view{Form: r.PostForm}
		if err := showError(v, err); err != nil {
			return err
		}
		return c.renderGroups(w, r, k, v)
	}
	return c.redirect(w, r, tp(k.t, "/groups"), "created")
}

type memberRow struct {
	User     *gatehouse.User
	Managers []string
}

type groupData struct {
	Group   *gatehouse.Group
	Members []memberRow
}

func (c *Console) loadGroup(ctx context.Context, tx gatehouse.Tx, k *call, id string) (*gatehouse.Group, error) {
	g, err := tx.GetGroup(ctx, k.t.ID, id)
	return g, notFound(err, "group", k)
}

// groupPage lists a group's members with who manages each membership:
// "manual" (an admin), "SCIM", "IdP sync" (a connection's group claim).
func (c *Console) groupPage(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	d := &groupData{}
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		if d.Group, err = c.loadGroup(ctx, tx, k, r.PathValue("id")); err != nil {
			return err
		}
		ms, err := tx.ListGroupMembers(ctx, k.t.ID, d.Group.ID, "")
		if err != nil {
			return err
		}
		idx := map[string]int{}
		for _, m := range ms {
			i, ok := idx[m.UserID]
			if !ok {
				u, err := tx.GetUser(ctx, k.t.ID, m.UserID)
				if err != nil {
					continue
				}
				d.Members = append(d.Members, memberRow{User: u})
				i = len(d.Members) - 1
				idx[m.UserID] = i
			}
			d.Members[i].Managers = append(d.Members[i].Managers, m.ManagedBy)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.render(w, r, k, http.StatusOK, "group", d.Group.Name, "groups", &view{D: d})
}

func (c *Console) groupDeleteConfirm(w http.ResponseWriter, r *http.Request, k *call) error {
	g, err := fetch(c, r, k, "group", gatehouse.Tx.GetGroup)
	if err != nil {
		return err
	}
	return c.confirm(w, r, k, "groups", confirmation{
		Question: "Delete the group " + g.Name + "?",
		Detail:   "Its memberships end, and apps that allow only this group stop letting its members in. Users stay. If SCIM or a connection's group sync manages it, they may create it again.",
		Action:   tp(k.t, "/groups/"+g.ID+"/delete"), Button: "Delete group", Cancel: tp(k.t, "/groups/"+g.ID)})
}

func (c *Console) groupDelete(w http.ResponseWriter, r *http.Request, k *call) error {
	if !confirmed(r) {
		return errNeedsConfirm
	}
	return c.deleteObject(w, r, k, "group", "group.deleted", "/groups", func(ctx context.Context, tx gatehouse.Tx, id string) error {
		return tx.DeleteGroup(ctx, k.t.ID, id)
	})
}
