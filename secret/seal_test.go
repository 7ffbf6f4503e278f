package secret

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestSealOpenRoundTrip(t *testing.T) {
	k, err := NewKeyring("k1", key(1))
	if err != nil {
		t.Fatal(err)
	}
	box, err := k.Seal([]byte("client-secret"), []byte("conn_1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(box, []byte("client-secret")) {
		t.Fatal("plaintext visible in sealed box")
	}
	pt, err := k.Open(box, []byte("conn_1"))
	if err != nil || string(pt) != "client-secret" {
		t.Fatalf("open: %q %v", pt, err)
	}
	if kid, _ := KeyID(box); kid != "k1" {
		t.Fatalf("kid %q", kid)
	}
}

func TestOpenRefusesTampering(t *testing.T) {
	k, _ := NewKeyring("k1", key(1))
	box, _ := k.Seal([]byte("s"), []byte("conn_1"))
	for name, tc := range map[string]struct {
		box []byte
		aad string
	}{
		"other owner":    {box, "conn_2"},
		"flipped byte":   {append(append([]byte(nil), box[:len(box)-1]...), box[len(box)-1]^1), "conn_1"},
		"truncated":      {box[:10], "conn_1"},
		"unknown format": {append([]byte("v9"), box[2:]...), "conn_1"},
	} {
		if _, err := k.Open(tc.box, []byte(tc.aad)); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	other, _ := NewKeyring("k1", key(2))
	if _, err := other.Open(box, []byte("conn_1")); err == nil {
		t.Error("opened with another root key of the same id")
	}
}

func TestRotateAndRewrap(t *testing.T) {
	k, _ := NewKeyring("k1", key(1))
	box, _ := k.Seal([]byte("private key"), nil)
	if err := k.Add("k2", key(2)); err != nil {
		t.Fatal(err)
	}
	if err := k.SetPrimary("k2"); err != nil {
		t.Fatal(err)
	}
	nb, err := k.Rewrap(box)
	if err != nil {
		t.Fatal(err)
	}
	if kid, _ := KeyID(nb); kid != "k2" {
		t.Fatalf("rewrapped under %q", kid)
	}
	only2, _ := NewKeyring("k2", key(2))
	if pt, err := only2.Open(nb, nil); err != nil || string(pt) != "private key" {
		t.Fatalf("open after rewrap: %q %v", pt, err)
	}
}

func TestLoadOrCreateKeyring(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "root.key")
	k1, created, err := LoadOrCreateKeyring(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	box, _ := k1.Seal([]byte("x"), nil)
	k2, created, err := LoadOrCreateKeyring(path)
	if err != nil || created {
		t.Fatalf("load: %v %v", created, err)
	}
	if pt, err := k2.Open(box, nil); err != nil || string(pt) != "x" {
		t.Fatalf("reloaded keyring cannot open: %v", err)
	}
}

func TestTokens(t *testing.T) {
	a, b := NewToken("gh_"), NewToken("gh_")
	if a == b || !strings.HasPrefix(a, "gh_") || len(a) < 3+43 {
		t.Fatalf("tokens %q %q", a, b)
	}
	if strings.ContainsAny(a[3:], "+/=") {
		t.Fatalf("token not URL-safe: %q", a)
	}
	if !Matches(a, Digest(a)) || Matches(b, Digest(a)) {
		t.Fatal("digest match wrong")
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc":    "abc",
		"bearer  abc ":  "abc",
		"BEARER abc":    "abc",
		"Basic abc":     "",
		"Bearer":        "",
		"Bearer ":       "",
		"":              "",
		"Bearerabc def": "",
	} {
		if got := BearerToken(in); got != want {
			t.Errorf("BearerToken(%q) = %q, want %q", in, got, want)
		}
	}
}
