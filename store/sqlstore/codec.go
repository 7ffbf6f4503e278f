package sqlstore

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// Times are stored as int64 microseconds since the epoch, UTC.

// normTime is t as it reads back from the database: UTC, microseconds, no
// monotonic reading. Writers normalize the caller's struct with it, so an
// object compares equal to the same object read back.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

func normTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	n := normTime(*t)
	return &n
}

// ts encodes t; the zero time is 0 and reads back as the zero time.
func ts(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// tsPtr encodes an optional time; nil is NULL.
func tsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

func fromTS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func nullTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromTS(v.Int64)
	return &t
}

// jsonArg encodes v as JSON text for a TEXT or JSONB column. A nil slice
// is stored as [] and a nil map as {} so readers always get a value.
func jsonArg(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", errInternal("encode JSON column", err)
	}
	switch string(b) {
	case "null":
		switch v.(type) {
		case []string:
			return "[]", nil
		case map[string]any, map[string]string:
			return "{}", nil
		}
	}
	return string(b), nil
}

// unmarshalJSON decodes a JSON column into dst; empty text leaves dst alone.
func unmarshalJSON(text []byte, dst any) error {
	if len(text) == 0 {
		return nil
	}
	if err := json.Unmarshal(text, dst); err != nil {
		return errInternal("decode JSON column", err)
	}
	return nil
}

// rawJSON returns an optional JSON column as a RawMessage (nil for NULL).
func rawJSON(text sql.NullString) json.RawMessage {
	if !text.Valid {
		return nil
	}
	return json.RawMessage(text.String)
}

// rawArg is a RawMessage for a nullable JSON column.
func rawArg(m json.RawMessage) any {
	if m == nil {
		return nil
	}
	return string(m)
}

// Pagination. IDs from gatehouse.NewID are time-ordered, so a list ordered
// by ID is ordered by creation and the last ID of a page is the cursor.

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// pageLimit clamps p.Limit to [1, 1000], 100 when unset.
func pageLimit(p gatehouse.Page) int {
	switch {
	case p.Limit <= 0:
		return defaultLimit
	case p.Limit > maxLimit:
		return maxLimit
	}
	return p.Limit
}

// cursorPrefix versions the cursor format so it can change later.
const cursorPrefix = "c1:"

// encodeCursor makes the opaque cursor after id.
func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + id))
}

// decodeCursor returns the ID a cursor stands for ("" for no cursor).
func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(b), cursorPrefix) || len(b) == len(cursorPrefix) {
		return "", &gatehouse.Error{Code: gatehouse.EINVALID, Field: "cursor", Message: "The page cursor is not valid."}
	}
	return strings.TrimPrefix(string(b), cursorPrefix), nil
}

// nextCursor trims a page fetched with limit+1 rows and returns the cursor
// of the next page ("" on the last page).
func nextCursor[T any](items []T, limit int, id func(T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, encodeCursor(id(items[limit-1]))
}

// orEmpty returns s, or an empty non-nil slice, so lists encode as [].
func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
