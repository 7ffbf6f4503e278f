package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLIApplyExport(t *testing.T) {
	url := server(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(file, []byte("tenants:\n  - slug: acme\n    name: Acme\n    groups: [{name: Staff}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := []string{"--url", url, "--token", root}
	r := run(append(g, "apply", "-f", file, "--dry-run")...)
	if r.code != 0 || !strings.Contains(r.stdout, "+ tenant acme (create: name)") || !strings.Contains(r.stdout, "2 change(s)") {
		t.Fatalf("dry run: %+v", r)
	}
	if r := run(append(g, "apply", "-f", file)...); r.code != 0 || !strings.Contains(r.stdout, "Applied 2 change(s).") {
		t.Fatalf("apply: %+v", r)
	}
	if r := run(append(g, "apply", "-f", file, "--dry-run")...); r.code != 0 || !strings.Contains(r.stdout, "No changes") {
		t.Fatalf("second dry run: %+v", r)
	}
	out := filepath.Join(dir, "export.yaml")
	if r := run(append(g, "export", "-o", out)...); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "slug: acme") || !strings.Contains(string(b), "name: Staff") {
		t.Fatalf("export file:\n%s", b)
	}
	if r := run(append(g, "apply")...); r.code != 2 {
		t.Fatalf("apply without -f: %+v", r)
	}
}

func TestCLIImport(t *testing.T) {
	url := server(t)
	g := []string{"--url", url, "--token", root, "--tenant", "acme"}
	if r := run(append(g, "tenants", "create", "--slug", "acme")...); r.code != 0 {
		t.Fatal(r)
	}
	file := filepath.Join(t.TempDir(), "users.csv")
	_ = os.WriteFile(file, []byte("email,groups\nada@acme.example,Staff\nbad-email,\n"), 0o600)
	if r := run(append(g, "import", file)...); r.code != 1 || !strings.Contains(r.stderr, "line 3: email:") {
		t.Fatalf("bad file: %+v", r)
	}
	_ = os.WriteFile(file, []byte("email,groups\nada@acme.example,Staff\n"), 0o600)
	if r := run(append(g, "import", file, "--dry-run")...); r.code != 0 || !strings.Contains(r.stdout, "Dry run (nothing written): 1 rows: 1 created") {
		t.Fatalf("dry run: %+v", r)
	}
	if r := run(append(g, "import", file)...); r.code != 0 || !strings.Contains(r.stdout, "Imported 1 rows: 1 created, 0 updated, 0 unchanged, 1 groups created") {
		t.Fatalf("import: %+v", r)
	}
}
