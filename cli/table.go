package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

type table struct{ w *tabwriter.Writer }

func newTable(w io.Writer) *table { return &table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)} }

func (t *table) row(cells ...string) { fmt.Fprintln(t.w, strings.Join(cells, "\t")) }

func (t *table) flush() { _ = t.w.Flush() }

// cell renders one JSON value for a table: lists comma-separated, times
// shortened, nulls as "-".
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t.UTC().Format("2006-01-02 15:04:05Z")
		}
		return strings.ReplaceAll(x, "\t", " ")
	case []any:
		parts := make([]string, len(x))
		for i, y := range x {
			parts[i] = cell(y)
		}
		if len(parts) == 0 {
			return "-"
		}
		return strings.Join(parts, ",")
	case float64:
		return fmt.Sprintf("%g", x)
	case bool:
		return fmt.Sprint(x)
	}
	return fmt.Sprint(v)
}
