package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/secret"
)

// TestRotateRootKeyCommand runs the command on a SQLite data dir: a new
// primary key, then retirement of the old one.
func TestRotateRootKeyCommand(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "root.key")
	t.Setenv("GATEHOUSE_DATA_DIR", dir)
	t.Setenv("GATEHOUSE_ROOT_KEY", "")
	t.Setenv("GATEHOUSE_ROOT_KEY_FILE", keyFile)
	k1, _, err := secret.LoadOrCreateKeyring(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"rotate-root-key", "--wait", "0"}, &out, &errb); code != 0 {
		t.Fatalf("rotate: %d %s", code, errb.String())
	}
	info, _ := secret.ReadKeyFileInfo(keyFile)
	if len(info.KeyIDs) != 2 || info.Primary == k1.Primary() || !strings.Contains(out.String(), info.Primary) {
		t.Fatalf("after rotate: %+v\n%s", info, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"rotate-root-key", "--retire-old"}, &out, &errb); code != 0 {
		t.Fatalf("retire: %d %s", code, errb.String())
	}
	after, _ := secret.ReadKeyFileInfo(keyFile)
	if len(after.KeyIDs) != 1 || after.Primary != info.Primary || !strings.Contains(out.String(), k1.Primary()) {
		t.Fatalf("after retire: %+v\n%s", after, out.String())
	}

	// A key in a variable cannot be rotated under running processes.
	t.Setenv("GATEHOUSE_ROOT_KEY", base64.StdEncoding.EncodeToString(make([]byte, 32)))
	errb.Reset()
	if code := run(context.Background(), []string{"rotate-root-key"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "GATEHOUSE_ROOT_KEY_FILE") {
		t.Fatalf("env key: %d %s", code, errb.String())
	}
}
