package sqlstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/jackc/pgx/v5/pgconn"
)

// Fast paths for a login's provisioning transaction (PERF, issue #10),
// found by package provision and session through type assertions, so
// gatehouse.Tx is unchanged and any other store takes the portable path
// (provision's tests run both). Each replaces several statements with one:
// on SQLite a statement costs about as much as the work it does, and a
// login ran about two dozen.

// scannerFunc adapts a function to scanner.
type scannerFunc func(dest ...any) error

func (f scannerFunc) Scan(dest ...any) error { return f(dest...) }

// scanBoth reads one row holding the columns of first and then of second
// with their own scan functions, so each does its own decoding after the
// one real Scan.
func scanBoth[A, B any](sc scanner, first func(scanner) (A, error), second func(scanner) (B, error)) (a A, b B, err error) {
	a, err = first(scannerFunc(func(da ...any) error {
		var err error
		b, err = second(scannerFunc(func(db ...any) error { return sc.Scan(append(da, db...)...) }))
		return err
	}))
	return a, b, err
}

// liveUserColumns are userColumns of a LEFT JOINed users u that may be
// absent: absent, every column reads as its zero value (id "").
const liveUserColumns = `COALESCE(u.id, ''), COALESCE(u.tenant_id, ''), COALESCE(u.email, ''), COALESCE(u.username, ''),
	COALESCE(u.display_name, ''), COALESCE(u.given_name, ''), COALESCE(u.family_name, ''), COALESCE(u.status, ''),
	COALESCE(u.external_id, ''), COALESCE(u.source, ''), u.attributes, COALESCE(u.created_at, 0), COALESCE(u.updated_at, 0),
	u.last_login_at, COALESCE(u.version, 0), u.deleted_at`

// linkedUserFrom is the link (tenant $1, connection $2, subject $3) and
// its live user, the rows of GetLinkedUser and of LinkOrFirstLoginProbe's
// first branch.
func linkedUserFrom(d *dialect) string {
	return `
		FROM federated_identities i
		` + liveUserJoin(d, "i") + `
		WHERE i.connection_id = $2 AND i.subject = $3 AND i.tenant_id = $1`
}

// The statements of this file, built once (prefixed splits and joins the
// column lists; the statement cache is keyed by the text).
var (
	linkedUserQuery = perEngine(func(d *dialect) string {
		return `SELECT ` + prefixed("i.", identityColumns) + `, ` + liveUserColumns + linkedUserFrom(d)
	})
	membershipRefsQuery = perEngine(func(d *dialect) string {
		return `SELECT ` + prefixed("m.", membershipColumns) + `, g.name FROM memberships m
		` + groupOfMembershipJoin(d) + `
		WHERE m.tenant_id = $1 AND m.user_id = $2 ORDER BY m.group_id, m.managed_by`
	})
)

// GetLinkedUser is GetIdentity and GetUser of its user in one statement:
// the link (connection, subject) and its live user, or a nil user when
// the user is gone (deleted, or a tombstone). The user's Groups are not
// filled. ENOTFOUND when there is no such link.
func (t *tx) GetLinkedUser(ctx context.Context, tenantID, connectionID, subject string) (*gatehouse.FederatedIdentity, *gatehouse.User, error) {
	return withLiveUser(ctx, t, identityNotFound, scanIdentity, linkedUserQuery[t.s.d], tenantID, connectionID, subject)
}

// withLiveUser runs a query for one row holding the columns of scan and
// then liveUserColumns, and returns both; the user is nil when the row has
// none (the LEFT JOINed user is gone). No row is ENOTFOUND with notFound.
func withLiveUser[T any](ctx context.Context, t *tx, notFound string, scan func(scanner) (T, error), query string, args ...any) (T, *gatehouse.User, error) {
	var v T
	var u *gatehouse.User
	err := t.get(ctx, notFound, func(sc scanner) error {
		var err error
		v, u, err = scanBoth(sc, scan, scanUser)
		return err
	}, query, args...)
	if err != nil {
		var zero T
		return zero, nil, err
	}
	if u.ID == "" {
		u = nil
	}
	return v, u, nil
}

