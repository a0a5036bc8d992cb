package cluster

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
)

// The cluster port's HTTP calls, driven without TLS: what anyone may call
// (the CA, joining) and what needs a node certificate.
func TestPortHandler(t *testing.T) {
	m := initManager(t, "mgr")
	h := m.handler()
	call := func(method, path, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctxT(t, 10*time.Second), method, path, strings.NewReader(body)))
		return rec
	}
	if rec := call("GET", "/ca", ""); rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), m.root.CertPEM()) {
		t.Fatalf("GET /ca: %d", rec.Code)
	}
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/join", "{", http.StatusBadRequest},
		{"POST", "/join", `{"token":"SWMTKN-1-nonsense"}`, http.StatusForbidden},
		{"GET", "/self", "", http.StatusUnauthorized},
		{"GET", "/managers", "", http.StatusUnauthorized},
		{"POST", "/certificate", "{}", http.StatusUnauthorized},
		{"POST", "/certificate", "{", http.StatusBadRequest},
	} {
		rec := call(tc.method, tc.path, tc.body)
		var e struct{ Message string }
		if rec.Code != tc.want || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Message == "" {
			t.Errorf("%s %s %q: %d %s, want %d with a message", tc.method, tc.path, tc.body, rec.Code, rec.Body, tc.want)
		}
	}
	sw, err := m.Swarm(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// A token pinning another cluster's CA is refused as forbidden.
	other, err := ca.NewRootCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	good, err := ca.ParseJoinToken(sw.JoinTokens.Worker)
	if err != nil {
		t.Fatal(err)
	}
	foreign := ca.JoinToken{Digest: other.Digest(), Secret: good.Secret}
	body, _ := json.Marshal(joinRequest{Token: foreign.String(), Hostname: "x"})
	if rec := call("POST", "/join", string(body)); rec.Code != http.StatusForbidden {
		t.Fatalf("join with another CA's token: %d %s", rec.Code, rec.Body)
	}
	// A good token with a bad CSR is the CSR's fault.
	body, _ = json.Marshal(joinRequest{Token: sw.JoinTokens.Worker, CSR: []byte("not a csr"), Hostname: "x"})
	if rec := call("POST", "/join", string(body)); rec.Code != http.StatusBadRequest {
		t.Fatalf("join with a bad CSR: %d %s", rec.Code, rec.Body)
	}
}
