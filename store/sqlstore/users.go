package sqlstore

import (
	"context"
	"database/sql"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// userColumns is the column list scanUser reads, in its order. Qualify it
// with prefixed("u.", userColumns) in joins.
const userColumns = `id, tenant_id, email, username, display_name, given_name, family_name, status, external_id, source, attributes, created_at, updated_at, last_login_at, version, deleted_at`

const userNotFound = "User not found."

// scanUser reads one row of userColumns. Groups is left nil; fillUserGroups
// fills it for a batch.
func scanUser(sc scanner) (*gatehouse.User, error) {
	var u gatehouse.User
	var attrs []byte
	var created, updated int64
	var lastLogin, deleted sql.NullInt64
	if err := sc.Scan(&u.ID, &u.TenantID, &u.Email, &u.Username, &u.DisplayName, &u.GivenName, &u.FamilyName,
		&u.Status, &u.ExternalID, &u.Source, &attrs, &created, &updated, &lastLogin, &u.Version, &deleted); err != nil {
		return nil, err
	}
	if err := unmarshalJSON(attrs, &u.Attributes); err != nil {
		return nil, err
	}
	if len(u.Attributes) == 0 {
		u.Attributes = nil
	}
	u.CreatedAt, u.UpdatedAt = fromTS(created), fromTS(updated)
	u.LastLoginAt, u.DeletedAt = nullTime(lastLogin), nullTime(deleted)
	return &u, nil
}

// fillUserGroups sets Groups of every user (same tenant) to the distinct,
// sorted names of its groups, in one query for the whole batch.
func (t *tx) fillUserGroups(ctx context.Context, tenantID string, users ...*gatehouse.User) error {
	if len(users) == 0 {
		return nil
	}
	byID := make(map[string]*gatehouse.User, len(users))
	args := make([]any, 0, len(users)+1)
	args = append(args, tenantID)
	for _, u := range users {
		u.Groups = []string{}
		byID[u.ID] = u
		args = append(args, u.ID)
	}
	err := t.each(ctx, func(sc scanner) error {
		var uid, name string
		if err := sc.Scan(&uid, &name); err != nil {
			return err
		}
		if u := byID[uid]; u != nil {
			u.Groups = append(u.Groups, name)
		}
		return nil
	}, userGroupsQuery(t.s.d, len(users)), args...)
	if err != nil {
		return err
	}
	for _, u := range users {
		sort.Strings(u.Groups)
	}
	return nil
}

// userGroupsQuery is fillUserGroups' statement for n users (tenant $1,
// user ids $2…).
func userGroupsQuery(d *dialect, n int) string {
	return `SELECT DISTINCT m.user_id, g.name FROM memberships m
	    ` + groupOfMembershipJoin(d) + `
	    WHERE m.tenant_id = $1 AND m.user_id IN (` + placeholders(2, n) + `)`
}

// userArgs are the values of the writable user columns shared by insert
// and update, in the order of userWritable.
func userArgs(u *gatehouse.User) ([]any, error) {
	attrs, err := jsonArg(u.Attributes)
	if err != nil {
		return nil, err
	}
	if attrs == "null" {
		attrs = "{}"
	}
	return []any{u.Email, gatehouse.NormalizeEmail(u.Email), u.Username, gatehouse.FoldKey(u.Username),
		u.DisplayName, u.GivenName, u.FamilyName, u.Status, strings.TrimSpace(u.ExternalID), u.Source, attrs}, nil
}

func (t *tx) CreateUser(ctx context.Context, u *gatehouse.User) error {
	args, err := t.newUserArgs(u)
	if err != nil {
		return err
	}
	if err := t.guardStmt(ctx, func() error { return t.insertUser(ctx, args) }); err != nil {
		return err
	}
	u.Groups = []string{}
	return nil
}

// newUserArgs fills the defaults and dates of a new user and returns the
// values of insertUser.
func (t *tx) newUserArgs(u *gatehouse.User) ([]any, error) {
	if u.ID == "" {
		u.ID = gatehouse.NewID("usr")
	}
	if u.Status == "" {
		u.Status = gatehouse.StatusActive
	}
	if u.Source == "" {
		u.Source = gatehouse.SourceAdmin
	}
	now := t.s.now()
	u.CreatedAt, u.UpdatedAt, u.Version = now, now, 1
	u.LastLoginAt, u.DeletedAt = normTimePtr(u.LastLoginAt), normTimePtr(u.DeletedAt)
	u.ExternalID = strings.TrimSpace(u.ExternalID)
	vals, err := userArgs(u)
	if err != nil {
		return nil, err
	}
	args := append([]any{u.ID, u.TenantID}, vals...)
	return append(args, ts(now), ts(now), tsPtr(u.LastLoginAt), u.Version, tsPtr(u.DeletedAt)), nil
}

// userInsertColumns are the columns of newUserArgs's values, in order.
const userInsertColumns = `id, tenant_id, email, email_key, username, username_key,
	display_name, given_name, family_name, status, external_id, source, attributes,
	created_at, updated_at, last_login_at, version, deleted_at`

// insertUserQuery inserts the 18 values of newUserArgs.
var insertUserQuery = `INSERT INTO users (` + userInsertColumns + `) VALUES (` + placeholders(1, 18) + `)`

func (t *tx) insertUser(ctx context.Context, args []any) error {
	_, err := t.exec(ctx, insertUserQuery, args...)
	return err
}

// Lookups by email_key, username_key and external_id repeat the "<> ''"
// of the partial unique indexes: neither engine uses a partial index for
// "col = $n" unless the query itself implies the index's WHERE.

// getUser reads one user by cond (on alias u, arguments from $2; $1 is the
// tenant) and fills its groups.
func (t *tx) getUser(ctx context.Context, tenantID, cond string, args ...any) (*gatehouse.User, error) {
	u, err := one(ctx, t, userNotFound, scanUser, `SELECT `+userColumns+` FROM users WHERE tenant_id = $1 AND `+cond, append([]any{tenantID}, args...)...)
	if err != nil {
		return nil, err
	}
	if err := t.fillUserGroups(ctx, tenantID, u); err != nil {
		return nil, err
	}
	return u, nil
}

func (t *tx) GetUser(ctx context.Context, tenantID, id string) (*gatehouse.User, error) {
	return t.getUser(ctx, tenantID, `id = $2 AND deleted_at IS NULL`, id)
}

func (t *tx) GetUserByEmail(ctx context.Context, tenantID, email string) (*gatehouse.User, error) {
	key := gatehouse.NormalizeEmail(email)
	if key == "" {
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, userNotFound)
	}
	// Tombstones included: JIT must see that this person was deleted.
	return t.getUser(ctx, tenantID, `email_key = $2 AND email_key <> ''`, key)
}

