package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/gatehouse-sso/gatehouse/apiclient"
	"github.com/gatehouse-sso/gatehouse/config"
	"github.com/gatehouse-sso/gatehouse/declarative"
	"github.com/gatehouse-sso/gatehouse/server"
)

// cutFlag removes --name VALUE (or --name=VALUE, one dash too) from args
// and returns its value: flags this command reads before config.Load.
func cutFlag(args []string, name string) (string, []string) {
	var rest []string
	val := ""
	for i := 0; i < len(args); i++ {
		a := strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-")
		switch {
		case a == name && i+1 < len(args) && args[i] != a:
			val = args[i+1]
			i++
		case strings.HasPrefix(a, name+"=") && args[i] != a:
			val = strings.TrimPrefix(a, name+"=")
		default:
			rest = append(rest, args[i])
		}
	}
	return val, rest
}

// applyConfig applies a gatehouse.yaml through the server's own API
// handler (in process, as the superuser) once the database is ready.
func applyConfig(ctx context.Context, cfg *config.Config, srv *server.Server, path string, log *slog.Logger) error {
	token := cfg.AdminToken
	if token == "" {
		token = srv.NewAdminToken
	}
	if token == "" {
		return fmt.Errorf("--config needs the superuser token: set GATEHOUSE_ADMIN_TOKEN")
	}
	n, err := declarative.ApplyFile(ctx, apiclient.InProcess(srv.Handler(), token), path, declarative.Options{}, nil)
	if err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	log.Info("configuration applied", "file", path, "changes", n)
	return nil
}
