// Package scim is Gatehouse's SCIM 2.0 service provider (RFC 7643, RFC
// 7644): Users (with the enterprise extension), Groups, discovery
// endpoints, filtering, PATCH, ETags and Bulk, for one tenant per bearer
// token. It is tested against the request shapes Okta and Microsoft Entra
// ID send (see docs/scim.md).
package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/scim/filter"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// Config is what the SCIM handler needs.
type Config struct {
	Store  gatehouse.Store
	Clock  gatehouse.Clock
	Logger *slog.Logger
	// PublicURL is the server's external base URL; resource locations are
	// PublicURL + "/scim/v2/...".
	PublicURL string
	// MaxBodyBytes bounds request bodies; default 1 MiB (also the Bulk
	// maxPayloadSize advertised in ServiceProviderConfig).
	MaxBodyBytes int64
	// MaxFilterLength and MaxFilterDepth bound filters and PATCH paths
	// before they are parsed; defaults 4096 bytes and 16 levels.
	MaxFilterLength int
	MaxFilterDepth  int
	// MaxBulkOperations per Bulk request; default 1000.
	MaxBulkOperations int
	// MaxResults per page of a list; default 1000.
	MaxResults int
}

// Prefix is where the handler serves.
const Prefix = "/scim/v2"

// ContentType is the SCIM media type (RFC 7644 §3.1).
const ContentType = "application/scim+json"

// TokenPrefix starts every SCIM bearer token.
const TokenPrefix = "gh_scim_"

// touchEvery bounds how often a token's last-used time is written.
const touchEvery = time.Minute

// Server is the SCIM handler.
type Server struct {
	cfg    Config
	store  gatehouse.Store
	clock  gatehouse.Clock
	log    *slog.Logger
	base   string // PublicURL + Prefix
	limits filter.Limits
}

// New returns the SCIM handler serving full paths under /scim/v2/.
func New(cfg Config) http.Handler { return NewServer(cfg) }

// NewServer is New with the concrete type, for tests.
func NewServer(cfg Config) *Server {
	if cfg.Clock == nil {
		cfg.Clock = gatehouse.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxFilterLength <= 0 {
		cfg.MaxFilterLength = 4096
	}
	if cfg.MaxFilterDepth <= 0 {
		cfg.MaxFilterDepth = 16
	}
	if cfg.MaxBulkOperations <= 0 {
		cfg.MaxBulkOperations = 1000
	}
	if cfg.MaxResults <= 0 {
		cfg.MaxResults = 1000
	}
	return &Server{
		cfg: cfg, store: cfg.Store, clock: cfg.Clock, log: cfg.Logger,
		base:   strings.TrimRight(cfg.PublicURL, "/") + Prefix,
		limits: filter.Limits{MaxLength: cfg.MaxFilterLength, MaxDepth: cfg.MaxFilterDepth},
	}
}

// caller is the authenticated SCIM client: a token, hence one tenant.
type caller struct {
	tenantID  string
	tokenID   string
	requestID string
}

func (c *caller) actor() gatehouse.Actor {
	return gatehouse.Actor{Type: "scim", ID: c.tokenID, RequestID: c.requestID}
}

// precond carries the conditional-request headers (RFC 7644 §3.14).
type precond struct {
	ifMatch, ifNoneMatch string
}

// result is what an operation produced: a status, a body and headers.
type result struct {
	status   int
	doc      any
	version  int64 // > 0 sets ETag
	location string
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok || (path != "" && path[0] != '/') {
		s.writeError(w, r, gatehouse.Errorf(gatehouse.ENOTFOUND, "Not found."))
		return
	}
	c, err := s.authenticate(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scim"`)
		s.writeError(w, r, err)
		return
	}
	var body []byte
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = errBodyTooLarge
			} else {
				err = scimErr(typeInvalidSyntax, "The request body could not be read.")
			}
			s.writeError(w, r, err)
			return
		}
	}
	pc := precond{ifMatch: r.Header.Get("If-Match"), ifNoneMatch: r.Header.Get("If-None-Match")}
	res, err := s.dispatch(r.Context(), c, r.Method, strings.TrimPrefix(path, "/"), r.URL.Query(), body, pc)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.write(w, res)
}

// tokenLookup is the store's transaction-free token read (sqlstore).
type tokenLookup interface {
	LookupSCIMToken(ctx context.Context, hash []byte) (*gatehouse.SCIMToken, error)
}

