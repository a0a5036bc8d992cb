package scale

// Churn: containers created, started, stopped and removed on the engines
// themselves (behind shoal's back, as an operator's own docker CLI or a
// crashing process would) at a steady rate, while clients follow
// `docker events` and `docker ps -a` through shoal. It checks that every
// event reaches every events client, in each engine's order, and that the
// view converges; it measures how fast (the lag from a change on an
// engine to shoal's ps showing it, and each event's delivery delay) and
// samples shoal's RSS, goroutines and open files over the run.
//
// TestChurnSmall (10 engines, 200 events/s for 3 s) always runs and
// asserts correctness only: every event received in order, the view
// converged. The full size runs only when asked:
//
//	SHOAL_SCALE=1 go test -count=1 -v -timeout 15m -run '^TestChurn1000$' ./test/scale/
//
// (SHOAL_CHURN_ENGINES, SHOAL_CHURN_RATE, SHOAL_CHURN_SECONDS change it.)

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// convergeTarget is the issue's: a change on an engine shows in ps within it.
const convergeTarget = time.Second

type churnConfig struct {
	engines, running, stopped int // fleet, containers per engine before the churn
	rate, slots               int // events per second over the fleet; churned containers per engine
	hold                      time.Duration
	duration                  time.Duration
	eventClients              int
}

func TestChurnSmall(t *testing.T) {
	r := runChurn(t, churnConfig{engines: 10, running: 3, stopped: 1, rate: 200, slots: 2,
		hold: 50 * time.Millisecond, duration: 3 * time.Second, eventClients: 2})
	r.assertCorrect(t)
}

func TestChurn1000(t *testing.T) {
	if os.Getenv("SHOAL_SCALE") != "1" {
		t.Skip("set SHOAL_SCALE=1 to churn 1,000 simulated engines")
	}
	r := runChurn(t, churnConfig{
		engines: envInt("SHOAL_CHURN_ENGINES", 1000), running: 8, stopped: 2,
		rate: envInt("SHOAL_CHURN_RATE", 1000), slots: 2, hold: time.Second,
		duration:     time.Duration(envInt("SHOAL_CHURN_SECONDS", 60)) * time.Second,
		eventClients: envInt("SHOAL_CHURN_CLIENTS", 4),
	})
	r.assertCorrect(t)
}

// churnResult is what a churn run found.
type churnResult struct {
	events      int      // emitted by the engines
	eventErrors []string // per events client: missing, extra or out-of-order events
	view        *viewTracker
	converged   error // the final ps -a against the fleet
}

// assertCorrect fails on what is wrong whatever the machine's speed:
// events lost or out of order, a change the view never showed.
func (r churnResult) assertCorrect(t *testing.T) {
	t.Helper()
	for _, e := range r.eventErrors {
		t.Error(e)
	}
	if r.converged != nil {
		t.Error(r.converged)
	}
	if n := r.view.unseen(); n > 0 {
		t.Errorf("%d changes on the engines never showed in shoal's ps -a", n)
	}
}

