package scim

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/op"
)

// Attributes of the User document that Gatehouse keeps in its own fields;
// every other core attribute is kept as sent in
// User.Attributes[SchemaUser], and the enterprise extension in
// User.Attributes[SchemaEnterprise].
var userOwned = map[string]bool{
	"schemas": true, "id": true, "externalId": true, "meta": true, "userName": true,
	"displayName": true, "active": true, "password": true, "groups": true, SchemaEnterprise: true,
}

// userDoc renders a user. groups are its SCIM-managed memberships (nil
// when the projection does not want them).
func (s *Server) userDoc(u *gatehouse.User, groups []*gatehouse.Membership) map[string]any {
	doc := map[string]any{}
	if extras, ok := u.Attributes[SchemaUser].(map[string]any); ok {
		for k, v := range extras {
			if !userOwned[k] {
				doc[k] = deepCopy(v)
			}
		}
	}
	schemas := []any{SchemaUser}
	if ent, ok := u.Attributes[SchemaEnterprise].(map[string]any); ok && len(ent) > 0 {
		doc[SchemaEnterprise] = deepCopy(ent)
		schemas = append(schemas, SchemaEnterprise)
	}
	doc["schemas"] = schemas
	doc["id"] = u.ID
	doc["userName"] = u.Username
	if u.ExternalID != "" {
		doc["externalId"] = u.ExternalID
	}
	if u.DisplayName != "" {
		doc["displayName"] = u.DisplayName
	}
	doc["active"] = u.Status == gatehouse.StatusActive
	name, _ := doc["name"].(map[string]any)
	if name == nil {
		name = map[string]any{}
	}
	setOrDelete(name, "givenName", u.GivenName)
	setOrDelete(name, "familyName", u.FamilyName)
	if len(name) > 0 {
		doc["name"] = name
	} else {
		delete(doc, "name")
	}
	// The emails as last sent are shown while their primary is still the
	// user's email; when someone else changed the email, the email wins.
	emails, _ := doc["emails"].([]any)
	if u.Email == "" || !strings.EqualFold(primaryEmailOf(emails), u.Email) {
		delete(doc, "emails")
		if u.Email != "" {
			doc["emails"] = []any{map[string]any{"value": u.Email, "type": "work", "primary": true}}
		}
	}
	if groups != nil {
		list := make([]any, 0, len(groups))
		for _, m := range groups {
			list = append(list, map[string]any{"value": m.GroupID, "$ref": s.location(groupType, m.GroupID), "type": "direct"})
		}
		if len(list) > 0 {
			doc["groups"] = list
		}
	}
	doc["meta"] = s.meta(userType, u.ID, u.CreatedAt, u.UpdatedAt, u.Version)
	return doc
}

func setOrDelete(m map[string]any, k, v string) {
	if v == "" {
		delete(m, k)
	} else {
		m[k] = v
	}
}

// primaryEmailOf returns the primary email of a SCIM emails list, else the
// first with a value (RFC 7643 §4.1.2: at most one is primary).
func primaryEmailOf(emails []any) string {
	first := ""
	for _, e := range emails {
		m, _ := e.(map[string]any)
		v := strings.TrimSpace(getString(m, "value"))
		if v == "" {
			continue
		}
		if p, _ := m["primary"].(bool); p {
			return v
		}
		if first == "" {
			first = v
		}
	}
	return first
}

// userFromDoc applies a full canonical User document to u: what the
// document lacks is cleared (PUT replaces, RFC 7644 §3.5.1), except
// `active`: when absent the status stays as it is (a new user is active),
// so a client that omits it neither locks a user out nor revives one.
func userFromDoc(doc map[string]any, u *gatehouse.User) error {
	userName := strings.TrimSpace(getString(doc, "userName"))
	if userName == "" {
		return &gatehouse.Error{Code: gatehouse.EINVALID, Reason: typeInvalidValue, Field: "userName", Message: "userName is required."}
	}
	if len(userName) > 256 {
		return &gatehouse.Error{Code: gatehouse.EINVALID, Reason: typeInvalidValue, Field: "userName", Message: "userName is longer than 256 characters."}
	}
	email := primaryEmailOf(getList(doc, "emails"))
	if email != "" && !gatehouse.ValidEmail(email) {
		return &gatehouse.Error{Code: gatehouse.EINVALID, Reason: typeInvalidValue, Field: "emails", Message: "The primary email is not a valid email address."}
	}
	if email == "" && gatehouse.ValidEmail(userName) {
		email = userName
	}
	u.Username = userName
	u.Email = email
	u.ExternalID = strings.TrimSpace(getString(doc, "externalId"))
	u.DisplayName = getString(doc, "displayName")
	name := getMap(doc, "name")
	u.GivenName = getString(name, "givenName")
	u.FamilyName = getString(name, "familyName")
	active, present := doc["active"].(bool)
	switch {
	case !present:
		// Absent: a new user is active; an existing one keeps its status.
		if u.Status == "" {
			u.Status = gatehouse.StatusActive
		}
	case active:
		u.Status = gatehouse.StatusActive
	case u.Status == "" || u.Status == gatehouse.StatusActive:
		u.Status = gatehouse.StatusDeactivated
	}
	// active false on a pending user (awaiting an admin's approval) leaves
	// it pending: both are "not active" to SCIM.
	extras := map[string]any{}
	for k, v := range doc {
		if !userOwned[k] {
			extras[k] = v
		}
	}
	attrs := map[string]any{}
	for k, v := range u.Attributes {
		attrs[k] = v
	}
	delete(attrs, SchemaUser)
	delete(attrs, SchemaEnterprise)
	if len(extras) > 0 {
		attrs[SchemaUser] = extras
	}
	if ent := getMap(doc, SchemaEnterprise); len(ent) > 0 {
		attrs[SchemaEnterprise] = ent
	}
	if len(attrs) == 0 {
		attrs = nil
	}
	u.Attributes = attrs
	return nil
}

