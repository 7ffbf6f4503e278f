// Package tracing is Gatehouse's optional OpenTelemetry tracing: one span per
// HTTP request, per outbound request to an identity provider and per store
// transaction, exported over OTLP/HTTP (protobuf).
//
// It is off unless configured (ConfigFromEnv). Off, Start returns a nil
// *Provider and every method of a nil *Provider hands back what it was given,
// so the rest of the server pays nothing for it.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName names the instrumentation scope of Gatehouse's own spans.
const ScopeName = "github.com/gatehouse-sso/gatehouse"

// RequestIDAttr is the span attribute carrying the X-Request-Id, the same id
// as the logs' request_id and the audit events'.
const RequestIDAttr = "gatehouse.request_id"

// Config says whether and where to export spans. The zero value is off.
type Config struct {
	Enabled bool
	// Endpoint is the full URL of the OTLP/HTTP traces endpoint
	// (http://host:4318/v1/traces).
	Endpoint string
	// ServiceName is the service.name resource attribute.
	ServiceName string
	// Sampler is an OTEL_TRACES_SAMPLER name; SamplerArg its ratio.
	Sampler    string
	SamplerArg float64
}

// ConfigFromEnv reads the standard OpenTelemetry variables (and
// GATEHOUSE_TRACING) through getenv. Tracing is on when
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is set, or
// GATEHOUSE_TRACING=otlp; GATEHOUSE_TRACING=off, OTEL_SDK_DISABLED=true or
// OTEL_TRACES_EXPORTER=none turn it off. Every error names its variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	c := Config{ServiceName: "gatehouse", Sampler: "parentbased_always_on", SamplerArg: 1}
	base, traces := get("OTEL_EXPORTER_OTLP_ENDPOINT"), get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	switch v := strings.ToLower(get("GATEHOUSE_TRACING")); v {
	case "":
		c.Enabled = base != "" || traces != ""
	case "otlp":
		c.Enabled = true
	case "off", "none":
		return Config{}, nil
	default:
		return Config{}, fmt.Errorf("GATEHOUSE_TRACING %q: want otlp or off", v)
	}
	if strings.EqualFold(get("OTEL_SDK_DISABLED"), "true") {
		return Config{}, nil
	}
	switch v := strings.ToLower(get("OTEL_TRACES_EXPORTER")); v {
	case "", "otlp":
	case "none":
		return Config{}, nil
	default:
		return Config{}, fmt.Errorf("OTEL_TRACES_EXPORTER %q: Gatehouse exports traces with otlp (or none)", v)
	}
	if !c.Enabled {
		return Config{}, nil
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := get(k); v != "" {
			if v != "http/protobuf" {
				return Config{}, fmt.Errorf("%s %q: Gatehouse exports OTLP over http/protobuf (port 4318), not grpc or http/json", k, v)
			}
			break
		}
	}
	// OTLP exporter spec: the signal-specific URL is used as is; the base
	// URL gets "v1/traces" appended.
	switch {
	case traces != "":
		c.Endpoint = traces
	case base != "":
		c.Endpoint = strings.TrimRight(base, "/") + "/v1/traces"
	default:
		c.Endpoint = "http://localhost:4318/v1/traces"
	}
	if !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		k := "OTEL_EXPORTER_OTLP_ENDPOINT"
		if traces != "" {
			k = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
		}
		return Config{}, fmt.Errorf("%s %q: want an http:// or https:// URL", k, c.Endpoint)
	}
	if v := get("OTEL_SERVICE_NAME"); v != "" {
		c.ServiceName = v
	}
	if v := strings.ToLower(get("OTEL_TRACES_SAMPLER")); v != "" {
		switch v {
		case "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio":
			c.Sampler = v
		default:
			return Config{}, fmt.Errorf("OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", v)
		}
	}
	if v := get("OTEL_TRACES_SAMPLER_ARG"); v != "" && strings.HasSuffix(c.Sampler, "traceidratio") {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return Config{}, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a ratio from 0 to 1", v)
		}
		c.SamplerArg = f
	}
	return c, nil
}