func (t *tx) GetUserByUsername(ctx context.Context, tenantID, username string) (*gatehouse.User, error) {
	key := gatehouse.FoldKey(username)
	if key == "" {
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, userNotFound)
	}
	return t.getUser(ctx, tenantID, `username_key = $2 AND username_key <> '' AND deleted_at IS NULL`, key)
}

func (t *tx) GetUserByExternalID(ctx context.Context, tenantID, externalID string) (*gatehouse.User, error) {
	externalID = strings.TrimSpace(externalID)
	if externalID == "" {
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, userNotFound)
	}
	return t.getUser(ctx, tenantID, `external_id = $2 AND external_id <> '' AND deleted_at IS NULL`, externalID)
}

// userWhere builds the conditions of a user filter.
func userWhere(tenantID string, f gatehouse.UserFilter) *where {
	w := &where{}
	w.add(`tenant_id = ?`, tenantID)
	if !f.IncludeDeleted {
		w.add(`deleted_at IS NULL`)
	}
	if f.Email != "" {
		w.add(`email_key = ? AND email_key <> ''`, gatehouse.NormalizeEmail(f.Email))
	}
	if f.Username != "" {
		w.add(`username_key = ? AND username_key <> ''`, gatehouse.FoldKey(f.Username))
	}
	if f.Source != "" {
		w.add(`source = ?`, f.Source)
	}
	if f.Status != "" {
		w.add(`status = ?`, f.Status)
	}
	if f.GroupID != "" {
		w.add(`EXISTS (SELECT 1 FROM memberships m WHERE m.tenant_id = users.tenant_id AND m.user_id = users.id AND m.group_id = ?)`, f.GroupID)
	}
	if !f.LastLoginSince.IsZero() {
		w.add(`last_login_at >= ?`, ts(f.LastLoginSince))
	}
	if !f.LastLoginBefore.IsZero() {
		w.add(`(last_login_at IS NULL OR last_login_at < ?)`, ts(f.LastLoginBefore))
	}
	if q := strings.ToLower(strings.TrimSpace(f.Query)); q != "" {
		pat := "%" + escapeLike(q) + "%"
		w.add(`(email_key LIKE ? ESCAPE '\' OR username_key LIKE ? ESCAPE '\' OR lower(display_name) LIKE ? ESCAPE '\')`, pat, pat, pat)
	}
	return w
}

