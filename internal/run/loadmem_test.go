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

// manage's Loaded gives the memory left free back to the system at once:
// garbage the size of a load's is released, not kept for the heap to grow
// into, and the release is logged.
func TestReturnLoadMemory(t *testing.T) {
	released := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	runtime.GC()
	for range 64 << 20 >> 16 {
		sink = append(sink, make([]byte, 64<<10))
	}
	sink = nil // 64 MiB of garbage
	before := released()
	var log bytes.Buffer
	returnLoadMemory(slog.New(slog.NewTextHandler(&log, nil)))()
	if got := int64(released()) - int64(before); got < 32<<20 {
		t.Errorf("%d MiB returned to the system, want most of the 64 MiB left free", got>>20)
	}
	if !strings.Contains(log.String(), "memory the load left free returned") {
		t.Errorf("log %q: want the release logged", log.String())
	}
}
