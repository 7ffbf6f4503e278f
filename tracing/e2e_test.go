package tracing_test

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/tracing"
	"github.com/gatehouse-sso/gatehouse/tracing/tracingtest"
)

var attr = tracingtest.Attr

func flush(t *testing.T, p *tracing.Provider) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatalf("force flush: %v", err)
	}
}

// A request to a running instance is exported as one server span named by
// its route, with its status code and request id, in the trace its caller's
// traceparent named, with a child span for its store transaction.
func TestRequestSpanExported(t *testing.T) {
	rc := tracingtest.NewReceiver(t)
	gh := servertest.Start(t, servertest.Options{Env: map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": rc.URL,
		"OTEL_SERVICE_NAME":           "gatehouse-test",
	}})
	if gh.Server.Tracing() == nil {
		t.Fatal("OTEL_EXPORTER_OTLP_ENDPOINT set, tracing is off")
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const requestID = "req-trace-0001"
	for _, tc := range []struct {
		path, name, code string
	}{
		{"/api/v1/tenants", "GET /api/v1/", "200"},
		{"/t/nosuch/.well-known/openid-configuration", "GET /t/{tenant}/.well-known/openid-configuration", "404"},
		{"/healthz", "GET /healthz", "200"},
	} {
		req, _ := http.NewRequest("GET", gh.URL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+servertest.AdminToken)
		req.Header.Set("X-Request-Id", requestID+tc.code)
		req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got := strconv.Itoa(resp.StatusCode); got != tc.code {
			t.Fatalf("GET %s: %s, want %s", tc.path, got, tc.code)
		}
		flush(t, gh.Server.Tracing())
		spans := rc.Find(func(s *tracepb.Span) bool {
			return s.Kind == tracepb.Span_SPAN_KIND_SERVER && attr(s.Attributes, "url.path") == tc.path
		})
		if len(spans) != 1 {
			t.Fatalf("GET %s: %d server spans exported, want 1", tc.path, len(spans))
		}
		s := spans[0]
		if s.Name != tc.name {
			t.Errorf("GET %s: span name %q, want %q", tc.path, s.Name, tc.name)
		}
		if got := attr(s.Attributes, "http.response.status_code"); got != tc.code {
			t.Errorf("GET %s: http.response.status_code %q, want %s", tc.path, got, tc.code)
		}
		if got := attr(s.Attributes, tracing.RequestIDAttr); got != requestID+tc.code {
			t.Errorf("GET %s: %s %q, want %q", tc.path, tracing.RequestIDAttr, got, requestID+tc.code)
		}
		if got := hex.EncodeToString(s.TraceId); got != traceID {
			t.Errorf("GET %s: trace id %s, want the caller's %s (traceparent from loopback is trusted)", tc.path, got, traceID)
		}
		if tc.path == "/api/v1/tenants" {
			tx := rc.Find(func(c *tracepb.Span) bool {
				return c.Name == "store.View" && string(c.ParentSpanId) == string(s.SpanId)
			})
			if len(tx) == 0 {
				t.Errorf("GET %s: no store.View span under the request's span", tc.path)
			} else if got := attr(tx[0].Attributes, "db.system.name"); got != "sqlite" {
				t.Errorf("store.View db.system.name %q, want sqlite", got)
			}
		}
	}
	services := rc.Services()
	if len(services) == 0 || services[0] != "gatehouse-test" {
		t.Errorf("service.name %v, want gatehouse-test (OTEL_SERVICE_NAME)", services)
	}
}

// Without any tracing variable no provider (and so no exporter) exists and
// the handler is not wrapped.
func TestTracingOffByDefault(t *testing.T) {
	gh := servertest.Start(t, servertest.Options{})
	if p := gh.Server.Tracing(); p != nil {
		t.Fatalf("tracing on without configuration: %v", p)
	}
	resp, err := http.Get(gh.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
}

// Outbound requests (to identity providers) carry the W3C traceparent of
// the current span and are exported as client spans.
func TestOutboundTransport(t *testing.T) {
	rc := tracingtest.NewReceiver(t)
	p, err := tracing.Start(context.Background(), tracing.Config{Enabled: true, Endpoint: rc.URL + "/v1/traces", ServiceName: "gatehouse", Sampler: "parentbased_always_on"}, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(time.Second) })
	var got string
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("traceparent")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer idp.Close()

	ctx, span := p.TracerProvider().Tracer("test").Start(context.Background(), "login")
	client := p.Client(&http.Client{Timeout: 5 * time.Second})
	req, _ := http.NewRequestWithContext(ctx, "GET", idp.URL+"/.well-known/openid-configuration", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	span.End()
	flush(t, p)
	want := "00-" + span.SpanContext().TraceID().String() + "-"
	if len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("IdP saw traceparent %q, want one in trace %s", got, span.SpanContext().TraceID())
	}
	clients := rc.Find(func(s *tracepb.Span) bool { return s.Kind == tracepb.Span_SPAN_KIND_CLIENT })
	if len(clients) != 1 || clients[0].Name != "HTTP GET" || attr(clients[0].Attributes, "http.response.status_code") != "200" {
		t.Errorf("client spans %v, want one HTTP GET with status 200", clients)
	}
}

// BenchmarkHandler measures what a traced request costs over an untraced
// one (off, the handler is not wrapped at all).
func BenchmarkHandler(b *testing.B) {
	rc := tracingtest.NewReceiver(b)
	p, err := tracing.Start(context.Background(), tracing.Config{Enabled: true, Endpoint: rc.URL + "/v1/traces", ServiceName: "gatehouse", Sampler: "always_on"}, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Shutdown(5 * time.Second)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	reqID := func(*http.Request) string { return "req-bench-0001" }
	for _, bc := range []struct {
		name string
		p    *tracing.Provider
	}{{"off", nil}, {"on", p}} {
		h := bc.p.Handler(mux, reqID, tracing.TrustedPeer(nil))
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/healthz", nil))
			}
		})
	}
}
