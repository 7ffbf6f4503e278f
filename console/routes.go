package console

import (
	"context"
	"crypto/hmac"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

// call is the per-request context of a console page.
type call struct {
	p *principal
	t *gatehouse.Tenant // nil outside /console/t/{tenant}/
}

type handler func(c *Console, w http.ResponseWriter, r *http.Request, k *call) error

// scope of a route: who may open it.
type scope int

const (
	scopeOperator scope = iota // the operator only (tenants)
	scopeTenant                // the operator or the tenant's admins
)

type route struct {
	pattern string
	scope   scope
	h       handler
}

func routeTable() []route {
	t := Prefix + "/t/{tenant}"
	return []route{
		{"GET " + Prefix + "/{$}", scopeTenant, (*Console).operatorHome},
		{"GET " + Prefix + "/tenants", scopeOperator, (*Console).tenantsPage},
		{"GET " + Prefix + "/tenants/new", scopeOperator, (*Console).tenantNew},
		{"POST " + Prefix + "/tenants", scopeOperator, (*Console).tenantCreate},

		{"GET " + t + "/{$}", scopeTenant, (*Console).dashboard},
		{"GET " + t + "/settings", scopeTenant, (*Console).tenantSettings},
		{"POST " + t + "/settings", scopeTenant, (*Console).tenantUpdate},
		{"GET " + t + "/delete", scopeOperator, (*Console).tenantDeleteConfirm},
		{"POST " + t + "/delete", scopeOperator, (*Console).tenantDelete},

		{"GET " + t + "/connections", scopeTenant, (*Console).connectionsPage},
		{"GET " + t + "/connections/new", scopeTenant, (*Console).connectionNew},
		{"POST " + t + "/connections", scopeTenant, (*Console).connectionCreate},
		{"GET " + t + "/connections/{id}", scopeTenant, (*Console).connectionPage},
		{"POST " + t + "/connections/{id}", scopeTenant, (*Console).connectionUpdate},
		{"POST " + t + "/connections/{id}/jit", scopeTenant, (*Console).connectionJIT},
		{"POST " + t + "/connections/{id}/mapping", scopeTenant, (*Console).connectionMapping},
		{"GET " + t + "/connections/{id}/test", scopeTenant, (*Console).connectionTest},
		{"GET " + t + "/connections/{id}/delete", scopeTenant, (*Console).connectionDeleteConfirm},
		{"POST " + t + "/connections/{id}/delete", scopeTenant, (*Console).connectionDelete},

		{"GET " + t + "/users", scopeTenant, (*Console).usersPage},
		{"GET " + t + "/users/{id}", scopeTenant, (*Console).userPage},
		{"POST " + t + "/users/{id}/groups", scopeTenant, (*Console).userGroups},
		{"POST " + t + "/users/{id}/approve", scopeTenant, (*Console).userApprove},
		{"GET " + t + "/users/{id}/deactivate", scopeTenant, (*Console).userDeactivateConfirm},
		{"POST " + t + "/users/{id}/deactivate", scopeTenant, (*Console).userDeactivate},
		{"POST " + t + "/users/{id}/reactivate", scopeTenant, (*Console).userReactivate},

		{"GET " + t + "/groups", scopeTenant, (*Console).groupsPage},
		{"POST " + t + "/groups", scopeTenant, (*Console).groupCreate},
		{"GET " + t + "/groups/{id}", scopeTenant, (*Console).groupPage},
		{"GET " + t + "/groups/{id}/delete", scopeTenant, (*Console).groupDeleteConfirm},
		{"POST " + t + "/groups/{id}/delete", scopeTenant, (*Console).groupDelete},

		{"GET " + t + "/scim", scopeTenant, (*Console).scimPage},
		{"POST " + t + "/scim", scopeTenant, (*Console).scimCreate},
		{"GET " + t + "/scim/{id}/revoke", scopeTenant, (*Console).scimRevokeConfirm},
		{"POST " + t + "/scim/{id}/revoke", scopeTenant, (*Console).scimRevoke},

		{"GET " + t + "/apps", scopeTenant, (*Console).appsPage},
		{"POST " + t + "/apps", scopeTenant, (*Console).appCreate},
		{"GET " + t + "/apps/{id}", scopeTenant, (*Console).appPage},
		{"GET " + t + "/apps/{id}/rotate", scopeTenant, (*Console).appRotateConfirm},
		{"POST " + t + "/apps/{id}/rotate", scopeTenant, (*Console).appRotate},
		{"GET " + t + "/apps/{id}/delete", scopeTenant, (*Console).appDeleteConfirm},
		{"POST " + t + "/apps/{id}/delete", scopeTenant, (*Console).appDelete},

		{"GET " + t + "/webhooks", scopeTenant, (*Console).webhooksPage},
		{"POST " + t + "/webhooks", scopeTenant, (*Console).webhookCreate},
		{"GET " + t + "/webhooks/{id}", scopeTenant, (*Console).webhookPage},
		{"POST " + t + "/webhooks/{id}", scopeTenant, (*Console).webhookUpdate},
		{"GET " + t + "/webhooks/{id}/rotate", scopeTenant, (*Console).webhookRotateConfirm},
		{"POST " + t + "/webhooks/{id}/rotate", scopeTenant, (*Console).webhookRotate},
		{"GET " + t + "/webhooks/{id}/delete", scopeTenant, (*Console).webhookDeleteConfirm},
		{"POST " + t + "/webhooks/{id}/delete", scopeTenant, (*Console).webhookDelete},
		{"GET " + t + "/webhooks/{id}/deliveries", scopeTenant, (*Console).deliveriesPage},
		{"POST " + t + "/webhooks/{id}/deliveries/{delivery}/retry", scopeTenant, (*Console).deliveryRetry},

		{"GET " + t + "/import", scopeTenant, (*Console).importPage},
		{"POST " + t + "/import", scopeTenant, (*Console).importUpload},

		{"GET " + t + "/audit", scopeTenant, (*Console).auditPage},
	}
}

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, c.base+"/", http.StatusFound)
	})
	mux.HandleFunc("GET "+Prefix+"/signin", c.handleSignin)
	mux.HandleFunc("POST "+Prefix+"/signin", c.handleSigninToken)
	mux.HandleFunc("GET "+Prefix+"/signin/org", c.handleSigninOrg)
	mux.HandleFunc("GET "+Prefix+"/signin/sso/{tenant}", c.handleSigninSSO)
	mux.HandleFunc("POST "+Prefix+"/signout", c.handleSignout)
	mux.HandleFunc("GET "+Prefix+"/static/{file}", c.handleStatic)
	for _, rt := range routeTable() {
		mux.Handle(rt.pattern, c.wrap(rt))
	}
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		p := c.principalOf(w, r)
		if p == nil {
			c.toSignin(w, r)
			return
		}
		c.fail(w, r, p, errNotFound)
	})
	// CSRF, first layer: browsers say where a form comes from
	// (Sec-Fetch-Site, Origin); cross-origin POSTs are refused before any
	// handler runs. The per-session token in every form is the second.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, errCSRF)
	}))
	return cop.Handler(mux)
}

