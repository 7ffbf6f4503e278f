package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/mapping"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/web"
)

// protoField is one protocol setting in a connection form; Name is the
// connector's JSON field (its Configure validates the value).
type protoField struct {
	Name, Label, Kind, Help string
	Required                bool
}

// Field kinds: text and url are strings, secret is write-only (empty keeps
// the stored one), list is space- or comma-separated, bool a checkbox,
// textarea a long string, json raw JSON.
var protoFields = map[string][]protoField{
	gatehouse.ConnOIDC: {
		{"issuer", "Issuer URL", "url", "Your IdP's issuer, e.g. https://acme.okta.com or https://login.microsoftonline.com/{tenant}/v2.0. Gatehouse reads its discovery document right away to check it.", true},
		{"client_id", "Client ID", "text", "From the application you registered at the IdP.", true},
		{"client_secret", "Client secret", "secret", "Stored encrypted and never shown again. Leave empty to keep the current one.", false},
		{"scopes", "Scopes", "list", "Separated by spaces. Default: openid email profile.", false},
	},
	gatehouse.ConnSAML: {
		{"idp_metadata_url", "IdP metadata URL", "url", "Okta: Sign On tab → Metadata URL. Gatehouse fetches it now and refreshes it, so certificate rotations are picked up by themselves.", false},
		{"idp_metadata_xml", "Or paste the IdP metadata XML", "textarea", "Use this when the IdP gives you a metadata file instead of a URL.", false},
		{"idp_entity_id", "IdP entity ID", "text", "Only needed when the metadata describes several identity providers.", false},
		{"allow_idp_initiated", "Allow sign-in started at the IdP (IdP-initiated)", "bool", "Off is safer; turn on only if people start from the IdP's dashboard.", false},
		{"sign_authn_requests", "Sign authentication requests", "bool", "Turn on if the IdP requires signed requests.", false},
	},
	gatehouse.ConnOAuth2: {
		{"authorize_url", "Authorization endpoint", "url", "The provider's OAuth 2.0 authorization URL.", true},
		{"token_url", "Token endpoint", "url", "", true},
		{"userinfo_url", "User info endpoint", "url", "Where the user's profile is read with the access token.", true},
		{"client_id", "Client ID", "text", "", true},
		{"client_secret", "Client secret", "secret", "Stored encrypted and never shown again. Leave empty to keep the current one.", false},
		{"scopes", "Scopes", "list", "Separated by spaces.", false},
		{"subject_path", "Subject claim path", "text", "Path in the user info answer that identifies the user for good, e.g. id or sub.", true},
		{"email_path", "Email claim path", "text", "e.g. email", false},
		{"email_verified_path", "Email-verified claim path", "text", "e.g. email_verified", false},
		{"username_path", "Username claim path", "text", "e.g. login", false},
		{"name_path", "Name claim path", "text", "e.g. name", false},
		{"groups_path", "Groups claim path", "text", "e.g. groups", false},
	},
	gatehouse.ConnMock: {
		{"users", "Test users (JSON)", "json", `Development only. A JSON list like [{"subject":"ana","email":"ana@acme.com","email_verified":true}].`, false},
	},
}

// typeInfo describes a connection type in the "Add connection" wizard.
type typeInfo struct {
	Name, Title, Text string
}

var typeInfos = map[string]typeInfo{
	gatehouse.ConnOIDC:   {gatehouse.ConnOIDC, "OpenID Connect", "Okta, Entra ID, Google Workspace, Auth0, Keycloak and any OpenID provider."},
	gatehouse.ConnSAML:   {gatehouse.ConnSAML, "SAML 2.0", "Okta, Entra ID, ADFS, OneLogin, PingFederate, Shibboleth: paste the metadata URL or XML."},
	gatehouse.ConnOAuth2: {gatehouse.ConnOAuth2, "OAuth 2.0", "Providers without OpenID Connect (GitHub and others): endpoint URLs and claim paths."},
	gatehouse.ConnMock:   {gatehouse.ConnMock, "Mock (development)", "A built-in test IdP for trying Gatehouse out. Only on development servers."},
}

// connectionData is the content of the connection pages.
type connectionData struct {
	Conn     *gatehouse.Connection
	Type     typeInfo
	Fields   []fieldView
	Setup    []setupItem
	Details  []setupItem
	Certs    []map[string]any
	Warnings []string
	Groups   []string
	// JIT and mapping forms.
	JIT      url.Values
	Mapping  url.Values
	Defaults map[string]string
	CanTest  bool
	Types    []typeInfo
}

