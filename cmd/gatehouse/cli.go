package main

import (
	"fmt"
	"io"
)

// runCLI dispatches the admin-API client commands.
func runCLI(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n%s", args[0], usage)
	return 2
}
