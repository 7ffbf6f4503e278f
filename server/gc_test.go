package server

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tc := range []struct {
		gogc string
		want int
	}{
		{gogc: "", want: DefaultGCPercent},
		{gogc: "150", want: 150}, // the operator's choice wins
	} {
		t.Setenv("GOGC", tc.gogc)
		debug.SetGCPercent(150) // what the runtime read from GOGC at start
		TuneGC()
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("GOGC=%q: percent in effect %d, want %d", tc.gogc, got, tc.want)
		}
	}
}
