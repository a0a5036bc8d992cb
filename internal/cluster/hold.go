package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// holdMax is how long a manager holds a node's /self or /overlay call
// whose answer the node already has (query "wait", the digest the node
// was given as the answer's ETag): the nodes' polls then cost a call per
// node per holdMax instead of one every second or two. A held call is
// looked at again only when the sync loop saw something its answer is
// made of change (wakeHeld), so a change is still answered within about
// a second. A node's call waits up to holdMax plus its usual timeout.
var holdMax = 15 * time.Second

// holdState wakes the held calls.
type holdState struct {
	mu   sync.Mutex
	wake chan struct{} // closed and replaced when the inputs changed
	last [32]byte      // the inputs' digest then
}

// heldWake is closed at the next change of what the held calls answer.
func (c *Cluster) heldWake() <-chan struct{} {
	h := &c.hold
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.wake == nil {
		h.wake = make(chan struct{})
	}
	return h.wake
}

// wakeHeld wakes the held calls if what their answers are made of
// changed since the last pass: the node records, manager and peer
// addresses, certificate lifetime, roots and revocations (/self), and
// the networks, their names and the services (/overlay).
func (c *Cluster) wakeHeld(ctx context.Context) {
	d := sha256.New()
	put := func(v any) {
		b, _ := json.Marshal(v)
		binary.Write(d, binary.LittleEndian, int64(len(b)))
		d.Write(b)
	}
	c.mu.Lock()
	put(c.cacheRev)
	put(c.mgrAddrs)
	put(c.peerAddrList)
	c.mu.Unlock()
	put(c.lifetime.Load())
	d.Write(c.root.TrustPEM())
	d.Write(c.root.Issuer().RawSubjectPublicKeyInfo)
	put(c.root.Revocations().List())
	if nets, err := c.overlayNetworks(ctx); err == nil {
		put(nets)
		if len(nets) > 0 {
			records, svcs := c.overlayRecords(ctx, nets)
			put(records)
			put(svcs)
		}
	} else {
		put(err.Error())
	}
	var sum [32]byte
	d.Sum(sum[:0])
	h := &c.hold
	h.mu.Lock()
	defer h.mu.Unlock()
	if sum == h.last {
		return
	}
	h.last = sum
	if h.wake != nil {
		close(h.wake)
	}
	h.wake = make(chan struct{})
}

// answerChanged answers r with what answer gives, as JSON with its digest
// as ETag. When the caller's "wait" names that digest, it holds the call
// and asks answer again when wakeHeld says something changed, answering
// once the digest differs or holdMax has passed; ok false from answer
// means it wrote an error itself.
func (c *Cluster) answerChanged(w http.ResponseWriter, r *http.Request, answer func() (any, bool)) {
	wait := r.URL.Query().Get("wait")
	var deadline *time.Timer
	for {
		wake := c.heldWake() // before answer: a change meanwhile wakes us
		v, ok := answer()
		if !ok {
			return
		}
		body, err := json.Marshal(v)
		if err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		sum := sha256.Sum256(body)
		digest := hex.EncodeToString(sum[:12])
		if wait == "" || wait != digest {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("ETag", `"`+digest+`"`)
			w.Write(append(body, '\n'))
			return
		}
		if deadline == nil {
			deadline = time.NewTimer(holdMax)
			defer deadline.Stop()
			c.held.Add(1)
			defer c.held.Add(-1)
		}
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		case <-deadline.C:
			wait = "" // answer what there is now
		}
	}
}

// etag is a response's ETag without its quotes: what the next call waits on.
func etag(resp *http.Response) string {
	e := resp.Header.Get("ETag")
	if len(e) >= 2 && e[0] == '"' && e[len(e)-1] == '"' {
		return e[1 : len(e)-1]
	}
	return ""
}