func (c Config) sampler() sdktrace.Sampler {
	switch c.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(c.SamplerArg)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SamplerArg))
	}
	return sdktrace.ParentBased(sdktrace.AlwaysSample())
}

// Provider is a running tracer provider. A nil *Provider is tracing off.
type Provider struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// Start builds the exporter and provider, or returns nil, nil when cfg is
// off. Export headers, timeout, compression and TLS files come from the
// exporter's own OTEL_EXPORTER_OTLP_* variables in the process environment.
// Export failures are logged at warn on log.
func Start(ctx context.Context, cfg Config, version string, log *slog.Logger) (*Provider, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(version)))
	if err != nil {
		// Only a schema URL conflict; keep the service name regardless.
		res = resource.NewSchemaless(semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(version))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(cfg.sampler()),
	)
	if log != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "error", err) }))
	}
	return &Provider{
		tp:     tp,
		tracer: tp.Tracer(ScopeName),
		prop:   propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

// SetGlobal makes p the process's global provider and propagator, so
// libraries with their own instrumentation (the OpenID provider's) join the
// traces. For main; tests that start several servers leave it alone.
func (p *Provider) SetGlobal() {
	if p == nil {
		return
	}
	otel.SetTracerProvider(p.tp)
	otel.SetTextMapPropagator(p.prop)
}

// TracerProvider returns the SDK provider (nil when off).
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return nil
	}
	return p.tp
}

// ForceFlush exports the spans ended so far.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.tp.ForceFlush(ctx)
}

// Shutdown flushes the remaining spans and stops the exporter, waiting at
// most timeout.
func (p *Provider) Shutdown(timeout time.Duration) error {
	if p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.tp.Shutdown(ctx)
}

// Handler traces every request through h. The span is named by method and
// route pattern (the ServeMux pattern the request matched, a route group
// such as "/api/v1/" where the final route is chosen deeper), never the raw
// path with its ids. trusted reports whether a request's peer may continue
// its caller's trace: others (anyone on the internet) start a new trace
// linked to the one they sent, so they cannot force sampling on us.
func (p *Provider) Handler(h http.Handler, requestID func(*http.Request) string, trusted func(*http.Request) bool) http.Handler {
	if p == nil {
		return h
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := requestID(r); id != "" {
			trace.SpanFromContext(r.Context()).SetAttributes(attribute.String(RequestIDAttr, id))
		}
		h.ServeHTTP(w, r)
	})
	opts := []otelhttp.Option{
		otelhttp.WithTracerProvider(p.tp),
		otelhttp.WithPropagators(p.prop),
		otelhttp.WithSpanNameFormatter(SpanName),
	}
	if trusted != nil {
		opts = append(opts, otelhttp.WithPublicEndpointFn(func(r *http.Request) bool { return !trusted(r) }))
	}
	return otelhttp.NewHandler(inner, "http", opts...)
}

// SpanName is "METHOD pattern" once the request is routed, and the method
// alone before (otelhttp names the span again after routing).
func SpanName(_ string, r *http.Request) string {
	p := r.Pattern
	if p == "" {
		return r.Method
	}
	if m, rest, ok := strings.Cut(p, " "); ok && !strings.Contains(m, "/") {
		p = rest // the pattern's own method
	}
	return r.Method + " " + p
}

// Transport traces outbound requests through rt and sends the W3C
// traceparent with them.
func (p *Provider) Transport(rt http.RoundTripper) http.RoundTripper {
	if p == nil {
		return rt
	}
	return otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(p.tp),
		otelhttp.WithPropagators(p.prop),
	)
}

// Client returns c with a traced transport (c itself when off).
func (p *Provider) Client(c *http.Client) *http.Client {
	if p == nil || c == nil {
		return c
	}
	cc := *c
	rt := cc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	cc.Transport = p.Transport(rt)
	return &cc
}

// TrustedPeer reports whether r comes straight from loopback or one of the
// prefixes (the server's trusted proxies).
func TrustedPeer(prefixes []netip.Prefix) func(*http.Request) bool {
	return func(r *http.Request) bool {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			return false
		}
		a := ap.Addr().Unmap()
		if a.IsLoopback() {
			return true
		}
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
}
