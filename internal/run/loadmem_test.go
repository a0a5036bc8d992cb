package run

import (
	"bytes"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
)

var sink [][]byte

func memMetric(name string) int64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// manage's Loaded gives the memory left free back to the system at once:
// garbage the size of a load's is released, not kept for the heap to grow
// into, and the release is logged.
func TestReturnLoadMemory(t *testing.T) {
	runtime.GC()
	for range 64 << 20 >> 16 {
		sink = append(sink, make([]byte, 64<<10))
	}
	sink = nil // 64 MiB of garbage
	before := memMetric("/memory/classes/heap/released:bytes")
	var log bytes.Buffer
	returnLoadMemory(slog.New(slog.NewTextHandler(&log, nil)))()
	if got := memMetric("/memory/classes/heap/released:bytes") - before; got < 32<<20 {
		t.Errorf("%d MiB returned to the system, want most of the 64 MiB left free", got>>20)
	}
	if !strings.Contains(log.String(), "memory the load left free returned") {
		t.Errorf("log %q: want the release logged", log.String())
	}
}
