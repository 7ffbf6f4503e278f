package web

import (
	"context"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/provision"
)

// Provisioner resolves a verified identity to a user (package provision's
// *Resolver satisfies it). On a refusal it returns a *gatehouse.Error and,
// when it can, a Result carrying the explanation (shown on the test page).
type Provisioner interface {
	Resolve(ctx context.Context, tenant *gatehouse.Tenant, conn *gatehouse.Connection, id *gatehouse.Identity, mode provision.Mode) (*provision.Result, error)
}

var _ Provisioner = (*provision.Resolver)(nil)
