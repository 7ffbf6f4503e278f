package cli

import (
	"strings"
	"testing"
)

// TestContractHelpCLI: `gatehouse` with no arguments tells the operator to
// run "gatehouse help-cli" for the admin API client's commands (issue 3's
// CLI); that command prints them.
func TestContractHelpCLI(t *testing.T) {
	r := run("help-cli")
	if r.code != 0 || !strings.Contains(r.stdout, "tenants list") || !strings.Contains(r.stdout, "users list") {
		t.Fatalf("help-cli: %+v", r)
	}
}