type setupItem struct {
	Label, Value, Help string
	Link               bool
}

func (c *Console) lookupType(name string) (*connector.Type, error) {
	t, ok := connector.Lookup(name, c.env.Dev)
	if !ok {
		return nil, gatehouse.FieldError("type", "Unknown connection type %q; this server offers: %s.", name, strings.Join(connector.Names(c.env.Dev), ", "))
	}
	return t, nil
}

func (c *Console) connectionsPage(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	var cs []*gatehouse.Connection
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		cs, err = tx.ListConnections(ctx, k.t.ID)
		return err
	})
	if err != nil {
		return err
	}
	type row struct {
		Conn     *gatehouse.Connection
		Type     string
		Warnings []string
	}
	var rows []row
	for _, cn := range cs {
		rows = append(rows, row{cn, typeInfos[cn.Type].Title, c.certWarnings(cn)})
	}
	return c.render(w, r, k, http.StatusOK, "connections", "Connections", "connections", &view{D: rows})
}

// connectionNew is the wizard: first the type, then its form.
func (c *Console) connectionNew(w http.ResponseWriter, r *http.Request, k *call) error {
	typ := r.URL.Query().Get("type")
	if typ == "" {
		d := &connectionData{}
		for _, n := range connector.Names(c.env.Dev) {
			if ti, ok := typeInfos[n]; ok {
				d.Types = append(d.Types, ti)
			}
		}
		return c.render(w, r, k, http.StatusOK, "connection_type", "Add a connection", "connections", &view{D: d})
	}
	if _, err := c.lookupType(typ); err != nil {
		return err
	}
	return c.renderNewConnection(w, r, k, http.StatusOK, typ, url.Values{"type": {typ}}, nil)
}

func (c *Console) renderNewConnection(w http.ResponseWriter, r *http.Request, k *call, status int, typ string, form url.Values, err error) error {
	d := &connectionData{Type: typeInfos[typ], Conn: &gatehouse.Connection{Type: typ}}
	v := &view{Form: form, D: d}
	if err != nil {
		if err := showError(v, err); err != nil {
			return err
		}
	}
	d.Fields = fieldsOf(v, typ)
	return c.render(w, r, k, status, "connection_new", "Add connection: "+d.Type.Title, "connections", v)
}

// fieldsOf builds the protocol fields of typ with the view's values and
// errors.
func fieldsOf(v *view, typ string) []fieldView {
	var out []fieldView
	for _, f := range protoFields[typ] {
		fv := fieldView{Name: f.Name, Label: f.Label, Kind: f.Kind, Help: f.Help, Required: f.Required}
		if v.Form != nil {
			fv.Value = v.Form.Get(f.Name)
		}
		if f.Kind == "secret" {
			fv.Value = ""
		}
		fv.Error = v.Errors[f.Name]
		out = append(out, fv)
	}
	return out
}

// protocolInput turns the form into the connector's JSON fields. Empty
// fields are left out, so an update keeps their stored value (and a secret
// is never sent back to the browser); checkboxes are always sent.
func protocolInput(typ string, f url.Values) (map[string]json.RawMessage, error) {
	in := map[string]json.RawMessage{}
	for _, pf := range protoFields[typ] {
		v := strings.TrimSpace(f.Get(pf.Name))
		var val any
		switch pf.Kind {
		case "bool":
			val = v != ""
		case "list":
			if v == "" {
				continue
			}
			val = splitList(v)
		case "json":
			if v == "" {
				continue
			}
			if !json.Valid([]byte(v)) {
				return nil, gatehouse.FieldError(pf.Name, "%s must be valid JSON.", pf.Label)
			}
			in[pf.Name] = json.RawMessage(v)
			continue
		default:
			if v == "" {
				continue
			}
			val = v
		}
		b, err := json.Marshal(val)
		if err != nil {
			return nil, err
		}
		in[pf.Name] = b
	}
	return in, nil
}

// configure runs the protocol's Configure over conn and seals its
// secrets, as the API does (connector.ConfigureSealed).
func (c *Console) configure(ctx context.Context, t *connector.Type, conn *gatehouse.Connection, in map[string]json.RawMessage) error {
	return connector.ConfigureSealed(ctx, c.env, t, conn, c.cfg.Keyring, in)
}

