package secret

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestKeyFileRotation walks the key-file steps of a rotation and checks a
// watching keyring follows each, keeps its keys when the file breaks, and
// that the file stays 0600.
func TestKeyFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.key")
	k, _, err := LoadOrCreateKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	k1 := k.Primary()
	box, _ := k.Seal([]byte("s3cret"), []byte("con_1"))
	stop := WatchKeyFile(k, path, 5*time.Millisecond, nil)
	defer stop()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("keyring did not follow the file: %s (keys %v, primary %s)", what, k.KeyIDs(), k.Primary())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	k2, err := AddKeyToFile(path)
	if err != nil {
		t.Fatal(err)
	}
	waitFor("new key loaded", func() bool { return len(k.KeyIDs()) == 2 })
	if k.Primary() != k1 {
		t.Fatal("an added key became primary before it was promoted")
	}
	if err := SetKeyFilePrimary(path, k2); err != nil {
		t.Fatal(err)
	}
	waitFor("new key primary", func() bool { return k.Primary() == k2 })
	nb, err := k.Rewrap(box)
	if err != nil {
		t.Fatal(err)
	}
	if kid, _ := KeyID(nb); kid != k2 {
		t.Fatalf("rewrapped under %q", kid)
	}

	// A broken file changes nothing in memory.
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", info.Mode().Perm())
	}
	good, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if len(k.KeyIDs()) != 2 || k.Primary() != k2 {
		t.Fatalf("a broken file changed the keyring: %v %s", k.KeyIDs(), k.Primary())
	}
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}

	gone, err := RetireKeysFromFile(path)
	if err != nil || len(gone) != 1 || gone[0] != k1 {
		t.Fatalf("retire: %v %v", gone, err)
	}
	waitFor("old key gone", func() bool { return len(k.KeyIDs()) == 1 })
	if _, err := k.Open(box, []byte("con_1")); err == nil {
		t.Fatal("a secret under the retired key still opens")
	}
	if pt, err := k.Open(nb, []byte("con_1")); err != nil || string(pt) != "s3cret" {
		t.Fatalf("rewrapped secret: %q %v", pt, err)
	}
	if err := SetKeyFilePrimary(path, "nope"); err == nil {
		t.Fatal("an unknown primary was accepted")
	}
}
