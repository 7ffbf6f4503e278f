package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/op"
)

// userJSON is a user as the API shows it, in lists too.
type userJSON struct {
	ID          string         `json:"id"`
	Email       string         `json:"email"`
	Username    string         `json:"username"`
	DisplayName string         `json:"display_name"`
	GivenName   string         `json:"given_name"`
	FamilyName  string         `json:"family_name"`
	Status      string         `json:"status"`
	Active      bool           `json:"active"`
	Source      string         `json:"source"`
	ExternalID  string         `json:"external_id"`
	Groups      []string       `json:"groups"`
	Attributes  map[string]any `json:"attributes,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	LastLoginAt *time.Time     `json:"last_login_at"`
	Version     int64          `json:"version"`
	DeletedAt   *time.Time     `json:"deleted_at,omitempty"`
}

func userOut(u *gatehouse.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Username: u.Username, DisplayName: u.DisplayName,
		GivenName: u.GivenName, FamilyName: u.FamilyName, Status: u.Status, Active: u.Active(),
		Source: u.Source, ExternalID: u.ExternalID, Groups: nonNil(u.Groups), Attributes: u.Attributes,
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, LastLoginAt: u.LastLoginAt, Version: u.Version, DeletedAt: u.DeletedAt}
}

// fillGroups sets the names of each user's groups (any manager), sorted,
// where the store's read did not already.
func fillGroups(ctx context.Context, tx gatehouse.Tx, tenantID string, users ...*gatehouse.User) error {
	names := map[string]string{}
	for _, u := range users {
		if u.Groups != nil {
			continue
		}
		ms, err := tx.ListUserMemberships(ctx, tenantID, u.ID)
		if err != nil {
			return err
		}
		u.Groups = []string{}
		for _, m := range ms {
			name, ok := names[m.GroupID]
			if !ok {
				g, err := tx.GetGroup(ctx, tenantID, m.GroupID)
				if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					continue
				}
				if err != nil {
					return err
				}
				name, names[m.GroupID] = g.Name, g.Name
			}
			if !slices.Contains(u.Groups, name) {
				u.Groups = append(u.Groups, name)
			}
		}
		slices.Sort(u.Groups)
	}
	return nil
}

// userInput is the body of POST and PATCH on users; nil means absent.
type userInput struct {
	Email       *string `json:"email"`
	Username    *string `json:"username"`
	DisplayName *string `json:"display_name"`
	GivenName   *string `json:"given_name"`
	FamilyName  *string `json:"family_name"`
	ExternalID  *string `json:"external_id"`
	Status      *string `json:"status"`
	Active      *bool   `json:"active"`
}

// apply validates in and copies it onto u. The status fields are handled
// by the caller (they have side effects).
func (in *userInput) apply(u *gatehouse.User) error {
	if in.Email != nil {
		e := strings.TrimSpace(*in.Email)
		if !gatehouse.ValidEmail(e) {
			return gatehouse.FieldError("email", "%q is not a valid email address.", e)
		}
		u.Email = e
	}
	if in.Username != nil {
		n := strings.TrimSpace(*in.Username)
		if err := checkName("username", n, 256); err != nil {
			return err
		}
		u.Username = n
	}
	for _, f := range []struct {
		name string
		v    *string
		dst  *string
	}{{"display_name", in.DisplayName, &u.DisplayName}, {"given_name", in.GivenName, &u.GivenName},
		{"family_name", in.FamilyName, &u.FamilyName}, {"external_id", in.ExternalID, &u.ExternalID}} {
		if f.v == nil {
			continue
		}
		v := strings.TrimSpace(*f.v)
		if len(v) > 256 || hasControl(v) {
			return gatehouse.FieldError(f.name, "%s must be at most 256 characters, without control characters.", f.name)
		}
		*f.dst = v
	}
	return nil
}

// wantStatus reads the requested status from "status" or "active".
func (in *userInput) wantStatus() (string, error) {
	st := ""
	if in.Status != nil {
		switch *in.Status {
		case gatehouse.StatusActive, gatehouse.StatusDeactivated:
			st = *in.Status
		case gatehouse.StatusPending:
			return "", gatehouse.FieldError("status", "A user cannot be set back to pending; use active or deactivated.")
		default:
			return "", gatehouse.FieldError("status", "status must be active or deactivated.")
		}
	}
	if in.Active != nil {
		a := gatehouse.StatusDeactivated
		if *in.Active {
			a = gatehouse.StatusActive
		}
		if st != "" && st != a {
			return "", gatehouse.FieldError("active", "active and status disagree.")
		}
		st = a
	}
	return st, nil
}

// emailFree refuses an email another user (a tombstone too) already has.
func emailFree(ctx context.Context, tx gatehouse.Tx, tenantID, userID, email string) error {
	other, err := tx.GetUserByEmail(ctx, tenantID, email)
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil
	}
	if err != nil {
		return err
	}
	if other.ID == userID {
		return nil
	}
	if other.DeletedAt != nil {
		return &gatehouse.Error{Code: gatehouse.ECONFLICT, Field: "email", Message: fmt.Sprintf(
			"A deleted user (%s) still holds this email; purge it first with DELETE .../users/%s?purge=true.", other.ID, other.ID)}
	}
	return &gatehouse.Error{Code: gatehouse.ECONFLICT, Field: "email", Message: "Another user (" + other.ID + ") already has this email."}
}

// uniqueUsername derives a username from base that no user of the tenant
// has: base, base2, base3...
func uniqueUsername(ctx context.Context, tx gatehouse.Tx, tenantID, base string) (string, error) {
	for i := 1; i <= 1000; i++ {
		name := base
		if i > 1 {
			name = base + strconv.Itoa(i)
		}
		taken, err := tx.UsernameTaken(ctx, tenantID, name)
		if err != nil {
			return "", err
		}
		if !taken {
			return name, nil
		}
	}
	return "", gatehouse.FieldError("username", "Could not derive a free username from %q; send one.", base)
}

func (s *server) createUser(w http.ResponseWriter, r *http.Request, c *call) error {
	var in userInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if in.Email == nil || strings.TrimSpace(*in.Email) == "" {
		return gatehouse.FieldError("email", "email is required.")
	}
	if in.Status != nil || in.Active != nil {
		if _, err := in.wantStatus(); err != nil {
			return err
		}
	}
	now := s.clock.Now().UTC()
	u := &gatehouse.User{ID: gatehouse.NewID("usr"), TenantID: c.tenant.ID, Status: gatehouse.StatusActive,
		Source: gatehouse.SourceAdmin, CreatedAt: now, UpdatedAt: now, Groups: []string{}}
	if err := in.apply(u); err != nil {
		return err
	}
	if st, _ := in.wantStatus(); st != "" {
		u.Status = st
	}
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		ctx := r.Context()
		if err := emailFree(ctx, tx, u.TenantID, u.ID, u.Email); err != nil {
			return err
		}
		if u.Username == "" {
			local, _, _ := strings.Cut(u.Email, "@")
			name, err := uniqueUsername(ctx, tx, u.TenantID, strings.ToLower(local))
			if err != nil {
				return err
			}
			u.Username = name
		} else if taken, err := tx.UsernameTaken(ctx, u.TenantID, u.Username); err != nil {
			return err
		} else if taken {
			return &gatehouse.Error{Code: gatehouse.ECONFLICT, Field: "username", Message: "Another user already has this username."}
		}
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		if err := s.audit(ctx, tx, u.TenantID, c.actor(r), "user.created", "user", u.ID, map[string]any{"email": u.Email, "source": u.Source}); err != nil {
			return err
		}
		return s.provisioned(ctx, tx, u.TenantID, "user.created", map[string]any{"user": u})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, userOut(u))
	return nil
}

var userStatuses = []string{gatehouse.StatusActive, gatehouse.StatusPending, gatehouse.StatusDeactivated}
var userSources = []string{gatehouse.SourceJIT, gatehouse.SourceSCIM, gatehouse.SourceAdmin, gatehouse.SourceImport}

func (s *server) listUsers(w http.ResponseWriter, r *http.Request, c *call) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := gatehouse.UserFilter{Email: strings.TrimSpace(q.Get("email")), Username: strings.TrimSpace(q.Get("username")),
		Query: q.Get("q"), Status: q.Get("status"), Source: q.Get("source"), IncludeDeleted: q.Get("include_deleted") == "true"}
	if f.Status != "" && !slices.Contains(userStatuses, f.Status) {
		return gatehouse.FieldError("status", "status must be one of %s.", strings.Join(userStatuses, ", "))
	}
	if f.Source != "" && !slices.Contains(userSources, f.Source) {
		return gatehouse.FieldError("source", "source must be one of %s.", strings.Join(userSources, ", "))
	}
	if len(f.Query) > 256 {
		return gatehouse.FieldError("q", "q must be at most 256 characters.")
	}
	var users []*gatehouse.User
	var next string
	err = s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		if ref := q.Get("group"); ref != "" {
			g, err := findGroup(r.Context(), tx, c.tenant.ID, ref)
			if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				return gatehouse.FieldError("group", "No group %q in this tenant.", ref)
			}
			if err != nil {
				return err
			}
			f.GroupID = g.ID
		}
		var err error
		if users, next, err = tx.ListUsers(r.Context(), c.tenant.ID, f, p); err != nil {
			return err
		}
		return fillGroups(r.Context(), tx, c.tenant.ID, users...)
	})
	if err != nil {
		return err
	}
	out := list[userJSON]{Items: []userJSON{}, NextCursor: next}
	for _, u := range users {
		out.Items = append(out.Items, userOut(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getUserTx reads a user of the call's tenant with its groups.
func getUserTx(ctx context.Context, tx gatehouse.Tx, tenantID, id string) (*gatehouse.User, error) {
	u, err := tx.GetUser(ctx, tenantID, id)
	if err != nil {
		return nil, notFound(err, "User")
	}
	return u, fillGroups(ctx, tx, tenantID, u)
}

// notFound gives a store's ENOTFOUND a message naming what was missing.
func notFound(err error, what string) error {
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return &gatehouse.Error{Code: gatehouse.ENOTFOUND, Message: what + " not found.", Err: err}
	}
	return err
}

func (s *server) getUser(w http.ResponseWriter, r *http.Request, c *call) error {
	var u *gatehouse.User
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		u, err = getUserTx(r.Context(), tx, c.tenant.ID, r.PathValue("id"))
		return err
	})
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(u.Version))
	writeJSON(w, http.StatusOK, userOut(u))
	return nil
}

// etag is a user's version as an entity tag (RFC 9110 §8.8.3).
func etag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

// checkIfMatch applies an If-Match header (RFC 9110 §13.1.1) to a version.
func checkIfMatch(r *http.Request, version int64) error {
	h := r.Header.Get("If-Match")
	if h == "" || h == "*" {
		return nil
	}
	for _, t := range strings.Split(h, ",") {
		t = strings.TrimSpace(t)
		if t == etag(version) || t == `"`+strconv.FormatInt(version, 10)+`"` {
			return nil
		}
	}
	return gatehouse.Errorf(gatehouse.EPRECONDITION, "The user changed since you read it (version %d); read it again.", version)
}

func (s *server) updateUser(w http.ResponseWriter, r *http.Request, c *call) error {
	var in userInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	want, err := in.wantStatus()
	if err != nil {
		return err
	}
	if in.Email != nil && strings.TrimSpace(*in.Email) == "" {
		return gatehouse.FieldError("email", "email cannot be removed.")
	}
	var u *gatehouse.User
	err = s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		ctx := r.Context()
		var err error
		if u, err = getUserTx(ctx, tx, c.tenant.ID, r.PathValue("id")); err != nil {
			return err
		}
		if err := checkIfMatch(r, u.Version); err != nil {
			return err
		}
		before := *u
		if err := in.apply(u); err != nil {
			return err
		}
		if in.Email != nil && gatehouse.NormalizeEmail(u.Email) != gatehouse.NormalizeEmail(before.Email) {
			if err := emailFree(ctx, tx, u.TenantID, u.ID, u.Email); err != nil {
				return err
			}
		}
		if in.Username != nil && gatehouse.FoldKey(u.Username) != gatehouse.FoldKey(before.Username) {
			if taken, err := tx.UsernameTaken(ctx, u.TenantID, u.Username); err != nil {
				return err
			} else if taken {
				return &gatehouse.Error{Code: gatehouse.ECONFLICT, Field: "username", Message: "Another user already has this username."}
			}
		}
		action := "user.updated"
		if want != "" && want != u.Status {
			switch {
			case want == gatehouse.StatusDeactivated:
				action = "user.deactivated"
			case before.Status == gatehouse.StatusPending:
				action = "user.approved"
			default:
				action = "user.reactivated"
			}
			u.Status = want
		}
		u.UpdatedAt = s.clock.Now().UTC()
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		details := map[string]any{"changed": changedUserFields(&in)}
		if action == "user.deactivated" {
			if err := s.cutOff(ctx, tx, u.TenantID, u.ID, details); err != nil {
				return err
			}
		}
		if err := s.audit(ctx, tx, u.TenantID, c.actor(r), action, "user", u.ID, details); err != nil {
			return err
		}
		event := action
		if action == "user.approved" {
			event = "user.updated" // as JIT's approval reports it
		}
		return s.provisioned(ctx, tx, u.TenantID, event, map[string]any{"user": u})
	})
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(u.Version))
	writeJSON(w, http.StatusOK, userOut(u))
	return nil
}

// cutOff makes a deactivation or deletion take effect at once, in the
// caller's transaction: the user's browser sessions end and every access
// and refresh token issued to apps for the user is revoked.
func (s *server) cutOff(ctx context.Context, tx gatehouse.Tx, tenantID, userID string, details map[string]any) error {
	n, err := tx.DeleteUserSessions(ctx, tenantID, userID)
	if err != nil {
		return err
	}
	details["sessions_ended"] = n
	if n, err = op.RevokeUserTokens(ctx, tx, tenantID, userID, s.clock.Now().UTC()); err != nil {
		return err
	}
	details["tokens_revoked"] = n
	return nil
}

func changedUserFields(in *userInput) []string {
	var out []string
	for name, set := range map[string]bool{"email": in.Email != nil, "username": in.Username != nil,
		"display_name": in.DisplayName != nil, "given_name": in.GivenName != nil, "family_name": in.FamilyName != nil,
		"external_id": in.ExternalID != nil, "status": in.Status != nil || in.Active != nil} {
		if set {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// deleteUser leaves a tombstone (JIT will not re-create the user), or with
// ?purge=true removes the user or its tombstone for good.
func (s *server) deleteUser(w http.ResponseWriter, r *http.Request, c *call) error {
	purge := false
	switch v := r.URL.Query().Get("purge"); v {
	case "", "false":
	case "true":
		purge = true
	default:
		return gatehouse.FieldError("purge", "purge must be true or false.")
	}
	id := r.PathValue("id")
	err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
		ctx := r.Context()
		action := "user.deleted"
		details := map[string]any{}
		if err := s.cutOff(ctx, tx, c.tenant.ID, id, details); err != nil {
			return err
		}
		var err error
		if purge {
			action = "user.purged"
			err = tx.PurgeUser(ctx, c.tenant.ID, id)
		} else {
			err = tx.DeleteUser(ctx, c.tenant.ID, id)
		}
		if err != nil {
			return notFound(err, "User")
		}
		if err := s.audit(ctx, tx, c.tenant.ID, c.actor(r), action, "user", id, details); err != nil {
			return err
		}
		return s.provisioned(ctx, tx, c.tenant.ID, "user.deleted", map[string]any{"user_id": id})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusNoContent, nil)
	return nil
}

// approveUser activates a user waiting for approval (JIT with
// require_approval). It needs no body.
func (s *server) approveUser(w http.ResponseWriter, r *http.Request, c *call) error {
	id := r.PathValue("id")
	var u *gatehouse.User
	var err error
	if s.cfg.Provisioner != nil {
		u, err = s.cfg.Provisioner.Approve(r.Context(), c.tenant.ID, id, c.actor(r))
		if err == nil {
			err = s.store.View(r.Context(), func(tx gatehouse.Tx) error { return fillGroups(r.Context(), tx, c.tenant.ID, u) })
		}
	} else {
		err = s.store.Update(r.Context(), func(tx gatehouse.Tx) error {
			ctx := r.Context()
			var err error
			if u, err = getUserTx(ctx, tx, c.tenant.ID, id); err != nil {
				return err
			}
			if u.Status != gatehouse.StatusPending {
				return gatehouse.Errorf(gatehouse.ECONFLICT, "The user is %s, not pending approval.", u.Status)
			}
			u.Status, u.UpdatedAt = gatehouse.StatusActive, s.clock.Now().UTC()
			if err := tx.UpdateUser(ctx, u); err != nil {
				return err
			}
			if err := s.audit(ctx, tx, c.tenant.ID, c.actor(r), "user.approved", "user", u.ID, nil); err != nil {
				return err
			}
			return s.provisioned(ctx, tx, c.tenant.ID, "user.updated", map[string]any{"user": u})
		})
	}
	if err != nil {
		return notFound(err, "User")
	}
	writeJSON(w, http.StatusOK, userOut(u))
	return nil
}
