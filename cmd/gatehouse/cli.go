package main

import (
	"context"
	"io"

	"github.com/gatehouse-sso/gatehouse/cli"
)

// runCLI hands the admin-API client commands to package cli.
func runCLI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Run(ctx, args, stdout, stderr)
}
