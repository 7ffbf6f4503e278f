package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/op"
)

type usersData struct {
	Users  []*gatehouse.User
	Total  int
	Next   string
	Groups []*gatehouse.Group
	// Query echoes the filters, for the form and the next-page link.
	Query url.Values
	More  string
}

var (
	userSources  = []string{gatehouse.SourceJIT, gatehouse.SourceSCIM, gatehouse.SourceAdmin, gatehouse.SourceImport}
	userStatuses = []string{gatehouse.StatusActive, gatehouse.StatusPending, gatehouse.StatusDeactivated}
	// lastLoginFilters are the users page's last sign-in choices: signed
	// in within the period ("7d"), or not within it, never included ("-30d").
	lastLoginFilters = map[string]time.Duration{
		"1d": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour,
		"-30d": 30 * 24 * time.Hour, "-90d": 90 * 24 * time.Hour,
	}
)

// usersPage lists users: search (email, username, name), filters by source,
// status, last sign-in and group, 50 a page.
func (c *Console) usersPage(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	q := r.URL.Query()
	f := gatehouse.UserFilter{Query: strings.TrimSpace(q.Get("q")), Source: q.Get("source"), Status: q.Get("status")}
	v := &view{Form: q}
	switch {
	case f.Source != "" && !slices.Contains(userSources, f.Source):
		return gatehouse.FieldError("source", "Unknown source.")
	case f.Status != "" && !slices.Contains(userStatuses, f.Status):
		return gatehouse.FieldError("status", "Unknown status.")
	case len(f.Query) > 256:
		return gatehouse.FieldError("q", "The search is too long.")
	}
	if ll := q.Get("last_login"); ll != "" {
		d, ok := lastLoginFilters[ll]
		if !ok {
			return gatehouse.FieldError("last_login", "Unknown last sign-in filter.")
		}
		if cut := c.clock.Now().Add(-d); strings.HasPrefix(ll, "-") {
			f.LastLoginBefore = cut
		} else {
			f.LastLoginSince = cut
		}
	}
	d := &usersData{Query: q}
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		if d.Groups, _, err = tx.ListGroups(ctx, k.t.ID, gatehouse.Page{Limit: 1000}); err != nil {
			return err
		}
		if g := q.Get("group"); g != "" {
			if _, err := tx.GetGroup(ctx, k.t.ID, g); err != nil {
				return gatehouse.FieldError("group", "No such group.")
			}
			f.GroupID = g
		}
		if d.Total, err = tx.CountUsers(ctx, k.t.ID, f); err != nil {
			return err
		}
		d.Users, d.Next, err = tx.ListUsers(ctx, k.t.ID, f, gatehouse.Page{Limit: 50, Cursor: q.Get("cursor")})
		return err
	})
	if err != nil {
		return err
	}
	d.More = nextPage(q, d.Next)
	v.D = d
	return c.render(w, r, k, http.StatusOK, "users", "Users", "users", v)
}

// membershipRow is one group of a user with who manages the membership.
type membershipRow struct {
	Group    *gatehouse.Group
	Managers []string
	Manual   bool
}

type userData struct {
	User       *gatehouse.User
	Rows       []membershipRow
	Groups     []*gatehouse.Group
	Identities []*gatehouse.FederatedIdentity
	ConnNames  map[string]string
	Events     []*gatehouse.AuditEvent
}

func (c *Console) loadUser(ctx context.Context, tx gatehouse.Tx, k *call, id string) (*gatehouse.User, error) {
	u, err := tx.GetUser(ctx, k.t.ID, id)
	return u, notFound(err, "user", k)
}

func (c *Console) userPage(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	d := &userData{ConnNames: map[string]string{}}
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		if d.User, err = c.loadUser(ctx, tx, k, r.PathValue("id")); err != nil {
			return err
		}
		if d.Groups, _, err = tx.ListGroups(ctx, k.t.ID, gatehouse.Page{Limit: 1000}); err != nil {
			return err
		}
		ms, err := tx.ListUserMemberships(ctx, k.t.ID, d.User.ID)
		if err != nil {
			return err
		}
		byGroup := map[string]int{} // group id → index in d.Rows
		for _, m := range ms {
			i, ok := byGroup[m.GroupID]
			if !ok {
				g, err := tx.GetGroup(ctx, k.t.ID, m.GroupID)
				if err != nil {
					continue
				}
				d.Rows = append(d.Rows, membershipRow{Group: g})
				i = len(d.Rows) - 1
				byGroup[m.GroupID] = i
			}
			d.Rows[i].Managers = append(d.Rows[i].Managers, m.ManagedBy)
			d.Rows[i].Manual = d.Rows[i].Manual || m.ManagedBy == gatehouse.ManagedByAdmin
		}
		if d.Identities, err = tx.ListUserIdentities(ctx, k.t.ID, d.User.ID); err != nil {
			return err
		}
		conns, err := tx.ListConnections(ctx, k.t.ID)
		if err != nil {
			return err
		}
		for _, cn := range conns {
			d.ConnNames[cn.ID] = cn.Name
		}
		d.Events, _, err = tx.ListAudit(ctx, k.t.ID, gatehouse.AuditFilter{TargetID: d.User.ID}, gatehouse.Page{Limit: 10})
		return err
	})
	if err != nil {
		return err
	}
	slices.SortFunc(d.Rows, func(a, b membershipRow) int { return strings.Compare(a.Group.Name, b.Group.Name) })
	name := d.User.Email
	if name == "" {
		name = d.User.Username
	}
	return c.render(w, r, k, http.StatusOK, "user", name, "users", &view{D: d})
}

