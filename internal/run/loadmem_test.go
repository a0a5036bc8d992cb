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

//go:noinline
func deep(n int, grown chan<- struct{}, wait <-chan struct{}) byte {
	var pad [1 << 10]byte
	if n == 0 {
		grown <- struct{}{}
		<-wait
		return pad[0]
	}
	pad[n%len(pad)] = byte(n)
	return deep(n-1, grown, wait) + pad[(n+1)%len(pad)]
}

// The stacks goroutines grew during the load and no longer use are
// shrunk to what they use, not only halved once by one collection.
func TestReturnLoadMemoryShrinksStacks(t *testing.T) {
	const n = 64
	grown, back := make(chan struct{}), make(chan struct{})
	wait, parked := make(chan struct{}), make(chan struct{})
	defer close(wait)
	for range n {
		go func() {
			deep(48, grown, parked) // ~64 KiB of stack at its deepest
			back <- struct{}{}
			<-wait // then waits on a small frame
		}()
		<-grown
	}
	close(parked)
	for range n {
		<-back
	}
	before := memMetric("/memory/classes/heap/stacks:bytes")
	returnLoadMemory(slog.New(slog.DiscardHandler))()
	after := memMetric("/memory/classes/heap/stacks:bytes")
	// One collection halves each 64 KiB stack once (~2 MiB of 4 left);
	// shrunk to what they use, they hold 2–4 KiB each.
	if after > before/4 {
		t.Errorf("stacks %d KiB before, %d KiB after: want them shrunk to what they use (under %d KiB)", before>>10, after>>10, before/4>>10)
	}
}
