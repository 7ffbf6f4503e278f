package secret

// Root-key rotation on the key file: the file is the one source of the root
// keys of every process that reads it. `gatehouse rotate-root-key` edits it
// in place (atomically: write a temporary file, then rename), and serving
// processes reload it by themselves (WatchKeyFile), so a rotation needs no
// restart: add a key, make it primary, re-wrap every sealed secret, retire
// the old key.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func readKeyFile(path string) (*rootKeyFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read root key file: %w", err)
	}
	var f rootKeyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("root key file %s: %w", path, err)
	}
	if _, ok := f.Keys[f.Primary]; !ok {
		return nil, fmt.Errorf("root key file %s: primary key %q is not in the file", path, f.Primary)
	}
	return &f, nil
}

// writeKeyFile replaces path atomically with f (mode 0600): a reader sees
// the old file or the new one, never half of one.
func writeKeyFile(path string, f *rootKeyFile) error {
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".root.key-*")
	if err != nil {
		return fmt.Errorf("write root key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write root key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// KeyFileInfo describes a root key file without its key material.
type KeyFileInfo struct {
	Primary string
	KeyIDs  []string // sorted
}

// ReadKeyFileInfo returns the key ids in the file at path and its primary.
func ReadKeyFileInfo(path string) (KeyFileInfo, error) {
	f, err := readKeyFile(path)
	if err != nil {
		return KeyFileInfo{}, err
	}
	info := KeyFileInfo{Primary: f.Primary}
	for kid := range f.Keys {
		info.KeyIDs = append(info.KeyIDs, kid)
	}
	sort.Strings(info.KeyIDs)
	return info, nil
}

// AddKeyToFile generates a new 32-byte root key, adds it to the file at
// path (not primary: every process must be able to open what it will seal
// before any process seals with it) and returns its id.
func AddKeyToFile(path string) (string, error) {
	f, err := readKeyFile(path)
	if err != nil {
		return "", err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	kid := "rk" + strings.ToLower(base64.RawURLEncoding.EncodeToString(key[:6]))
	if _, dup := f.Keys[kid]; dup {
		return "", errors.New("root key id collision; run again")
	}
	f.Keys[kid] = base64.StdEncoding.EncodeToString(key)
	return kid, writeKeyFile(path, f)
}

// SetKeyFilePrimary makes kid the primary key of the file at path.
func SetKeyFilePrimary(path, kid string) error {
	f, err := readKeyFile(path)
	if err != nil {
		return err
	}
	if _, ok := f.Keys[kid]; !ok {
		return fmt.Errorf("root key %q is not in %s", kid, path)
	}
	f.Primary = kid
	return writeKeyFile(path, f)
}

// RetireKeysFromFile removes every key but the primary from the file at
// path and returns the ids removed. Call it only once no sealed secret
// names them.
func RetireKeysFromFile(path string) ([]string, error) {
	f, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	var gone []string
	for kid := range f.Keys {
		if kid != f.Primary {
			gone = append(gone, kid)
			delete(f.Keys, kid)
		}
	}
	sort.Strings(gone)
	if len(gone) == 0 {
		return nil, nil
	}
	return gone, writeKeyFile(path, f)
}

// ReloadFile replaces k's keys and primary with those of the file at path.
// A file that cannot be read or parsed changes nothing.
func (k *Keyring) ReloadFile(path string) error {
	f, err := readKeyFile(path)
	if err != nil {
		return err
	}
	keys := make(map[string][]byte, len(f.Keys))
	for kid, b64 := range f.Keys {
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) != 32 {
			return fmt.Errorf("root key file %s: key %q: want 32 bytes in base64", path, kid)
		}
		keys[kid] = key
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys, k.primary = keys, f.Primary
	return nil
}

// KeyIDs returns the ids of the keys k holds, sorted.
func (k *Keyring) KeyIDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]string, 0, len(k.keys))
	for kid := range k.keys {
		out = append(out, kid)
	}
	sort.Strings(out)
	return out
}

// KeyFilePollInterval is how often serving processes look at the key file
// (a variable so tests can shorten it before starting a server).
var KeyFilePollInterval = 2 * time.Second

// WatchKeyFile reloads k from path whenever the file's modification time
// or size changes, checking every interval, until the returned stop is
// called. A broken file is logged and ignored (the keys in memory stay).
func WatchKeyFile(k *Keyring, path string, interval time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	stamp := func() string {
		fi, err := os.Stat(path)
		if err != nil {
			return ""
		}
		return fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
	}
	last := stamp()
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			now := stamp()
			if now == last || now == "" {
				continue
			}
			if err := k.ReloadFile(path); err != nil {
				if log != nil {
					log.Error("root key file changed but cannot be loaded; keeping the keys in memory", "file", path, "error", err)
				}
				continue
			}
			last = now
			if log != nil {
				log.Info("root keys reloaded", "file", path, "primary", k.Primary(), "keys", strings.Join(k.KeyIDs(), ","))
			}
		}
	}()
	return func() { cancel(); <-done }
}
