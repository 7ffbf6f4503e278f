// Package declarative is configuration as code: a YAML file declares
// tenants with their groups, connections, apps and webhooks; Plan compares
// it with what the admin API reports and Apply makes the changes through
// the API, so it runs from CI with a token like any other API client.
// Export writes the current state in the same format.
//
// Objects are matched by a natural key: tenants by slug, groups and
// connections and apps by name, webhooks by URL. Only the fields a file
// declares are compared and written: a field left out keeps whatever the
// server has. Nothing is deleted: objects the file does not mention are
// left alone (the plan lists them as unmanaged).
//
// Secrets (a connection's client_secret, private_key...) are never
// written in the file: they are `${ENV_VAR}` or `file:/path` references,
// resolved at apply time and never printed. The API never reads secrets
// back, so they cannot be compared: apply sends them when it creates a
// connection, and on later runs only with UpdateSecrets.
package declarative

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// File is a gatehouse.yaml.
type File struct {
	Tenants []Tenant `yaml:"tenants" json:"-"`
}

// Tenant declares one tenant and what it owns.
type Tenant struct {
	Slug                   string    `yaml:"slug" json:"slug"`
	Name                   *string   `yaml:"name,omitempty" json:"name,omitempty"`
	Domains                *[]string `yaml:"domains,omitempty" json:"domains,omitempty"`
	SupportContact         *string   `yaml:"support_contact,omitempty" json:"support_contact,omitempty"`
	AdminGroups            *[]string `yaml:"admin_groups,omitempty" json:"admin_groups,omitempty"`
	SessionIdleSeconds     *int64    `yaml:"session_idle_seconds,omitempty" json:"session_idle_seconds,omitempty"`
	SessionAbsoluteSeconds *int64    `yaml:"session_absolute_seconds,omitempty" json:"session_absolute_seconds,omitempty"`

	Groups      []Group      `yaml:"groups,omitempty" json:"-"`
	Connections []Connection `yaml:"connections,omitempty" json:"-"`
	Apps        []App        `yaml:"apps,omitempty" json:"-"`
	Webhooks    []Webhook    `yaml:"webhooks,omitempty" json:"-"`
}

// Group declares a group by name.
type Group struct {
	Name       string  `yaml:"name" json:"name"`
	ExternalID *string `yaml:"external_id,omitempty" json:"external_id,omitempty"`
}

// Connection declares an SSO connection. Config holds the protocol's
// fields as the API takes them (issuer, client_id, idp_metadata_url...);
// Secrets its write-only ones, as references.
type Connection struct {
	Name    string            `yaml:"name"`
	Type    string            `yaml:"type"`
	Enabled *bool             `yaml:"enabled,omitempty"`
	Config  map[string]any    `yaml:"config,omitempty"`
	Secrets map[string]string `yaml:"secrets,omitempty"`
	JIT     map[string]any    `yaml:"jit,omitempty"`
	Mapping map[string]any    `yaml:"mapping,omitempty"`
}

