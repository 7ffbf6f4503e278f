package scim

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// referenceJSON is what encoding/json writes for v.
func referenceJSON(t *testing.T, v any, html bool) []byte {
	t.Helper()
	if html {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func checkAppendJSON(t *testing.T, v any) {
	t.Helper()
	for _, html := range []bool{false, true} {
		got, err := appendJSON(nil, v, html)
		if err != nil {
			t.Fatalf("appendJSON(%#v): %v", v, err)
		}
		if want := referenceJSON(t, v, html); !bytes.Equal(got, want) {
			t.Errorf("appendJSON(%#v, html=%v)\n got %s\nwant %s", v, html, got, want)
		}
	}
}

func TestAppendJSON(t *testing.T) {
	for _, v := range []any{
		nil, true, false, 0, -12, int64(1) << 40, "", "plain", `q"uote\back`, "\b\f\n\r\t\x00\x1f\x7f",
		"<a href='x'>&amp;</a>", "\u2028\u2029", "é漢🙂", "bad \xff\xfe utf8 \xe2\x82", 1.5, 1e21, 1e-7, json.Number("12.50"),
		map[string]any{}, []any{}, []string{}, []string{"a", "<b>"}, map[string]any(nil), []any(nil), []string(nil),
		map[string]any{"b": 1, "a": []any{map[string]any{"z": nil, "é": "x", "A": true}}, "<": ">"},
		map[string]string{"typed": "falls back"},
	} {
		checkAppendJSON(t, v)
	}
}

// FuzzAppendJSON: any JSON text, decoded as SCIM decodes bodies (numbers
// as json.Number) and as the store decodes columns (float64), is written
// byte for byte as encoding/json writes it.
func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,"x\u2028",{"<":true}],"b":null}`, `"\ud800"`, `[1e400]`, `{"é":-0.0}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var plain any
		if json.Unmarshal([]byte(s), &plain) == nil {
			checkAppendJSON(t, plain)
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(s)))
		dec.UseNumber()
		var num any
		if dec.Decode(&num) == nil {
			checkAppendJSON(t, num)
		}
		checkAppendJSON(t, s) // the text itself as a string
	})
}

// TestUserEventJSON: appendUserEvent writes what json.Marshal writes for
// {"user": u}, for users with and without every optional field.
func TestUserEventJSON(t *testing.T) {
	// appendUserEvent names each field of gatehouse.User; a new field must
	// be added there (and here).
	known := []string{"ID", "TenantID", "Email", "Username", "DisplayName", "GivenName", "FamilyName", "Status",
		"ExternalID", "Source", "Attributes", "CreatedAt", "UpdatedAt", "LastLoginAt", "Version", "DeletedAt", "Groups"}
	typ := reflect.TypeFor[gatehouse.User]()
	if typ.NumField() != len(known) {
		t.Fatalf("gatehouse.User has %d fields, appendUserEvent knows %d: update it", typ.NumField(), len(known))
	}
	for i, name := range known {
		if typ.Field(i).Name != name {
			t.Fatalf("gatehouse.User field %d is %s, appendUserEvent expects %s: update it", i, typ.Field(i).Name, name)
		}
	}
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 123456000, time.UTC)
	t1 := t0.Add(90 * time.Minute).In(time.FixedZone("x", 3600))
	for _, u := range []*gatehouse.User{
		{},
		{ID: "usr_1", TenantID: "ten_1", Email: "a&b@<x>.com", Username: "a\u2028b", DisplayName: "Ünï \"q\"", GivenName: "\x01",
			FamilyName: "\xff", Status: "active", ExternalID: "ext<1>", Source: "scim",
			Attributes: map[string]any{SchemaUser: map[string]any{"title": "<Boss>", "n": 1.5}, "z": []any{true, nil}},
			CreatedAt:  t0, UpdatedAt: t1, LastLoginAt: &t1, Version: 7, DeletedAt: &t0, Groups: []string{"a", "<b>"}},
		{ID: "usr_2", Status: "deactivated", Attributes: map[string]any{}, CreatedAt: t0, UpdatedAt: t0, Version: 1, Groups: []string{}},
	} {
		got, err := appendUserEvent(nil, u)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(map[string]any{"user": u})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("appendUserEvent\n got %s\nwant %s", got, want)
		}
	}
}

// BenchmarkUserJSON: a created user's response body and outbox payload,
// through encoding/json and through appendJSON / appendUserEvent.
func BenchmarkUserJSON(b *testing.B) {
	s := NewServer(Config{PublicURL: "https://sso.example.com"})
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 123456000, time.UTC)
	u := &gatehouse.User{ID: "usr_01m8ns7d1d000k90wrk4sg7ch1", TenantID: "ten_01m8ns7d1d000cgk38z9j7w00h", Email: "bench1@acme.com",
		Username: "bench1@acme.com", GivenName: "Bench", FamilyName: "1", Status: gatehouse.StatusActive, ExternalID: "ext-bench1@acme.com",
		Source: gatehouse.SourceSCIM, CreatedAt: t0, UpdatedAt: t0, Version: 1, Groups: []string{},
		Attributes: map[string]any{SchemaUser: map[string]any{"emails": []any{map[string]any{"value": "bench1@acme.com", "type": "work", "primary": true}}}}}
	doc := s.userDoc(u, []*gatehouse.Membership{})
	b.Run("response/encoding_json", func(b *testing.B) {
		for b.Loop() {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(doc)
		}
	})
	b.Run("response/appendJSON", func(b *testing.B) {
		for b.Loop() {
			_, _ = appendJSON(make([]byte, 0, 1024), doc, false)
		}
	})
	b.Run("payload/json.Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(map[string]any{"user": u})
		}
	})
	b.Run("payload/appendUserEvent", func(b *testing.B) {
		for b.Loop() {
			_, _ = appendUserEvent(make([]byte, 0, 512), u)
		}
	})
}
