package cli

import (
	"context"
	"fmt"
	"net/url"
)

var (
	webhookCols  = []string{"id", "url", "events", "enabled", "created_at"}
	deliveryCols = []string{"id", "event_type", "status", "attempts", "last_status", "last_error", "next_attempt_at", "delivered_at"}
)

// webhooks: list, get, create, update, delete, rotate-secret, deliveries.
func (c *client) webhooks(ctx context.Context, args []string) error {
	f := c.newFlags("webhooks")
	var events multi
	f.Var(&events, "event", "")
	enabled := f.Bool("enabled", true, "")
	// --url is the global server flag; the endpoint is --endpoint.
	endpoint := f.String("endpoint", "", "")
	grace := f.String("grace", "", "")
	verb, rest, err := command(f, args, "list", "get", "create", "update", "delete", "rotate-secret", "deliveries", "retry")
	if err != nil {
		return err
	}
	base, err := c.tenantPath("webhooks")
	if err != nil {
		return err
	}
	body := map[string]any{}
	if f.set["endpoint"] {
		body["url"] = *endpoint
	}
	if len(events) > 0 {
		body["events"] = []string(events)
	}
	if f.set["enabled"] {
		body["enabled"] = *enabled
	}
	switch verb {
	case "list":
		return c.listAll(ctx, base, url.Values{}, true, webhookCols)
	case "create":
		if !f.set["endpoint"] {
			return usagef("webhooks create needs --endpoint URL")
		}
		o, err := c.send(ctx, "POST", base, body, webhookCols)
		if err == nil && !c.json {
			fmt.Fprintf(c.stdout, "secret: %v\nKeep it now: it is not shown again. Verify each delivery's Gatehouse-Signature with it.\n", o["secret"])
		}
		return err
	}
	if verb == "retry" {
		if err := want(verb, rest, 2, "a webhook id and a delivery id"); err != nil {
			return err
		}
		_, err = c.send(ctx, "POST", base+"/"+url.PathEscape(rest[0])+"/deliveries/"+url.PathEscape(rest[1])+"/retry", nil, deliveryCols)
		return err
	}
	if err := want(verb, rest, 1, "a webhook id"); err != nil {
		return err
	}
	p := base + "/" + url.PathEscape(rest[0])
	switch verb {
	case "get":
		_, err = c.send(ctx, "GET", p, nil, webhookCols)
	case "update":
		_, err = c.send(ctx, "PATCH", p, body, webhookCols)
	case "delete":
		err = c.done(ctx, "DELETE", p, "Deleted "+rest[0]+".")
	case "rotate-secret":
		var o obj
		q := ""
		if f.set["grace"] {
			q = "?" + url.Values{"grace_seconds": {*grace}}.Encode()
		}
		if o, err = c.send(ctx, "POST", p+"/rotate-secret"+q, nil, webhookCols); err == nil && !c.json {
			fmt.Fprintf(c.stdout, "secret: %v\nKeep it now: it is not shown again.\n", o["secret"])
			if until := o["previous_secret_until"]; until != nil {
				fmt.Fprintf(c.stdout, "Deliveries carry a signature with the previous secret too, until %v.\n", until)
			}
		}
	case "deliveries":
		err = c.listAll(ctx, p+"/deliveries", url.Values{}, false, deliveryCols)
	}
	return err
}
