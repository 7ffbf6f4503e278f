package console

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
)

// chartDays is the dashboard chart's window.
const chartDays = 14

// maxChartEvents caps the events counted per series, so a very busy
// tenant's dashboard stays fast (the chart says when it is capped).
const maxChartEvents = 20000

type dashboardData struct {
	Connections, JITConnections, Users, Pending, Groups, SCIMTokens, Apps int
	// Steps is the "what to do next" list, empty when set up.
	Steps    []step
	Chart    string
	Capped   bool
	Days     []dayCount
	Recent   []*gatehouse.AuditEvent
	Warnings []string
}

type step struct {
	Text, Path, Button string
}

type dayCount struct {
	Day               string
	SignIns, Creation int
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, k *call) error {
	ctx := r.Context()
	d := &dashboardData{}
	var conns []*gatehouse.Connection
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		if conns, err = tx.ListConnections(ctx, k.t.ID); err != nil {
			return err
		}
		if d.Users, err = tx.CountUsers(ctx, k.t.ID, gatehouse.UserFilter{}); err != nil {
			return err
		}
		if d.Pending, err = tx.CountUsers(ctx, k.t.ID, gatehouse.UserFilter{Status: gatehouse.StatusPending}); err != nil {
			return err
		}
		gs, _, err := tx.ListGroups(ctx, k.t.ID, gatehouse.Page{Limit: 1000})
		if err != nil {
			return err
		}
		d.Groups = len(gs)
		sts, err := tx.ListSCIMTokens(ctx, k.t.ID)
		if err != nil {
			return err
		}
		d.SCIMTokens = len(sts)
		apps, err := tx.ListApps(ctx, k.t.ID)
		if err != nil {
			return err
		}
		d.Apps = len(apps)
		d.Recent, _, err = tx.ListAudit(ctx, k.t.ID, gatehouse.AuditFilter{}, gatehouse.Page{Limit: 8})
		return err
	})
	if err != nil {
		return err
	}
	d.Connections = len(conns)
	for _, cn := range conns {
		if cn.JIT.Enabled && cn.Enabled {
			d.JITConnections++
		}
		d.Warnings = append(d.Warnings, c.certWarnings(cn)...)
	}
	d.Steps = nextSteps(k, d)
	if err := c.fillChart(ctx, k.t.ID, d); err != nil {
		return err
	}
	return c.render(w, r, k, http.StatusOK, "dashboard", k.t.Name, "dashboard", &view{D: d})
}

// nextSteps is the dashboard's "what to do next": journey 1 ends on an
// empty tenant, and each step links to the page that does it.
func nextSteps(k *call, d *dashboardData) []step {
	var s []step
	if d.Connections == 0 {
		s = append(s, step{"Add a connection to your identity provider (Okta, Entra ID, Google, any SAML or OIDC IdP).", tp(k.t, "/connections/new"), "Add connection"})
	} else if d.JITConnections == 0 {
		s = append(s, step{"Turn on just-in-time provisioning on a connection, so people are created at their first sign-in.", tp(k.t, "/connections"), "Open connections"})
	}
	if d.Connections > 0 && d.Users == 0 {
		s = append(s, step{"Test the connection: sign in once and see what your IdP sends and what Gatehouse would do.", tp(k.t, "/connections"), "Test a connection"})
	}
	if len(k.t.AdminGroups) == 0 && k.p.Superuser {
		s = append(s, step{"Name the admin groups whose members may manage this tenant here.", tp(k.t, "/settings"), "Settings"})
	}
	if d.Apps == 0 {
		s = append(s, step{"Register an application that signs people in through Gatehouse.", tp(k.t, "/apps"), "Add app"})
	}
	if d.SCIMTokens == 0 && d.Connections > 0 {
		s = append(s, step{"Optional: let your IdP push users and groups with SCIM.", tp(k.t, "/scim"), "Create SCIM token"})
	}
	return s
}

