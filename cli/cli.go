// Package cli is the `gatehouse` admin command line: a client of the admin
// API (package api) that lists, shows, creates, updates and deletes
// tenants, users, groups and tokens, printing tables or JSON.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse/apiclient"
)

// DefaultURL is the server the CLI talks to when neither --url nor
// GATEHOUSE_URL says otherwise.
const DefaultURL = "http://127.0.0.1:8080"

// Usage is the CLI's help text.
const Usage = `Usage: gatehouse [--url URL] [--token TOKEN] [--tenant SLUG] [--json] <command> <verb> [args]

Commands:
  whoami
  tenants list
  tenants get <tenant>
  tenants create --slug SLUG [--name NAME] [--domain DOMAIN]... [--support-contact TEXT]
  tenants update <tenant> [--name NAME] [--domain DOMAIN]... [--support-contact TEXT]
  tenants delete <tenant>
  users list [--email E] [--q TEXT] [--status S] [--source S] [--group G] [--limit N] [--all]
  users get <id|email>
  users create --email E [--username U] [--display-name N] [--given-name N] [--family-name N]
  users update <id|email> [--email E] [--username U] [--display-name N] [--given-name N] [--family-name N] [--status active|deactivated]
  users deactivate|activate|approve <id|email>
  users delete <id|email> [--purge]
  groups list [--all]
  groups get <id|name>
  groups create <name>
  groups update <id|name> --name NEW
  groups delete <id|name>
  groups members <id|name>
  groups add-member|remove-member <group id|name> <user id|email>
  tokens list
  tokens create --name NAME --role tenant_admin|tenant_viewer
  tokens delete <id>
  scim-tokens list
  scim-tokens create --name NAME [--connection CONNECTION_ID]
  scim-tokens delete <id>
  connections list | get <id> | delete <id>
  apps list | get <id> | delete <id> | rotate-secret <id>
  audit [--action A] [--limit N]
  webhooks list | get <id> | delete <id> | deliveries <id> | rotate-secret <id> [--grace SECONDS]
  webhooks create --endpoint URL [--event TYPE]... [--enabled=false]
  webhooks update <id> [--endpoint URL] [--event TYPE]... [--enabled=true|false]
  webhooks retry <id> <delivery id>       send a failed delivery again
  apply -f FILE [--dry-run] [--update-secrets] [--secrets-out FILE]   configuration as code (docs/operations.md)
  export [--tenant SLUG] [-o FILE]                                   the current state as a gatehouse.yaml
  import FILE.csv|FILE.json [--dry-run] [--chunk N]                  create or update users and groups in bulk
  api <METHOD> <PATH> [BODY|@FILE|-]      any admin API request, e.g. api GET /api/v1/tenants

Settings: --url (or GATEHOUSE_URL, default ` + DefaultURL + `), --token (or GATEHOUSE_TOKEN),
--tenant (or GATEHOUSE_TENANT) for tenant commands, --json for the API's JSON instead of tables.
`

// Run runs one command line (args without the program name) and returns
// the exit status: 0 done, 1 the request failed, 2 a usage error.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &client{stdout: stdout, stderr: stderr, http: &http.Client{Timeout: 60 * time.Second}}
	err := c.run(ctx, args)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "gatehouse: %s\n\n%s", ue.msg, Usage)
		return 2
	default:
		fmt.Fprintf(stderr, "gatehouse: %s\n", err)
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

type client struct {
	stdout, stderr io.Writer
	http           *http.Client
	base, token    string
	tenant         string
	json           bool
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// flags is one command's flag set with the global flags on it.
type flags struct {
	*flag.FlagSet
	set map[string]bool
}

func (c *client) newFlags(name string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.base, "url", envOr("GATEHOUSE_URL", DefaultURL), "")
	fs.StringVar(&c.token, "token", os.Getenv("GATEHOUSE_TOKEN"), "")
	fs.StringVar(&c.tenant, "tenant", os.Getenv("GATEHOUSE_TENANT"), "")
	fs.BoolVar(&c.json, "json", false, "")
	return &flags{FlagSet: fs}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// parse parses flags anywhere among args and returns the positional ones.
func (f *flags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			return nil, usagef("%v", err)
		}
		args = f.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	f.set = map[string]bool{}
	f.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return pos, nil
}

