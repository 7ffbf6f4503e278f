package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

type auditData struct {
	Events []*gatehouse.AuditEvent
	More   string
}

// auditPage lists the tenant's audit log, newest first, filtered by action
// (exact or a prefix ending in "."), actor, target and a date range.
func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	q := r.URL.Query()
	f := gatehouse.AuditFilter{Action: strings.TrimSpace(q.Get("action")), ActorID: strings.TrimSpace(q.Get("actor")), TargetID: strings.TrimSpace(q.Get("target"))}
	for _, d := range []struct {
		name string
		dst  *time.Time
		add  int
	}{{"since", &f.Since, 0}, {"until", &f.Until, 1}} {
		v := q.Get(d.name)
		if v == "" {
			continue
		}
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			return gatehouse.FieldError(d.name, "Dates are written YYYY-MM-DD.")
		}
		*d.dst = t.AddDate(0, 0, d.add) // "until" includes its whole day
	}
	for _, s := range []string{f.Action, f.ActorID, f.TargetID} {
		if len(s) > 200 {
			return gatehouse.Errorf(gatehouse.EINVALID, "A filter is too long.")
		}
	}
	d := &auditData{}
	var next string
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		d.Events, next, err = tx.ListAudit(ctx, k.t.ID, f, gatehouse.Page{Limit: 50, Cursor: q.Get("cursor")})
		return err
	})
	if err != nil {
		return err
	}
	d.More = nextPage(q, next)
	return c.render(w, r, k, http.StatusOK, "audit", "Audit log", "audit", &view{Form: q, D: d})
}
