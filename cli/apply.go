package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/gatehouse-sso/gatehouse/apiclient"
	"github.com/gatehouse-sso/gatehouse/declarative"
)

func (c *client) api() *apiclient.Client {
	a := apiclient.New(c.base, c.token)
	a.HTTP.Timeout = c.http.Timeout * 5
	return a
}

// apply: gatehouse apply -f FILE [--dry-run] [--update-secrets] [--secrets-out FILE]
func (c *client) apply(ctx context.Context, args []string) error {
	f := c.newFlags("apply")
	file := f.String("f", "", "")
	f.StringVar(file, "file", "", "")
	dry := f.Bool("dry-run", false, "")
	updateSecrets := f.Bool("update-secrets", false, "")
	secretsOut := f.String("secrets-out", "", "")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if *file == "" || len(pos) != 1 {
		return usagef("apply needs -f FILE (a gatehouse.yaml; - reads standard input)")
	}
	var decl *declarative.File
	if *file == "-" {
		decl, err = declarative.Parse(os.Stdin)
	} else {
		decl, err = declarative.ParseFile(*file)
	}
	if err != nil {
		return err
	}
	opts := declarative.Options{UpdateSecrets: *updateSecrets}
	if *secretsOut != "" && !*dry {
		// Created with 0600: it holds the secrets the server makes.
		out, err := os.OpenFile(*secretsOut, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer out.Close()
		opts.SecretsOut = out
	}
	plan, err := declarative.NewPlan(ctx, c.api(), decl, opts)
	if err != nil {
		return err
	}
	if *dry {
		fmt.Fprintln(c.stdout, "Plan (dry run; nothing written):")
		plan.Print(c.stdout)
		return nil
	}
	if plan.Changes() == 0 {
		plan.Print(c.stdout)
		return nil
	}
	if err := plan.Apply(ctx, c.stdout); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Applied %d change(s).\n", plan.Changes())
	if opts.SecretsOut == nil && created(plan, "app", "webhook") {
		fmt.Fprintln(c.stderr, "note: secrets made for new apps or webhooks were not kept (use --secrets-out FILE); rotate them to get new ones.")
	}
	return nil
}

func created(p *declarative.Plan, kinds ...string) bool {
	for _, s := range p.Steps {
		for _, k := range kinds {
			if s.Kind == k && s.Action == declarative.Create {
				return true
			}
		}
	}
	return false
}

// export: gatehouse export [--tenant SLUG] [-o FILE]
func (c *client) export(ctx context.Context, args []string) error {
	f := c.newFlags("export")
	outPath := f.String("o", "", "")
	f.StringVar(outPath, "output", "", "")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("export takes no operands")
	}
	var slugs []string
	if c.tenant != "" {
		slugs = []string{c.tenant}
	}
	decl, err := declarative.Export(ctx, c.api(), slugs)
	if err != nil {
		return err
	}
	var w io.Writer = c.stdout
	if *outPath != "" && *outPath != "-" {
		fh, err := os.Create(*outPath)
		if err != nil {
			return err
		}
		defer fh.Close()
		w = fh
	}
	fmt.Fprintln(w, "# gatehouse export: apply with `gatehouse apply -f <this file>`. Secrets are ${GATEHOUSE_SECRET_...} references: set them, or drop the secrets: blocks.")
	return declarative.Write(w, decl)
}
