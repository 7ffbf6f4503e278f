package importer

import (
	"strings"
	"testing"
)

func TestChunkByCountAndSize(t *testing.T) {
	long := strings.Repeat("x", 200)
	rows := make([]Row, 10)
	for i := range rows {
		rows[i] = Row{Email: "u@x.y", DisplayName: &long}
	}
	for _, tc := range []struct{ n, bytes, want int }{
		{3, 1 << 20, 4}, {10, 1 << 20, 1}, {100, 500, 5}, {100, 1, 10},
	} {
		got := chunk(rows, tc.n, tc.bytes)
		total := 0
		for _, c := range got {
			total += len(c)
		}
		if len(got) != tc.want || total != len(rows) {
			t.Errorf("chunk(n=%d, bytes=%d): %d chunks of %d rows, want %d", tc.n, tc.bytes, len(got), total, tc.want)
		}
	}
}
