package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/metrics"
)

// BenchmarkScrape1000 is the cost of one scrape of /metrics at 1,000
// simulated engines holding 30,000 containers (25 running, 5 exited
// each), their health checks having filled the per-engine call
// histograms: time per scrape, and bytes of the text answer.
//
//	go test -run '^$' -bench Scrape1000 -benchtime 50x ./internal/metrics/
func BenchmarkScrape1000(b *testing.B) {
	engines := 1000
	if n, err := strconv.Atoi(os.Getenv("SHOAL_SCRAPE_ENGINES")); err == nil && n > 0 {
		engines = n // a quick run: SHOAL_SCRAPE_ENGINES=50
	}
	fleet, err := enginesim.StartFleet(engines, func(int) enginesim.Options {
		return enginesim.Options{Containers: 25, Stopped: 5, Images: 2}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer fleet.Close()
	m := metrics.New(metrics.Config{Version: "bench", Commit: "bench"})
	// Health checks every 5 s, each waiting up to 5 s: on a loaded
	// machine the default 2 s make engines flap.
	pool := engine.NewPool(engine.Options{RefreshInterval: 5 * time.Second, Timeout: 10 * time.Second}, nil)
	m.WatchPool(pool)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = pool.Run(ctx) }()
	go func() { _ = m.FollowEvents(pool)(ctx) }()
	pool.Update(fleet.Addrs())
	for deadline := time.Now().Add(10 * time.Minute); cached(pool) < engines*30; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d containers cached after 10 minutes", cached(pool), engines*30)
		}
	}
	b.Logf("%d engines healthy, %d containers cached", len(pool.Healthy()), cached(pool))
	h := m.Handler()
	b.ResetTimer()
	var size int
	b.ReportAllocs()
	for b.Loop() {
		// The answer is counted, not kept, as a connection would take
		// it: B/op is what the scrape itself holds and allocates.
		w := &countingWriter{header: http.Header{}}
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if w.code != http.StatusOK {
			b.Fatalf("scrape: %d", w.code)
		}
		size = w.n
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}

// countingWriter is a ResponseWriter that counts the body and drops it.
type countingWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *countingWriter) Header() http.Header { return w.header }
func (w *countingWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *countingWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}

// cached counts the containers in the pool's caches.
func cached(p *engine.Pool) int {
	n := 0
	for _, e := range p.Engines() {
		n += len(e.Containers())
	}
	return n
}