// authenticate resolves the bearer token to its tenant. The tenant comes
// from the token only, never from the URL or body.
func (s *Server) authenticate(r *http.Request) (*caller, error) {
	unauth := gatehouse.Errorf(gatehouse.EUNAUTHORIZED, "A valid SCIM bearer token is required.")
	tok := secret.BearerToken(r.Header.Get("Authorization"))
	if !strings.HasPrefix(tok, TokenPrefix) {
		return nil, unauth
	}
	// The lookup is by SHA-256 digest: the database index never sees the
	// token, and timing reveals nothing about it.
	// sqlstore's LookupSCIMToken keeps tokens it read for one second: a
	// token revoked through this replica fails on the next request, on
	// other replicas within a second of the revocation's commit (bound
	// stated and tested in store/sqlstore/scimtokens.go).
	var t *gatehouse.SCIMToken
	var err error
	if fast, ok := gatehouse.StoreAs[tokenLookup](s.store); ok {
		t, err = fast.LookupSCIMToken(r.Context(), secret.Digest(tok))
	} else {
		err = s.store.View(r.Context(), func(tx gatehouse.Tx) error {
			t, err = tx.GetSCIMTokenByHash(r.Context(), secret.Digest(tok))
			return err
		})
	}
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil, unauth
	}
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= touchEvery {
		// Best effort: a failed touch must not fail provisioning.
		if err := s.store.Update(r.Context(), func(tx gatehouse.Tx) error { return tx.TouchSCIMToken(r.Context(), t.ID, now) }); err != nil {
			s.log.WarnContext(r.Context(), "scim: touch token", "token_id", t.ID, "err", err)
		}
	}
	return &caller{tenantID: t.TenantID, tokenID: t.ID, requestID: r.Header.Get("X-Request-Id")}, nil
}

// dispatch routes one operation; Bulk calls it for each of its operations.
func (s *Server) dispatch(ctx context.Context, c *caller, method, path string, q url.Values, body []byte, pc precond) (*result, error) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) > 2 {
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "Not found.")
	}
	endpoint := strings.ToLower(seg[0])
	id := ""
	if len(seg) == 2 {
		id, _ = url.PathUnescape(seg[1])
	}
	switch endpoint {
	case "users", "groups":
		rt := userType
		if endpoint == "groups" {
			rt = groupType
		}
		return s.resource(ctx, c, rt, method, id, q, body, pc)
	case ".search":
		if id != "" {
			break
		}
		if method != http.MethodPost {
			return nil, errMethod()
		}
		return s.searchPost(ctx, c, nil, body)
	case "serviceproviderconfig", "resourcetypes", "schemas":
		if method != http.MethodGet {
			return nil, errMethod()
		}
		return s.discovery(endpoint, id)
	case "bulk":
		if id != "" {
			break
		}
		if method != http.MethodPost {
			return nil, errMethod()
		}
		return s.bulk(ctx, c, body)
	case "me":
		return nil, errNotImplemented("/Me")
	}
	return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "Not found.")
}

func (s *Server) resource(ctx context.Context, c *caller, rt *resourceType, method, id string, q url.Values, body []byte, pc precond) (*result, error) {
	if id == ".search" {
		if method != http.MethodPost {
			return nil, errMethod()
		}
		return s.searchPost(ctx, c, rt, body)
	}
	if id == "" {
		switch method {
		case http.MethodGet:
			lp, err := s.listParamsFromQuery(q)
			if err != nil {
				return nil, err
			}
			return s.list(ctx, c, rt, lp)
		case http.MethodPost:
			doc, err := s.decode(body)
			if err != nil {
				return nil, err
			}
			return s.create(ctx, c, rt, doc, q)
		}
		return nil, errMethod()
	}
	proj, err := projectionFromQuery(q)
	if err != nil {
		return nil, err
	}
	switch method {
	case http.MethodGet:
		return s.get(ctx, c, rt, id, pc, proj)
	case http.MethodPut, http.MethodPatch:
		doc, err := s.decode(body)
		if err != nil {
			return nil, err
		}
		return s.modify(ctx, c, rt, id, method == http.MethodPatch, doc, pc, proj)
	case http.MethodDelete:
		return s.remove(ctx, c, rt, id, pc)
	}
	return nil, errMethod()
}

// decode parses a JSON object body, keeping numbers exact.
func (s *Server) decode(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil || doc == nil {
		return nil, scimErr(typeInvalidSyntax, "The request body is not a JSON object.")
	}
	if dec.More() {
		return nil, scimErr(typeInvalidSyntax, "The request body has data after the JSON object.")
	}
	return doc, nil
}

