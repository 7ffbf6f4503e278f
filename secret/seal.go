package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Envelope format, version 1:
//
//	"v1" | len(kid) (1 byte) | kid | wrapped DEK (12-byte nonce + 32-byte key + 16-byte tag)
//	| nonce (12) | AES-256-GCM(ciphertext + tag)
//
// Each secret gets its own data key (DEK), wrapped by the root key named by
// kid. Rotating the root key re-wraps DEKs only; ciphertexts name their key
// from day one.
const envelopeVersion = "v1"

// Keyring seals with its primary root key and opens with any key it holds.
type Keyring struct {
	mu      sync.RWMutex
	primary string
	keys    map[string][]byte
}

// NewKeyring returns a keyring whose primary key is kid.
func NewKeyring(kid string, key []byte) (*Keyring, error) {
	k := &Keyring{keys: map[string][]byte{}}
	if err := k.Add(kid, key); err != nil {
		return nil, err
	}
	k.primary = kid
	return k, nil
}

// Add adds a key that Open accepts.
func (k *Keyring) Add(kid string, key []byte) error {
	if len(key) != 32 {
		return fmt.Errorf("root key %q: want 32 bytes, have %d", kid, len(key))
	}
	if kid == "" || len(kid) > 255 {
		return errors.New("root key id must be 1 to 255 bytes")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[kid] = append([]byte(nil), key...)
	return nil
}

// SetPrimary makes kid the key new seals use.
func (k *Keyring) SetPrimary(kid string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.keys[kid]; !ok {
		return fmt.Errorf("unknown root key %q", kid)
	}
	k.primary = kid
	return nil
}

// Primary returns the id of the key new seals use.
func (k *Keyring) Primary() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.primary
}

func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func seal(key, plaintext, aad []byte) ([]byte, error) {
	a, err := gcm(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plaintext)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return a.Seal(nonce, nonce, plaintext, aad), nil
}

func open(key, box, aad []byte) ([]byte, error) {
	a, err := gcm(key)
	if err != nil {
		return nil, err
	}
	if len(box) < a.NonceSize()+a.Overhead() {
		return nil, errors.New("sealed secret is truncated")
	}
	return a.Open(nil, box[:a.NonceSize()], box[a.NonceSize():], aad)
}

// Seal encrypts plaintext under a fresh data key wrapped by the primary
// root key. aad binds the ciphertext to its owner.
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	k.mu.RLock()
	kid, root := k.primary, k.keys[k.primary]
	k.mu.RUnlock()
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, err
	}
	wrapped, err := seal(root, dek, []byte(kid))
	if err != nil {
		return nil, err
	}
	body, err := seal(dek, plaintext, aad)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 3+len(kid)+len(wrapped)+len(body))
	out = append(out, envelopeVersion...)
	out = append(out, byte(len(kid)))
	out = append(out, kid...)
	out = append(out, wrapped...)
	return append(out, body...), nil
}

const wrappedLen = 12 + 32 + 16

func parseEnvelope(box []byte) (kid string, wrapped, body []byte, err error) {
	if len(box) < 3 || string(box[:2]) != envelopeVersion {
		return "", nil, nil, errors.New("sealed secret: unknown format")
	}
	n := int(box[2])
	if len(box) < 3+n+wrappedLen {
		return "", nil, nil, errors.New("sealed secret is truncated")
	}
	kid = string(box[3 : 3+n])
	rest := box[3+n:]
	return kid, rest[:wrappedLen], rest[wrappedLen:], nil
}

// Open decrypts a sealed secret with whichever root key it names.
func (k *Keyring) Open(box, aad []byte) ([]byte, error) {
	kid, wrapped, body, err := parseEnvelope(box)
	if err != nil {
		return nil, err
	}
	k.mu.RLock()
	root, ok := k.keys[kid]
	k.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("sealed secret: root key %q is not loaded", kid)
	}
	dek, err := open(root, wrapped, []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("sealed secret: unwrap data key: %w", err)
	}
	pt, err := open(dek, body, aad)
	if err != nil {
		return nil, fmt.Errorf("sealed secret: decrypt: %w", err)
	}
	return pt, nil
}

// KeyID returns the root key id a sealed secret names.
func KeyID(box []byte) (string, error) {
	kid, _, _, err := parseEnvelope(box)
	return kid, err
}

// Rewrap re-wraps box's data key under the primary root key, leaving the
// body untouched (root-key rotation).
func (k *Keyring) Rewrap(box []byte) ([]byte, error) {
	kid, wrapped, body, err := parseEnvelope(box)
	if err != nil {
		return nil, err
	}
	k.mu.RLock()
	old, ok := k.keys[kid]
	pkid, proot := k.primary, k.keys[k.primary]
	k.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("sealed secret: root key %q is not loaded", kid)
	}
	dek, err := open(old, wrapped, []byte(kid))
	if err != nil {
		return nil, err
	}
	nw, err := seal(proot, dek, []byte(pkid))
	if err != nil {
		return nil, err
	}
	out := append([]byte(envelopeVersion), byte(len(pkid)))
	out = append(out, pkid...)
	out = append(out, nw...)
	return append(out, body...), nil
}

// rootKeyFile is the on-disk form of the root keys.
type rootKeyFile struct {
	Primary string            `json:"primary"`
	Keys    map[string]string `json:"keys"` // kid → base64 key
}

// LoadOrCreateKeyring reads the root keys from path, creating the file with
// one new key (mode 0600) when it does not exist.
func LoadOrCreateKeyring(path string) (k *Keyring, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, false, err
		}
		kid := "rk" + strings.ToLower(base64.RawURLEncoding.EncodeToString(key[:4]))
		f := rootKeyFile{Primary: kid, Keys: map[string]string{kid: base64.StdEncoding.EncodeToString(key)}}
		out, _ := json.MarshalIndent(f, "", "  ")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, err
		}
		if err := os.WriteFile(path, out, 0o600); err != nil {
			return nil, false, fmt.Errorf("write root key file: %w", err)
		}
		k, err := NewKeyring(kid, key)
		return k, true, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("read root key file: %w", err)
	}
	var f rootKeyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, false, fmt.Errorf("root key file %s: %w", path, err)
	}
	k = &Keyring{keys: map[string][]byte{}}
	for kid, b64 := range f.Keys {
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, false, fmt.Errorf("root key file %s: key %q: %w", path, kid, err)
		}
		if err := k.Add(kid, key); err != nil {
			return nil, false, fmt.Errorf("root key file %s: %w", path, err)
		}
	}
	if err := k.SetPrimary(f.Primary); err != nil {
		return nil, false, fmt.Errorf("root key file %s: %w", path, err)
	}
	return k, false, nil
}

// DeriveKey returns a 32-byte key for purpose (cookie encryption, CSRF),
// derived from the primary root key with HKDF-SHA256 (RFC 5869), so every
// replica that shares the root key derives the same one.
func (k *Keyring) DeriveKey(purpose string) []byte {
	k.mu.RLock()
	root := k.keys[k.primary]
	k.mu.RUnlock()
	key, err := hkdf.Key(sha256.New, root, nil, "gatehouse "+purpose, 32)
	if err != nil {
		panic("secret: hkdf: " + err.Error())
	}
	return key
}