// scimMemberships lists the memberships SCIM manages for a user.
func scimMemberships(ctx context.Context, tx gatehouse.Tx, tenantID, userID string) ([]*gatehouse.Membership, error) {
	all, err := tx.ListUserMemberships(ctx, tenantID, userID)
	if err != nil {
		return nil, err
	}
	out := []*gatehouse.Membership{}
	for _, m := range all {
		if m.ManagedBy == gatehouse.ManagedBySCIM {
			out = append(out, m)
		}
	}
	return out, nil
}

// userPayload is the outbox payload of a user change, {"user": u}
// (written by appendUserEvent).
func userPayload(u *gatehouse.User) any { return userEvent{u} }

// createUser creates a user, or adopts the matching user that JIT, an
// admin or an import created (same userName, else same email) and that no
// SCIM client manages yet: the client gets 201 with the existing id, so
// neither a duplicate nor a 409 results (see docs/scim.md).
func (s *Server) createUser(ctx context.Context, c *caller, raw map[string]any, proj projection) (*result, error) {
	doc, err := canonicalize(userType, raw)
	if err != nil {
		return nil, err
	}
	var u *gatehouse.User
	status := http.StatusCreated
	err = s.update(ctx, precond{}, func(tx gatehouse.Tx) error {
		u = &gatehouse.User{TenantID: c.tenantID, Source: gatehouse.SourceSCIM}
		if err := userFromDoc(doc, u); err != nil {
			return err
		}
		// Insert first: a new user (the common case by far) then costs one
		// statement, not two lookups and an insert. Only when the insert
		// hits a unique key is there a user to adopt, and the lookups run.
		// CreateUser runs in a savepoint (t.guard), so the transaction goes
		// on after a conflict on both engines.
		u.ID = gatehouse.NewID("usr")
		err := tx.CreateUser(ctx, u)
		if err == nil {
			return s.record(ctx, tx, c, "scim.user.created", "user", u.ID,
				map[string]any{"username": u.Username, "external_id": u.ExternalID}, "user.created", userPayload(u))
		}
		if !gatehouse.IsCode(err, gatehouse.ECONFLICT) {
			return err
		}
		existing, aerr := s.adoptable(ctx, tx, c.tenantID, u)
		if aerr != nil {
			return aerr
		}
		if existing == nil {
			// Nobody to adopt: a tombstone or another user holds the
			// userName, email or externalId.
			return err
		}
		prev := existing.Source
		wasActive := existing.Active()
		keptEmail := existing.Email
		existing.Source = gatehouse.SourceSCIM
		if err := userFromDoc(doc, existing); err != nil {
			return err
		}
		// An IdP that sends no email does not take away the one the
		// user signed in with: JIT and email linking rely on it.
		if existing.Email == "" {
			existing.Email = keptEmail
		}
		if err := tx.UpdateUser(ctx, existing); err != nil {
			return err
		}
		if err := s.endSessionsIfDeactivated(ctx, tx, wasActive, existing); err != nil {
			return err
		}
		u = existing
		return s.record(ctx, tx, c, "scim.user.adopted", "user", u.ID,
			map[string]any{"previous_source": prev, "external_id": u.ExternalID, "username": u.Username}, "user.updated", userPayload(u))
	})
	if err != nil {
		return nil, uniquenessError(err)
	}
	out := proj.apply(userType, s.userDoc(u, []*gatehouse.Membership{}))
	return &result{status: status, doc: out, version: u.Version, location: s.location(userType, u.ID)}, nil
}