func runChurn(t *testing.T, cfg churnConfig) churnResult {
	raiseNoFile(t)
	fleet, list := startListedFleet(t, cfg.engines, func(i int) enginesim.Options {
		return enginesim.Options{Containers: cfg.running, Stopped: cfg.stopped, Images: 2}
	})
	base, pid := startShoal(t, "file://"+list, inproc())
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
	t.Cleanup(hc.CloseIdleConnections)
	total := cfg.engines * (cfg.running + cfg.stopped)
	waitLoaded(t, hc, base, cfg.engines, total, 10*time.Minute)
	t.Logf("shoal loaded %d engines, %d containers; load average %s", cfg.engines, total, loadavg())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clients := make([]*eventsClient, cfg.eventClients)
	for i := range clients {
		clients[i] = followEvents(t, ctx, base)
	}
	for _, e := range fleet.Engines {
		e.RecordEvents(true)
	}
	view := newViewTracker()
	sampler := startSampler(ctx, hc, base, pid)
	psCtx, psStop := context.WithCancel(ctx)
	var psWG sync.WaitGroup
	psWG.Add(2)
	go func() { defer psWG.Done(); view.watch(psCtx, hc, base) }()
	full := &psLoad{}
	go func() { defer psWG.Done(); full.run(psCtx, hc, base+apiPrefix+"/containers/json?all=1", time.Second) }()
	if dir := os.Getenv("SHOAL_SCALE_PROFILE"); dir != "" && pid > 0 {
		go cpuProfile(hc, base, filepath.Join(dir, "churn-cpu.pprof"), cfg.duration/2)
	}

	churnCtx, churnStop := context.WithTimeout(ctx, cfg.duration)
	defer churnStop()
	t0 := time.Now()
	emitted, err := fleet.Churn(churnCtx, cfg.rate, cfg.slots, cfg.hold, view.op)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	t.Logf("churn: %d events in %v (%.0f/s); load average %s", emitted, took.Round(time.Millisecond), float64(emitted)/took.Seconds(), loadavg())

	// The view and the events catch up; then the run is judged.
	converged := waitConverged(hc, base, fleet, 30*time.Second)
	psStop()
	psWG.Wait()
	r := churnResult{events: emitted, view: view, converged: converged}
	logs := make([][]enginesim.LoggedEvent, len(fleet.Engines))
	for i, e := range fleet.Engines {
		logs[i] = e.EventLog()
	}
	for i, c := range clients {
		c.waitFor(emitted, 30*time.Second)
		for _, msg := range c.check(fleet, logs) {
			r.eventErrors = append(r.eventErrors, fmt.Sprintf("events client %d: %s", i, msg))
		}
	}
	samples := sampler.stop()

	var rep strings.Builder
	fmt.Fprintf(&rep, "engines %d, containers %d, churn %d events/s asked, %d events in %v (%.0f/s), %d events clients, load average %s\n",
		cfg.engines, total, cfg.rate, emitted, took.Round(time.Millisecond), float64(emitted)/took.Seconds(), cfg.eventClients, loadavg())
	view.report(&rep)
	full.report(&rep)
	var delays []time.Duration
	for _, c := range clients {
		delays = append(delays, c.delays...)
	}
	slices.Sort(delays)
	if len(delays) > 0 {
		fmt.Fprintf(&rep, "event delivery (engine → events client through shoal), %d events: p50 %s p99 %s max %s\n",
			len(delays), ms(pct(delays, 0.5)), ms(pct(delays, 0.99)), ms(delays[len(delays)-1]))
	}
	fmt.Fprintf(&rep, "events clients: %d errors (lost, extra or out of order)\n", len(r.eventErrors))
	fmt.Fprintf(&rep, "final ps -a against the fleet: %v\n", orOK(converged))
	reportSamples(&rep, samples)
	t.Log("\n" + rep.String())
	if out := os.Getenv("SHOAL_SCALE_REPORT"); out != "" {
		_ = os.WriteFile(out, []byte(rep.String()), 0o644)
	}
	return r
}

func orOK(err error) string {
	if err == nil {
		return "converged"
	}
	return err.Error()
}

