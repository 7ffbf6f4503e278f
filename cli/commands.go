package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
)

// Columns shown in tables, per kind of object.
var (
	tenantCols = []string{"id", "slug", "name", "domains", "support_contact", "admin_groups", "created_at"}
	userCols   = []string{"id", "email", "username", "display_name", "status", "source", "groups", "last_login_at"}
	groupCols  = []string{"id", "name", "source", "member_count", "created_at"}
	memberCols = []string{"user_id", "email", "username", "managed_by", "created_at"}
	tokenCols  = []string{"id", "name", "role", "created_at", "last_used_at"}
	scimCols   = []string{"id", "name", "connection_id", "created_at", "last_used_at"}
	auditCols  = []string{"time", "action", "actor_type", "actor_id", "target_type", "target_id"}
	connCols   = []string{"id", "type", "name", "enabled", "redirect_uri", "acs_url", "created_at"}
	appCols    = []string{"id", "name", "client_id", "public", "redirect_uris", "allowed_groups", "id_token_signing_alg", "created_at"}
)

// objects handles the tenant collections the CLI only lists, shows and
// deletes (create them with `gatehouse api POST ...` and a JSON body: they
// take many protocol fields); apps also rotate their secret.
func (c *client) objects(ctx context.Context, args []string, kind string, cols []string) error {
	f := c.newFlags(kind)
	verbs := []string{"list", "get", "delete"}
	if kind == "apps" {
		verbs = append(verbs, "rotate-secret")
	}
	verb, rest, err := command(f, args, verbs...)
	if err != nil {
		return err
	}
	base, err := c.tenantPath(kind)
	if err != nil {
		return err
	}
	if verb == "list" {
		return c.listAll(ctx, base, url.Values{}, false, cols)
	}
	if err := want(verb, rest, 1, "an id"); err != nil {
		return err
	}
	p := base + "/" + url.PathEscape(rest[0])
	switch verb {
	case "get":
		_, err = c.send(ctx, "GET", p, nil, cols)
	case "delete":
		err = c.done(ctx, "DELETE", p, "Deleted "+rest[0]+".")
	case "rotate-secret":
		var o obj
		if o, err = c.send(ctx, "POST", p+"/rotate-secret", nil, cols); err == nil && !c.json {
			fmt.Fprintf(c.stdout, "client_secret: %v\nKeep it now: it is not shown again.\n", o["client_secret"])
		}
	}
	return err
}

