package webhook

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Observer returns an Options.Observe that counts attempts in reg as
// gatehouse_webhook_deliveries_total{outcome="delivered"|"retry"|"failed"}.
// Registering twice (a server reopening its store) reuses the counter.
func Observer(reg prometheus.Registerer) func(outcome string) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_webhook_deliveries_total",
		Help: "Webhook delivery attempts by outcome: delivered, retry (failed, will be retried), failed (given up).",
	}, []string{"outcome"})
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil
		}
		c = are.ExistingCollector.(*prometheus.CounterVec)
	}
	return func(outcome string) { c.WithLabelValues(outcome).Inc() }
}
