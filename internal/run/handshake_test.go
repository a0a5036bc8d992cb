package run

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/dockerapi"
)

// fakeCluster lends the API a node certificate and a root that the test
// can replace, as a CA rotation does.
type fakeCluster struct {
	cert    *tls.Certificate
	root    atomic.Pointer[ca.RootCA]
	revoked string // CN refused by VerifyAPIClient
}

func (f *fakeCluster) APICertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.cert, nil
}
func (f *fakeCluster) APIClientCAs() *x509.CertPool { return f.root.Load().Pool() }
func (f *fakeCluster) VerifyAPIClient(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) > 0 && cs.PeerCertificates[0].Subject.CommonName == f.revoked {
		return ca.ErrRevoked
	}
	return nil
}

func mustRootCA(t *testing.T, id string) *ca.RootCA {
	t.Helper()
	r, err := ca.NewRootCA(id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustClient(t *testing.T, r *ca.RootCA, name string) tls.Certificate {
	t.Helper()
	c, err := r.IssueClient(ca.ClientRequest{Name: name, Role: ca.ClientAdmin})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := c.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// apiTLSServer serves "ok" with the built-in cluster's TLS over fake and
// returns its address and the log.
func apiTLSServer(t *testing.T, f TLSFiles, fake *fakeCluster) (string, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	ls, err := listen([]string{"tcp://127.0.0.1:0"}, f.clusterServer(apiFiles{}, fake), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := dockerapi.DefaultLimits().HTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok %s", r.TLS.PeerCertificates[0].Subject.CommonName)
	}), log)
	go srv.Serve(ls[0])
	t.Cleanup(func() { srv.Close() })
	return ls[0].Addr().String(), logs
}

// waitLog waits up to 2 s for want in the log (the server logs a refusal
// just after the client sees it) and returns the log.
func waitLog(logs *syncBuffer, want string) string {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(logs.String(), want) {
			break
		}
	}
	return logs.String()
}

func newFake(t *testing.T, root *ca.RootCA) *fakeCluster {
	t.Helper()
	nc, err := root.IssueNode(ca.NodeRequest{NodeID: "m1", Role: ca.RoleManager, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := nc.TLS()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCluster{cert: &pair, revoked: "mallory"}
	f.root.Store(root)
	return f
}

// getTLS calls the API as a docker CLI with DOCKER_TLS_VERIFY would.
func getTLS(addr string, root *ca.RootCA, cert *tls.Certificate) (string, error) {
	return getTLSResuming(addr, root, cert, nil)
}

// getTLSResuming is getTLS resuming the TLS sessions of cache.
func getTLSResuming(addr string, root *ca.RootCA, cert *tls.Certificate, cache tls.ClientSessionCache) (string, error) {
	conf := &tls.Config{RootCAs: root.Pool(), ClientSessionCache: cache}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}}
	resp, err := c.Get("https://" + addr + "/_ping")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestClusterAPITLS(t *testing.T) {
	root, other := mustRootCA(t, "c1"), mustRootCA(t, "other")
	fake := newFake(t, root)
	addr, logs := apiTLSServer(t, TLSFiles{Verify: true}, fake)
	alice := mustClient(t, root, "alice")

	if out, err := getTLS(addr, root, &alice); err != nil || out != "ok alice" {
		t.Fatalf("a cluster user: %q %v", out, err)
	}
	if _, err := getTLS(addr, root, nil); err == nil {
		t.Fatal("no client certificate accepted")
	}
	stranger := mustClient(t, other, "stranger")
	if _, err := getTLS(addr, root, &stranger); err == nil {
		t.Fatal("a certificate of another CA accepted")
	}
	mallory := mustClient(t, root, "mallory")
	if _, err := getTLS(addr, root, &mallory); err == nil {
		t.Fatal("a certificate VerifyAPIClient refuses accepted")
	}
	// The first refusal is a warning with the client's address; the next
	// ones, within 10 s, are counted into the next warning only.
	out := waitLog(logs, "level=WARN")
	time.Sleep(100 * time.Millisecond) // the later refusals' lines, were they written
	out = logs.String()
	if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, `msg="API TLS handshake refused" client=127.0.0.1:`) {
		t.Fatalf("log:\n%s", out)
	}
	if out, err := getTLS(addr, root, &alice); err != nil || out != "ok alice" {
		t.Fatalf("still serving after refusals: %q %v", out, err)
	}
}

// The CA is read at each handshake: after a rotation, the new root's
// certificates are accepted and the old root's refused, without a restart.
func TestClusterAPITLSFollowsRoot(t *testing.T) {
	oldRoot, newRoot := mustRootCA(t, "c1"), mustRootCA(t, "c1")
	fake := newFake(t, oldRoot)
	addr, _ := apiTLSServer(t, TLSFiles{Verify: true}, fake)
	oldCert, newCert := mustClient(t, oldRoot, "old"), mustClient(t, newRoot, "new")
	sessions := tls.NewLRUClientSessionCache(4)
	if _, err := getTLSResuming(addr, oldRoot, &oldCert, sessions); err != nil {
		t.Fatal(err)
	}
	fake.root.Store(newRoot)
	if _, err := getTLS(addr, oldRoot, &oldCert); err == nil {
		t.Fatal("the old root's certificate accepted after the rotation")
	}
	// Nor may a session it opened before be resumed (Go checks a resumed
	// session's chain against the ClientCAs of the handshake's config).
	if _, err := getTLSResuming(addr, oldRoot, &oldCert, sessions); err == nil {
		t.Fatal("a session of the old root's certificate resumed after the rotation")
	}
	if out, err := getTLS(addr, oldRoot, &newCert); err != nil || out != "ok new" {
		t.Fatalf("new root's certificate: %q %v", out, err)
	}
}

// A plain HTTP client on the TLS port is told so, as dockerd tells it.
func TestPlainHTTPToTLSPort(t *testing.T) {
	root := mustRootCA(t, "c1")
	addr, logs := apiTLSServer(t, TLSFiles{Verify: true}, newFake(t, root))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/_ping")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "Client sent an HTTP request to an HTTPS server.") {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	if out := waitLog(logs, "level=WARN"); !strings.Contains(out, "level=WARN") {
		t.Fatalf("not logged:\n%s", out)
	}
}

// A client that opens a connection and never speaks is cut after the
// handshake deadline, and logged.
func TestSlowHandshakeCut(t *testing.T) {
	root := mustRootCA(t, "c1")
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	l := newHandshakeListener(inner, (TLSFiles{Verify: true}).clusterServer(apiFiles{}, newFake(t, root)), newRefusalLog(slog.New(slog.NewTextHandler(logs, nil))), 200*time.Millisecond)
	defer l.Close()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("cut after %s", took)
	}
	if out := waitLog(logs, "level=WARN"); !strings.Contains(out, "level=WARN") {
		t.Fatalf("not logged:\n%s", out)
	}
}

// --tls without --tlsverify serves TLS and asks for no certificate.
func TestClusterAPITLSWithoutVerify(t *testing.T) {
	root := mustRootCA(t, "c1")
	fake := newFake(t, root)
	conf := (TLSFiles{On: true}).clusterServer(apiFiles{}, fake)
	if conf.ClientAuth != tls.NoClientCert || conf.GetConfigForClient != nil {
		t.Fatalf("client auth %v", conf.ClientAuth)
	}
	if (TLSFiles{}).clusterServer(apiFiles{}, fake) != nil {
		t.Fatal("TLS without --tls")
	}
}
