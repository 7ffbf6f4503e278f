package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCLIWebhooks(t *testing.T) {
	url := server(t)
	ok := func(args ...string) string {
		t.Helper()
		r := run(append([]string{"--url", url, "--token", root, "--tenant", "hooks"}, args...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s%s", args, r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
	ok("tenants", "create", "--slug", "hooks")
	out := ok("webhooks", "create", "--endpoint", "https://hooks.example/in", "--event", "user.*", "--event", "group.created")
	if !strings.Contains(out, "secret: whsec_") || !strings.Contains(out, "user.*,group.created") {
		t.Fatalf("create: %s", out)
	}
	var l struct{ Items []map[string]any }
	if err := json.Unmarshal([]byte(ok("webhooks", "list", "--json")), &l); err != nil || len(l.Items) != 1 {
		t.Fatalf("list: %v %v", l, err)
	}
	id := l.Items[0]["id"].(string)
	if out := ok("webhooks", "update", id, "--enabled=false"); !strings.Contains(out, "false") {
		t.Fatalf("update: %s", out)
	}
	if out := ok("webhooks", "rotate-secret", id); !strings.Contains(out, "secret: whsec_") {
		t.Fatalf("rotate: %s", out)
	}
	if out := ok("webhooks", "deliveries", id); !strings.Contains(out, "EVENT_TYPE") {
		t.Fatalf("deliveries: %s", out)
	}
	ok("webhooks", "delete", id)
	if r := run("--url", url, "--token", root, "--tenant", "hooks", "webhooks", "create"); r.code != 2 {
		t.Fatalf("create without endpoint: %+v", r)
	}
}