// waitConverged waits until shoal's ps -a lists as many containers as the
// fleet holds, each engine's own set.
func waitConverged(hc *http.Client, base string, fleet *enginesim.Fleet, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var have, want int
	for {
		want, _ = fleet.Count()
		body, err := getBody(hc, base+apiPrefix+"/containers/json?all=1")
		if err == nil {
			have = len(psIDs(body))
			if have == want {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after the churn shoal's ps -a lists %d containers, the fleet holds %d (%v)", have, want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getBody(hc *http.Client, url string) ([]byte, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s %.200s", url, resp.Status, b)
	}
	return b, err
}

// psIDs picks the containers' IDs out of a ps answer without decoding the
// rest (an answer of 10,000 containers is megabytes): "Id" is the only
// key of that exact name.
func psIDs(body []byte) map[string]struct{} {
	ids := map[string]struct{}{}
	key := []byte(`"Id":"`)
	for {
		i := bytes.Index(body, key)
		if i < 0 {
			return ids
		}
		body = body[i+len(key):]
		j := bytes.IndexByte(body, '"')
		if j < 0 {
			return ids
		}
		ids[string(body[:j])] = struct{}{}
		body = body[j:]
	}
}

// viewTracker follows the churn's creates and removes and the answers of
// one ps -a client polling shoal back to back; for each change it finds
// the first answer that shows it (an upper bound of the lag: the answer's
// end) and counts the answers that still did not, started more than
// convergeTarget after the change.
type viewTracker struct {
	mu       sync.Mutex
	created  map[string]time.Time // not yet seen
	removed  map[string]time.Time // not yet seen gone
	seen     map[string]bool      // created and seen: a later absence is the remove showing
	addLags  []time.Duration
	goneLags []time.Duration
	late     int // answers that missed a change older than convergeTarget
	polls    int // ps -a answers
	psTimes  []time.Duration
	errs     []string
	skipped  int // created and removed before any answer could show it
}

func newViewTracker() *viewTracker {
	return &viewTracker{created: map[string]time.Time{}, removed: map[string]time.Time{}, seen: map[string]bool{}}
}

func (v *viewTracker) op(op enginesim.ChurnOp) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch op.Action {
	case "create":
		v.created[op.ID] = op.At
	case "remove":
		if _, unseen := v.created[op.ID]; unseen {
			delete(v.created, op.ID)
			v.skipped++
			return
		}
		v.removed[op.ID] = op.At
	}
}

// watch polls `ps -a --filter label=enginesim.churn` (the churned
// containers only: the lag is measured on the same view as a full ps -a
// without rendering the whole of it back to back) until ctx ends.
func (v *viewTracker) watch(ctx context.Context, hc *http.Client, base string) {
	f, _ := json.Marshal(map[string][]string{"label": {enginesim.ChurnLabel}})
	u := base + apiPrefix + "/containers/json?all=1&filters=" + url.QueryEscape(string(f))
	for ctx.Err() == nil {
		start := time.Now()
		body, err := getBody(hc, u)
		end := time.Now()
		if err != nil {
			v.mu.Lock()
			v.errs = append(v.errs, err.Error())
			v.mu.Unlock()
			continue
		}
		v.answer(psIDs(body), start, end)
	}
}

// answer judges one ps -a answer, asked at start and read whole at end.
func (v *viewTracker) answer(ids map[string]struct{}, start, end time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.polls++
	v.psTimes = append(v.psTimes, end.Sub(start))
	for id, at := range v.created {
		if !at.Before(end) {
			continue
		}
		if _, ok := ids[id]; ok {
			v.addLags = append(v.addLags, end.Sub(at))
			v.seen[id] = true
			delete(v.created, id)
		} else if start.Sub(at) > convergeTarget {
			v.late++
		}
	}
	for id, at := range v.removed {
		if !at.Before(end) {
			continue
		}
		if _, ok := ids[id]; !ok && (v.seen[id] || start.After(at)) {
			v.goneLags = append(v.goneLags, end.Sub(at))
			delete(v.removed, id)
			delete(v.seen, id)
		} else if ok && start.Sub(at) > convergeTarget {
			v.late++
		}
	}
}

// unseen counts the changes no answer showed.
func (v *viewTracker) unseen() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.created) + len(v.removed)
}

func (v *viewTracker) report(w io.Writer) {
	v.mu.Lock()
	defer v.mu.Unlock()
	slices.Sort(v.psTimes)
	if len(v.psTimes) > 0 {
		fmt.Fprintf(w, "ps -a of the churned containers polled back to back: %d answers, p50 %s p99 %s (the lags below are upper bounds: change → end of the first answer showing it)\n",
			v.polls, ms(pct(v.psTimes, 0.5)), ms(pct(v.psTimes, 0.99)))
	}
	for _, l := range []struct {
		name string
		d    []time.Duration
	}{{"create shows", v.addLags}, {"remove shows", v.goneLags}} {
		slices.Sort(l.d)
		if len(l.d) == 0 {
			continue
		}
		within := 0
		for _, d := range l.d {
			if d <= convergeTarget {
				within++
			}
		}
		fmt.Fprintf(w, "%-13s n %5d  p50 %s p99 %s max %s, within %v: %.2f%% %s\n", l.name, len(l.d),
			ms(pct(l.d, 0.5)), ms(pct(l.d, 0.99)), ms(l.d[len(l.d)-1]), convergeTarget,
			100*float64(within)/float64(len(l.d)), verdict(within == len(l.d)))
	}
	fmt.Fprintf(w, "answers missing a change older than %v: %d; changes never shown: %d; created and removed before an answer: %d; ps errors: %d\n",
		convergeTarget, v.late, len(v.created)+len(v.removed), v.skipped, len(v.errs))
}