func (c *Console) connectionCreate(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	f := r.PostForm
	typ := f.Get("type")
	t, err := c.lookupType(typ)
	if err != nil {
		return err
	}
	now := c.clock.Now().UTC()
	conn := &gatehouse.Connection{ID: gatehouse.NewID("con"), TenantID: k.t.ID, Type: t.Name, Enabled: true,
		JIT: gatehouse.DefaultJITPolicy(), CreatedAt: now, UpdatedAt: now}
	conn.Name, err = textField("name", "The name", f.Get("name"), true, 200)
	if err == nil {
		var in map[string]json.RawMessage
		if in, err = protocolInput(typ, f); err == nil {
			err = c.configure(ctx, t, conn, in)
		}
	}
	if err == nil {
		err = c.store.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.CreateConnection(ctx, conn); err != nil {
				return err
			}
			return c.audit(ctx, tx, r, k, k.t.ID, "connection.created", "connection", conn.ID, map[string]any{"type": conn.Type, "name": conn.Name})
		})
	}
	if err != nil {
		return c.renderNewConnection(w, r, k, http.StatusUnprocessableEntity, typ, f, err)
	}
	return c.redirect(w, r, tp(k.t, "/connections/"+conn.ID), "created")
}

func (c *Console) getConnection(r *http.Request, k *call) (*gatehouse.Connection, error) {
	return fetch(c, r, k, "connection", gatehouse.Tx.GetConnection)
}

func (c *Console) connectionPage(w http.ResponseWriter, r *http.Request, k *call) error {
	conn, err := c.getConnection(r, k)
	if err != nil {
		return err
	}
	return c.renderConnection(w, r, k, conn, &view{}, "")
}

// renderConnection shows a connection: what to copy into the IdP, the test
// button, warnings, and the settings, JIT and mapping forms. section names
// the form an error belongs to.
func (c *Console) renderConnection(w http.ResponseWriter, r *http.Request, k *call, conn *gatehouse.Connection, v *view, section string) error {
	ctx := r.Context()
	t, _ := connector.Lookup(conn.Type, true)
	desc := map[string]any{}
	if t != nil && t.Describe != nil {
		desc = t.Describe(c.env, conn)
	}
	d := &connectionData{Conn: conn, Type: typeInfos[conn.Type], CanTest: c.cfg.Tester != nil, Warnings: c.certWarnings(conn)}
	if d.Type.Name == "" {
		d.Type = typeInfo{Name: conn.Type, Title: conn.Type}
	}
	// What the admin copies into the IdP.
	copyItems := []struct{ key, label, help string }{
		{"redirect_uri", "Redirect URI", "Register this as the sign-in redirect (callback) URI of the application at your IdP."},
		{"acs_url", "ACS URL (single sign-on URL)", "Okta: “Single sign on URL”; Entra ID: “Reply URL”."},
		{"sp_entity_id", "SP entity ID (audience)", "Okta: “Audience URI (SP Entity ID)”; Entra ID: “Identifier”."},
		{"slo_url", "Single logout URL", "Optional."},
	}
	shown := map[string]bool{}
	for _, it := range copyItems {
		if s, _ := desc[it.key].(string); s != "" {
			d.Setup = append(d.Setup, setupItem{Label: it.label, Value: s, Help: it.help})
		}
		shown[it.key] = true
	}
	if s, _ := desc["sp_metadata_url"].(string); s != "" {
		d.Setup = append(d.Setup, setupItem{Label: "SP metadata", Value: s, Help: "Download it and upload it to your IdP, or give the IdP this URL.", Link: true})
		shown["sp_metadata_url"] = true
	}
	if certs, ok := desc["idp_certificates"].([]map[string]any); ok {
		d.Certs = certs
	}
	for _, key := range []string{"idp_certificates", "idp_certificate_expiry_warning", "idp_error", "users"} {
		shown[key] = true
	}
	for _, f := range protoFields[conn.Type] {
		shown[f.Name] = true
	}
	keys := make([]string, 0, len(desc))
	for key := range desc {
		if !shown[key] {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	for _, key := range keys {
		if s := describeValue(desc[key]); s != "" {
			d.Details = append(d.Details, setupItem{Label: key, Value: s})
		}
	}
	// Form values: the stored settings unless a form is being re-shown.
	if section != "settings" {
		vals := url.Values{"name": {conn.Name}}
		if conn.Enabled {
			vals.Set("enabled", "on")
		}
		for _, f := range protoFields[conn.Type] {
			if f.Kind == "bool" {
				if b, _ := desc[f.Name].(bool); b {
					vals.Set(f.Name, "on")
				}
				continue
			}
			vals.Set(f.Name, describeValue(desc[f.Name]))
		}
		v.Form = vals
	}
	d.Fields = fieldsOf(v, conn.Type)
	if section != "jit" {
		d.JIT = jitValues(conn.JIT)
	} else {
		d.JIT = r.PostForm
	}
	if section != "mapping" {
		d.Mapping = mappingValues(conn.Mapping)
	} else {
		d.Mapping = r.PostForm
	}
	d.Defaults = map[string]string{}
	for _, f := range mappingFields {
		d.Defaults[f] = strings.Join(mapping.DefaultNames(conn.Type, f), ", ")
	}
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		gs, _, err := tx.ListGroups(ctx, k.t.ID, gatehouse.Page{Limit: 1000})
		for _, g := range gs {
			d.Groups = append(d.Groups, g.Name)
		}
		return err
	})
	if err != nil {
		return err
	}
	v.D = d
	v.Flash = flashText(r.URL.Query().Get("m"))
	if section != "" {
		v.Flash = ""
	}
	return c.render(w, r, k, http.StatusOK, "connection", conn.Name, "connections", v)
}