// certWarnings reads a SAML connection's Describe output for certificates
// that expire soon or metadata that failed to parse (journey 6: the
// console warns before Okta's certificate rotates).
func (c *Console) certWarnings(cn *gatehouse.Connection) []string {
	if cn.Type != gatehouse.ConnSAML {
		return nil
	}
	t, ok := connector.Lookup(cn.Type, true)
	if !ok || t.Describe == nil {
		return nil
	}
	d := t.Describe(c.env, cn)
	var out []string
	if e, _ := d["idp_error"].(string); e != "" {
		out = append(out, cn.Name+": "+e)
	}
	if warn, _ := d["idp_certificate_expiry_warning"].(bool); warn {
		out = append(out, cn.Name+": an identity provider signing certificate expires soon. Update the IdP metadata (a metadata URL picks the new certificate up by itself).")
	}
	return out
}

// countByDay counts the events of action per UTC day since from.
func (c *Console) countByDay(ctx context.Context, tenantID, action string, from time.Time) (map[string]int, bool, error) {
	counts := map[string]int{}
	total := 0
	cursor := ""
	for {
		var evs []*gatehouse.AuditEvent
		var next string
		err := c.store.View(ctx, func(tx gatehouse.Tx) error {
			var err error
			evs, next, err = tx.ListAudit(ctx, tenantID, gatehouse.AuditFilter{Action: action, Since: from}, gatehouse.Page{Limit: 1000, Cursor: cursor})
			return err
		})
		if err != nil {
			return nil, false, err
		}
		for _, e := range evs {
			counts[e.Time.UTC().Format("2006-01-02")]++
		}
		total += len(evs)
		if next == "" {
			return counts, false, nil
		}
		if total >= maxChartEvents {
			return counts, true, nil
		}
		cursor = next
	}
}

func (c *Console) fillChart(ctx context.Context, tenantID string, d *dashboardData) error {
	today := c.clock.Now().UTC().Truncate(24 * time.Hour)
	from := today.AddDate(0, 0, -(chartDays - 1))
	logins, capped1, err := c.countByDay(ctx, tenantID, "login.succeeded", from)
	if err != nil {
		return err
	}
	created, capped2, err := c.countByDay(ctx, tenantID, "user.jit_created", from)
	if err != nil {
		return err
	}
	d.Capped = capped1 || capped2
	for i := 0; i < chartDays; i++ {
		day := from.AddDate(0, 0, i).Format("2006-01-02")
		d.Days = append(d.Days, dayCount{Day: day, SignIns: logins[day], Creation: created[day]})
	}
	d.Chart = barChart(d.Days)
	return nil
}

// barChart draws the days as grouped bars in SVG. Every value written is a
// number or a date the server formatted, so the markup needs no escaping.
func barChart(days []dayCount) string {
	const w, h, left, bottom, top = 720, 220, 40, 30, 12
	maxV := 1
	for _, d := range days {
		maxV = max(maxV, d.SignIns, d.Creation)
	}
	// A round axis maximum: 1, 2, 5, 10, 20, 50...
	axis := 1
	for axis < maxV {
		switch s := fmt.Sprint(axis); s[0] {
		case '1':
			axis *= 2
		case '2':
			axis = axis / 2 * 5
		default:
			axis *= 2
		}
	}
	plotH := float64(h - bottom - top)
	slot := float64(w-left-10) / float64(len(days))
	bw := slot * 0.36
	y := func(v int) float64 { return float64(h-bottom) - plotH*float64(v)/float64(axis) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">`, w, h)
	b.WriteString(`<title id="chart-title">Sign-ins and just-in-time user creations per day, last 14 days</title>`)
	for _, v := range []int{0, axis / 2, axis} {
		if v == axis/2 && axis < 2 {
			continue
		}
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="axis" x="%d" y="%.1f" text-anchor="end">%d</text>`,
			left, w-10, y(v), y(v), left-6, y(v)+4, v)
	}
	for i, d := range days {
		x := float64(left) + slot*float64(i) + slot*0.14
		fmt.Fprintf(&b, `<rect class="s1" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d sign-ins</title></rect>`,
			x, y(d.SignIns), bw, float64(h-bottom)-y(d.SignIns), d.Day, d.SignIns)
		fmt.Fprintf(&b, `<rect class="s2" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d created just in time</title></rect>`,
			x+bw, y(d.Creation), bw, float64(h-bottom)-y(d.Creation), d.Day, d.Creation)
		// Every other day is labelled, counting back from today.
		if (len(days)-1-i)%2 == 0 || len(days) <= 7 {
			fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%d" text-anchor="middle">%s</text>`, x+bw, h-bottom+16, d.Day[5:])
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}
