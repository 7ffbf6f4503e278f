package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-sso/gatehouse"
)

// Store wraps st so that each transaction is one span ("store.Update" or
// "store.View"), a child of the request's span. Off, st itself.
func (p *Provider) Store(st gatehouse.Store) gatehouse.Store {
	if p == nil {
		return st
	}
	return &tracedStore{Store: st, tracer: p.tracer, system: attribute.String("db.system.name", dbSystem(st.Engine()))}
}

func dbSystem(engine string) string {
	if engine == "postgres" {
		return "postgresql"
	}
	return engine
}

type tracedStore struct {
	gatehouse.Store
	tracer trace.Tracer
	system attribute.KeyValue
}

// Unwrap gives gatehouse.StoreAs the wrapped store's fast paths; their
// calls have no span of their own (they run in the request's span).
func (s *tracedStore) Unwrap() gatehouse.Store { return s.Store }

func (s *tracedStore) Update(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	return s.span(ctx, "store.Update", func(ctx context.Context) error { return s.Store.Update(ctx, fn) })
}

func (s *tracedStore) View(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	return s.span(ctx, "store.View", func(ctx context.Context) error { return s.Store.View(ctx, fn) })
}

func (s *tracedStore) span(ctx context.Context, name string, run func(context.Context) error) error {
	ctx, span := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(s.system))
	defer span.End()
	err := run(ctx)
	if err != nil {
		// A not-found or conflict is an answer, not a failure of the
		// database: only internal and unavailable errors mark the span.
		code := gatehouse.ErrorCode(err)
		span.SetAttributes(attribute.String("gatehouse.error_code", code))
		if code == gatehouse.EINTERNAL || code == gatehouse.EUNAVAILABLE {
			span.SetStatus(codes.Error, code)
		}
	}
	return err
}
