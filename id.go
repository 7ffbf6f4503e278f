package gatehouse

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

// Crockford's base32: no I, L, O, U; sorts like the bytes it encodes.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

var idMu sync.Mutex
var lastIDTime int64
var lastIDSeq uint16

// NewID returns prefix + "_" + a 26-character, time-ordered, random ID
// (48 bits of milliseconds, 80 random bits, ULID-like). Time order makes IDs
// usable as pagination cursors; the random part makes them unguessable.
func NewID(prefix string) string {
	var b [16]byte
	ms := time.Now().UnixMilli()
	idMu.Lock()
	// Keep IDs made in the same millisecond in order: bump a sequence in the
	// first two random bytes.
	if ms <= lastIDTime {
		ms = lastIDTime
		lastIDSeq++
	} else {
		lastIDTime = ms
		lastIDSeq = 0
	}
	seq := lastIDSeq
	idMu.Unlock()
	binary.BigEndian.PutUint64(b[:8], uint64(ms)<<16)
	_, _ = rand.Read(b[6:])
	binary.BigEndian.PutUint16(b[6:8], seq)
	return prefix + "_" + encode128(b)
}

// NewIDAt returns an ID like NewID's whose time part is t rather than now:
// IDs of rows that expire at t, made with NewIDAt(prefix, t), sort by
// expiry, so the expired ones are the IDs below IDFloor(prefix, cutoff)
// and a sweep reads them in the primary key's order, with no index of
// its own. The 80 random bits keep such IDs unguessable and distinct.
func NewIDAt(prefix string, t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return prefix + "_" + encode128(b)
}

// IDFloor is the least ID of prefix whose time part is t: every ID of
// prefix made (by NewID or NewIDAt) for a millisecond before t sorts
// below it, byte-wise, and every one for t or later does not.
func IDFloor(prefix string, t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	return prefix + "_" + encode128(b)
}

func encode128(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// NormalizeEmail trims and lower-cases an email for comparison and
// uniqueness. The address as sent is kept separately for display.
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// EmailDomain returns the lower-case domain of an email, or "".
func EmailDomain(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 || at == len(email)-1 {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(email[at+1:]))
}

// ValidEmail reports whether s looks like one addr-spec: one @, a non-empty
// local part, a dotted domain, no spaces or control characters.
func ValidEmail(s string) bool {
	if len(s) > 320 || strings.Count(s, "@") != 1 {
		return false
	}
	at := strings.IndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if local == "" || len(local) > 64 || domain == "" || !strings.Contains(domain, ".") {
		return false
	}
	if strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == '(' || r == ')' || r == ',' || r == ';' || r == '\\' || r == '"' {
			return false
		}
	}
	return true
}

// FoldKey is the case-insensitive key of usernames and group names.
func FoldKey(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