// listAll prints a list, following next_cursor when all is set.
func (c *client) listAll(ctx context.Context, path string, q url.Values, all bool, cols []string) error {
	var items []obj
	next := q.Get("cursor")
	for {
		if next != "" {
			q.Set("cursor", next)
		}
		u := path
		if enc := q.Encode(); enc != "" {
			u += "?" + enc
		}
		var page struct {
			Items      []obj  `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := c.do(ctx, "GET", u, nil, &page); err != nil {
			return err
		}
		items = append(items, page.Items...)
		next = page.NextCursor
		if !all || next == "" {
			break
		}
	}
	c.showList(items, next, cols)
	return nil
}

// send sends a request whose answer is one object and prints it.
func (c *client) send(ctx context.Context, method, path string, body any, cols []string) (obj, error) {
	var o obj
	if err := c.do(ctx, method, path, body, &o); err != nil {
		return nil, err
	}
	c.show(o, cols)
	return o, nil
}

// done sends a request answered with 204 and says so.
func (c *client) done(ctx context.Context, method, path, msg string) error {
	if err := c.do(ctx, method, path, nil, nil); err != nil {
		return err
	}
	if !c.json {
		fmt.Fprintln(c.stdout, msg)
	}
	return nil
}

func (c *client) whoami(ctx context.Context, args []string) error {
	if _, err := c.newFlags("whoami").parse(args); err != nil {
		return err
	}
	_, err := c.send(ctx, "GET", "/api/v1/whoami", nil, []string{"role", "tenant_slug", "tenant_id", "name", "token_id"})
	return err
}

// strFlags defines string flags named names and returns their values.
func strFlags(f *flags, names ...string) map[string]*string {
	m := map[string]*string{}
	for _, n := range names {
		m[n] = f.String(n, "", "")
	}
	return m
}

// body builds a JSON body from the flags that were set: flag name with
// dashes → field name with underscores.
func (f *flags) body(vals map[string]*string) map[string]any {
	b := map[string]any{}
	for n, v := range vals {
		if f.set[n] {
			b[strings.ReplaceAll(n, "-", "_")] = *v
		}
	}
	return b
}

func (c *client) tenants(ctx context.Context, args []string) error {
	f := c.newFlags("tenants")
	vals := strFlags(f, "slug", "name", "support-contact")
	var domains multi
	f.Var(&domains, "domain", "")
	verb, rest, err := command(f, args, "list", "get", "create", "update", "delete")
	if err != nil {
		return err
	}
	body := f.body(vals)
	if f.set["domain"] {
		body["domains"] = []string(domains)
	}
	switch verb {
	case "list":
		return c.listAll(ctx, "/api/v1/tenants", url.Values{}, true, tenantCols)
	case "create":
		if err := want(verb, rest, 0, "no operands (use --slug)"); err != nil {
			return err
		}
		_, err := c.send(ctx, "POST", "/api/v1/tenants", body, tenantCols)
		return err
	}
	if err := want(verb, rest, 1, "a tenant slug or id"); err != nil {
		return err
	}
	p := "/api/v1/tenants/" + url.PathEscape(rest[0])
	switch verb {
	case "get":
		_, err = c.send(ctx, "GET", p, nil, tenantCols)
	case "update":
		_, err = c.send(ctx, "PATCH", p, body, tenantCols)
	case "delete":
		err = c.done(ctx, "DELETE", p, "Deleted tenant "+rest[0]+".")
	}
	return err
}

// userID resolves a user given by id or email.
func (c *client) userID(ctx context.Context, ref string) (string, error) {
	if !strings.Contains(ref, "@") {
		return ref, nil
	}
	p, err := c.tenantPath("users")
	if err != nil {
		return "", err
	}
	var l struct {
		Items []obj `json:"items"`
	}
	if err := c.do(ctx, "GET", p+"?email="+url.QueryEscape(ref), nil, &l); err != nil {
		return "", err
	}
	if len(l.Items) == 0 {
		return "", fmt.Errorf("no user with email %s in tenant %s", ref, c.tenant)
	}
	return l.Items[0]["id"].(string), nil
}

func (c *client) users(ctx context.Context, args []string) error {
	f := c.newFlags("users")
	vals := strFlags(f, "email", "username", "display-name", "given-name", "family-name", "status")
	filters := strFlags(f, "q", "source", "group", "limit", "cursor")
	all := f.Bool("all", false, "")
	purge := f.Bool("purge", false, "")
	verb, rest, err := command(f, args, "list", "get", "create", "update", "deactivate", "activate", "approve", "delete")
	if err != nil {
		return err
	}
	base, err := c.tenantPath("users")
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		q := url.Values{}
		for n, v := range filters {
			if f.set[n] {
				q.Set(n, *v)
			}
		}
		for _, n := range []string{"email", "status"} {
			if f.set[n] {
				q.Set(n, *vals[n])
			}
		}
		return c.listAll(ctx, base, q, *all, userCols)
	case "create":
		if err := want(verb, rest, 0, "no operands (use --email)"); err != nil {
			return err
		}
		_, err := c.send(ctx, "POST", base, f.body(vals), userCols)
		return err
	}
	if err := want(verb, rest, 1, "a user id or email"); err != nil {
		return err
	}
	id, err := c.userID(ctx, rest[0])
	if err != nil {
		return err
	}
	p := base + "/" + url.PathEscape(id)
	switch verb {
	case "get":
		_, err = c.send(ctx, "GET", p, nil, userCols)
	case "update":
		_, err = c.send(ctx, "PATCH", p, f.body(vals), userCols)
	case "deactivate":
		_, err = c.send(ctx, "PATCH", p, obj{"status": "deactivated"}, userCols)
	case "activate":
		_, err = c.send(ctx, "PATCH", p, obj{"status": "active"}, userCols)
	case "approve":
		_, err = c.send(ctx, "POST", p+"/approve", nil, userCols)
	case "delete":
		if *purge {
			return c.done(ctx, "DELETE", p+"?purge=true", "Purged user "+id+".")
		}
		err = c.done(ctx, "DELETE", p, "Deleted user "+id+" (a tombstone remains; --purge removes it).")
	}
	return err
}

func (c *client) groups(ctx context.Context, args []string) error {
	f := c.newFlags("groups")
	name := f.String("name", "", "")
	all := f.Bool("all", false, "")
	verb, rest, err := command(f, args, "list", "get", "create", "update", "delete", "members", "add-member", "remove-member")
	if err != nil {
		return err
	}
	base, err := c.tenantPath("groups")
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		return c.listAll(ctx, base, url.Values{}, *all, groupCols)
	case "create":
		if err := want(verb, rest, 1, "the group's name"); err != nil {
			return err
		}
		_, err := c.send(ctx, "POST", base, obj{"name": rest[0]}, groupCols)
		return err
	case "add-member", "remove-member":
		if err := want(verb, rest, 2, "a group and a user"); err != nil {
			return err
		}
		uid, err := c.userID(ctx, rest[1])
		if err != nil {
			return err
		}
		p := base + "/" + url.PathEscape(rest[0]) + "/members/" + url.PathEscape(uid)
		if verb == "add-member" {
			return c.done(ctx, "PUT", p, "Added "+rest[1]+" to "+rest[0]+".")
		}
		return c.done(ctx, "DELETE", p, "Removed "+rest[1]+" from "+rest[0]+" (memberships managed by SCIM or a connection stay).")
	}
	if err := want(verb, rest, 1, "a group id or name"); err != nil {
		return err
	}
	p := base + "/" + url.PathEscape(rest[0])
	switch verb {
	case "get":
		_, err = c.send(ctx, "GET", p, nil, groupCols)
	case "update":
		if !f.set["name"] {
			return usagef("update needs --name")
		}
		_, err = c.send(ctx, "PATCH", p, obj{"name": *name}, groupCols)
	case "delete":
		err = c.done(ctx, "DELETE", p, "Deleted group "+rest[0]+".")
	case "members":
		err = c.listAll(ctx, p+"/members", url.Values{}, false, memberCols)
	}
	return err
}

// tokens handles API tokens (kind "api-tokens") and SCIM tokens.
func (c *client) tokens(ctx context.Context, args []string, kind string) error {
	f := c.newFlags(kind)
	vals := strFlags(f, "name", "role")
	conn := f.String("connection", "", "")
	verb, rest, err := command(f, args, "list", "create", "delete")
	if err != nil {
		return err
	}
	base, err := c.tenantPath(kind)
	if err != nil {
		return err
	}
	cols := tokenCols
	if kind == "scim-tokens" {
		cols = scimCols
	}
	switch verb {
	case "list":
		return c.listAll(ctx, base, url.Values{}, false, cols)
	case "create":
		body := f.body(vals)
		if kind == "scim-tokens" {
			delete(body, "role")
			if f.set["connection"] {
				body["connection_id"] = *conn
			}
		}
		o, err := c.send(ctx, "POST", base, body, append(cols, "scim_base_url"))
		if err == nil && !c.json {
			fmt.Fprintf(c.stdout, "token: %v\nKeep it now: it is not shown again.\n", o["token"])
		}
		return err
	}
	if err := want(verb, rest, 1, "a token id"); err != nil {
		return err
	}
	return c.done(ctx, "DELETE", base+"/"+url.PathEscape(rest[0]), "Revoked "+rest[0]+".")
}

func (c *client) audit(ctx context.Context, args []string) error {
	f := c.newFlags("audit")
	filters := strFlags(f, "action", "target-id", "actor-id", "since", "until", "limit", "cursor")
	if _, err := f.parse(args); err != nil {
		return err
	}
	base, err := c.tenantPath("audit")
	if err != nil {
		return err
	}
	q := url.Values{}
	for n, v := range filters {
		if f.set[n] {
			q.Set(strings.ReplaceAll(n, "-", "_"), *v)
		}
	}
	return c.listAll(ctx, base, q, false, auditCols)
}

// raw sends any request and prints the JSON answer as is.
func (c *client) raw(ctx context.Context, args []string) error {
	f := c.newFlags("api")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) < 3 || len(pos) > 4 {
		return usagef("api needs METHOD PATH [BODY|@FILE|-]")
	}
	method, path := strings.ToUpper(pos[1]), pos[2]
	if !strings.HasPrefix(path, "/") {
		return usagef("api: PATH must start with /, e.g. /api/v1/tenants")
	}
	var body any
	if len(pos) == 4 {
		var data []byte
		switch b := pos[3]; {
		case b == "-":
			data, err = io.ReadAll(os.Stdin)
		case strings.HasPrefix(b, "@"):
			data, err = os.ReadFile(b[1:])
		default:
			data = []byte(b)
		}
		if err != nil {
			return err
		}
		body = data
	}
	var out json.RawMessage
	if err := c.do(ctx, method, path, body, &out); err != nil {
		return err
	}
	if len(out) > 0 {
		var v any
		if json.Unmarshal(out, &v) == nil {
			c.printJSON(v)
		} else {
			fmt.Fprintln(c.stdout, string(out))
		}
	}
	return nil
}