func (c *client) run(ctx context.Context, args []string) error {
	// Each command parses the whole line with its own flags and the global
	// ones, so every flag may appear anywhere.
	cmd := commandName(args)
	switch cmd {
	case "":
		return usagef("no command given")
	case "help", "-h", "--help", "help-cli": // help-cli: named by gatehouse's own usage
		fmt.Fprint(c.stdout, Usage)
		return nil
	case "whoami":
		return c.whoami(ctx, args)
	case "tenants":
		return c.tenants(ctx, args)
	case "users":
		return c.users(ctx, args)
	case "groups":
		return c.groups(ctx, args)
	case "tokens":
		return c.tokens(ctx, args, "api-tokens")
	case "scim-tokens":
		return c.tokens(ctx, args, "scim-tokens")
	case "connections":
		return c.objects(ctx, args, "connections", connCols)
	case "apps":
		return c.objects(ctx, args, "apps", appCols)
	case "audit":
		return c.audit(ctx, args)
	case "webhooks":
		return c.webhooks(ctx, args)
	case "apply":
		return c.apply(ctx, args)
	case "export":
		return c.export(ctx, args)
	case "import":
		return c.importUsers(ctx, args)
	case "api":
		return c.raw(ctx, args)
	}
	return usagef("unknown command %q", cmd)
}

// commandName is the first operand of args, skipping the global flags and
// their values.
func commandName(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			return a
		}
		if a == "--" {
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		}
		switch strings.TrimLeft(a, "-") {
		case "url", "token", "tenant":
			i++ // the value follows
		}
	}
	return ""
}

// command parses args for the command and returns its verb and operands
// (after the command name).
func command(f *flags, args []string, verbs ...string) (verb string, rest []string, err error) {
	pos, err := f.parse(args)
	if err != nil {
		return "", nil, err
	}
	if len(pos) < 2 {
		return "", nil, usagef("%s: which one? %s", pos[0], strings.Join(verbs, ", "))
	}
	for _, v := range verbs {
		if v == pos[1] {
			return pos[1], pos[2:], nil
		}
	}
	return "", nil, usagef("%s: unknown verb %q (use %s)", pos[0], pos[1], strings.Join(verbs, ", "))
}

func want(verb string, rest []string, n int, what string) error {
	if len(rest) != n {
		return usagef("%s needs %s", verb, what)
	}
	return nil
}

// do sends one API request and decodes the JSON answer into out (if any);
// an error answer is an *apiclient.Error.
func (c *client) do(ctx context.Context, method, path string, body any, out any) error {
	if c.token == "" {
		return usagef("no token: pass --token or set GATEHOUSE_TOKEN")
	}
	base := strings.TrimRight(c.base, "/")
	if _, err := url.Parse(base + path); err != nil {
		return usagef("bad --url: %v", err)
	}
	return (&apiclient.Client{BaseURL: base, Token: c.token, HTTP: c.http}).Do(ctx, method, path, body, out)
}

// tenantPath is the API path of the --tenant's collection name.
func (c *client) tenantPath(parts ...string) (string, error) {
	if c.tenant == "" {
		return "", usagef("no tenant: pass --tenant or set GATEHOUSE_TENANT")
	}
	p := "/api/v1/tenants/" + url.PathEscape(c.tenant)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p, nil
}

// obj is one JSON object of an answer.
type obj = map[string]any

// show prints one object: its JSON with --json, else the columns as
// "key: value" lines.
func (c *client) show(o obj, cols []string) {
	if c.json {
		c.printJSON(o)
		return
	}
	w := newTable(c.stdout)
	for _, k := range cols {
		if v, ok := o[k]; ok {
			w.row(k+":", cell(v))
		}
	}
	w.flush()
}

// showList prints a list answer as a table, or its JSON.
func (c *client) showList(items []obj, next string, cols []string) {
	if c.json {
		c.printJSON(map[string]any{"items": items, "next_cursor": next})
		return
	}
	w := newTable(c.stdout)
	head := make([]string, len(cols))
	for i, k := range cols {
		head[i] = strings.ToUpper(k)
	}
	w.row(head...)
	for _, it := range items {
		row := make([]string, len(cols))
		for i, k := range cols {
			row[i] = cell(it[k])
		}
		w.row(row...)
	}
	w.flush()
	if next != "" {
		fmt.Fprintf(c.stderr, "(more: --cursor %s, or --all)\n", next)
	}
}

func (c *client) printJSON(v any) {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
