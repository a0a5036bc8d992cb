package engine

import (
	"net/http"
	"sync/atomic"
	"time"
)

// CallObserver is told of each HTTP call shoal makes to an engine once the
// answer's headers arrived or the call failed (status 0 then): the
// metrics' engine call latency and errors. It must not block.
type CallObserver func(addr string, d time.Duration, status int, err error)

// ObserveCalls makes every engine client of the pool, present and future,
// report its calls to obs (nil: to nobody). The pool depends on no
// consumer: obs is data set at wiring time.
func (p *Pool) ObserveCalls(obs CallObserver) {
	if obs == nil {
		p.calls.Store(nil)
		return
	}
	p.calls.Store(&obs)
}

// observed makes c's calls reported to the pool's CallObserver, if any.
func (p *Pool) observed(c *Client, addr string) *Client {
	if c != nil {
		c.hc.Transport = observedTransport{next: c.hc.Transport, addr: addr, obs: &p.calls}
		c.observe = func(d time.Duration, status int, err error) { // health checks (pinger.go)
			if obs := p.calls.Load(); obs != nil {
				(*obs)(addr, d, status, err)
			}
		}
	}
	return c
}

// observedTransport times each round trip to one engine (hijacked streams
// dial their own connections and are not counted).
type observedTransport struct {
	next http.RoundTripper
	addr string
	obs  *atomic.Pointer[CallObserver]
}

func (t observedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	obs := t.obs.Load()
	if obs == nil {
		return t.next.RoundTrip(req)
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	(*obs)(t.addr, time.Since(start), status, err)
	return resp, err
}