// changeUser runs change on the user {id} in one write transaction and
// returns the user's id.
func (c *Console) changeUser(r *http.Request, k *call, change func(tx gatehouse.Tx, u *gatehouse.User) error) (string, error) {
	ctx := r.Context()
	var uid string
	err := c.store.Update(ctx, func(tx gatehouse.Tx) error {
		u, err := c.loadUser(ctx, tx, k, r.PathValue("id"))
		if err != nil {
			return err
		}
		uid = u.ID
		return change(tx, u)
	})
	return uid, err
}

// userGroups sets the user's manual (admin-managed) memberships to the
// checked groups. Memberships SCIM or an IdP's group sync manage are not
// touched: their manager would put them back.
func (c *Console) userGroups(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	want := r.PostForm["group"]
	uid, err := c.changeUser(r, k, func(tx gatehouse.Tx, u *gatehouse.User) error {
		ms, err := tx.ListUserMemberships(ctx, k.t.ID, u.ID)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, m := range ms {
			if m.ManagedBy == gatehouse.ManagedByAdmin {
				have[m.GroupID] = true
			}
		}
		now := c.clock.Now().UTC()
		change := func(g *gatehouse.Group, add bool) error {
			action := "group.member_removed"
			if add {
				action = "group.member_added"
				err = tx.AddMembership(ctx, &gatehouse.Membership{TenantID: k.t.ID, GroupID: g.ID, UserID: u.ID, ManagedBy: gatehouse.ManagedByAdmin, CreatedAt: now})
			} else {
				err = tx.RemoveMembership(ctx, k.t.ID, g.ID, u.ID, gatehouse.ManagedByAdmin)
			}
			if err != nil {
				return err
			}
			return c.audit(ctx, tx, r, k, k.t.ID, action, "group", g.ID, map[string]any{"user_id": u.ID, "group": g.Name, "managed_by": gatehouse.ManagedByAdmin})
		}
		for _, gid := range want {
			if have[gid] {
				delete(have, gid)
				continue
			}
			g, err := tx.GetGroup(ctx, k.t.ID, gid)
			if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				return gatehouse.Errorf(gatehouse.EINVALID, "One of the groups no longer exists; reload the page.")
			}
			if err != nil {
				return err
			}
			if err := change(g, true); err != nil {
				return err
			}
		}
		for gid := range have {
			g, err := tx.GetGroup(ctx, k.t.ID, gid)
			if err != nil {
				return err
			}
			if err := change(g, false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.redirect(w, r, tp(k.t, "/users/"+uid), "groups")
}

func (c *Console) userApprove(w http.ResponseWriter, r *http.Request, k *call) error {
	if c.approver == nil {
		return gatehouse.Errorf(gatehouse.EUNAVAILABLE, "Approving users is not available on this server.")
	}
	// The resolver writes the activation with its audit and outbox events.
	u, err := c.approver.Approve(r.Context(), k.t.ID, r.PathValue("id"), k.p.actor(r))
	if err != nil {
		return err
	}
	return c.redirect(w, r, tp(k.t, "/users/"+u.ID), "approved")
}

func (c *Console) userDeactivateConfirm(w http.ResponseWriter, r *http.Request, k *call) error {
	u, err := fetch(c, r, k, "user", gatehouse.Tx.GetUser)
	if err != nil {
		return err
	}
	return c.confirm(w, r, k, "users", confirmation{
		Question: "Deactivate " + u.Email + "?",
		Detail:   "Their sessions end at once and they cannot sign in until reactivated. Their account, groups and history stay.",
		Action:   tp(k.t, "/users/"+u.ID+"/deactivate"), Button: "Deactivate", Cancel: tp(k.t, "/users/"+u.ID)})
}

func (c *Console) userDeactivate(w http.ResponseWriter, r *http.Request, k *call) error {
	if !confirmed(r) {
		return errNeedsConfirm
	}
	return c.setUserStatus(w, r, k, gatehouse.StatusDeactivated)
}

func (c *Console) userReactivate(w http.ResponseWriter, r *http.Request, k *call) error {
	return c.setUserStatus(w, r, k, gatehouse.StatusActive)
}

// setUserStatus deactivates (ending the user's sessions in the same
// transaction) or reactivates a user.
func (c *Console) setUserStatus(w http.ResponseWriter, r *http.Request, k *call, status string) error {
	ctx := r.Context()
	uid, err := c.changeUser(r, k, func(tx gatehouse.Tx, u *gatehouse.User) error {
		if u.Status == status {
			return nil
		}
		if u.Status == gatehouse.StatusPending && status == gatehouse.StatusActive {
			return gatehouse.Errorf(gatehouse.ECONFLICT, "This user is waiting for approval; approve them instead.")
		}
		u.Status, u.UpdatedAt = status, c.clock.Now().UTC()
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		details := map[string]any{"changed": []string{"status"}}
		action := "user.reactivated"
		if status == gatehouse.StatusDeactivated {
			action = "user.deactivated"
			n, err := tx.DeleteUserSessions(ctx, k.t.ID, u.ID)
			if err != nil {
				return err
			}
			details["sessions_ended"] = n
			// Revoked, not only refused while inactive: a later
			// reactivation must not bring old refresh tokens back.
			if n, err = op.RevokeUserTokens(ctx, tx, k.t.ID, u.ID, u.UpdatedAt); err != nil {
				return err
			}
			details["tokens_revoked"] = n
		}
		return c.audit(ctx, tx, r, k, k.t.ID, action, "user", u.ID, details)
	})
	if err != nil {
		return err
	}
	flash := "reactivated"
	if status == gatehouse.StatusDeactivated {
		flash = "deactivated"
	}
	return c.redirect(w, r, tp(k.t, "/users/"+uid), flash)
}
