package tracing

import (
	"bytes"
	"context"
	"github.com/gatehouse-sso/gatehouse"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/trace"
)

func TestConfigFromEnv(t *testing.T) {
	on := func(endpoint string) Config {
		return Config{Enabled: true, Endpoint: endpoint, ServiceName: "gatehouse", Sampler: "parentbased_always_on", SamplerArg: 1}
	}
	ratio := on("http://c:4318/v1/traces")
	ratio.Sampler, ratio.SamplerArg = "parentbased_traceidratio", 0.25
	named := on("http://localhost:4318/v1/traces")
	named.ServiceName = "sso-eu"
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{name: "nothing set: off", env: nil, want: Config{}},
		{name: "base endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, want: on("http://c:4318/v1/traces")},
		{name: "traces endpoint as is", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c/otlp/traces"}, want: on("https://c/otlp/traces")},
		{name: "GATEHOUSE_TRACING=otlp: local collector", env: map[string]string{"GATEHOUSE_TRACING": "otlp", "OTEL_SERVICE_NAME": "sso-eu"}, want: named},
		{name: "GATEHOUSE_TRACING=off wins", env: map[string]string{"GATEHOUSE_TRACING": "off", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: Config{}},
		{name: "OTEL_SDK_DISABLED", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: Config{}},
		{name: "OTEL_TRACES_EXPORTER=none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: Config{}},
		{name: "ratio sampler", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, want: ratio},
		{name: "http/protobuf accepted", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, want: on("http://c:4318/v1/traces")},
		{name: "grpc refused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{name: "bad sampler", env: map[string]string{"GATEHOUSE_TRACING": "otlp", "OTEL_TRACES_SAMPLER": "sometimes"}, wantErr: "OTEL_TRACES_SAMPLER"},
		{name: "bad ratio", env: map[string]string{"GATEHOUSE_TRACING": "otlp", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, wantErr: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "bad endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318"}, wantErr: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{name: "bad GATEHOUSE_TRACING", env: map[string]string{"GATEHOUSE_TRACING": "jaeger"}, wantErr: "GATEHOUSE_TRACING"},
		{name: "other exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "OTEL_TRACES_EXPORTER"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ConfigFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr+" ") {
					t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
}

// Off, every wrapper hands back what it was given: tracing costs nothing.
func TestNilProviderIsFree(t *testing.T) {
	var p *Provider
	h := http.NewServeMux()
	if got := p.Handler(h, nil, nil); got != http.Handler(h) {
		t.Error("Handler wrapped with tracing off")
	}
	c := &http.Client{}
	if p.Client(c) != c || p.Transport(http.DefaultTransport) != http.DefaultTransport {
		t.Error("client wrapped with tracing off")
	}
	if p.Store(nil) != nil || p.TracerProvider() != nil || p.ForceFlush(context.Background()) != nil || p.Shutdown(0) != nil {
		t.Error("nil provider did something")
	}
	p.SetGlobal()
}

func TestTrustedPeer(t *testing.T) {
	trusted := TrustedPeer([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	for addr, want := range map[string]bool{
		"127.0.0.1:5000":        true,
		"[::1]:5000":            true,
		"10.1.2.3:443":          true,
		"[::ffff:10.1.2.3]:443": true,
		"203.0.113.9:443":       false,
		"garbage":               false,
	} {
		if got := trusted(&http.Request{RemoteAddr: addr}); got != want {
			t.Errorf("trusted(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestSpanName(t *testing.T) {
	for _, tc := range []struct{ method, pattern, want string }{
		{"GET", "", "GET"},
		{"GET", "/api/v1/", "GET /api/v1/"},
		{"POST", "POST /t/{tenant}/token", "POST /t/{tenant}/token"},
		{"HEAD", "GET /healthz", "HEAD /healthz"},
	} {
		if got := SpanName("", &http.Request{Method: tc.method, Pattern: tc.pattern}); got != tc.want {
			t.Errorf("SpanName(%s, %q) = %q, want %q", tc.method, tc.pattern, got, tc.want)
		}
	}
}

// A traceparent from an untrusted peer does not choose our trace: the
// request starts a new one (linked to the caller's).
func TestUntrustedPeerStartsNewTrace(t *testing.T) {
	p, err := Start(context.Background(), Config{Enabled: true, Endpoint: "http://127.0.0.1:1/v1/traces", Sampler: "parentbased_always_on"}, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(0)
	const caller = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		peer      string
		sameTrace bool
	}{{"127.0.0.1:4000", true}, {"203.0.113.9:4000", false}} {
		var got trace.SpanContext
		h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = trace.SpanContextFromContext(r.Context())
		}), func(*http.Request) string { return "" }, TrustedPeer(nil))
		r := httptest.NewRequest("GET", "/login", nil)
		r.RemoteAddr = tc.peer
		r.Header.Set("traceparent", "00-"+caller+"-00f067aa0ba902b7-01")
		h.ServeHTTP(httptest.NewRecorder(), r)
		if !got.IsValid() {
			t.Fatalf("%s: no span in the handler's context", tc.peer)
		}
		if same := got.TraceID().String() == caller; same != tc.sameTrace {
			t.Errorf("%s: continued the caller's trace = %v, want %v", tc.peer, same, tc.sameTrace)
		}
	}
}

func TestLogHandlerAddsTraceIDToErrors(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil))).With("component", "test")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	log.InfoContext(ctx, "fine")
	log.ErrorContext(ctx, "broken")
	log.ErrorContext(context.Background(), "no span")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("log:\n%s", buf.String())
	}
	tid := "trace_id=" + sc.TraceID().String()
	if strings.Contains(lines[0], "trace_id") || !strings.Contains(lines[1], tid) || !strings.Contains(lines[1], "component=test") || strings.Contains(lines[2], "trace_id") {
		t.Errorf("want trace_id on the error line with a span only:\n%s", buf.String())
	}
}

// genStore stands for sqlstore: a Store with a fast path beyond the interface.
type genStore struct{ gatehouse.Store }

func (genStore) Engine() string            { return "sqlite" }
func (genStore) CatalogGeneration() uint64 { return 3 }

// On, the traced store still offers the wrapped store's fast paths, which
// web, op and scim find with gatehouse.StoreAs.
func TestTracedStoreUnwraps(t *testing.T) {
	st := (&Provider{}).Store(genStore{})
	if _, ok := st.(genStore); ok {
		t.Fatal("store not wrapped with tracing on")
	}
	g, ok := gatehouse.StoreAs[interface{ CatalogGeneration() uint64 }](st)
	if !ok || g.CatalogGeneration() != 3 {
		t.Errorf("StoreAs through the traced store = %v, %v", g, ok)
	}
}
