// Package server wires every part into one HTTP handler: the admin API, SCIM,
// the login flow and the health endpoints, behind the common middleware. It
// is the only package besides cmd/ that knows the concrete types.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/config"
	"github.com/gatehouse-sso/gatehouse/metrics"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
	"github.com/gatehouse-sso/gatehouse/tracing"
)

// Server is one Gatehouse instance. It answers /healthz at once and every
// other route once the database has been opened (503 until then).
type Server struct {
	cfg     *config.Config
	log     *slog.Logger
	keyring *secret.Keyring
	// adminDigest is the SHA-256 of the superuser token.
	adminDigest []byte
	// NewAdminToken is set when this start generated the superuser token;
	// it is shown once.
	NewAdminToken string
	clock         gatehouse.Clock
	metrics       *metrics.Metrics

	store atomic.Pointer[sqlstore.Store]
	app   atomic.Pointer[http.Handler]
	// stopWebhooks stops the webhook delivery worker and waits for it.
	stopWebhooks func()
	// tracing is nil when OpenTelemetry tracing is off.
	tracing *tracing.Provider
}

// New loads the root key and the superuser token. It does not touch the
// database.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log, clock: gatehouse.SystemClock{}, metrics: metrics.New()}
	var err error
	if cfg.RootKey != nil {
		s.keyring, err = secret.NewKeyring("env", cfg.RootKey)
	} else {
		var created bool
		s.keyring, created, err = secret.LoadOrCreateKeyring(cfg.RootKeyFile)
		if created {
			log.Info("generated a root key for encrypting stored secrets; back it up with the database", "file", cfg.RootKeyFile)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	if err := s.loadAdminToken(); err != nil {
		return nil, err
	}
	if s.tracing, err = tracing.Start(context.Background(), cfg.Tracing, Version, log); err != nil {
		return nil, err
	}
	if s.tracing != nil {
		s.log = slog.New(tracing.LogHandler(log.Handler()))
		s.log.Info("tracing on: spans exported over OTLP/HTTP", "endpoint", cfg.Tracing.Endpoint,
			"service_name", cfg.Tracing.ServiceName, "sampler", cfg.Tracing.Sampler)
	}
	return s, nil
}

// Version is reported as service.version in traces; main sets it.
var Version = "dev"

// Tracing returns the tracer provider, nil when tracing is off.
func (s *Server) Tracing() *tracing.Provider { return s.tracing }

// adminTokenFile keeps the digest (never the token) of a generated
// superuser token, so it survives restarts.
func (s *Server) adminTokenFile() string { return filepath.Join(s.cfg.DataDir, "admin-token.sha256") }

func (s *Server) loadAdminToken() error {
	if s.cfg.AdminToken != "" {
		s.adminDigest = secret.Digest(s.cfg.AdminToken)
		return nil
	}
	data, err := os.ReadFile(s.adminTokenFile())
	if err == nil {
		d, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(d) != sha256.Size {
			return fmt.Errorf("%s is corrupt: delete it to have a new superuser token generated", s.adminTokenFile())
		}
		s.adminDigest = d
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", s.adminTokenFile(), err)
	}
	tok := secret.NewToken("gh_su_")
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("GATEHOUSE_DATA_DIR: %w", err)
	}
	if err := os.WriteFile(s.adminTokenFile(), []byte(hex.EncodeToString(secret.Digest(tok))+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", s.adminTokenFile(), err)
	}
	s.adminDigest = secret.Digest(tok)
	s.NewAdminToken = tok
	return nil
}

// Keyring returns the root keyring.
func (s *Server) Keyring() *secret.Keyring { return s.keyring }

// Store returns the opened store, or nil before Open.
func (s *Server) Store() *sqlstore.Store { return s.store.Load() }

// Open opens the database (running migrations) and builds the routes.
func (s *Server) Open(ctx context.Context) error {
	st, err := sqlstore.Open(ctx, s.cfg.DatabaseURL, sqlstore.Options{
		Synchronous: s.cfg.SQLiteSynchronous,
		MaxConns:    s.cfg.DatabaseMaxConns,
		Clock:       s.clock,
		Logger:      s.log,
	})
	if err != nil {
		return err
	}
	h, err := s.routes(st)
	if err != nil {
		st.Close()
		return err
	}
	s.metrics.RegisterDB(st.Engine(), st.DB())
	s.store.Store(st)
	s.app.Store(&h)
	return nil
}

// OpenWithRetry opens the database, retrying with backoff until it answers
// or ctx ends; meanwhile /readyz says 503.
func (s *Server) OpenWithRetry(ctx context.Context) error {
	delay := 250 * time.Millisecond
	for {
		err := s.Open(ctx)
		if err == nil {
			return nil
		}
		s.log.Warn("database not ready; retrying", "error", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// MetricsHandler serves /metrics (for a listener of its own when
// GATEHOUSE_METRICS_ADDR is set).
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	return mux
}

// Close closes the store and flushes the spans not exported yet.
func (s *Server) Close() error {
	if s.stopWebhooks != nil {
		s.stopWebhooks()
	}
	var err error
	if st := s.store.Load(); st != nil {
		err = st.Close()
	}
	if terr := s.tracing.Shutdown(5 * time.Second); terr != nil {
		s.log.Warn("tracing: spans not flushed at shutdown", "error", terr)
	}
	return err
}

// Handler is the whole HTTP surface.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", s.metrics.Handler())
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		app := s.app.Load()
		if app == nil {
			// Authentication comes first on the admin API even now: a
			// request without the superuser token cannot be judged
			// without the database, except that no token is always 401.
			if strings.HasPrefix(r.URL.Path, "/api/") && secret.BearerToken(r.Header.Get("Authorization")) == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"A bearer token is required."}}`))
				return
			}
			writeUnavailable(w, r)
			return
		}
		(*app).ServeHTTP(w, r)
	})
	var h http.Handler = mux
	h = s.metrics.Middleware(h)
	h = withSecurityHeaders(s.cfg.SecureCookies(), h)
	h = withLogAndRecover(s.log, h)
	// Inside the request id (an attribute of the span), outside the log
	// (error lines carry the trace id; a recovered panic is a traced 500).
	h = s.tracing.Handler(h, func(r *http.Request) string { return r.Header.Get(RequestIDHeader) },
		tracing.TrustedPeer(s.cfg.TrustedProxies))
	h = withRequestID(h)
	return h
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	st := s.store.Load()
	if st == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"starting","database":"not connected"}`))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := st.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"unavailable","database":"not answering"}`))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ready"}`))
}

// writeUnavailable answers in the caller's format while the database is
// not open yet.
func writeUnavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "5")
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/"):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"The database is not available yet; try again shortly."}}`))
	case strings.HasPrefix(r.URL.Path, "/scim/"):
		w.Header().Set("Content-Type", "application/scim+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"503","detail":"The database is not available yet; try again shortly."}`))
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`<!doctype html><html lang="en"><title>Starting</title><h1>Gatehouse is starting</h1><p>The database is not available yet. Try again in a few seconds.</p></html>`))
	}
}
