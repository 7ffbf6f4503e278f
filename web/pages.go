package web

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/httperr"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/web.css
var css []byte

//go:embed assets/autopost.js
var autopostJS []byte

// pages holds one template set per page: the layout plus the page's body.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"error", "chooser", "login", "landing", "logout", "test"} {
		out[name] = template.Must(template.New(name).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// page is what every template gets; each page uses the fields it needs.
type page struct {
	Title     string
	Base      string
	Tenant    *gatehouse.Tenant
	RequestID string
	Support   *support
	Message   string
	Hint      string
	Retry     string
	Action    string
	Email     string
	ReturnTo  string
	User      *gatehouse.User
	Done      bool
	// Connection is the connection's name on the test page.
	Connection  string
	Connections []choice
	Test        *testResult
	// Prompt ("login" or "") is kept through the chooser's email form.
	Prompt string
}

type choice struct{ Name, URL string }

// support is a tenant's support contact, linked when it is an email
// address or an https URL, plain text otherwise.
type support struct {
	Text string
	Mail template.URL
	URL  string
}

func supportOf(t *gatehouse.Tenant) *support {
	if t == nil || strings.TrimSpace(t.SupportContact) == "" {
		return nil
	}
	c := strings.TrimSpace(t.SupportContact)
	sp := &support{Text: c}
	switch {
	case gatehouse.ValidEmail(strings.TrimPrefix(c, "mailto:")):
		sp.Text = strings.TrimPrefix(c, "mailto:")
		sp.Mail = template.URL("mailto:" + url.PathEscape(sp.Text))
	case strings.HasPrefix(c, "https://"):
		if u, err := url.Parse(c); err == nil && u.Host != "" {
			sp.URL = c
		}
	}
	return sp
}

// render writes a page with status. Pages are never cached: they carry
// per-user state and one-time results.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	p.Base = s.basePath
	if p.Support == nil {
		p.Support = supportOf(p.Tenant)
	}
	var b bytes.Buffer
	if err := pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		s.log.ErrorContext(r.Context(), "render page", "page", name, "err", err, "request_id", requestID(r))
		http.Error(w, "Internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// statusOf maps an error to the HTTP status of its page through the one
// shared table.
func statusOf(err error) int { return httperr.Status(err) }

var titles = map[int]string{
	http.StatusBadRequest:          "Sign-in failed",
	http.StatusUnauthorized:        "Sign-in failed",
	http.StatusForbidden:           "Access refused",
	http.StatusNotFound:            "Not found",
	http.StatusConflict:            "Sign-in failed",
	http.StatusServiceUnavailable:  "Temporarily unavailable",
	http.StatusInternalServerError: "Internal error",
}

// fail answers with an error page: what happened (the error's user-safe
// message), whom to ask (the tenant's support contact), and a reference id
// that the log line carries too. Unexpected errors show only "Internal
// error"; their cause goes to the log.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, t *gatehouse.Tenant, err error, retry ...string) {
	status := statusOf(err)
	rid := requestID(r)
	attrs := []any{"request_id", rid, "status", status, "path", r.URL.Path, "err", err}
	if t != nil {
		attrs = append(attrs, "tenant", t.ID)
	}
	if reason := gatehouse.ErrorReason(err); reason != "" {
		attrs = append(attrs, "reason", reason)
	}
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "web request failed", attrs...)
	} else {
		s.log.InfoContext(r.Context(), "web request refused", attrs...)
	}
	p := &page{Title: titles[status], Tenant: t, RequestID: rid, Message: gatehouse.ErrorMessage(err)}
	if p.Title == "" {
		p.Title = "Sign-in failed"
	}
	if status == http.StatusInternalServerError {
		p.Message = "Internal error. Nothing was changed; please try again in a moment."
	}
	if len(retry) > 0 {
		p.Retry = retry[0]
	}
	s.render(w, r, status, "error", p)
}

func (s *Server) handleAsset(w http.ResponseWriter, r *http.Request) {
	var body []byte
	switch r.PathValue("file") {
	case "web.css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		body = css
	case "autopost.js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		body = autopostJS
	default:
		s.fail(w, r, nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "There is no page at this address."))
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(body)
}
