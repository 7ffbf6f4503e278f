// Package deploy holds packaging files (Helm chart, systemd unit). Helm is
// not installed where the tests run, so this test renders the chart's
// templates with text/template and the few Sprig functions they use, and
// checks the documents structurally.
package deploy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"gopkg.in/yaml.v3"
)

func render(t *testing.T, values map[string]any) (map[string]map[string]any, error) {
	t.Helper()
	dir := "helm/gatehouse"
	var chart, defaults map[string]any
	for path, dst := range map[string]*map[string]any{dir + "/Chart.yaml": &chart, dir + "/values.yaml": &defaults} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, dst); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	merge(defaults, values)
	root := template.New("chart")
	indent := func(n int, s string) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
	}
	root.Funcs(template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var b bytes.Buffer
			err := root.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"trunc":      func(n int, s string) string { return s[:min(n, len(s))] },
		"trimSuffix": func(suf, s string) string { return strings.TrimSuffix(s, suf) },
		"quote":      func(v any) string { return fmt.Sprintf("%q", fmt.Sprint(v)) },
		"default": func(def, v any) any {
			if v == nil || v == "" || v == 0 || v == false {
				return def
			}
			return v
		},
		"nindent": func(n int, s string) string { return "\n" + indent(n, s) },
		"toYaml": func(v any) string {
			b, _ := yaml.Marshal(v)
			return strings.TrimSuffix(string(b), "\n")
		},
		"required": func(msg string, v any) (any, error) {
			if v == nil || v == "" {
				return nil, errors.New(msg)
			}
			return v, nil
		},
		"int":       func(v any) int { n, _ := v.(int); return n },
		"fail":      func(msg string) (string, error) { return "", errors.New(msg) },
		"sha256sum": func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) },
	})
	files, _ := filepath.Glob(dir + "/templates/*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := root.New(filepath.Base(f)).Parse(string(b)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	data := map[string]any{
		"Values":  defaults,
		"Release": map[string]any{"Name": "sso", "Service": "Helm"},
		"Chart":   map[string]any{"Name": chart["name"], "AppVersion": chart["appVersion"]},
	}
	docs := map[string]map[string]any{}
	for _, f := range files {
		name := filepath.Base(f)
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		var b bytes.Buffer
		if err := root.ExecuteTemplate(&b, name, data); err != nil {
			return nil, err
		}
		if strings.TrimSpace(b.String()) == "" {
			continue
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatalf("%s renders invalid YAML: %v\n%s", name, err, b.String())
		}
		docs[fmt.Sprint(doc["kind"])] = doc
	}
	return docs, nil
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if m, ok := v.(map[string]any); ok {
			if d, ok := dst[k].(map[string]any); ok {
				merge(d, m)
				continue
			}
		}
		dst[k] = v
	}
}

func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestHelmChartRenders(t *testing.T) {
	docs, err := render(t, map[string]any{
		"database": map[string]any{"url": "postgres://gh@db:5432/gh"},
		"secrets":  map[string]any{"rootKey": "a2V5", "adminToken": "token-token-token-token-token-token"},
		"config":   map[string]any{"enabled": true, "content": "tenants: []\n"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"Deployment", "Service", "Secret", "ConfigMap"} {
		if docs[kind] == nil {
			t.Fatalf("no %s rendered", kind)
		}
	}
	d := docs["Deployment"]
	c := dig(d, "spec", "template", "spec", "containers", 0)
	for _, check := range []struct {
		got, want any
	}{
		{dig(d, "spec", "replicas"), 3},
		{dig(c, "readinessProbe", "httpGet", "path"), "/readyz"},
		{dig(c, "livenessProbe", "httpGet", "path"), "/healthz"},
		{dig(d, "spec", "template", "spec", "securityContext", "runAsNonRoot"), true},
		{dig(c, "securityContext", "allowPrivilegeEscalation"), false},
		{dig(c, "args", 2), "/etc/gatehouse/gatehouse.yaml"},
		{dig(docs["Secret"], "stringData", "database-url"), "postgres://gh@db:5432/gh"},
		{dig(docs["Service"], "spec", "ports", 0, "targetPort"), "http"},
	} {
		if fmt.Sprint(check.got) != fmt.Sprint(check.want) {
			t.Errorf("got %v, want %v", check.got, check.want)
		}
	}
	env := map[string]bool{}
	for _, e := range dig(c, "env").([]any) {
		env[fmt.Sprint(dig(e, "name"))] = true
	}
	for _, k := range []string{"GATEHOUSE_ROOT_KEY", "GATEHOUSE_ADMIN_TOKEN", "GATEHOUSE_DATABASE_URL", "GATEHOUSE_PUBLIC_URL"} {
		if !env[k] {
			t.Errorf("container env lacks %s", k)
		}
	}
}

func TestHelmChartRefusesReplicasWithoutPostgres(t *testing.T) {
	_, err := render(t, map[string]any{"secrets": map[string]any{"rootKey": "a2V5", "adminToken": "x"}})
	if err == nil || !strings.Contains(err.Error(), "needs PostgreSQL") {
		t.Fatalf("replicas on SQLite: %v", err)
	}
	if _, err := render(t, map[string]any{"replicaCount": 1}); err == nil || !strings.Contains(err.Error(), "secrets.rootKey") {
		t.Fatalf("no secrets: %v", err)
	}
}