// FirstLoginProbe is GetUserByEmail, UsernameTaken, "has connectionID a
// SCIM token", "has the tenant an enabled webhook" and GetGroupRefByName
// in one statement: what a first login asks before it creates a user. It
// returns the user with that email (tombstones included, Groups filled)
// or nil, whether username is taken (false for an empty one), whether the
// tenant has a SCIM token of the connection, whether AppendOutbox would
// write (it writes only for a tenant with an enabled webhook), and the
// group named group (a connection's first default group; ID, TenantID
// and Name) or nil (always nil for an empty name).
func (t *tx) FirstLoginProbe(ctx context.Context, tenantID, connectionID, email, username, group string) (*gatehouse.FirstLoginFacts, error) {
	f := &gatehouse.FirstLoginFacts{}
	var groupID, groupName string
	err := t.get(ctx, userNotFound, func(sc scanner) error {
		var err error
		f.User, f.UsernameTaken, err = scanBoth(sc, scanUser, func(sc scanner) (bool, error) {
			var b bool
			return b, sc.Scan(&b, &f.SCIMTokens, &f.Webhooks, &groupID, &groupName)
		})
		return err
	}, firstLoginProbeQuery, tenantID, gatehouse.NormalizeEmail(email), gatehouse.FoldKey(username), connectionID, gatehouse.FoldKey(group))
	if err != nil {
		return nil, err
	}
	if groupID != "" {
		f.Group = &gatehouse.Group{ID: groupID, TenantID: tenantID, Name: groupName}
	}
	if f.User.ID == "" {
		f.User = nil
		return f, nil
	}
	if err := t.fillUserGroups(ctx, tenantID, f.User); err != nil {
		return nil, err
	}
	return f, nil
}

var firstLoginProbeQuery = probeSQL("", "$1", "$2", "$3", "$4", "$5")

// probeSQL is FirstLoginProbe's statement with the given placeholders
// (tenant, email key, username key, connection, group name key); lead,
// when set, are columns before the probe's own (linkOrProbeQuery).
func probeSQL(lead, tenant, email, username, conn, group string) string {
	return `SELECT ` + lead + liveUserColumns + `,
		EXISTS (SELECT 1 FROM users WHERE tenant_id = ` + tenant + ` AND username_key = ` + username + ` AND username_key <> ''),
		EXISTS (SELECT 1 FROM scim_tokens WHERE tenant_id = ` + tenant + ` AND connection_id = ` + conn + `),
		EXISTS (SELECT 1 FROM webhooks WHERE tenant_id = ` + tenant + ` AND enabled),
		COALESCE(g.id, ''), COALESCE(g.name, '')
		FROM (SELECT 1 AS one) o
		LEFT JOIN users u ON u.tenant_id = ` + tenant + ` AND u.email_key = ` + email + ` AND u.email_key <> ''
		LEFT JOIN groups g ON g.tenant_id = ` + tenant + ` AND g.name_key = ` + group + ` AND g.name_key <> ''`
}

// LinkOrFirstLoginProbe is GetLinkedUser and, only when there is no such
// link, FirstLoginProbe, in one statement: a login's first look, which a
// first login used to follow with the probe. With the link it returns the
// link and its live user (nil when gone; Groups not filled) and no facts;
// without one, no link and FirstLoginProbe's facts for email, username
// and group (the user's Groups filled). A returning user does not pay for
// the probe's look-ups (linkOrProbeQuery).
//
// On PostgreSQL it runs the two statements as before: there the one
// statement made a returning login dearer (BenchmarkFirstLook: 338 → 419
// cpu-µs in the client, about +35 µs in the server, which still opens
// every table the statement names), and returning logins outnumber first
// ones.
func (t *tx) LinkOrFirstLoginProbe(ctx context.Context, tenantID, connectionID, subject, email, username, group string) (*gatehouse.FederatedIdentity, *gatehouse.User, *gatehouse.FirstLoginFacts, error) {
	if t.s.d == postgresDialect {
		fi, u, err := t.GetLinkedUser(ctx, tenantID, connectionID, subject)
		if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return fi, u, nil, err
		}
		f, err := t.FirstLoginProbe(ctx, tenantID, connectionID, email, username, group)
		return nil, nil, f, err
	}
	var fi *gatehouse.FederatedIdentity
	var u *gatehouse.User
	f := &gatehouse.FirstLoginFacts{}
	var groupID, groupName string
	err := t.get(ctx, identityNotFound, func(sc scanner) error {
		var err error
		fi, u, err = scanBoth(sc, scanIdentity, func(sc scanner) (*gatehouse.User, error) {
			u, _, err := scanBoth(sc, scanUser, func(sc scanner) (struct{}, error) {
				return struct{}{}, sc.Scan(&f.UsernameTaken, &f.SCIMTokens, &f.Webhooks, &groupID, &groupName)
			})
			return u, err
		})
		return err
	}, linkOrProbeQuery, tenantID, connectionID, subject, gatehouse.NormalizeEmail(email), gatehouse.FoldKey(username), gatehouse.FoldKey(group))
	if err != nil {
		return nil, nil, nil, err
	}
	if u.ID == "" {
		u = nil
	}
	// Every link has a tenant: an empty one is the absent LEFT JOINed row.
	if fi.TenantID != "" {
		return fi, u, nil, nil
	}
	if groupID != "" {
		f.Group = &gatehouse.Group{ID: groupID, TenantID: tenantID, Name: groupName}
	}
	if u != nil {
		if err := t.fillUserGroups(ctx, tenantID, u); err != nil {
			return nil, nil, nil, err
		}
		f.User = u
	}
	return nil, nil, f, nil
}

