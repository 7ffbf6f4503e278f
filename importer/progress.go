package importer

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// bar draws a one-line progress bar with \r; it draws nothing without a
// writer (stdout is not a terminal).
type bar struct {
	w     io.Writer
	total int
	count int
	start time.Time
}

func newBar(w io.Writer, total int) *bar { return &bar{w: w, total: total, start: time.Now()} }

const barWidth = 30

func (b *bar) step(n int, verb string) {
	if b.w == nil || b.total == 0 {
		return
	}
	b.count += n
	filled := barWidth * b.count / b.total
	rate := float64(b.count) / max(time.Since(b.start).Seconds(), 1e-3)
	fmt.Fprintf(b.w, "\r[%s%s] %d/%d rows %s (%.0f/s)", strings.Repeat("#", filled), strings.Repeat(" ", barWidth-filled), b.count, b.total, verb, rate)
}

func (b *bar) reset() {
	if b.w != nil {
		fmt.Fprintln(b.w)
	}
	b.count, b.start = 0, time.Now()
}

func (b *bar) done() {
	if b.w != nil && b.count > 0 {
		fmt.Fprintln(b.w)
	}
}
