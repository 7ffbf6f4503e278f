// Package webhook delivers a tenant's provisioning events (the store's
// outbox) to the HTTPS endpoints the tenant configured, signed with
// HMAC-SHA256, at least once, with retries and exponential backoff, from
// any number of replicas.
//
// # Wire format
//
// Each delivery is a POST with a JSON body
//
//	{"id":"obx_...","type":"user.created","tenant_id":"ten_...","created_at":"...","data":{...}}
//
// where id is the event's ID (the same on every retry and for every
// webhook: receivers use it to drop duplicates) and data is the payload
// the writer of the event recorded. Headers:
//
//	Content-Type: application/json
//	Gatehouse-Event: user.created
//	Gatehouse-Delivery: dlv_...   (one per event and webhook)
//	Gatehouse-Signature: t=1700000000,v1=<hex>
//
// v1 is hex(HMAC-SHA256(secret, t + "." + body)) over the raw body bytes,
// the scheme Stripe popularised: the timestamp inside the signed text lets
// a receiver refuse replays older than a few minutes (Verify does both).
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// SignatureHeader carries the signature of a delivery.
const SignatureHeader = "Gatehouse-Signature"

// SecretPrefix starts every signing secret.
const SecretPrefix = "whsec_"

// DefaultTolerance is how old a signature Verify accepts by default.
const DefaultTolerance = 5 * time.Minute

// NewSecret returns a new signing secret: SecretPrefix and 32 random
// bytes, base64url. The whole string is the HMAC key.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// Sign returns the Gatehouse-Signature header value of body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a Gatehouse-Signature header against body: one of its v1
// values must be the HMAC of "t.body" (several v1 values may appear while
// a secret is being rotated), and t must be within tolerance of now
// (zero means DefaultTolerance). It is the receiver's side, given here as
// the reference implementation and for tests.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return gatehouse.Errorf(gatehouse.EUNAUTHORIZED, "Malformed %s header.", SignatureHeader)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return gatehouse.Errorf(gatehouse.EUNAUTHORIZED, "The signature's timestamp is outside the tolerance.")
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) { // constant time
			return nil
		}
	}
	return gatehouse.Errorf(gatehouse.EUNAUTHORIZED, "The signature does not match.")
}
