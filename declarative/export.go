package declarative

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/gatehouse-sso/gatehouse/apiclient"
	"gopkg.in/yaml.v3"
)

// readOnly are connection fields the API shows but does not take: URLs
// and facts the server derives.
var readOnly = map[string]bool{
	"id": true, "tenant_id": true, "created_at": true, "updated_at": true,
	"redirect_uri": true, "acs_url": true, "sp_entity_id": true, "sp_metadata_url": true, "slo_url": true,
	"idp_error": true, "idp_certificates": true, "idp_certificate_expiry_warning": true,
}

// samlFromMetadata are SAML fields derived from the IdP metadata when a
// metadata URL is set.
var samlFromMetadata = []string{"idp_entity_id", "idp_sso_url", "idp_slo_url"}

// secretFields are the write-only fields of each connection type that
// export writes as ${GATEHOUSE_SECRET_...} references.
func secretFields(typ string, config map[string]any) []string {
	switch typ {
	case "oidc":
		if config["token_endpoint_auth_method"] == "private_key_jwt" {
			return nil // the key pair may be the server's own; see docs/operations.md
		}
		return []string{"client_secret"}
	case "oauth2":
		return []string{"client_secret"}
	}
	return nil
}

// Export reads the tenants (all when slugs is empty) into a File.
func Export(ctx context.Context, c *apiclient.Client, slugs []string) (*File, error) {
	if len(slugs) == 0 {
		ts, err := apiclient.List[obj](ctx, c, "/api/v1/tenants")
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			slugs = append(slugs, fmt.Sprint(t["slug"]))
		}
	}
	f := &File{}
	for _, slug := range slugs {
		cur, err := fetch(ctx, c, slug)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", slug, err)
		}
		if cur.tenant == nil {
			return nil, fmt.Errorf("tenant %s not found", slug)
		}
		f.Tenants = append(f.Tenants, exportTenant(slug, cur))
	}
	return f, nil
}

func exportTenant(slug string, cur *current) Tenant {
	t := Tenant{Slug: slug}
	str := func(o obj, k string) *string {
		if s, ok := o[k].(string); ok && s != "" {
			return &s
		}
		return nil
	}
	list := func(o obj, k string) *[]string {
		l, ok := o[k].([]any)
		if !ok || len(l) == 0 {
			return nil
		}
		out := []string{}
		for _, v := range l {
			out = append(out, fmt.Sprint(v))
		}
		return &out
	}
	seconds := func(o obj, k string) *int64 {
		if n, ok := o[k].(float64); ok && n != 0 {
			v := int64(n)
			return &v
		}
		return nil
	}
	t.Name, t.SupportContact = str(cur.tenant, "name"), str(cur.tenant, "support_contact")
	t.Domains, t.AdminGroups = list(cur.tenant, "domains"), list(cur.tenant, "admin_groups")
	t.SessionIdleSeconds, t.SessionAbsoluteSeconds = seconds(cur.tenant, "session_idle_seconds"), seconds(cur.tenant, "session_absolute_seconds")
	for _, g := range cur.groups {
		t.Groups = append(t.Groups, Group{Name: fmt.Sprint(g["name"]), ExternalID: str(g, "external_id")})
	}
	for _, o := range cur.connections {
		cn := Connection{Name: fmt.Sprint(o["name"]), Type: fmt.Sprint(o["type"]), Config: map[string]any{}}
		if e, ok := o["enabled"].(bool); ok {
			cn.Enabled = &e
		}
		if j, ok := o["jit"].(map[string]any); ok {
			cn.JIT = j
		}
		if m, ok := o["mapping"].(map[string]any); ok && len(m) > 0 {
			cn.Mapping = m
		}
		for k, v := range o {
			if readOnly[k] || slices.Contains(connCommon, k) || isZero(v) {
				continue
			}
			cn.Config[k] = v
		}
		if cn.Type == "saml" && cn.Config["idp_metadata_url"] != nil {
			for _, k := range samlFromMetadata {
				delete(cn.Config, k)
			}
		}
		for _, k := range secretFields(cn.Type, cn.Config) {
			if cn.Secrets == nil {
				cn.Secrets = map[string]string{}
			}
			cn.Secrets[k] = "${" + secretName(slug, cn.Name, k) + "}"
		}
		t.Connections = append(t.Connections, cn)
	}
	for _, o := range cur.apps {
		a := App{Name: fmt.Sprint(o["name"])}
		if p, ok := o["public"].(bool); ok {
			a.Public = &p
		}
		a.RedirectURIs, a.PostLogoutRedirectURIs = list(o, "redirect_uris"), list(o, "post_logout_redirect_uris")
		a.AllowedGroups, a.GrantTypes = list(o, "allowed_groups"), list(o, "grant_types")
		if ids := list(o, "allowed_connections"); ids != nil {
			names := []string{}
			for _, id := range *ids {
				names = append(names, nameOf(cur.connections, id))
			}
			a.AllowedConnections = &names
		}
		a.IDTokenSigningAlg, a.BackchannelLogoutURI = str(o, "id_token_signing_alg"), str(o, "backchannel_logout_uri")
		for k, dst := range map[string]**int{"access_token_ttl": &a.AccessTokenTTL, "refresh_token_ttl": &a.RefreshTokenTTL} {
			if n, ok := o[k].(float64); ok && n != 0 {
				v := int(n)
				*dst = &v
			}
		}
		t.Apps = append(t.Apps, a)
	}
	for _, o := range cur.webhooks {
		w := Webhook{URL: fmt.Sprint(o["url"]), Events: list(o, "events")}
		if e, ok := o["enabled"].(bool); ok {
			w.Enabled = &e
		}
		t.Webhooks = append(t.Webhooks, w)
	}
	return t
}

// Write writes f as YAML.
func Write(w io.Writer, f *File) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return err
	}
	return enc.Close()
}
