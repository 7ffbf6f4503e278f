package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

// managedByImport marks the group memberships a bulk import manages: a
// later import adds and removes only those, so memberships an admin, SCIM
// or a login's group sync made are left alone.
const managedByImport = "import"

// maxImportRows bounds one import request; the CLI sends bigger files in
// chunks.
const maxImportRows = 5000

// importRow is one user of a bulk import. Line is the row's line in the
// client's file, echoed in errors. Absent (nil) fields keep the stored
// value; Groups, when present, is the complete list of the user's
// import-managed groups.
type importRow struct {
	Line        int       `json:"line"`
	Email       string    `json:"email"`
	Username    *string   `json:"username"`
	DisplayName *string   `json:"display_name"`
	GivenName   *string   `json:"given_name"`
	FamilyName  *string   `json:"family_name"`
	ExternalID  *string   `json:"external_id"`
	Status      *string   `json:"status"`
	Groups      *[]string `json:"groups"`
}

type importInput struct {
	Rows []importRow `json:"rows"`
	// DryRun validates every row against the tenant and counts what an
	// import would do, writing nothing.
	DryRun bool `json:"dry_run"`
}

// importResult is the answer: counts, or the rows in error.
type importResult struct {
	Created       int              `json:"created"`
	Updated       int              `json:"updated"`
	Unchanged     int              `json:"unchanged"`
	GroupsCreated int              `json:"groups_created"`
	DryRun        bool             `json:"dry_run"`
	Errors        []importRowError `json:"errors"`
}

type importRowError struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// importErrorBody is the 400 answer when rows are invalid: the API's error
// shape plus every row's error.
type importErrorBody struct {
	Error errorDetail      `json:"error"`
	Rows  []importRowError `json:"rows"`
}

// ErrRowsInvalid: some import rows are invalid (listed in the result's
// Errors); nothing was written.
var ErrRowsInvalid = errors.New("import: invalid rows")

// importPlan is one valid row with the user it updates (nil: create).
type importPlan struct {
	row  *importRow
	user *gatehouse.User
}

