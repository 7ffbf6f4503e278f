package provision

import (
	"context"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

// ValidatePolicy checks a connection's JIT policy before it is saved (the
// API calls it in the save transaction): every default group and every
// group-sync target must name an existing group of the tenant, and allowed
// domains must be plain domain names. Errors are gatehouse.FieldError naming
// "jit.<field>".
func ValidatePolicy(ctx context.Context, tx gatehouse.Tx, tenantID string, p gatehouse.JITPolicy) error {
	if p.AllowedDomains != nil {
		for _, d := range *p.AllowedDomains {
			if !validDomain(d) {
				return gatehouse.FieldError("jit.allowed_domains", "%q is not a domain name (write it as example.com, without @ or a scheme).", d)
			}
		}
	}
	exists := func(field, name string) error {
		_, err := tx.GetGroupByName(ctx, tenantID, name)
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return gatehouse.FieldError(field, "There is no group named %q in this tenant; create it first.", name)
		}
		return err
	}
	for _, name := range p.DefaultGroups {
		if err := exists("jit.default_groups", name); err != nil {
			return err
		}
	}
	for _, idpGroup := range sortedKeys(boolKeys(p.GroupSync.Mapping)) {
		if strings.TrimSpace(idpGroup) == "" {
			return gatehouse.FieldError("jit.group_sync.mapping", "An identity provider group name is empty.")
		}
		if err := exists("jit.group_sync.mapping", p.GroupSync.Mapping[idpGroup]); err != nil {
			return err
		}
	}
	return nil
}

func boolKeys(m map[string]string) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// validDomain accepts a lower- or mixed-case DNS name with at least one dot:
// labels of letters, digits and hyphens, not starting or ending with one.
func validDomain(d string) bool {
	if len(d) == 0 || len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