// psLoad is a client that asks a full list every period.
type psLoad struct {
	times []time.Duration
	errs  int
}

func (p *psLoad) run(ctx context.Context, hc *http.Client, u string, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		start := time.Now()
		if _, err := getBody(hc, u); err != nil {
			p.errs++
		}
		p.times = append(p.times, time.Since(start))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *psLoad) report(w io.Writer) {
	slices.Sort(p.times)
	if len(p.times) > 0 {
		fmt.Fprintf(w, "full ps -a once a second: %d answers, p50 %s p99 %s max %s, %d errors\n",
			len(p.times), ms(pct(p.times, 0.5)), ms(pct(p.times, 0.99)), ms(p.times[len(p.times)-1]), p.errs)
	}
}

// cpuProfile saves a CPU profile of shoal (started with --debug) taken
// for d, starting now.
func cpuProfile(hc *http.Client, base, path string, d time.Duration) {
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	if b, err := getBody(hc, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, int(d.Seconds()))); err == nil {
		_ = os.WriteFile(path, b, 0o644)
	}
}

// eventsClient follows `docker events --filter type=container` through shoal.
type eventsClient struct {
	mu       sync.Mutex
	byEngine map[string][]enginesim.LoggedEvent // node name → events in arrival order
	n        int
	delays   []time.Duration
	done     chan struct{}
	err      error
}

func followEvents(t *testing.T, ctx context.Context, base string) *eventsClient {
	f, _ := json.Marshal(map[string][]string{"type": {"container"}})
	req, err := http.NewRequestWithContext(ctx, "GET", base+apiPrefix+"/events?filters="+url.QueryEscape(string(f)), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %s", resp.Status)
	}
	c := &eventsClient{byEngine: map[string][]enginesim.LoggedEvent{}, done: make(chan struct{})}
	go c.read(resp.Body)
	t.Cleanup(func() { resp.Body.Close(); <-c.done })
	return c
}