func (s *server) importUsers(w http.ResponseWriter, r *http.Request, c *call) error {
	var in importInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	res, err := s.runImport(r.Context(), c.tenant.ID, c.actor(r), in.Rows, in.DryRun)
	if errors.Is(err, ErrRowsInvalid) {
		writeJSON(w, http.StatusBadRequest, importErrorBody{
			Error: errorDetail{Code: gatehouse.EINVALID, Field: "rows",
				Message: fmt.Sprintf("%d row(s) are invalid; nothing was written.", len(res.Errors))},
			Rows: res.Errors})
		return nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// runImport validates every row against each other and the tenant, then
// (unless dryRun) writes them all, in one transaction. Invalid rows give
// ErrRowsInvalid with every row's error in the result's Errors, and
// nothing written.
func (s *server) runImport(ctx context.Context, tenantID string, actor gatehouse.Actor, rows []importRow, dryRun bool) (*importResult, error) {
	if len(rows) == 0 {
		return nil, gatehouse.FieldError("rows", "rows must hold at least one user.")
	}
	if len(rows) > maxImportRows {
		return nil, gatehouse.FieldError("rows", "At most %d rows per request; send bigger files in parts (the CLI does).", maxImportRows)
	}
	res := &importResult{DryRun: dryRun, Errors: []importRowError{}}
	run := s.store.Update
	if dryRun {
		run = s.store.View
	}
	err := run(ctx, func(tx gatehouse.Tx) error {
		res.Created, res.Updated, res.Unchanged, res.GroupsCreated = 0, 0, 0, 0 // a retried transaction starts over
		plans, rowErrs, err := checkImport(ctx, tx, tenantID, rows)
		if err != nil {
			return err
		}
		if len(rowErrs) > 0 {
			res.Errors = rowErrs
			return ErrRowsInvalid
		}
		if dryRun {
			for _, p := range plans {
				switch {
				case p.user == nil:
					res.Created++
				case profileChanged(p.user, p.row):
					res.Updated++
				default:
					res.Unchanged++
				}
			}
			return nil
		}
		return s.writeImport(ctx, tx, tenantID, actor, plans, res)
	})
	return res, err
}

// checkImport validates every row, against each other and the tenant's
// users, without writing.
func checkImport(ctx context.Context, tx gatehouse.Tx, tenantID string, rows []importRow) ([]importPlan, []importRowError, error) {
	var plans []importPlan
	var errs []importRowError
	emails, usernames := map[string]int{}, map[string]int{}
	for i := range rows {
		row := &rows[i]
		if row.Line == 0 {
			row.Line = i + 1
		}
		bad := func(field, format string, args ...any) {
			errs = append(errs, importRowError{Line: row.Line, Field: field, Message: fmt.Sprintf(format, args...)})
		}
		row.Email = strings.TrimSpace(row.Email)
		in := userInput{Email: &row.Email, Username: row.Username, DisplayName: row.DisplayName,
			GivenName: row.GivenName, FamilyName: row.FamilyName, ExternalID: row.ExternalID}
		if row.Email == "" {
			bad("email", "email is required.")
			continue
		}
		var probe gatehouse.User
		if err := in.apply(&probe); err != nil {
			bad(gatehouse.ErrorField(err), "%s", gatehouse.ErrorMessage(err))
			continue
		}
		if row.Status != nil && *row.Status != "" && *row.Status != gatehouse.StatusActive && *row.Status != gatehouse.StatusDeactivated {
			bad("status", "status must be active or deactivated, not %q.", *row.Status)
			continue
		}
		if row.Groups != nil {
			for _, g := range *row.Groups {
				if err := checkName("groups", strings.TrimSpace(g), 256); err != nil {
					bad("groups", "Group name %q: %s", g, gatehouse.ErrorMessage(err))
				}
			}
		}
		key := gatehouse.NormalizeEmail(row.Email)
		if first, dup := emails[key]; dup {
			bad("email", "%s is also on line %d.", row.Email, first)
			continue
		}
		emails[key] = row.Line
		u, err := tx.GetUserByEmail(ctx, tenantID, row.Email)
		switch {
		case gatehouse.IsCode(err, gatehouse.ENOTFOUND):
			u = nil
		case err != nil:
			return nil, nil, err
		case u.DeletedAt != nil:
			bad("email", "A deleted user (%s) holds %s; purge it first.", u.ID, row.Email)
			continue
		}
		if row.Username != nil && probe.Username != "" {
			uk := gatehouse.FoldKey(probe.Username)
			if first, dup := usernames[uk]; dup {
				bad("username", "Username %s is also on line %d.", probe.Username, first)
				continue
			}
			usernames[uk] = row.Line
			if u == nil || gatehouse.FoldKey(u.Username) != uk {
				taken, err := tx.UsernameTaken(ctx, tenantID, probe.Username)
				if err != nil {
					return nil, nil, err
				}
				if taken {
					bad("username", "Another user already has the username %s.", probe.Username)
					continue
				}
			}
		}
		plans = append(plans, importPlan{row: row, user: u})
	}
	return plans, errs, nil
}

// profileChanged reports whether row would change u's profile or status.
func profileChanged(u *gatehouse.User, row *importRow) bool {
	next := *u
	in := userInput{Username: row.Username, DisplayName: row.DisplayName, GivenName: row.GivenName,
		FamilyName: row.FamilyName, ExternalID: row.ExternalID}
	_ = in.apply(&next)
	if row.Status != nil && *row.Status != "" {
		next.Status = *row.Status
	}
	return next.Username != u.Username || next.DisplayName != u.DisplayName || next.GivenName != u.GivenName ||
		next.FamilyName != u.FamilyName || next.ExternalID != u.ExternalID || next.Status != u.Status
}

// writeImport creates and updates the users and their import-managed
// memberships, with their audit and outbox events, in the caller's
// transaction.
func (s *server) writeImport(ctx context.Context, tx gatehouse.Tx, tenantID string, actor gatehouse.Actor, plans []importPlan, res *importResult) error {
	now := s.clock.Now().UTC()
	groups := map[string]*gatehouse.Group{} // folded name → group
	added, removed := map[string][]string{}, map[string][]string{}
	group := func(name string) (*gatehouse.Group, error) {
		key := gatehouse.FoldKey(name)
		if g, ok := groups[key]; ok {
			return g, nil
		}
		g, err := tx.GetGroupByName(ctx, tenantID, name)
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			g = &gatehouse.Group{ID: gatehouse.NewID("grp"), TenantID: tenantID, Name: strings.TrimSpace(name),
				Source: gatehouse.SourceImport, CreatedAt: now, UpdatedAt: now}
			if err := tx.CreateGroup(ctx, g); err != nil {
				return nil, err
			}
			if err := s.audit(ctx, tx, tenantID, actor, "group.created", "group", g.ID, map[string]any{"name": g.Name, "source": "import"}); err != nil {
				return nil, err
			}
			if err := s.provisioned(ctx, tx, tenantID, "group.created", map[string]any{"group": g}); err != nil {
				return nil, err
			}
			res.GroupsCreated++
		} else if err != nil {
			return nil, err
		}
		groups[key] = g
		return g, nil
	}
	for _, p := range plans {
		row, u := p.row, p.user
		in := userInput{Email: &row.Email, Username: row.Username, DisplayName: row.DisplayName,
			GivenName: row.GivenName, FamilyName: row.FamilyName, ExternalID: row.ExternalID}
		if u == nil {
			u = &gatehouse.User{ID: gatehouse.NewID("usr"), TenantID: tenantID, Status: gatehouse.StatusActive,
				Source: gatehouse.SourceImport, CreatedAt: now, UpdatedAt: now}
			if err := in.apply(u); err != nil {
				return err
			}
			if row.Status != nil && *row.Status != "" {
				u.Status = *row.Status
			}
			if u.Username == "" {
				local, _, _ := strings.Cut(u.Email, "@")
				name, err := uniqueUsername(ctx, tx, tenantID, strings.ToLower(local))
				if err != nil {
					return err
				}
				u.Username = name
			}
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			if err := s.audit(ctx, tx, tenantID, actor, "user.created", "user", u.ID, map[string]any{"email": u.Email, "source": u.Source, "line": row.Line}); err != nil {
				return err
			}
			if err := s.provisioned(ctx, tx, tenantID, "user.created", map[string]any{"user": u}); err != nil {
				return err
			}
			res.Created++
		} else if profileChanged(u, row) {
			before := *u
			in.Email = nil // the key: its case is kept as stored
			if err := in.apply(u); err != nil {
				return err
			}
			action := "user.updated"
			details := map[string]any{"via": "import", "line": row.Line}
			if row.Status != nil && *row.Status != "" && *row.Status != u.Status {
				u.Status = *row.Status
				if u.Status == gatehouse.StatusDeactivated {
					action = "user.deactivated"
				} else if before.Status != gatehouse.StatusPending {
					action = "user.reactivated"
				}
			}
			u.UpdatedAt = now
			if err := tx.UpdateUser(ctx, u); err != nil {
				return err
			}
			if action == "user.deactivated" {
				if err := s.cutOff(ctx, tx, tenantID, u.ID, details); err != nil {
					return err
				}
			}
			if err := s.audit(ctx, tx, tenantID, actor, action, "user", u.ID, details); err != nil {
				return err
			}
			if err := s.provisioned(ctx, tx, tenantID, action, map[string]any{"user": u}); err != nil {
				return err
			}
			res.Updated++
		} else {
			res.Unchanged++
		}
		if row.Groups == nil {
			continue
		}
		want := map[string]bool{}
		for _, name := range *row.Groups {
			g, err := group(name)
			if err != nil {
				return err
			}
			want[g.ID] = true
		}
		var have []*gatehouse.Membership
		if p.user != nil { // a new user has none
			ms, err := tx.ListUserMemberships(ctx, tenantID, u.ID)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if m.ManagedBy == managedByImport {
					have = append(have, m)
				}
			}
		}
		for _, m := range have {
			if want[m.GroupID] {
				delete(want, m.GroupID)
				continue
			}
			if err := tx.RemoveMembership(ctx, tenantID, m.GroupID, u.ID, managedByImport); err != nil {
				return err
			}
			removed[m.GroupID] = append(removed[m.GroupID], u.ID)
		}
		for _, gid := range slices.Sorted(maps.Keys(want)) {
			if err := tx.AddMembership(ctx, &gatehouse.Membership{TenantID: tenantID, GroupID: gid, UserID: u.ID, ManagedBy: managedByImport, CreatedAt: now}); err != nil {
				return err
			}
			added[gid] = append(added[gid], u.ID)
		}
	}
	// One event per group changed, not one per membership.
	byID := map[string]*gatehouse.Group{}
	for _, g := range groups {
		byID[g.ID] = g
	}
	for _, gid := range slices.Sorted(maps.Keys(byID)) {
		if len(added[gid]) == 0 && len(removed[gid]) == 0 {
			continue
		}
		payload := map[string]any{"group": byID[gid]}
		details := map[string]any{"via": "import"}
		if len(added[gid]) > 0 {
			payload["members_added"], details["members_added"] = added[gid], len(added[gid])
		}
		if len(removed[gid]) > 0 {
			payload["members_removed"], details["members_removed"] = removed[gid], len(removed[gid])
		}
		if err := s.audit(ctx, tx, tenantID, actor, "group.members_changed", "group", gid, details); err != nil {
			return err
		}
		if err := s.provisioned(ctx, tx, tenantID, "group.updated", payload); err != nil {
			return err
		}
	}
	return s.audit(ctx, tx, tenantID, actor, "users.imported", "tenant", tenantID, map[string]any{
		"created": res.Created, "updated": res.Updated, "unchanged": res.Unchanged, "groups_created": res.GroupsCreated})
}