// App declares an OIDC client. AllowedConnections names connections (by
// name, not ID, so a file works on any instance).
type App struct {
	Name                   string    `yaml:"name" json:"name"`
	Public                 *bool     `yaml:"public,omitempty" json:"public,omitempty"`
	RedirectURIs           *[]string `yaml:"redirect_uris,omitempty" json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs *[]string `yaml:"post_logout_redirect_uris,omitempty" json:"post_logout_redirect_uris,omitempty"`
	AllowedConnections     *[]string `yaml:"allowed_connections,omitempty" json:"allowed_connections,omitempty"`
	AllowedGroups          *[]string `yaml:"allowed_groups,omitempty" json:"allowed_groups,omitempty"`
	GrantTypes             *[]string `yaml:"grant_types,omitempty" json:"grant_types,omitempty"`
	IDTokenSigningAlg      *string   `yaml:"id_token_signing_alg,omitempty" json:"id_token_signing_alg,omitempty"`
	BackchannelLogoutURI   *string   `yaml:"backchannel_logout_uri,omitempty" json:"backchannel_logout_uri,omitempty"`
	AccessTokenTTL         *int      `yaml:"access_token_ttl,omitempty" json:"access_token_ttl,omitempty"`
	RefreshTokenTTL        *int      `yaml:"refresh_token_ttl,omitempty" json:"refresh_token_ttl,omitempty"`
}

// Webhook declares an endpoint by URL; its signing secret is made by the
// server (see Options.SecretsOut).
type Webhook struct {
	URL     string    `yaml:"url" json:"url"`
	Events  *[]string `yaml:"events,omitempty" json:"events,omitempty"`
	Enabled *bool     `yaml:"enabled,omitempty" json:"enabled,omitempty"`
}

// Parse reads a file strictly: unknown keys are errors with their line.
func Parse(r io.Reader) (*File, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("configuration file: %w", err)
	}
	return &f, f.validate()
}

// ParseFile reads the file at path.
func ParseFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return Parse(fh)
}

func (f *File) validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, t := range f.Tenants {
		where := fmt.Sprintf("tenants[%d]", i)
		if t.Slug == "" {
			errs = append(errs, fmt.Errorf("%s: slug is required", where))
		}
		if seen["t:"+t.Slug] {
			errs = append(errs, fmt.Errorf("%s: tenant %q is declared twice", where, t.Slug))
		}
		seen["t:"+t.Slug] = true
		where = "tenant " + t.Slug
		errs = append(errs, unique(where, "group", t.Groups, func(g Group) string { return strings.ToLower(g.Name) })...)
		errs = append(errs, unique(where, "connection", t.Connections, func(c Connection) string { return c.Name })...)
		errs = append(errs, unique(where, "app", t.Apps, func(a App) string { return a.Name })...)
		errs = append(errs, unique(where, "webhook", t.Webhooks, func(w Webhook) string { return w.URL })...)
		for _, c := range t.Connections {
			if c.Type == "" {
				errs = append(errs, fmt.Errorf("%s: connection %q: type is required", where, c.Name))
			}
			for k, v := range c.Secrets {
				if !secretRefRE.MatchString(v) {
					errs = append(errs, fmt.Errorf("%s: connection %q: secret %s must be a reference, ${ENV_VAR} or file:/path, never the value itself", where, c.Name, k))
				}
			}
			for k := range c.Config {
				if slices.Contains(connCommon, k) {
					errs = append(errs, fmt.Errorf("%s: connection %q: %s belongs beside config, not in it", where, c.Name, k))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func unique[T any](where, kind string, list []T, key func(T) string) []error {
	var errs []error
	seen := map[string]bool{}
	for i, v := range list {
		k := key(v)
		if k == "" {
			errs = append(errs, fmt.Errorf("%s: %s #%d has no name", where, kind, i+1))
		} else if seen[k] {
			errs = append(errs, fmt.Errorf("%s: %s %q is declared twice", where, kind, k))
		}
		seen[k] = true
	}
	return errs
}

// connCommon are the connection fields the API reads beside the
// protocol's.
var connCommon = []string{"type", "name", "enabled", "jit", "mapping"}

var secretRefRE = regexp.MustCompile(`^(\$\{[A-Za-z_][A-Za-z0-9_]*\}|file:/.+)$`)

// resolveSecret reads a ${ENV_VAR} or file:/path reference.
func resolveSecret(ref string, getenv func(string) string) (string, error) {
	if p, ok := strings.CutPrefix(ref, "file:"); ok {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("secret file %s: %w", p, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	name := strings.TrimSuffix(strings.TrimPrefix(ref, "${"), "}")
	v := getenv(name)
	if v == "" {
		return "", fmt.Errorf("environment variable %s is not set", name)
	}
	return v, nil
}