// escapeLike makes s match literally inside a LIKE pattern (ESCAPE '\').
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func (t *tx) ListUsers(ctx context.Context, tenantID string, f gatehouse.UserFilter, p gatehouse.Page) ([]*gatehouse.User, string, error) {
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(p)
	w := userWhere(tenantID, f)
	if after != "" {
		w.add(`id > ?`, after)
	}
	list, next, err := listPage(ctx, t, scanUser, limit, func(u *gatehouse.User) string { return u.ID }, `SELECT `+userColumns+` FROM users`+w.String()+` ORDER BY id LIMIT `+w.arg(limit+1), w.args...)
	if err != nil {
		return nil, "", err
	}
	if err := t.fillUserGroups(ctx, tenantID, list...); err != nil {
		return nil, "", err
	}
	return list, next, nil
}

func (t *tx) CountUsers(ctx context.Context, tenantID string, f gatehouse.UserFilter) (int, error) {
	w := userWhere(tenantID, f)
	var n int
	err := t.get(ctx, "", func(sc scanner) error { return sc.Scan(&n) }, `SELECT COUNT(*) FROM users`+w.String(), w.args...)
	return n, err
}

func (t *tx) UpdateUser(ctx context.Context, u *gatehouse.User) error {
	now := t.s.now()
	u.ExternalID = strings.TrimSpace(u.ExternalID)
	vals, err := userArgs(u)
	if err != nil {
		return err
	}
	args := append([]any{u.TenantID, u.ID, u.Version, ts(now)}, vals...)
	var created int64
	var lastLogin sql.NullInt64
	err = t.guardStmt(ctx, func() error {
		return t.get(ctx, userNotFound, func(sc scanner) error { return sc.Scan(&created, &lastLogin) },
			`UPDATE users SET updated_at = $4, version = version + 1,
		 email = $5, email_key = $6, username = $7, username_key = $8, display_name = $9, given_name = $10,
		 family_name = $11, status = $12, external_id = $13, source = $14, attributes = $15
		 WHERE tenant_id = $1 AND id = $2 AND version = $3 AND deleted_at IS NULL
		 RETURNING created_at, last_login_at`, args...)
	})
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return t.versionMismatch(ctx, `SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, u.TenantID, u.ID, userNotFound)
	}
	if err != nil {
		return err
	}
	u.Version++
	u.CreatedAt, u.UpdatedAt, u.LastLoginAt = fromTS(created), now, nullTime(lastLogin)
	return nil
}

// versionMismatch explains an update that matched no row: EPRECONDITION
// when the object exists (its version moved on), ENOTFOUND otherwise.
func (t *tx) versionMismatch(ctx context.Context, existsQuery, tenantID, id, notFound string) error {
	ok, err := t.exists(ctx, existsQuery, tenantID, id)
	if err != nil {
		return err
	}
	if ok {
		return &gatehouse.Error{Code: gatehouse.EPRECONDITION, Field: "version",
			Message: "It was changed by someone else in the meantime; reload it and try again."}
	}
	return gatehouse.Errorf(gatehouse.ENOTFOUND, "%s", notFound)
}

func (t *tx) TouchUserLogin(ctx context.Context, tenantID, userID string, at time.Time) error {
	return t.affected(ctx, userNotFound, `UPDATE users SET last_login_at = $3 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`,
		tenantID, userID, ts(at))
}

func (t *tx) DeleteUser(ctx context.Context, tenantID, id string) error {
	now := t.s.now()
	if err := t.affected(ctx, userNotFound, `UPDATE users SET deleted_at = $3, updated_at = $3, version = version + 1
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, tenantID, id, ts(now)); err != nil {
		return err
	}
	for _, q := range []string{
		`DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2`,
		`DELETE FROM federated_identities WHERE tenant_id = $1 AND user_id = $2`,
		`DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2`,
	} {
		if _, err := t.exec(ctx, q, tenantID, id); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) PurgeUser(ctx context.Context, tenantID, id string) error {
	// Memberships, identities and sessions go by ON DELETE CASCADE.
	return t.affected(ctx, userNotFound, `DELETE FROM users WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

func (t *tx) UsernameTaken(ctx context.Context, tenantID, username string) (bool, error) {
	key := gatehouse.FoldKey(username)
	if key == "" {
		return false, nil
	}
	return t.exists(ctx, `SELECT 1 FROM users WHERE tenant_id = $1 AND username_key = $2 AND username_key <> ''`, tenantID, key)
}
