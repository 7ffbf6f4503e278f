package console

import (
	"context"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

// The rules below are the admin API's (package api keeps its validators
// unexported): the same limits and messages, so a value the console
// accepts is one the API accepts and the other way round.

var slugRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// textField checks a trimmed single-line value: required when min > 0, at
// most max bytes, no control characters.
func textField(field, label, v string, required bool, max int) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" && required {
		return "", gatehouse.FieldError(field, "%s is required.", label)
	}
	if len(v) > max || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", gatehouse.FieldError(field, "%s must be at most %d characters, without control characters.", label, max)
	}
	return v, nil
}

// domainList lower-cases, checks and de-duplicates email domains: DNS
// labels (RFC 1123 §2.1), at least two, a top-level label that is not all
// digits (RFC 3696 §2; keeps IP literals out).
func domainList(field string, in []string) ([]string, error) {
	out := []string{}
	for _, d := range in {
		n := strings.ToLower(strings.TrimSpace(d))
		labels := strings.Split(n, ".")
		ok := len(n) <= 253 && len(labels) >= 2 && strings.Trim(labels[len(labels)-1], "0123456789") != ""
		for _, l := range labels {
			ok = ok && slugRE.MatchString(l)
		}
		if !ok {
			return nil, gatehouse.FieldError(field, "%q is not a valid domain name (like example.com).", d)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// tenantForm validates the tenant form onto t. Domains change only when
// allowDomains (the operator vouches for domains: there is no
// proof-of-ownership flow).
func tenantForm(f url.Values, t *gatehouse.Tenant, create, allowDomains bool) error {
	var err error
	if create {
		slug := strings.TrimSpace(f.Get("slug"))
		if !slugRE.MatchString(slug) {
			return gatehouse.FieldError("slug", "The short name must be 1 to 63 lower-case letters, digits or hyphens, starting and ending with a letter or digit.")
		}
		t.Slug = slug
	}
	if t.Name, err = textField("name", "The name", f.Get("name"), false, 200); err != nil {
		return err
	}
	if t.Name == "" {
		t.Name = t.Slug
	}
	if allowDomains {
		if t.Domains, err = domainList("domains", splitList(f.Get("domains"))); err != nil {
			return err
		}
	}
	if t.SupportContact, err = textField("support_contact", "The support contact", f.Get("support_contact"), false, 500); err != nil {
		return err
	}
	groups := splitLines(strings.ReplaceAll(f.Get("admin_groups"), ",", "\n"))
	for _, g := range groups {
		if _, err := textField("admin_groups", "An admin group name", g, true, 256); err != nil {
			return err
		}
	}
	t.AdminGroups = groups
	return nil
}

// groupByName finds a group of the tenant, naming field in the error.
func groupByName(ctx context.Context, tx gatehouse.Tx, tenantID, field, name string) (*gatehouse.Group, error) {
	g, err := tx.GetGroupByName(ctx, tenantID, name)
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil, gatehouse.FieldError(field, "There is no group named %q in this tenant; create it first.", name)
	}
	return g, err
}

// redirectURIs checks an app's redirect URIs as OAuth 2.0 requires
// (RFC 6749 §3.1.2: absolute, no fragment), refusing schemes that run code
// in the browser; matching at authorize time is exact (RFC 9700 §4.1.3).
func redirectURIs(field string, in []string) ([]string, error) {
	for _, raw := range in {
		u, err := url.Parse(raw)
		switch {
		case err != nil || !u.IsAbs():
			return nil, gatehouse.FieldError(field, "%q is not an absolute URI.", raw)
		case strings.Contains(raw, "#"):
			return nil, gatehouse.FieldError(field, "%q must not contain a fragment (RFC 6749 §3.1.2).", raw)
		case u.User != nil:
			return nil, gatehouse.FieldError(field, "%q must not contain user information.", raw)
		case slices.Contains([]string{"javascript", "data", "vbscript", "file", "blob"}, strings.ToLower(u.Scheme)):
			return nil, gatehouse.FieldError(field, "%q uses a scheme that cannot be a redirect target.", raw)
		case (u.Scheme == "http" || u.Scheme == "https") && u.Host == "":
			return nil, gatehouse.FieldError(field, "%q has no host.", raw)
		case len(raw) > 2000:
			return nil, gatehouse.FieldError(field, "A URI must be at most 2000 characters.")
		}
	}
	return in, nil
}
