package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/gatehouse-sso/gatehouse/config"
	"github.com/gatehouse-sso/gatehouse/rootkey"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

const rotateUsage = `Usage: gatehouse rotate-root-key [--retire-old] [--wait 5s] [--batch 500]

Rotates the root key that encrypts stored secrets (IdP client secrets, SAML
keys, token-signing keys, webhook secrets), while Gatehouse keeps serving:

  1. adds a new key to the root key file; serving processes reload the file
     by themselves (every 2 s) and can open what it seals;
  2. after --wait, makes it primary: new secrets are sealed under it;
  3. after --wait, re-wraps every stored secret under it, in batches.

The old key stays in the file until "gatehouse rotate-root-key --retire-old",
which re-wraps anything left, checks that no secret names an old key, and
only then removes the old keys from the file. Back up the key file first.

It reads the same GATEHOUSE_* variables as "serve" (GATEHOUSE_DATABASE_URL,
GATEHOUSE_DATA_DIR, GATEHOUSE_ROOT_KEY_FILE). Replicas on other hosts must
see the same file (a shared secret mount); give --wait the time it takes to
reach them.
`

// rotateRootKey is the rotate-root-key command.
func rotateRootKey(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rotate-root-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, rotateUsage) }
	retire := fs.Bool("retire-old", false, "remove the old root keys once no secret names them")
	wait := fs.Duration("wait", 2*secret.KeyFilePollInterval+time.Second, "time serving processes get to reload the key file after each change")
	batch := fs.Int("batch", 500, "rows re-wrapped per transaction")
	dataDir := fs.String("data-dir", "", "data directory (GATEHOUSE_DATA_DIR)")
	dbURL := fs.String("database-url", "", "database URL (GATEHOUSE_DATABASE_URL)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var cargs []string
	if *dataDir != "" {
		cargs = append(cargs, "--data-dir", *dataDir)
	}
	if *dbURL != "" {
		cargs = append(cargs, "--database-url", *dbURL)
	}
	cfg, err := config.Load(cargs, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse rotate-root-key: configuration:", err)
		return 2
	}
	if cfg.RootKey != nil {
		fmt.Fprintln(stderr, "gatehouse rotate-root-key: GATEHOUSE_ROOT_KEY is set, and a key in a variable cannot be changed under running processes.\n"+
			"Rotation works on a root key file (GATEHOUSE_ROOT_KEY_FILE), which serving processes reload by themselves.\n"+
			`Move to one: write {"primary":"env","keys":{"env":"<the base64 key>"}} to the file (mode 0600), unset GATEHOUSE_ROOT_KEY, restart, then rotate.`)
		return 2
	}
	if _, err := os.Stat(cfg.RootKeyFile); err != nil {
		fmt.Fprintf(stderr, "gatehouse rotate-root-key: root key file %s: %v\n", cfg.RootKeyFile, err)
		return 1
	}
	octx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	st, err := sqlstore.Open(octx, cfg.DatabaseURL, sqlstore.Options{Synchronous: cfg.SQLiteSynchronous, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse rotate-root-key: database:", err)
		return 1
	}
	defer st.Close()
	opts := rootkey.Options{KeyFile: cfg.RootKeyFile, Wait: *wait, Batch: *batch, Out: stdout}
	if *retire {
		if _, err := rootkey.Retire(ctx, st.DB(), opts); err != nil {
			fmt.Fprintln(stderr, "gatehouse rotate-root-key --retire-old:", err)
			return 1
		}
		return 0
	}
	kid, err := rootkey.Rotate(ctx, st.DB(), opts)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse rotate-root-key:", err)
		return 1
	}
	fmt.Fprintf(stdout, "root key %s is primary and every stored secret is wrapped under it; run \"gatehouse rotate-root-key --retire-old\" to remove the old key\n", kid)
	return 0
}
