package declarative

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/gatehouse-sso/gatehouse/apiclient"
)

// Actions of a plan step.
const (
	Create    = "create"
	Update    = "update"
	Unchanged = "unchanged"
)

// Options tunes Plan and Apply.
type Options struct {
	// UpdateSecrets re-sends the secrets of existing connections (they
	// cannot be read back to compare).
	UpdateSecrets bool
	// SecretsOut receives, as KEY=value lines, the secrets the server
	// makes while applying (app client secrets, webhook signing secrets);
	// nil discards them (rotate them later to get new ones).
	SecretsOut io.Writer
	// Getenv resolves ${ENV_VAR} references; default os.Getenv.
	Getenv func(string) string
}

// Step is one object of the plan.
type Step struct {
	Kind   string // tenant, group, connection, app, webhook
	Tenant string
	Name   string
	Action string
	// Fields are the fields a create or update writes (values never shown).
	Fields []string
	run    func(ctx context.Context, s *state) error
}

func (s Step) String() string {
	id := s.Kind + " " + s.Tenant
	if s.Kind != "tenant" {
		id += "/" + s.Name
	}
	switch s.Action {
	case Unchanged:
		return fmt.Sprintf("  = %s (unchanged)", id)
	case Create:
		return fmt.Sprintf("  + %s (create: %s)", id, strings.Join(s.Fields, ", "))
	}
	return fmt.Sprintf("  ~ %s (update: %s)", id, strings.Join(s.Fields, ", "))
}

// Plan is what Apply would do.
type Plan struct {
	Steps []Step
	// Unmanaged lists objects on the server the file does not mention
	// (left alone).
	Unmanaged []string
	client    *apiclient.Client
	opts      Options
	// inits run before the steps (they seed the state).
	inits []func(s *state)
}

// Changes counts the steps that write.
func (p *Plan) Changes() int {
	n := 0
	for _, s := range p.Steps {
		if s.Action != Unchanged {
			n++
		}
	}
	return n
}

// Print writes the plan for people.
func (p *Plan) Print(w io.Writer) {
	for _, s := range p.Steps {
		fmt.Fprintln(w, s)
	}
	for _, u := range p.Unmanaged {
		fmt.Fprintf(w, "  ? %s (not in the file; left alone)\n", u)
	}
	if p.Changes() == 0 {
		fmt.Fprintln(w, "No changes: the server matches the file.")
		return
	}
	fmt.Fprintf(w, "%d change(s).\n", p.Changes())
}

// obj is a JSON object as the API shows it.
type obj = map[string]any

// current is a tenant's objects as the API reports them.
type current struct {
	tenant      obj // nil when the tenant does not exist
	groups      []obj
	connections []obj
	apps        []obj
	webhooks    []obj
}

// state carries what earlier steps learnt (IDs of created connections) to
// later ones.
type state struct {
	connIDs map[string]map[string]string // tenant → connection name → id
}

func fetch(ctx context.Context, c *apiclient.Client, slug string) (*current, error) {
	cur := &current{}
	err := c.Do(ctx, "GET", apiclient.TenantPath(slug), nil, &cur.tenant)
	if apiclient.IsNotFound(err) {
		return cur, nil
	}
	if err != nil {
		return nil, err
	}
	for _, l := range []struct {
		kind string
		dst  *[]obj
	}{{"groups", &cur.groups}, {"connections", &cur.connections}, {"apps", &cur.apps}, {"webhooks", &cur.webhooks}} {
		if *l.dst, err = apiclient.List[obj](ctx, c, apiclient.TenantPath(slug, l.kind)); err != nil {
			return nil, err
		}
	}
	return cur, nil
}

// find returns the object whose key field equals name (fold: any case).
func find(list []obj, key, name string, fold bool) obj {
	for _, o := range list {
		v, _ := o[key].(string)
		if v == name || fold && strings.EqualFold(v, name) {
			return o
		}
	}
	return nil
}

// NewPlan compares f with the server behind c.
func NewPlan(ctx context.Context, c *apiclient.Client, f *File, opts Options) (*Plan, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	p := &Plan{client: c, opts: opts}
	for _, t := range f.Tenants {
		cur, err := fetch(ctx, c, t.Slug)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t.Slug, err)
		}
		p.planTenant(t, cur)
	}
	return p, nil
}