// adoptable finds the user a SCIM create should take over after its insert
// hit a unique key, nil when there is none (the insert's conflict stands),
// or a uniqueness error when the matching user is already managed by SCIM.
// It looks up through QueryUsers, whose conditions use the unique indexes
// on both engines. A tombstone holding the userName or email is not found
// here (tombstones keep both reserved).
func (s *Server) adoptable(ctx context.Context, tx gatehouse.Tx, tenantID string, want *gatehouse.User) (*gatehouse.User, error) {
	lookups := []*gatehouse.Filter{{Op: gatehouse.FilterEq, Attr: gatehouse.UserAttrUsername, Value: want.Username}}
	if want.Email != "" {
		lookups = append(lookups, &gatehouse.Filter{Op: gatehouse.FilterEq, Attr: gatehouse.UserAttrEmail, Value: want.Email})
	}
	for _, f := range lookups {
		found, _, err := tx.QueryUsers(ctx, tenantID, gatehouse.Query{Filter: f, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			continue
		}
		existing := found[0]
		if existing.Source == gatehouse.SourceSCIM || existing.ExternalID != "" {
			return nil, &gatehouse.Error{Code: gatehouse.ECONFLICT, Field: "userName",
				Message: "A user with this userName or email already exists."}
		}
		return existing, nil
	}
	return nil, nil
}

// storeFields names the SCIM attribute behind each field a store
// uniqueness conflict reports.
var storeFields = map[string]string{"username": "userName", "email": "emails", "external_id": "externalId", "name": "displayName"}

// uniquenessError words a store conflict for the SCIM client: "Another
// resource already has this externalId." Tombstones count, as they keep
// their userName, email and externalId reserved.
func uniquenessError(err error) error {
	var e *gatehouse.Error
	if !gatehouse.IsCode(err, gatehouse.ECONFLICT) || !asError(err, &e) {
		return err
	}
	field, ok := storeFields[e.Field]
	if !ok {
		return err
	}
	return &gatehouse.Error{Code: gatehouse.ECONFLICT, Field: field,
		Message: "Another user or group (possibly a deleted user) already has this " + field + ".", Err: err}
}

// endSessionsIfDeactivated ends a user's sessions and revokes the tokens
// apps hold for the user, in the same transaction, when the change took
// away its right to sign in. Revoking (not only refusing while inactive)
// matters: a later reactivation must not bring old refresh tokens back.
func (s *Server) endSessionsIfDeactivated(ctx context.Context, tx gatehouse.Tx, wasActive bool, u *gatehouse.User) error {
	if u.Status != gatehouse.StatusDeactivated {
		return nil
	}
	n, revoked, err := s.cutOff(ctx, tx, u.TenantID, u.ID)
	if err != nil {
		return err
	}
	if wasActive || n > 0 || revoked > 0 {
		s.log.InfoContext(ctx, "scim: user deactivated", "tenant_id", u.TenantID, "user_id", u.ID, "sessions_ended", n, "tokens_revoked", revoked)
	}
	return nil
}

// cutOff ends the user's browser sessions and revokes every access and
// refresh token issued to apps for the user (op.RevokeUserTokens), as the
// admin API does on deactivation and deletion.
func (s *Server) cutOff(ctx context.Context, tx gatehouse.Tx, tenantID, userID string) (sessions, tokens int, err error) {
	if sessions, err = tx.DeleteUserSessions(ctx, tenantID, userID); err != nil {
		return 0, 0, err
	}
	if tokens, err = op.RevokeUserTokens(ctx, tx, tenantID, userID, s.clock.Now().UTC()); err != nil {
		return 0, 0, err
	}
	return sessions, tokens, nil
}

func (s *Server) getUser(ctx context.Context, c *caller, id string, pc precond, proj projection) (*result, error) {
	var u *gatehouse.User
	var groups []*gatehouse.Membership
	err := s.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		if u, err = tx.GetUser(ctx, c.tenantID, id); err != nil {
			return err
		}
		if proj.wants(userType, "groups") {
			groups, err = scimMemberships(ctx, tx, c.tenantID, id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := pc.check(u.Version, true); err != nil {
		return nil, err
	}
	return &result{status: http.StatusOK, doc: proj.apply(userType, s.userDoc(u, groups)), version: u.Version}, nil
}

// modifyUser runs PUT (replace) or PATCH on a user. Both go through the
// same document: PATCH edits the rendered user, then the result is read
// back exactly like a PUT body.
func (s *Server) modifyUser(ctx context.Context, c *caller, id string, patch bool, raw map[string]any, pc precond, proj projection) (*result, error) {
	var u *gatehouse.User
	var groups []*gatehouse.Membership
	err := s.update(ctx, pc, func(tx gatehouse.Tx) error {
		cur, err := tx.GetUser(ctx, c.tenantID, id)
		if err != nil {
			return err
		}
		if err := pc.check(cur.Version, false); err != nil {
			return err
		}
		if groups, err = scimMemberships(ctx, tx, c.tenantID, id); err != nil {
			return err
		}
		var doc map[string]any
		if patch {
			doc = s.userDoc(cur, groups)
			if err := s.applyPatch(userType, doc, raw); err != nil {
				return err
			}
		} else if doc, err = canonicalize(userType, raw); err != nil {
			return err
		}
		next := *cur
		if err := userFromDoc(doc, &next); err != nil {
			return err
		}
		if userUnchanged(cur, &next) {
			u = cur
			return nil
		}
		if err := tx.UpdateUser(ctx, &next); err != nil {
			return err
		}
		u = &next
		if err := s.endSessionsIfDeactivated(ctx, tx, cur.Active(), u); err != nil {
			return err
		}
		action, event := "scim.user.updated", "user.updated"
		switch {
		case cur.Status != gatehouse.StatusDeactivated && u.Status == gatehouse.StatusDeactivated:
			action, event = "scim.user.deactivated", "user.deactivated"
		case cur.Status != gatehouse.StatusActive && u.Status == gatehouse.StatusActive:
			action, event = "scim.user.reactivated", "user.reactivated"
		}
		return s.record(ctx, tx, c, action, "user", u.ID, map[string]any{"changed": userChanges(cur, u)}, event, userPayload(u))
	})
	if err != nil {
		return nil, uniquenessError(err)
	}
	if !proj.wants(userType, "groups") {
		groups = nil
	}
	return &result{status: http.StatusOK, doc: proj.apply(userType, s.userDoc(u, groups)), version: u.Version}, nil
}

// userChanges names the fields a change touched, for the audit log.
func userChanges(a, b *gatehouse.User) []string {
	var out []string
	add := func(name string, changed bool) {
		if changed {
			out = append(out, name)
		}
	}
	add("username", a.Username != b.Username)
	add("email", a.Email != b.Email)
	add("external_id", a.ExternalID != b.ExternalID)
	add("display_name", a.DisplayName != b.DisplayName)
	add("given_name", a.GivenName != b.GivenName)
	add("family_name", a.FamilyName != b.FamilyName)
	add("status", a.Status != b.Status)
	add("attributes", !reflect.DeepEqual(normalizeJSON(a.Attributes), normalizeJSON(b.Attributes)))
	return out
}

// userUnchanged: IdPs resend unchanged values often; a no-op keeps the
// version (and the ETag) as it is and writes nothing.
func userUnchanged(a, b *gatehouse.User) bool { return len(userChanges(a, b)) == 0 }

func (s *Server) deleteUser(ctx context.Context, c *caller, id string, pc precond) (*result, error) {
	err := s.update(ctx, pc, func(tx gatehouse.Tx) error {
		u, err := tx.GetUser(ctx, c.tenantID, id)
		if err != nil {
			return err
		}
		if err := pc.check(u.Version, false); err != nil {
			return err
		}
		// DeleteUser leaves a tombstone (GET answers 404, JIT will not
		// re-create the user) and ends its sessions in this transaction.
		if err := tx.DeleteUser(ctx, c.tenantID, id); err != nil {
			return err
		}
		if _, _, err := s.cutOff(ctx, tx, c.tenantID, id); err != nil {
			return err
		}
		return s.record(ctx, tx, c, "scim.user.deleted", "user", id, map[string]any{"username": u.Username}, "user.deleted", map[string]any{"user_id": id})
	})
	if err != nil {
		return nil, err
	}
	return &result{status: http.StatusNoContent}, nil
}

// create, get, modify and remove route by resource type.

func (s *Server) create(ctx context.Context, c *caller, rt *resourceType, raw map[string]any, q url.Values) (*result, error) {
	proj, err := projectionFromQuery(q)
	if err != nil {
		return nil, err
	}
	if rt == userType {
		return s.createUser(ctx, c, raw, proj)
	}
	return s.createGroup(ctx, c, raw, proj)
}

func (s *Server) get(ctx context.Context, c *caller, rt *resourceType, id string, pc precond, proj projection) (*result, error) {
	if rt == userType {
		return s.getUser(ctx, c, id, pc, proj)
	}
	return s.getGroup(ctx, c, id, pc, proj)
}

func (s *Server) modify(ctx context.Context, c *caller, rt *resourceType, id string, patch bool, raw map[string]any, pc precond, proj projection) (*result, error) {
	if rt == userType {
		return s.modifyUser(ctx, c, id, patch, raw, pc, proj)
	}
	return s.modifyGroup(ctx, c, id, patch, raw, pc, proj)
}

func (s *Server) remove(ctx context.Context, c *caller, rt *resourceType, id string, pc precond) (*result, error) {
	if rt == userType {
		return s.deleteUser(ctx, c, id, pc)
	}
	return s.deleteGroup(ctx, c, id, pc)
}