// linkOrProbeQuery (SQLite's) is GetLinkedUser's statement and FirstLoginProbe's,
// each with the other's columns blank, in one UNION ALL. The probe's
// branch is guarded by the link's absence, so exactly one row comes back
// whatever order the engine runs the branches in; LIMIT 1 stops after the
// link's row, so a returning user runs none of the probe's look-ups (not
// even the guard). The branches keep the plans of their statements: in a
// single join from a one-row source, PostgreSQL planned the users joins
// without their keys on tables not yet analyzed (reading all of a
// tenant's users on a returning login).
var linkOrProbeQuery = `SELECT ` + prefixed("i.", identityColumns) + `, ` + liveUserColumns + `,
		FALSE, FALSE, FALSE, '', ''
` + linkedUserFrom(sqliteDialect) + `
	UNION ALL
	` + probeSQL(`'', '', '', '', 0, NULL, `, "$1", "$4", "$5", "$2", "$6") + `
		WHERE NOT EXISTS (SELECT 1 FROM federated_identities WHERE connection_id = $2 AND subject = $3 AND tenant_id = $1)
	LIMIT 1`

// ListUserMembershipRefs is ListUserMemberships with the names of the
// groups (group ID → name), in one statement.
func (t *tx) ListUserMembershipRefs(ctx context.Context, tenantID, userID string) ([]*gatehouse.Membership, map[string]string, error) {
	var out []*gatehouse.Membership
	names := map[string]string{}
	err := t.each(ctx, func(sc scanner) error {
		m, name, err := scanBoth(sc, scanMembership, func(sc scanner) (string, error) {
			var n string
			return n, sc.Scan(&n)
		})
		if err != nil {
			return err
		}
		out = append(out, m)
		names[m.GroupID] = name
		return nil
	}, membershipRefsQuery[t.s.d], tenantID, userID)
	if err != nil {
		return nil, nil, err
	}
	return out, names, nil
}

// CreateJITUser is CreateUser, CreateIdentity of its first link and
// AddMembership of its first memberships, without the checks that the user
// is live before linking it (moot for a user inserted the statement
// before). The user's own insert is guarded like CreateUser's, so a taken
// username (or email) leaves the transaction usable and unchanged: the
// caller may pick another username and call again. Any later error (the
// link taken concurrently, a group deleted) may leave the user written
// (on SQLite; PostgreSQL writes all three in one statement): the caller
// must then give the transaction up, as a resolution does.
func (t *tx) CreateJITUser(ctx context.Context, u *gatehouse.User, link *gatehouse.FederatedIdentity, ms []*gatehouse.Membership) error {
	if link == nil || link.Subject == "" {
		return gatehouse.FieldError("subject", "An identity needs a subject.")
	}
	for _, m := range ms {
		if m.ManagedBy == "" {
			return gatehouse.FieldError("managed_by", "A membership needs a manager.")
		}
	}
	args, err := t.newUserArgs(u)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.UserID != u.ID || m.TenantID != u.TenantID {
			return errInternal("create JIT user", errors.New("membership of another user"))
		}
	}
	if link.UserID != u.ID || link.TenantID != u.TenantID {
		return errInternal("create JIT user", errors.New("link of another user"))
	}
	if t.s.d == postgresDialect {
		if err := t.guardStmt(ctx, func() error { return t.insertJITRows(ctx, args, link, ms) }); err != nil {
			return err
		}
		u.Groups = []string{}
		return nil
	}
	if err := t.guardStmt(ctx, func() error { return t.insertUser(ctx, args) }); err != nil {
		return err
	}
	if err := t.insertIdentity(ctx, link); err != nil {
		return err
	}
	if err := t.insertNewMemberships(ctx, ms, t.s.now()); err != nil {
		return err
	}
	u.Groups = []string{}
	return nil
}