var errNotFound = gatehouse.Errorf(gatehouse.ENOTFOUND, "There is no such page in the console.")

// toSignin sends an anonymous browser to the sign-in page.
func (c *Console) toSignin(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, c.base+"/signin", http.StatusSeeOther)
}

// wrap authenticates (anonymous browsers go to sign-in), scopes the tenant
// (another tenant's admin sees 404, as if it did not exist), checks the
// CSRF token of every POST, then runs the handler.
func (c *Console) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := c.principalOf(w, r)
		if p == nil {
			c.toSignin(w, r)
			return
		}
		k := &call{p: p}
		if rt.scope == scopeOperator && !p.Superuser {
			c.fail(w, r, p, errNotFound)
			return
		}
		if ref := r.PathValue("tenant"); ref != "" {
			t, err := c.findTenant(r, ref)
			if err == nil && !p.Superuser && t.ID != p.TenantID {
				err = errNotFound
			}
			if err != nil {
				c.fail(w, r, p, err)
				return
			}
			k.t = t
		}
		if r.Method == http.MethodPost {
			// A file upload (bulk import) may be larger than a form.
			limit, multipart := int64(maxForm), strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data")
			if multipart {
				limit = maxUpload
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			var err error
			if multipart {
				err = r.ParseMultipartForm(maxUpload)
			} else {
				err = r.ParseForm()
			}
			if err != nil {
				c.fail(w, r, p, gatehouse.Errorf(gatehouse.EINVALID, "The form could not be read (it may be larger than %d bytes).", limit))
				return
			}
			// Constant-time comparison: the token is a secret of the session.
			if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(p.csrf)) {
				c.fail(w, r, p, errCSRF)
				return
			}
		}
		if err := rt.h(c, w, r, k); err != nil {
			c.fail(w, r, p, err, k.t)
		}
	})
}

