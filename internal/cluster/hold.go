package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"
)

// holdMax is how long a manager holds a node's /self or /overlay call
// whose answer the node already has (query "wait", the answer's digest
// the node was given in its ETag): the nodes' polls then cost a call per
// node per holdMax instead of one every second or two, while a change is
// still answered within a period. A node's call waits up to holdFor plus
// its usual timeout.
var holdMax = 15 * time.Second

// answerChanged answers r with what answer gives, as JSON with its digest
// as ETag. When the caller's "wait" names that digest, it asks answer
// again every period and answers when the digest changes, after holdMax,
// or when answer wrote an error (ok false: answer wrote to w itself).
func (c *Cluster) answerChanged(w http.ResponseWriter, r *http.Request, period time.Duration, answer func() (any, bool)) {
	wait := r.URL.Query().Get("wait")
	deadline := time.Now().Add(holdMax)
	var t *time.Ticker
	for {
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
		if wait == "" || wait != digest || !time.Now().Before(deadline) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("ETag", `"`+digest+`"`)
			w.Write(append(body, '\n'))
			return
		}
		if t == nil {
			t = time.NewTicker(period)
			defer t.Stop()
			c.held.Add(1)
			defer c.held.Add(-1)
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
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