func (c *eventsClient) read(body io.ReadCloser) {
	defer close(c.done)
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m struct {
			Action   string
			TimeNano int64 `json:"timeNano"`
			Actor    struct {
				ID         string
				Attributes map[string]string
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("event %q: %w", sc.Bytes(), err)
			c.mu.Unlock()
			return
		}
		d := time.Since(time.Unix(0, m.TimeNano))
		node := m.Actor.Attributes["node.name"]
		c.mu.Lock()
		c.byEngine[node] = append(c.byEngine[node], enginesim.LoggedEvent{ID: m.Actor.ID, Action: m.Action, TimeNano: m.TimeNano})
		c.n++
		c.delays = append(c.delays, d)
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.err = sc.Err()
	c.mu.Unlock()
}

// waitFor waits until n events arrived, the stream ended or limit passed.
func (c *eventsClient) waitFor(n int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		have := c.n
		c.mu.Unlock()
		select {
		case <-c.done:
			return
		default:
		}
		if have >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check compares what arrived from each engine with what it emitted.
func (c *eventsClient) check(fleet *enginesim.Fleet, logs [][]enginesim.LoggedEvent) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	if c.err != nil {
		out = append(out, fmt.Sprintf("stream: %v", c.err))
	}
	select {
	case <-c.done:
		out = append(out, "the stream ended")
	default:
	}
	want := 0
	for i, e := range fleet.Engines {
		want += len(logs[i])
		got := c.byEngine[e.Name()]
		if msg := sameEvents(got, logs[i]); msg != "" {
			out = append(out, fmt.Sprintf("engine %s: %s", e.Name(), msg))
			if len(out) > 10 {
				return append(out, "...")
			}
		}
	}
	if c.n != want {
		out = append(out, fmt.Sprintf("%d events arrived, the engines emitted %d", c.n, want))
	}
	return out
}

// sameEvents says how got differs from want ("" if not).
func sameEvents(got, want []enginesim.LoggedEvent) string {
	for i := range min(len(got), len(want)) {
		if got[i].ID != want[i].ID || got[i].Action != want[i].Action {
			return fmt.Sprintf("event %d is %s %.12s, want %s %.12s", i, got[i].Action, got[i].ID, want[i].Action, want[i].ID)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d events arrived, it emitted %d", len(got), len(want))
	}
	return ""
}

// sample is shoal's footprint at one instant.
type sample struct {
	at                   time.Duration
	rss, goroutines, fds int64
}

type sampler struct {
	stopc chan struct{}
	done  chan []sample
}

// startSampler reads shoal's /metrics (go_goroutines, process_open_fds,
// process_resident_memory_bytes) every second; with shoal as a binary RSS
// and open files come from /proc.
func startSampler(ctx context.Context, hc *http.Client, base string, pid int) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan []sample, 1)}
	go func() {
		var out []sample
		t0 := time.Now()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if m, err := getBody(hc, base+"/metrics"); err == nil {
				sm := sample{at: time.Since(t0), goroutines: metric(m, "go_goroutines"), fds: metric(m, "process_open_fds"), rss: metric(m, "process_resident_memory_bytes")}
				if pid > 0 {
					sm.rss = rss(pid)
					if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
						sm.fds = int64(len(ents))
					}
				}
				out = append(out, sm)
			}
			select {
			case <-ctx.Done():
			case <-s.stopc:
			case <-tick.C:
				continue
			}
			s.done <- out
			return
		}
	}()
	return s
}

func (s *sampler) stop() []sample {
	close(s.stopc)
	return <-s.done
}

// metric reads one unlabelled Prometheus sample (0 if absent).
func metric(body []byte, name string) int64 {
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return int64(f)
		}
	}
	return 0
}

// reportSamples shows the footprint at a few instants and compares the
// last quarter of the run with the first: what grows without bound shows
// as a last quarter well above the first.
func reportSamples(w io.Writer, s []sample) {
	if len(s) < 4 {
		fmt.Fprintf(w, "footprint: %d samples, too few to judge\n", len(s))
		return
	}
	fmt.Fprintf(w, "footprint over the run (%d samples):\n%8s %10s %11s %7s\n", len(s), "at", "RSS MiB", "goroutines", "fds")
	step := max(1, len(s)/8)
	for i := 0; i < len(s); i += step {
		fmt.Fprintf(w, "%8s %10.1f %11d %7d\n", s[i].at.Round(time.Second), mib(s[i].rss), s[i].goroutines, s[i].fds)
	}
	last := s[len(s)-1]
	fmt.Fprintf(w, "%8s %10.1f %11d %7d\n", last.at.Round(time.Second), mib(last.rss), last.goroutines, last.fds)
	q := len(s) / 4
	mean := func(part []sample, f func(sample) int64) float64 {
		var sum int64
		for _, x := range part {
			sum += f(x)
		}
		return float64(sum) / float64(len(part))
	}
	for _, m := range []struct {
		name string
		f    func(sample) int64
	}{{"RSS", func(x sample) int64 { return x.rss }}, {"goroutines", func(x sample) int64 { return x.goroutines }}, {"fds", func(x sample) int64 { return x.fds }}} {
		first, lastQ := mean(s[:q], m.f), mean(s[len(s)-q:], m.f)
		growth := 0.0
		if first > 0 {
			growth = lastQ/first - 1
		}
		fmt.Fprintf(w, "%-10s first quarter mean %.0f, last quarter mean %.0f: %+.1f%% %s\n", m.name, first, lastQ, 100*growth, verdict(growth < 0.10))
	}
}