// insertJITRows writes a JIT user (the arguments of newUserArgs), its
// link and its first memberships in one PostgreSQL statement, two round
// trips fewer than a statement each: data-modifying WITH clauses run once
// each and to completion (PostgreSQL docs, "Data-Modifying Statements in
// WITH"), and the foreign keys of the link and the memberships are checked
// at the statement's end, when the user's row is there. Errors read as
// those of the three statements would.
func (t *tx) insertJITRows(ctx context.Context, userArgs []any, link *gatehouse.FederatedIdentity, ms []*gatehouse.Membership) error {
	now := t.s.now()
	link.CreatedAt = now
	link.LastLoginAt = normTimePtr(link.LastLoginAt)
	rows := [][]any{userArgs, {link.TenantID, link.ConnectionID, link.Subject, link.UserID, ts(link.CreatedAt), tsPtr(link.LastLoginAt)}}
	for _, m := range ms {
		rows = append(rows, []any{m.TenantID, m.GroupID, m.UserID, m.ManagedBy, ts(now)})
	}
	q := insertRows(`WITH new_user AS (INSERT INTO users (`+userInsertColumns+`) VALUES `, 1, rows[:1]) +
		insertRows(`), new_link AS (INSERT INTO federated_identities (`+identityColumns+`) VALUES `, 1+len(userArgs), rows[1:2]) + `) `
	if len(ms) == 0 {
		q += `SELECT 1`
	} else {
		q += insertRows(`INSERT INTO memberships (`+membershipColumns+`) VALUES `, 1+len(userArgs)+len(rows[1]), rows[2:]) +
			` ON CONFLICT (tenant_id, group_id, user_id, managed_by) DO NOTHING`
	}
	if _, err := t.exec(ctx, q, slices.Concat(rows...)...); err != nil {
		var pe *pgconn.PgError
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) && errors.As(err, &pe) {
			switch pe.TableName {
			case "federated_identities":
				return gatehouse.Errorf(gatehouse.ENOTFOUND, connectionNotFound)
			case "memberships":
				return gatehouse.Errorf(gatehouse.ENOTFOUND, groupNotFound)
			}
		}
		return err
	}
	for _, m := range ms {
		m.CreatedAt = fromTS(ts(now))
	}
	return nil
}

// insertNewMemberships adds the first memberships of a user inserted in
// this transaction, in one statement and without reading anything back: no
// existing row can match (a repeated membership in ms is one row, as with
// AddMembership).
func (t *tx) insertNewMemberships(ctx context.Context, ms []*gatehouse.Membership, now time.Time) error {
	if len(ms) == 0 {
		return nil
	}
	rows := make([][]any, len(ms))
	for i, m := range ms {
		rows[i] = []any{m.TenantID, m.GroupID, m.UserID, m.ManagedBy, ts(now)}
	}
	q := insertRows(`INSERT INTO memberships (`+membershipColumns+`) VALUES `, 1, rows) +
		` ON CONFLICT (tenant_id, group_id, user_id, managed_by) DO NOTHING`
	if _, err := t.exec(ctx, q, slices.Concat(rows...)...); err != nil {
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			// The foreign key to groups(tenant_id, id) failed: a group
			// deleted since the plan read it.
			return gatehouse.Errorf(gatehouse.ENOTFOUND, groupNotFound)
		}
		return err
	}
	for _, m := range ms {
		m.CreatedAt = fromTS(ts(now))
	}
	return nil
}

// CreateLoginSession is CreateSession for the transaction of a login,
// which read (or created) the session's user as active itself, moments
// before: without CreateSession's check that the user is live and without
// a savepoint. The ID is the digest of a new random token, so it collides
// with nothing; any error fails the login's whole transaction.
func (t *tx) CreateLoginSession(ctx context.Context, s *gatehouse.Session) error {
	if s.ID == "" {
		return gatehouse.FieldError("id", "A session needs the digest of its token as ID.")
	}
	t.normSession(s)
	if err := t.purgeSessions(ctx); err != nil {
		return err
	}
	return t.execDeferred(ctx, insertSessionSQL, sessionArgs(s)...)
}

// AppendAudits is AppendAudit of several events in one statement (a JIT
// login records user.jit_created and login.succeeded together).
func (t *tx) AppendAudits(ctx context.Context, events []*gatehouse.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	rows := make([][]any, len(events))
	for i, e := range events {
		a, err := t.auditArgs(e)
		if err != nil {
			return err
		}
		rows[i] = a
	}
	return t.execDeferred(ctx, insertRows(`INSERT INTO audit_events (`+auditColumns+`) VALUES `, 1, rows), slices.Concat(rows...)...)
}

// insertRows is an INSERT of several rows: prefix (which ends with VALUES)
// and one parenthesized list of placeholders per row, numbered on from
// $first.
func insertRows(prefix string, first int, rows [][]any) string {
	var q strings.Builder
	q.WriteString(prefix)
	next := first
	for i, r := range rows {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(" + placeholders(next, len(r)) + ")")
		next += len(r)
	}
	return q.String()
}