func (s *Server) write(w http.ResponseWriter, res *result) {
	h := w.Header()
	if res.version > 0 {
		h.Set("ETag", etag(res.version))
	}
	if res.location != "" {
		h.Set("Location", res.location)
	}
	if res.doc == nil {
		w.WriteHeader(res.status)
		return
	}
	// JSON for machines, not HTML: "<" and "&" stay readable (html false).
	// appendJSON writes what encoding/json's Encoder would, newline
	// included (jsonw.go).
	b, err := appendJSON(make([]byte, 0, 1024), res.doc, false)
	if err != nil {
		s.log.Error("scim: encode response", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", ContentType)
	w.WriteHeader(res.status)
	_, _ = w.Write(append(b, '\n'))
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, doc := errorDoc(err)
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "scim: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		s.log.DebugContext(r.Context(), "scim: request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusNotModified {
		w.WriteHeader(status)
		return
	}
	s.write(w, &result{status: status, doc: doc})
}

// etag is the weak entity tag of a version (RFC 7644 §3.14: meta.version
// and the ETag header carry the same value).
func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

// etagMatches reports whether an If-Match / If-None-Match list names the
// version, comparing weakly (RFC 7232 §2.3.2).
func etagMatches(list string, version int64) bool {
	want := strconv.FormatInt(version, 10)
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		t = strings.TrimPrefix(t, "W/")
		if strings.Trim(t, `"`) == want {
			return true
		}
	}
	return false
}

// check applies the preconditions to the current version of a resource.
// A read answers 304 when If-None-Match matches; a write answers 412 when
// If-Match does not or If-None-Match does.
func (pc precond) check(version int64, read bool) error {
	if pc.ifMatch != "" && !etagMatches(pc.ifMatch, version) {
		return &gatehouse.Error{Code: gatehouse.EPRECONDITION, Message: "The resource has changed (If-Match does not match its version)."}
	}
	if pc.ifNoneMatch != "" && etagMatches(pc.ifNoneMatch, version) {
		if read {
			return errNotModified()
		}
		return &gatehouse.Error{Code: gatehouse.EPRECONDITION, Message: "If-None-Match matches the resource's current version."}
	}
	return nil
}

func (s *Server) location(rt *resourceType, id string) string {
	return s.base + rt.Endpoint + "/" + url.PathEscape(id)
}

func (s *Server) meta(rt *resourceType, id string, created, updated time.Time, version int64) map[string]any {
	return map[string]any{
		"resourceType": rt.Name,
		"created":      created.UTC().Format(time.RFC3339Nano),
		"lastModified": updated.UTC().Format(time.RFC3339Nano),
		"location":     s.location(rt, id),
		"version":      etag(version),
	}
}

// maxVersionRetries bounds how often a change is re-run after losing a
// race with another change of the same resource. Each round lets at least
// one of the competing requests through, so this is also how many
// simultaneous changes of one resource are sure to succeed.
const maxVersionRetries = 25

// update runs fn in a transaction. When the request carried no
// precondition and fn lost an optimistic-concurrency race (another request
// changed the resource between our read and our write: EPRECONDITION from
// the store, e.g. Entra adding members to one group in parallel PATCHes),
// fn runs again on the fresh state instead of answering 412 to a client
// that never asked for a condition.
func (s *Server) update(ctx context.Context, pc precond, fn func(tx gatehouse.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.store.Update(ctx, fn)
		if !gatehouse.IsCode(err, gatehouse.EPRECONDITION) || pc.ifMatch != "" || pc.ifNoneMatch != "" {
			return err
		}
		if attempt == maxVersionRetries {
			return &gatehouse.Error{Code: gatehouse.ECONFLICT, Message: "The resource is being changed by other requests; try again.", Err: err}
		}
		// A short random pause spreads the losers out.
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(rand.IntN(attempt*1000)+100) * time.Microsecond):
		}
	}
}

// record writes the audit event and the outbox event of a change, in the
// change's transaction.
func (s *Server) record(ctx context.Context, tx gatehouse.Tx, c *caller, action, targetType, targetID string, details map[string]any, event string, payload any) error {
	now := s.clock.Now()
	if err := tx.AppendAudit(ctx, &gatehouse.AuditEvent{
		ID: gatehouse.NewID("aud"), TenantID: c.tenantID, Time: now,
		ActorType: "scim", ActorID: c.tokenID, Action: action,
		TargetType: targetType, TargetID: targetID, RequestID: c.requestID, Details: details,
	}); err != nil {
		return err
	}
	if event == "" {
		return nil
	}
	var b []byte
	var err error
	if ev, ok := payload.(userEvent); ok {
		b, err = appendUserEvent(make([]byte, 0, 512), ev.user)
	} else {
		b, err = json.Marshal(payload)
	}
	if err != nil {
		return err
	}
	return tx.AppendOutbox(ctx, &gatehouse.OutboxEvent{
		ID: gatehouse.NewID("obx"), TenantID: c.tenantID, Type: event, Payload: b, CreatedAt: now,
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
