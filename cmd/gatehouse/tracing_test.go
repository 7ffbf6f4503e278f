package main

import (
	"context"
	"net/http"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/gatehouse-sso/gatehouse/tracing"
	"github.com/gatehouse-sso/gatehouse/tracing/tracingtest"
)

// Stopping serve (SIGTERM cancels its context) flushes the spans not yet
// exported: the batch exporter waits 5 s between exports, the request's span
// must arrive at shutdown all the same.
func TestServeFlushesSpansAtShutdown(t *testing.T) {
	clearEnv(t)
	rc := tracingtest.NewReceiver(t)
	addr := freeAddr(t)
	t.Setenv("GATEHOUSE_DATA_DIR", t.TempDir())
	t.Setenv("GATEHOUSE_ADDR", addr)
	t.Setenv("GATEHOUSE_LOG_LEVEL", "warn")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rc.URL)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- run(ctx, []string{"serve"}, &syncBuffer{}, &syncBuffer{}) }()
	waitStatus(t, "http://"+addr+"/readyz", 200)
	req, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
	req.Header.Set("X-Request-Id", "req-shutdown-flush")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	got := rc.Find(func(s *tracepb.Span) bool {
		return tracingtest.Attr(s.Attributes, tracing.RequestIDAttr) == "req-shutdown-flush"
	})
	if len(got) != 1 || got[0].Name != "GET /healthz" {
		t.Fatalf("spans for the request after shutdown: %v, want one GET /healthz", got)
	}
}