// toObj turns a declared struct into the JSON object of its fields.
func toObj(v any) obj {
	b, _ := json.Marshal(v)
	var o obj
	_ = json.Unmarshal(b, &o)
	return o
}

// normalize gives YAML-decoded values JSON's shapes (numbers as float64).
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// changed lists the keys of want whose values differ from have's.
func changed(want, have obj) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if !same(normalize(want[k]), have[k]) {
			out = append(out, k)
		}
	}
	return out
}

// same compares a declared value with the server's: objects on the
// declared keys only, lists of scalars as sets, and an absent server value
// equal to a declared zero value.
func same(want, have any) bool {
	if have == nil {
		return isZero(want)
	}
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		return len(changed(w, h)) == 0
	case []any:
		h, ok := have.([]any)
		if !ok || len(w) != len(h) {
			return false
		}
		ws, hs := scalars(w), scalars(h)
		if ws != nil && hs != nil {
			sort.Strings(ws)
			sort.Strings(hs)
			return slices.Equal(ws, hs)
		}
		for i := range w {
			if !same(w[i], h[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(want, have)
}

func scalars(l []any) []string {
	out := make([]string, 0, len(l))
	for _, v := range l {
		switch v.(type) {
		case map[string]any, []any:
			return nil
		}
		out = append(out, fmt.Sprint(v))
	}
	return out
}

func isZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case float64:
		return x == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

func (p *Plan) add(kind, tenant, name string, have obj, want obj, fields []string, run func(ctx context.Context, s *state) error) {
	st := Step{Kind: kind, Tenant: tenant, Name: name, Fields: fields, run: run}
	switch {
	case have == nil:
		st.Action = Create
		st.Fields = slices.Sorted(maps.Keys(want))
	case len(fields) == 0:
		st.Action = Unchanged
	default:
		st.Action = Update
	}
	p.Steps = append(p.Steps, st)
}

func (p *Plan) planTenant(t Tenant, cur *current) {
	c := p.client
	base := apiclient.TenantPath(t.Slug)
	want := toObj(t)
	delete(want, "slug")
	var fields []string
	if cur.tenant != nil {
		fields = changed(want, cur.tenant)
	}
	p.add("tenant", t.Slug, t.Slug, cur.tenant, want, fields, func(ctx context.Context, s *state) error {
		if cur.tenant == nil {
			body := maps.Clone(want)
			body["slug"] = t.Slug
			return c.Do(ctx, "POST", "/api/v1/tenants", body, nil)
		}
		return c.Do(ctx, "PATCH", base, pick(want, fields), nil)
	})

	for _, g := range t.Groups {
		have := find(cur.groups, "name", g.Name, true)
		want := toObj(g)
		p.plan("group", t.Slug, g.Name, have, want, base+"/groups")
	}
	p.unmanaged("group", t.Slug, cur.groups, "name", func(n string) bool {
		return slices.ContainsFunc(t.Groups, func(d Group) bool { return strings.EqualFold(d.Name, n) })
	})
	p.unmanaged("connection", t.Slug, cur.connections, "name", func(n string) bool {
		return slices.ContainsFunc(t.Connections, func(d Connection) bool { return d.Name == n })
	})
	p.unmanaged("app", t.Slug, cur.apps, "name", func(n string) bool {
		return slices.ContainsFunc(t.Apps, func(d App) bool { return d.Name == n })
	})
	p.unmanaged("webhook", t.Slug, cur.webhooks, "url", func(n string) bool {
		return slices.ContainsFunc(t.Webhooks, func(d Webhook) bool { return d.URL == n })
	})

	connIDs := map[string]string{}
	for _, o := range cur.connections {
		connIDs[fmt.Sprint(o["name"])] = fmt.Sprint(o["id"])
	}
	for _, cn := range t.Connections {
		p.planConnection(t.Slug, cn, find(cur.connections, "name", cn.Name, false))
	}
	for _, a := range t.Apps {
		have := find(cur.apps, "name", a.Name, false)
		want := toObj(a)
		var fields []string
		if have != nil {
			// Compare connections by name: the file names them.
			h := maps.Clone(have)
			if ids, ok := h["allowed_connections"].([]any); ok {
				names := []any{}
				for _, id := range ids {
					names = append(names, nameOf(cur.connections, fmt.Sprint(id)))
				}
				h["allowed_connections"] = names
			}
			fields = changed(want, h)
		}
		slug, name := t.Slug, a.Name
		p.add("app", slug, name, have, want, fields, func(ctx context.Context, s *state) error {
			body := pick(want, fields)
			if have == nil {
				body = maps.Clone(want)
			}
			if a.AllowedConnections != nil && body["allowed_connections"] != nil {
				ids := []string{}
				for _, n := range *a.AllowedConnections {
					id, ok := s.connIDs[slug][n]
					if !ok {
						return fmt.Errorf("app %s/%s: allowed_connections names %q, which is no connection of the tenant", slug, name, n)
					}
					ids = append(ids, id)
				}
				body["allowed_connections"] = ids
			}
			if have != nil {
				return c.Do(ctx, "PATCH", base+"/apps/"+fmt.Sprint(have["id"]), body, nil)
			}
			var out obj
			if err := c.Do(ctx, "POST", base+"/apps", body, &out); err != nil {
				return err
			}
			return p.keep(secretName(slug, "app", name, "client_secret"), out["client_secret"])
		})
	}
	for _, w := range t.Webhooks {
		have := find(cur.webhooks, "url", w.URL, false)
		want := toObj(w)
		var fields []string
		if have != nil {
			fields = changed(want, have)
		}
		slug, url := t.Slug, w.URL
		p.add("webhook", slug, url, have, want, fields, func(ctx context.Context, s *state) error {
			if have != nil {
				return c.Do(ctx, "PATCH", base+"/webhooks/"+fmt.Sprint(have["id"]), pick(want, fields), nil)
			}
			var out obj
			if err := c.Do(ctx, "POST", base+"/webhooks", want, &out); err != nil {
				return err
			}
			return p.keep(secretName(slug, "webhook", url, "secret"), out["secret"])
		})
	}
	// Connection IDs known before the run; created ones are added by
	// their steps.
	p.inits = append(p.inits, func(s *state) { s.connIDs[t.Slug] = connIDs })
}

// unmanaged lists the server's objects of a kind the file does not
// declare.
func (p *Plan) unmanaged(kind, tenant string, list []obj, key string, declared func(string) bool) {
	for _, o := range list {
		if n := fmt.Sprint(o[key]); !declared(n) {
			p.Unmanaged = append(p.Unmanaged, fmt.Sprintf("%s %s/%s", kind, tenant, n))
		}
	}
}

// plan adds a create-or-update step for a plain object (groups).
func (p *Plan) plan(kind, tenant, name string, have, want obj, collection string) {
	var fields []string
	if have != nil {
		fields = changed(want, have)
	}
	c := p.client
	p.add(kind, tenant, name, have, want, fields, func(ctx context.Context, s *state) error {
		if have == nil {
			return c.Do(ctx, "POST", collection, want, nil)
		}
		return c.Do(ctx, "PATCH", collection+"/"+fmt.Sprint(have["id"]), pick(want, fields), nil)
	})
}

func nameOf(list []obj, id string) string {
	for _, o := range list {
		if fmt.Sprint(o["id"]) == id {
			return fmt.Sprint(o["name"])
		}
	}
	return id
}

// pick returns the fields of o named in keys.
func pick(o obj, keys []string) obj {
	out := obj{}
	for _, k := range keys {
		out[k] = o[k]
	}
	return out
}

func (p *Plan) planConnection(slug string, cn Connection, have obj) {
	c := p.client
	base := apiclient.TenantPath(slug, "connections")
	want := obj{"type": cn.Type, "name": cn.Name}
	if cn.Enabled != nil {
		want["enabled"] = *cn.Enabled
	}
	if cn.JIT != nil {
		want["jit"] = cn.JIT
	}
	if cn.Mapping != nil {
		want["mapping"] = cn.Mapping
	}
	maps.Copy(want, cn.Config)
	want = normalize(want).(map[string]any)
	var fields []string
	if have != nil {
		// Write-only fields cannot be compared: like secrets, they are
		// sent on create and with UpdateSecrets.
		compare := maps.Clone(want)
		for k := range compare {
			if writeOnly(cn.Type, k) {
				delete(compare, k)
			}
		}
		fields = changed(compare, have)
		if p.opts.UpdateSecrets {
			for _, k := range slices.Sorted(maps.Keys(want)) {
				if writeOnly(cn.Type, k) {
					fields = append(fields, k+" (write-only)")
				}
			}
			for _, k := range slices.Sorted(maps.Keys(cn.Secrets)) {
				fields = append(fields, k+" (secret)")
			}
		}
	}
	p.add("connection", slug, cn.Name, have, want, fields, func(ctx context.Context, s *state) error {
		body := maps.Clone(want)
		if have != nil {
			body = obj{}
			for _, f := range fields {
				if k, ok := strings.CutSuffix(f, " (secret)"); ok {
					body[k] = nil // filled below
				} else {
					k, _ := strings.CutSuffix(f, " (write-only)")
					body[k] = want[k]
				}
			}
		}
		for k, ref := range cn.Secrets {
			if _, send := body[k]; have != nil && !send {
				continue
			}
			v, err := resolveSecret(ref, p.opts.Getenv)
			if err != nil {
				return fmt.Errorf("connection %s/%s: secret %s: %w", slug, cn.Name, k, err)
			}
			body[k] = v
		}
		if have != nil {
			return c.Do(ctx, "PATCH", base+"/"+fmt.Sprint(have["id"]), body, nil)
		}
		var out obj
		if err := c.Do(ctx, "POST", base, body, &out); err != nil {
			return err
		}
		s.connIDs[slug][cn.Name] = fmt.Sprint(out["id"])
		return nil
	})
	// A create shows the secret fields it sends (never their values).
	if have == nil {
		last := &p.Steps[len(p.Steps)-1]
		for _, k := range slices.Sorted(maps.Keys(cn.Secrets)) {
			last.Fields = append(last.Fields, k+" (secret)")
		}
	}
}

// writeOnly reports whether a connection type's protocol field is taken
// by the API but not shown back as written (pasted metadata, PEM
// certificates, one-shot actions), so it cannot be compared.
func writeOnly(typ, field string) bool {
	switch typ {
	case "saml":
		switch field {
		case "idp_metadata_xml", "idp_certificate", "idp_certificates", "idp_sso_binding", "sp_key_rollover":
			return true
		}
	case "oidc":
		return field == "client_certificate"
	}
	return false
}

// keep writes a secret the server made to SecretsOut.
func (p *Plan) keep(name string, v any) error {
	s, _ := v.(string)
	if s == "" || p.opts.SecretsOut == nil {
		return nil
	}
	_, err := fmt.Fprintf(p.opts.SecretsOut, "%s=%s\n", name, s)
	return err
}

// secretName is the environment-variable style name of a secret:
// GATEHOUSE_SECRET_<TENANT>_<KIND>_<NAME>_<FIELD>.
func secretName(parts ...string) string {
	var b strings.Builder
	b.WriteString("GATEHOUSE_SECRET")
	for _, p := range parts {
		b.WriteByte('_')
		for _, r := range strings.ToUpper(p) {
			if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
	}
	return b.String()
}

// Apply runs the plan's changes in order (tenants, groups, connections,
// apps, webhooks) and stops at the first error; what ran before stays
// (every step is one API call, itself atomic). Running it again finishes
// the job: applying is idempotent.
func (p *Plan) Apply(ctx context.Context, progress io.Writer) error {
	s := &state{connIDs: map[string]map[string]string{}}
	for _, init := range p.inits {
		init(s)
	}
	for _, st := range p.Steps {
		if st.Action == Unchanged {
			continue
		}
		if progress != nil {
			fmt.Fprintln(progress, st)
		}
		if err := st.run(ctx, s); err != nil {
			return fmt.Errorf("%s %s/%s: %w", st.Kind, st.Tenant, st.Name, err)
		}
	}
	return nil
}

// ApplyFile plans and applies the file at path, for `gatehouse serve
// --config`. Replicas that start together race to create the same
// objects; the loser gets a conflict, plans again and finds less to do.
// It returns how many changes were made.
func ApplyFile(ctx context.Context, c *apiclient.Client, path string, opts Options, progress io.Writer) (int, error) {
	f, err := ParseFile(path)
	if err != nil {
		return 0, err
	}
	for attempt := 1; ; attempt++ {
		p, err := NewPlan(ctx, c, f, opts)
		if err != nil {
			return 0, err
		}
		err = p.Apply(ctx, progress)
		var ae *apiclient.Error
		if err == nil || attempt == 3 || !errors.As(err, &ae) || ae.Status != 409 {
			return p.Changes(), err
		}
	}
}
