package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
)

// DefaultMaxBodyBytes is the request body limit when Config leaves it zero.
const DefaultMaxBodyBytes = 1 << 20

// readBody reads the whole request body, refusing one over the limit before
// anything is parsed or written.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &gatehouse.Error{Code: gatehouse.EINVALID, Reason: reasonTooLarge,
			Message: fmt.Sprintf("The request body is larger than the limit of %d bytes.", s.maxBody)}
	}
	if err != nil {
		return nil, &gatehouse.Error{Code: gatehouse.EINVALID, Message: "The request body could not be read.", Err: err}
	}
	return body, nil
}

// decode reads a JSON object from the request body into dst, strictly:
// unknown fields, wrong types, trailing data and an empty body are refused
// with an EINVALID error naming the field where there is one.
func (s *server) decode(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrict(body, "", dst)
}

// decodeStrict unmarshals data into dst, refusing unknown fields. prefix
// ("jit.") is put before the field names of errors, for nested objects that
// are decoded on their own.
func decodeStrict(data []byte, prefix string, dst any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return gatehouse.Errorf(gatehouse.EINVALID, "The request body is empty; send a JSON object.")
	}
	if err := exactKeys(data, prefix, dst); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, prefix)
	}
	if _, err := dec.Token(); err != io.EOF {
		return gatehouse.Errorf(gatehouse.EINVALID, "Malformed JSON: unexpected data after the top-level value.")
	}
	return nil
}

// exactKeys refuses top-level keys of a JSON object that are not exactly a
// field name of the struct dst points to: encoding/json matches names
// case-insensitively, so "EMAIL" would otherwise pass as "email".
func exactKeys(data []byte, prefix string, dst any) error {
	t := reflect.TypeOf(dst)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(data, &raw) != nil {
		return nil // not an object: the decoder reports it
	}
	names := map[string]bool{}
	for i := range t.Elem().NumField() {
		f := t.Elem().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "-" {
			names[cmp.Or(name, f.Name)] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if !names[k] {
			return gatehouse.FieldError(prefix+k, "Unknown field %q.", prefix+k)
		}
	}
	return nil
}

// jsonError turns an encoding/json error into a user-safe EINVALID error.
func jsonError(err error, prefix string) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &gatehouse.Error{Code: gatehouse.EINVALID, Err: err,
			Message: fmt.Sprintf("Malformed JSON at byte %d: %s.", syn.Offset, syn.Error())}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &gatehouse.Error{Code: gatehouse.EINVALID, Err: err, Message: "Malformed JSON: the body ends too early."}
	case errors.As(err, &typ):
		field := prefix + typ.Field
		if typ.Field == "" {
			return &gatehouse.Error{Code: gatehouse.EINVALID, Err: err, Field: strings.TrimSuffix(prefix, "."),
				Message: fmt.Sprintf("Expected a JSON object, got %s.", typ.Value)}
		}
		return &gatehouse.Error{Code: gatehouse.EINVALID, Field: field, Err: err,
			Message: fmt.Sprintf("Field %q must be %s, not %s.", field, jsonKind(typ.Type.Kind().String()), typ.Value)}
	}
	// encoding/json reports unknown fields only in its message:
	// `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return &gatehouse.Error{Code: gatehouse.EINVALID, Field: prefix + name, Err: err,
			Message: fmt.Sprintf("Unknown field %q.", prefix+name)}
	}
	var ge *gatehouse.Error
	if errors.As(err, &ge) {
		if prefix != "" && ge.Field != "" {
			ge.Field = prefix + ge.Field
		}
		return ge
	}
	return &gatehouse.Error{Code: gatehouse.EINVALID, Err: err, Message: "Malformed JSON."}
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "a " + kind
}

// queryInt parses an optional non-negative integer query parameter.
func queryInt(r *http.Request, name string, max int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, gatehouse.FieldError(name, "Query parameter %s must be an integer from 1 to %d.", name, max)
	}
	return n, nil
}

// page reads ?limit= and ?cursor=.
func page(r *http.Request) (gatehouse.Page, error) {
	limit, err := queryInt(r, "limit", 1000)
	if err != nil {
		return gatehouse.Page{}, err
	}
	return gatehouse.Page{Limit: limit, Cursor: r.URL.Query().Get("cursor")}, nil
}

// list is the shape of every paginated list response.
type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}
