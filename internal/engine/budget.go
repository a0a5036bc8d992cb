package engine

import (
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultPingRate bounds the health checks per second across a pool when
// Options leave PingRate zero. Up to 2,000 engines it changes nothing
// (each is checked every RefreshInterval, 2 s by default); past that every
// engine is checked less often, every engines/PingRate: at 10,000 engines
// every 10 s, so a hung engine is Unhealthy after 22 to 32 s instead of
// 6 to 8 s (three failed checks, each waiting PingTimeout). A check is a
// write and a read on a kept connection, but a connect as well for the
// engines past the descriptors' allowance (budget.allowance); unbounded,
// 10,000 engines would be checked 5,000 times a second.
const DefaultPingRate = 1000

// resyncRate bounds the full reloads (Resync) a second across a pool: up
// to 1,500 engines each is reloaded every ResyncInterval (60 s by
// default); past that every engines/resyncRate (400 s at 10,000 engines,
// where 50 a second were a tenth of a core while idle).
// A reload is five calls and a list of every container; the event stream
// keeps the cache current between reloads (a broken stream ends the
// session, and the next one reloads), so the reload is only a safety net
// and must not be what keeps an idle manager busy.
const resyncRate = 25

// fdReserve is how many descriptors the pool leaves to everything else
// shoal holds open (clients' connections, hijacked streams, files) when it
// decides whether every engine may keep an idle connection.
const fdReserve = 2048

// budget is the pool-wide share of health checks and descriptors: how
// many engines there are, and how many keep their health check's
// connection open between checks.
type budget struct {
	engines atomic.Int64
	kept    atomic.Int64
	fdLimit int64 // the open-files limit when the pool was made (0: unknown)
}

func newBudget() *budget {
	b := &budget{}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < 1<<62 {
		b.fdLimit = int64(lim.Cur)
	}
	return b
}

// setEngines records the pool's size.
func (b *budget) setEngines(n int) { b.engines.Store(int64(n)) }

// allowance is how many health-check connections may stay open between
// checks: every engine holds its event stream, and fdReserve is left to
// the rest, so under a 20,000 open-files limit all of 1,000 engines keep
// one (two descriptors per engine) but only 7,952 of 10,000 do; the
// others' checks connect anew each time (and close after).
func (b *budget) allowance() int64 {
	if b.fdLimit == 0 {
		return 1 << 62
	}
	return b.fdLimit - fdReserve - b.engines.Load()
}

// keep says whether a health-check connection may stay open after a
// check; counted says whether it already does (it is given up when the
// pool grew past the allowance). release gives a kept one back.
func (b *budget) keep(counted bool) bool {
	if b == nil {
		return true
	}
	if counted {
		if b.kept.Load() <= b.allowance() {
			return true
		}
		b.kept.Add(-1)
		return false
	}
	for {
		k := b.kept.Load()
		if k >= b.allowance() {
			return false
		}
		if b.kept.CompareAndSwap(k, k+1) {
			return true
		}
	}
}

func (b *budget) release() {
	if b != nil {
		b.kept.Add(-1)
	}
}

// healthInterval is how often each engine is checked: RefreshInterval,
// or longer when the pool's checks would pass PingRate a second.
func (o *Options) healthInterval() time.Duration {
	iv := o.RefreshInterval
	if o.budget == nil || o.PingRate < 0 {
		return iv
	}
	rate := o.PingRate
	if rate == 0 {
		rate = DefaultPingRate
	}
	return max(iv, time.Duration(o.budget.engines.Load())*time.Second/time.Duration(rate))
}

// maxHealthTick is the longest grid step health checks are aligned to
// (healthTick): 50 checks a step at 1,000 a second, a burst of a couple
// of milliseconds that calls arriving meanwhile wait behind (250 ms, 250
// checks a step, doubled the p99 of run -d at 3,000 engines).
const maxHealthTick = 50 * time.Millisecond

// healthTick is the grid the health checks of a pool are aligned to: every
// engine's next check falls on a multiple of it, so the checks due come
// together, a few times a second, instead of one by one. Spread evenly, a
// thousand checks a second woke the idle process two thousand times (the
// timer, then the answer), and each wakeup (an idle thread woken, then put
// to sleep again) cost more than the check itself. A period of iv gets a
// step of at most iv/8, so the alignment moves no check by more than
// 1/16 of its period.
func healthTick(iv time.Duration) time.Duration {
	return min(maxHealthTick, iv/8)
}

// nextHealth is the wait from now until an engine's next health check:
// healthInterval ± 10%, moved to the nearest point of the pool's grid
// (healthTick), so on average still healthInterval.
func (o *Options) nextHealth(now time.Time) time.Duration {
	iv := o.healthInterval()
	d := jitter(iv)
	tick := int64(healthTick(iv))
	if tick <= 0 {
		return d
	}
	t := now.UnixNano()
	at := t + int64(d) + tick/2
	at -= at % tick
	return time.Duration(at - t)
}

// resyncInterval is how often each engine is reloaded: ResyncInterval, or
// longer when the pool's reloads would pass resyncRate a second.
func (o *Options) resyncInterval() time.Duration {
	if o.budget == nil {
		return o.ResyncInterval
	}
	return max(o.ResyncInterval, time.Duration(o.budget.engines.Load())*time.Second/resyncRate)
}

// jitter spreads d by ±10%: engines that connected together are not all
// checked (or resynced) in the same instant.
func jitter(d time.Duration) time.Duration {
	iv := int64(d)
	return time.Duration(iv - iv/10 + rand.Int64N(iv/5+1))
}
