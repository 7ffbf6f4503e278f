// Package metrics exposes Prometheus metrics, every name prefixed
// "gatehouse_": HTTP traffic by area, logins by tenant, connection and
// outcome, refusals by reason, JIT creations, and the database pool.
package metrics

import (
	"context"
	"database/sql"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/provision"
)

// Metrics is one registry of Gatehouse's metrics.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	logins    *prometheus.CounterVec
	refusals  *prometheus.CounterVec
	jit       *prometheus.CounterVec
	resolveMs *prometheus.HistogramVec
}

// New registers the metrics, plus the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_http_requests_total", Help: "HTTP requests by area (api, scim, login, sso, oidc, console, other), method and status code.",
	}, []string{"area", "method", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gatehouse_http_request_duration_seconds", Help: "HTTP request latency by area.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"area"})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_logins_total", Help: "SSO logins resolved, by tenant, connection and outcome (existing, linked, created, pending, refused).",
	}, []string{"tenant", "connection", "outcome"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_login_refusals_total", Help: "Refused logins by tenant and reason.",
	}, []string{"tenant", "reason"})
	m.jit = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_jit_users_created_total", Help: "Active users created just in time, by tenant (users created pending approval are counted under gatehouse_logins_total outcome pending).",
	}, []string{"tenant"})
	m.resolveMs = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gatehouse_provision_duration_seconds", Help: "Time to resolve an identity to a user (one transaction), by outcome.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
	}, []string{"outcome"})
	m.reg.MustRegister(m.requests, m.latency, m.logins, m.refusals, m.jit, m.resolveMs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "gatehouse"}))
	return m
}

// RegisterDB adds the database pool's statistics.
func (m *Metrics) RegisterDB(name string, db *sql.DB) {
	m.reg.MustRegister(collectors.NewDBStatsCollector(db, name))
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// area groups paths so labels stay few.
func area(path string) string {
	switch {
	case strings.HasPrefix(path, "/api/"):
		return "api"
	case strings.HasPrefix(path, "/scim/"):
		return "scim"
	case strings.HasPrefix(path, "/sso/"):
		return "sso"
	case strings.HasPrefix(path, "/console"):
		return "console"
	case strings.HasPrefix(path, "/t/"):
		if strings.Contains(path, "/login") || strings.HasSuffix(path, "/logout") {
			return "login"
		}
		return "oidc"
	case path == "/login" || path == "/logout":
		return "login"
	}
	return "other"
}

type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(c int) {
	if r.code == 0 {
		r.code = c
	}
	r.ResponseWriter.WriteHeader(c)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Middleware counts and times every request.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		a := area(r.URL.Path)
		if rec.code == 0 {
			rec.code = 200
		}
		m.requests.WithLabelValues(a, r.Method, strconv.Itoa(rec.code)).Inc()
		m.latency.WithLabelValues(a).Observe(time.Since(start).Seconds())
	})
}

// Resolver is what the login flow calls to provision.
type Resolver interface {
	Resolve(ctx context.Context, tenant *gatehouse.Tenant, conn *gatehouse.Connection, id *gatehouse.Identity, mode provision.Mode) (*provision.Result, error)
}

// InstrumentResolver counts every real (non-dry-run) resolution.
func (m *Metrics) InstrumentResolver(r Resolver) Resolver { return &instrumented{m: m, next: r} }

type instrumented struct {
	m    *Metrics
	next Resolver
}

func (i *instrumented) Resolve(ctx context.Context, tenant *gatehouse.Tenant, conn *gatehouse.Connection, id *gatehouse.Identity, mode provision.Mode) (*provision.Result, error) {
	start := time.Now()
	res, err := i.next.Resolve(ctx, tenant, conn, id, mode)
	if mode == provision.DryRun {
		return res, err
	}
	outcome := ""
	if res != nil {
		outcome = res.Outcome
	}
	if err != nil && outcome != provision.OutcomePending {
		outcome = "refused"
		reason := gatehouse.ErrorReason(err)
		if reason == "" {
			reason = gatehouse.ErrorCode(err)
		}
		i.m.refusals.WithLabelValues(tenant.Slug, reason).Inc()
	}
	i.m.logins.WithLabelValues(tenant.Slug, conn.ID, outcome).Inc()
	if err == nil && res != nil && res.Outcome == provision.OutcomeCreated {
		i.m.jit.WithLabelValues(tenant.Slug).Inc()
	}
	i.m.resolveMs.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	return res, err
}
