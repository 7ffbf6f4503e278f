package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// view is what every template gets; D holds the page's own data.
type view struct {
	Title     string
	Base      string
	P         *principal
	Tenant    *gatehouse.Tenant
	Nav       string
	CSRF      string
	Flash     string
	RequestID string
	// Form holds the values shown in form fields (re-shown after an error).
	Form url.Values
	// Err is a form-level error; Errors the inline ones by field name.
	Err    string
	Errors map[string]string
	D      any
}

// fieldView is one labelled form field, for the "field" template.
type fieldView struct {
	Name, Label, Kind, Help, Value, Error, Placeholder string
	Required                                           bool
}

var funcs = template.FuncMap{
	// fld builds a form field from the view: value and error by name.
	"fld": func(v *view, name, label, kind, help string) fieldView {
		f := fieldView{Name: name, Label: label, Kind: kind, Help: help}
		if v.Form != nil {
			f.Value = v.Form.Get(name)
		}
		f.Error = v.Errors[name]
		return f
	},
	// fldv is fld with values from another set (a second form on a page).
	"fldv": func(v *view, vals url.Values, name, label, kind, help string) fieldView {
		return fieldView{Name: name, Label: label, Kind: kind, Help: help, Value: vals.Get(name), Error: v.Errors[name]}
	},
	"req": func(f fieldView) fieldView { f.Required = true; return f },
	"ph":  func(p string, f fieldView) fieldView { f.Placeholder = p; return f },
	"time": func(t any) string {
		switch t := t.(type) {
		case time.Time:
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		case *time.Time:
			if t == nil || t.IsZero() {
				return "never"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		}
		return ""
	},
	"join":    strings.Join,
	"checked": func(v *view, name string) bool { return v.Form != nil && v.Form.Get(name) != "" },
	"has":     func(list []string, s string) bool { return slices.Contains(list, s) },
	"managedBy": func(m string) string {
		switch {
		case m == gatehouse.ManagedByAdmin:
			return "manual"
		case m == gatehouse.ManagedBySCIM:
			return "SCIM"
		case strings.HasPrefix(m, "connection:") && strings.HasSuffix(m, ":default"):
			// provision.DefaultGroupsManager: a connection's default group.
			return "JIT default"
		case strings.HasPrefix(m, "connection:"):
			return "IdP sync"
		}
		return m
	},
	"details": func(d map[string]any) string {
		if len(d) == 0 {
			return ""
		}
		keys := make([]string, 0, len(d))
		for k := range d {
			if k != "via" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		var b strings.Builder
		for i, k := range keys {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s: %v", k, d[k])
		}
		s := b.String()
		if len(s) > 300 {
			s = s[:300] + "…"
		}
		return s
	},
	"svg": func(s string) template.HTML { return template.HTML(s) }, // only for SVG built by chart.go from numbers
}

// pages holds one template set per page: layout, shared partials, page.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		out[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/partials.html", "templates/"+e.Name()))
	}
	return out
}()

// renderView writes a page; the body is rendered fully before anything is
// sent, so a template error becomes a clean 500.
func (c *Console) renderView(w http.ResponseWriter, status int, name string, v *view) {
	if v.Base == "" {
		v.Base = c.base
	}
	t, ok := pages[name]
	if !ok {
		panic("console: no template " + name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// render renders a page for a signed-in call.
func (c *Console) render(w http.ResponseWriter, r *http.Request, k *call, status int, name, title, nav string, v *view) error {
	if v == nil {
		v = &view{}
	}
	v.Title, v.Nav, v.P, v.Tenant, v.CSRF, v.Base = title, nav, k.p, k.t, k.p.csrf, c.base
	if status == http.StatusOK && v.Err != "" {
		// A form shown again with its error.
		status = http.StatusUnprocessableEntity
	}
	if v.Flash == "" {
		v.Flash = flashText(r.URL.Query().Get("m"))
	}
	c.renderView(w, status, name, v)
	return nil
}

// showError puts a user-facing error on the form: inline when it names a
// field, as the form's error otherwise. Any other error is returned, for
// the error page.
func showError(v *view, err error) error {
	if errs, ok := asFieldErrors(err); ok {
		v.Errors, v.Err = errs, "Please correct the highlighted field."
		return nil
	}
	switch gatehouse.ErrorCode(err) {
	case gatehouse.EINVALID, gatehouse.ECONFLICT, gatehouse.EFORBIDDEN, gatehouse.EPRECONDITION:
		v.Err = gatehouse.ErrorMessage(err)
		return nil
	}
	return err
}

// formError re-renders a form with err shown (showError).
func (c *Console) formError(w http.ResponseWriter, r *http.Request, k *call, err error, name, title, nav string, v *view) error {
	if err := showError(v, err); err != nil {
		return err
	}
	return c.render(w, r, k, http.StatusUnprocessableEntity, name, title, nav, v)
}

// flashes are the one-line confirmations after a redirect; the query
// carries a key, never the text, so a link cannot put words on the page.
var flashes = map[string]string{
	"signedout":   "You are signed out.",
	"created":     "Created.",
	"saved":       "Saved.",
	"deleted":     "Deleted.",
	"revoked":     "Revoked.",
	"approved":    "The user is approved and may sign in.",
	"deactivated": "The user is deactivated; their sessions ended.",
	"reactivated": "The user is active again.",
	"groups":      "Group memberships saved.",
	"rotated":     "The secret is rotated.",
	"retried":     "The delivery is queued again and will be sent shortly.",
	"imported":    "Imported.",
}

func flashText(key string) string { return flashes[key] }

func (c *Console) handleStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	data, err := staticFS.ReadFile("static/" + name)
	if err != nil || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	switch {
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(data)
}

// nextPage is the query of the next page of a filtered list: the same
// filters and the store's cursor; "" on the last page.
func nextPage(q url.Values, cursor string) string {
	if cursor == "" {
		return ""
	}
	more := url.Values{}
	for key, vals := range q {
		more[key] = vals
	}
	more.Set("cursor", cursor)
	return more.Encode()
}

// splitList reads a list field: one item per line or separated by commas
// or spaces, empty items dropped.
func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' || r == ' ' || r == '\t' }) {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// splitLines reads one item per line (for names that may contain spaces).
func splitLines(s string) []string {
	out := []string{}
	for _, f := range strings.Split(s, "\n") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}
