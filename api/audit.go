package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// listAudit lists a tenant's audit events, newest first as the store orders
// them: ?action= (exact, or a prefix ending in "."), ?target_id=,
// ?actor_id=, ?since=, ?until= (RFC 3339), ?limit=, ?cursor=.
func (s *server) listAudit(w http.ResponseWriter, r *http.Request, c *call) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := gatehouse.AuditFilter{Action: strings.TrimSpace(q.Get("action")), TargetID: q.Get("target_id"), ActorID: q.Get("actor_id")}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(t.name); v != "" {
			if *t.dst, err = time.Parse(time.RFC3339, v); err != nil {
				return gatehouse.FieldError(t.name, "%s must be an RFC 3339 time like 2026-01-02T15:04:05Z.", t.name)
			}
		}
	}
	var evs []*gatehouse.AuditEvent
	var next string
	err = s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		evs, next, err = tx.ListAudit(r.Context(), c.tenant.ID, f, p)
		return err
	})
	if err != nil {
		return err
	}
	out := list[*gatehouse.AuditEvent]{Items: nonNil(evs), NextCursor: next}
	writeJSON(w, http.StatusOK, out)
	return nil
}
