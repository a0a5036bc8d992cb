package run

import (
	"log/slog"
	"os"
	"runtime/debug"
	"testing"
)

func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// GOGC is loadGOGC while the engines load and back at its value once
// they loaded (or manage ended first); a GOGC in the environment is left
// alone.
func TestLoadGC(t *testing.T) {
	if v, ok := os.LookupEnv("GOGC"); ok {
		os.Unsetenv("GOGC")
		t.Cleanup(func() { os.Setenv("GOGC", v) })
	}
	before := gcPercent()
	loaded, done := loadGC(slog.New(slog.DiscardHandler))
	if p := gcPercent(); p != loadGOGC {
		t.Errorf("GOGC %d while loading, want %d", p, loadGOGC)
	}
	loaded()
	if p := gcPercent(); p != before {
		t.Errorf("GOGC %d once loaded, want %d back", p, before)
	}
	done()
	if p := gcPercent(); p != before {
		t.Errorf("GOGC %d after done, want %d", p, before)
	}

	_, done = loadGC(slog.New(slog.DiscardHandler))
	done() // manage ended before the engines loaded
	if p := gcPercent(); p != before {
		t.Errorf("GOGC %d after done without a load, want %d back", p, before)
	}

	t.Setenv("GOGC", "200")
	debug.SetGCPercent(200)
	defer debug.SetGCPercent(before)
	loaded, _ = loadGC(slog.New(slog.DiscardHandler))
	if p := gcPercent(); p != 200 {
		t.Errorf("GOGC %d with GOGC=200 in the environment, want it left alone", p)
	}
	loaded()
	if p := gcPercent(); p != 200 {
		t.Errorf("GOGC %d once loaded with GOGC=200 in the environment, want 200", p)
	}
}
