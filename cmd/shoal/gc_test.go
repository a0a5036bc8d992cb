package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// withGOGC runs f with GOGC set to v in the environment (unset when v is
// nil) and restores the environment and the GC percent after.
func withGOGC(t *testing.T, v *string, f func()) {
	old, had := os.LookupEnv("GOGC")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer func() {
		if had {
			os.Setenv("GOGC", old)
		} else {
			os.Unsetenv("GOGC")
		}
	}()
	if v == nil {
		os.Unsetenv("GOGC")
	} else {
		os.Setenv("GOGC", *v)
	}
	f()
}

func TestTuneGCSetsTheDefault(t *testing.T) {
	withGOGC(t, nil, func() {
		tuneGC()
		if got := debug.SetGCPercent(100); got != defaultGCPercent {
			t.Errorf("GC percent %d, want %d", got, defaultGCPercent)
		}
	})
}

func TestTuneGCLeavesTheEnvironmentsGOGC(t *testing.T) {
	v := "80"
	withGOGC(t, &v, func() {
		debug.SetGCPercent(80) // as the runtime read it at start
		tuneGC()
		if got := debug.SetGCPercent(100); got != 80 {
			t.Errorf("GOGC=80 in the environment: GC percent %d", got)
		}
	})
}