// maxForm bounds a form post (SAML metadata XML is the largest field).
const maxForm = 1 << 20

// maxUpload bounds a multipart post: an import file, or its preview's
// confirmation (the file again, base64).
const maxUpload = 8 << 20

func (c *Console) findTenant(r *http.Request, ref string) (t *gatehouse.Tenant, err error) {
	ctx := r.Context()
	err = c.store.View(ctx, func(tx gatehouse.Tx) error {
		t, err = gatehouse.LookupTenant(ctx, tx, ref)
		return err
	})
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil, errNotFound
	}
	return t, err
}

// fail renders an error page: the user-safe message, the reference, and
// the cause in the log.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, p *principal, err error, tenant ...*gatehouse.Tenant) {
	status := http.StatusInternalServerError
	switch gatehouse.ErrorCode(err) {
	case gatehouse.EINVALID:
		status = http.StatusBadRequest
	case gatehouse.EUNAUTHORIZED:
		status = http.StatusUnauthorized
	case gatehouse.EFORBIDDEN:
		status = http.StatusForbidden
	case gatehouse.ENOTFOUND:
		status = http.StatusNotFound
	case gatehouse.ECONFLICT, gatehouse.EPRECONDITION:
		status = http.StatusConflict
	case gatehouse.EUNAVAILABLE:
		status = http.StatusServiceUnavailable
	}
	rid := r.Header.Get("X-Request-Id")
	if status >= 500 {
		c.log.ErrorContext(r.Context(), "console error", "err", err, "path", r.URL.Path, "request_id", rid)
	}
	var t *gatehouse.Tenant
	if len(tenant) > 0 {
		t = tenant[0]
	}
	v := &view{Title: "Something went wrong", Base: c.base, P: p, Tenant: t, Err: gatehouse.ErrorMessage(err), RequestID: rid}
	if p != nil {
		v.CSRF = p.csrf
	}
	c.renderView(w, status, "error", v)
}

// redirect sends the browser to a console path after a successful POST,
// with a flash message key (PRG: a reload does not post again).
func (c *Console) redirect(w http.ResponseWriter, r *http.Request, path, flash string) error {
	if flash != "" {
		p, frag, _ := strings.Cut(path, "#")
		sep := "?"
		if strings.Contains(p, "?") {
			sep = "&"
		}
		path = p + sep + "m=" + flash
		if frag != "" {
			path += "#" + frag
		}
	}
	http.Redirect(w, r, c.base+path, http.StatusSeeOther)
	return nil
}

// notFound words a missing object of the tenant for the page.
func notFound(err error, what string, k *call) error {
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return gatehouse.Errorf(gatehouse.ENOTFOUND, "There is no such %s in %s.", what, k.t.Name)
	}
	return err
}

// fetch reads one object of the call's tenant, by the {id} of the path,
// with a Tx method expression (gatehouse.Tx.GetApp).
func fetch[T any](c *Console, r *http.Request, k *call, what string, get func(tx gatehouse.Tx, ctx context.Context, tenantID, id string) (T, error)) (T, error) {
	ctx := r.Context()
	var out T
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		out, err = get(tx, ctx, k.t.ID, r.PathValue("id"))
		return err
	})
	return out, notFound(err, what, k)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// confirmed reports whether a destructive POST carries the confirmation
// page's answer; without it the handler shows the confirmation page.
func confirmed(r *http.Request) bool { return r.PostForm.Get("confirm") == "yes" }

// errNeedsConfirm answers a destructive POST that skipped the confirmation.
var errNeedsConfirm = gatehouse.Errorf(gatehouse.EINVALID, "This action needs a confirmation; open it from the console and confirm.")

// asFieldErrors turns a validation error into the form's inline errors;
// ok is false for any other error.
func asFieldErrors(err error) (map[string]string, bool) {
	var ge *gatehouse.Error
	if !errors.As(err, &ge) || ge.Field == "" || (ge.Code != gatehouse.EINVALID && ge.Code != gatehouse.ECONFLICT) {
		return nil, false
	}
	f := ge.Field
	for _, prefix := range []string{"jit.", "mapping."} {
		f = strings.TrimPrefix(f, prefix)
	}
	if i := strings.IndexAny(f, ".["); i > 0 {
		f = f[:i]
	}
	return map[string]string{f: ge.Message}, true
}