// describeValue shows one Describe value as text.
func describeValue(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []string:
		return strings.Join(v, " ")
	case []any:
		parts := make([]string, 0, len(v))
		for _, x := range v {
			parts = append(parts, fmt.Sprint(x))
		}
		return strings.Join(parts, " ")
	case bool, int, int64, float64:
		return fmt.Sprint(v)
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" || string(b) == "{}" || string(b) == "[]" {
		return ""
	}
	return string(b)
}

// sectionError re-shows the connection page with err on its form, or
// returns err when it is not the user's to fix.
func (c *Console) sectionError(w http.ResponseWriter, r *http.Request, k *call, conn *gatehouse.Connection, err error, section string) error {
	v := &view{Form: r.PostForm}
	if err := showError(v, err); err != nil {
		return err
	}
	v.Errors = mergeSection(v.Errors, section)
	return c.renderConnection(w, r, k, conn, v, section)
}

// mergeSection records which form the error belongs to, so the page shows
// the message next to the right form.
func mergeSection(errs map[string]string, section string) map[string]string {
	if errs == nil {
		errs = map[string]string{}
	}
	errs["_section"] = section
	return errs
}

// updateConnection writes conn with its audit event, refusing when it
// changed since it was read.
func (c *Console) updateConnection(r *http.Request, k *call, conn *gatehouse.Connection, changed []string, check func(tx gatehouse.Tx) error) error {
	ctx := r.Context()
	return c.store.Update(ctx, func(tx gatehouse.Tx) error {
		cur, err := tx.GetConnection(ctx, k.t.ID, conn.ID)
		if err != nil {
			return err
		}
		if !cur.UpdatedAt.Equal(conn.UpdatedAt) {
			return gatehouse.Errorf(gatehouse.EPRECONDITION, "The connection changed while you were editing it; reload the page and try again.")
		}
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		conn.UpdatedAt = c.clock.Now().UTC()
		if err := tx.UpdateConnection(ctx, conn); err != nil {
			return err
		}
		return c.audit(ctx, tx, r, k, k.t.ID, "connection.updated", "connection", conn.ID, map[string]any{"changed": changed})
	})
}

// connectionUpdate saves the settings form: name, enabled and the
// protocol fields (re-validated by the connector, live).
func (c *Console) connectionUpdate(w http.ResponseWriter, r *http.Request, k *call) error {
	conn, err := c.getConnection(r, k)
	if err != nil {
		return err
	}
	t, err := c.lookupType(conn.Type)
	if err != nil {
		return err
	}
	f := r.PostForm
	name, err := textField("name", "The name", f.Get("name"), true, 200)
	if err == nil {
		conn.Name, conn.Enabled = name, f.Get("enabled") != ""
		var in map[string]json.RawMessage
		if in, err = protocolInput(conn.Type, f); err == nil {
			err = c.configure(r.Context(), t, conn, in)
		}
	}
	if err == nil {
		err = c.updateConnection(r, k, conn, []string{"name", "enabled", "config"}, nil)
	}
	if err != nil {
		return c.sectionError(w, r, k, conn, err, "settings")
	}
	return c.redirect(w, r, tp(k.t, "/connections/"+conn.ID), "saved")
}

// jitValues fills the JIT form from a policy.
func jitValues(p gatehouse.JITPolicy) url.Values {
	v := url.Values{}
	on := func(name string, b bool) {
		if b {
			v.Set(name, "on")
		}
	}
	on("jit_enabled", p.Enabled)
	on("link_existing_by_email", p.LinkExistingByEmail)
	on("trust_unverified_email", p.TrustUnverifiedEmail)
	on("authoritative_for_domains", p.AuthoritativeForDomains)
	on("require_approval", p.RequireApproval)
	on("update_profile", p.UpdateProfile)
	on("group_sync_enabled", p.GroupSync.Enabled)
	switch {
	case p.AllowedDomains == nil:
		v.Set("domains_mode", "tenant")
	case len(*p.AllowedDomains) == 0:
		v.Set("domains_mode", "any")
	default:
		v.Set("domains_mode", "list")
		v.Set("allowed_domains", strings.Join(*p.AllowedDomains, "\n"))
	}
	v["default_groups"] = p.DefaultGroups
	var lines []string
	for _, idp := range slices.Sorted(mapKeys(p.GroupSync.Mapping)) {
		lines = append(lines, idp+" = "+p.GroupSync.Mapping[idp])
	}
	v.Set("group_sync_mapping", strings.Join(lines, "\n"))
	return v
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// pairs reads "left = right" lines.
func pairs(field, s string) (map[string]string, error) {
	out := map[string]string{}
	for _, line := range splitLines(s) {
		l, rt, ok := strings.Cut(line, "=")
		l, rt = strings.TrimSpace(l), strings.TrimSpace(rt)
		if !ok || l == "" || rt == "" {
			return nil, gatehouse.FieldError(field, "Write one pair per line as: left = right (this line is not: %q).", line)
		}
		out[l] = rt
	}
	return out, nil
}

// jitPolicy reads the JIT form.
func jitPolicy(f url.Values) (gatehouse.JITPolicy, error) {
	p := gatehouse.JITPolicy{
		Enabled: f.Get("jit_enabled") != "", LinkExistingByEmail: f.Get("link_existing_by_email") != "",
		TrustUnverifiedEmail: f.Get("trust_unverified_email") != "", AuthoritativeForDomains: f.Get("authoritative_for_domains") != "",
		RequireApproval: f.Get("require_approval") != "", UpdateProfile: f.Get("update_profile") != "",
		DefaultGroups: []string{},
	}
	switch f.Get("domains_mode") {
	case "tenant", "":
	case "any":
		p.AllowedDomains = &[]string{}
	case "list":
		d, err := domainList("allowed_domains", splitList(f.Get("allowed_domains")))
		if err != nil {
			return p, err
		}
		if len(d) == 0 {
			return p, gatehouse.FieldError("allowed_domains", "List at least one domain, or choose another option.")
		}
		p.AllowedDomains = &d
	default:
		return p, gatehouse.FieldError("domains_mode", "Choose which email domains may be provisioned.")
	}
	for _, g := range f["default_groups"] {
		if g = strings.TrimSpace(g); g != "" && !slices.Contains(p.DefaultGroups, g) {
			p.DefaultGroups = append(p.DefaultGroups, g)
		}
	}
	m, err := pairs("group_sync_mapping", f.Get("group_sync_mapping"))
	if err != nil {
		return p, err
	}
	p.GroupSync = gatehouse.GroupSync{Enabled: f.Get("group_sync_enabled") != "", Mapping: m}
	return p, nil
}

func (c *Console) connectionJIT(w http.ResponseWriter, r *http.Request, k *call) error {
	conn, err := c.getConnection(r, k)
	if err != nil {
		return err
	}
	p, err := jitPolicy(r.PostForm)
	if err == nil {
		conn.JIT = p
		err = c.updateConnection(r, k, conn, []string{"jit"}, func(tx gatehouse.Tx) error {
			// The JIT package's own check: default groups and group-sync
			// targets must exist (an unknown one would fail every login).
			return provision.ValidatePolicy(r.Context(), tx, k.t.ID, p)
		})
	}
	if err != nil {
		return c.sectionError(w, r, k, conn, err, "jit")
	}
	return c.redirect(w, r, tp(k.t, "/connections/"+conn.ID+"#jit"), "saved")
}

// mappingFields are the attribute-mapping form's fields.
var mappingFields = []string{"subject", "email", "username", "display_name", "given_name", "family_name", "groups"}

func mappingValues(m gatehouse.AttributeMapping) url.Values {
	v := url.Values{"subject": {m.Subject}, "email": {m.Email}, "username": {m.Username}, "display_name": {m.DisplayName},
		"given_name": {m.GivenName}, "family_name": {m.FamilyName}, "groups": {m.Groups}}
	var lines []string
	for _, f := range slices.Sorted(mapKeys(m.Expressions)) {
		lines = append(lines, f+" = "+m.Expressions[f])
	}
	v.Set("expressions", strings.Join(lines, "\n"))
	return v
}

func (c *Console) connectionMapping(w http.ResponseWriter, r *http.Request, k *call) error {
	conn, err := c.getConnection(r, k)
	if err != nil {
		return err
	}
	f := r.PostForm
	m := gatehouse.AttributeMapping{}
	dst := []*string{&m.Subject, &m.Email, &m.Username, &m.DisplayName, &m.GivenName, &m.FamilyName, &m.Groups}
	for i, name := range mappingFields {
		if *dst[i], err = textField(name, "The "+strings.ReplaceAll(name, "_", " ")+" attribute", f.Get(name), false, 256); err != nil {
			break
		}
	}
	if err == nil {
		var ex map[string]string
		if ex, err = pairs("expressions", f.Get("expressions")); err == nil && len(ex) > 0 {
			m.Expressions = ex
		}
	}
	if err == nil {
		// The mapping package compiles the CEL expressions with its limits.
		if err = mapping.Validate(m); err == nil {
			conn.Mapping = m
			err = c.updateConnection(r, k, conn, []string{"mapping"}, nil)
		}
	}
	if err != nil {
		return c.sectionError(w, r, k, conn, err, "mapping")
	}
	return c.redirect(w, r, tp(k.t, "/connections/"+conn.ID+"#mapping"), "saved")
}

// connectionTest starts a test login in web's test mode: the result page
// shows the claims received and what provisioning would do; nothing is
// created and no session starts.
func (c *Console) connectionTest(w http.ResponseWriter, r *http.Request, k *call) error {
	if c.cfg.Tester == nil {
		return gatehouse.Errorf(gatehouse.EUNAVAILABLE, "Testing connections is not available on this server.")
	}
	conn, err := c.getConnection(r, k)
	if err != nil {
		return err
	}
	hint := strings.TrimSpace(r.URL.Query().Get("login_hint"))
	if len(hint) > 320 {
		hint = ""
	}
	c.cfg.Tester.StartLogin(w, r, k.t, conn, web.LoginOptions{Test: true, LoginHint: hint})
	return nil
}

func (c *Console) connectionDeleteConfirm(w http.ResponseWriter, r *http.Request, k *call) error {
	conn, err := c.getConnection(r, k)
	if err != nil {
		return err
	}
	return c.confirm(w, r, k, "connections", confirmation{
		Question: "Delete the connection " + conn.Name + "?",
		Detail:   "People can no longer sign in through it; their sign-in links to it and the sessions started through it end. The users themselves stay.",
		Action:   tp(k.t, "/connections/"+conn.ID+"/delete"), Button: "Delete connection", Cancel: tp(k.t, "/connections/"+conn.ID)})
}

func (c *Console) connectionDelete(w http.ResponseWriter, r *http.Request, k *call) error {
	if !confirmed(r) {
		return errNeedsConfirm
	}
	return c.deleteObject(w, r, k, "connection", "connection.deleted", "/connections", func(ctx context.Context, tx gatehouse.Tx, id string) error {
		return tx.DeleteConnection(ctx, k.t.ID, id)
	})
}

// deleteObject deletes the object {id} and audits it, then goes to list:
// the shape of every confirmed delete.
func (c *Console) deleteObject(w http.ResponseWriter, r *http.Request, k *call, what, action, list string, del func(ctx context.Context, tx gatehouse.Tx, id string) error) error {
	ctx := r.Context()
	id := r.PathValue("id")
	err := c.store.Update(ctx, func(tx gatehouse.Tx) error {
		if err := del(ctx, tx, id); err != nil {
			return err
		}
		return c.audit(ctx, tx, r, k, k.t.ID, action, what, id, nil)
	})
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return gatehouse.Errorf(gatehouse.ENOTFOUND, "It no longer exists.")
	}
	if err != nil {
		return err
	}
	flash := "deleted"
	if strings.HasSuffix(action, ".revoked") {
		flash = "revoked"
	}
	return c.redirect(w, r, tp(k.t, list), flash)
}
