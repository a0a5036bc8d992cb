package run

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/cluster"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

// call does method url with body and returns the status and body.
func call(method, url, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// testNode is a ClusterNode running in the test's process.
type testNode struct {
	cancel context.CancelFunc
	done   chan error
}

// startNode runs ClusterNode with c, the tests' usual settings filled in
// where c leaves them empty.
func startNode(c ClusterConfig) *testNode {
	if c.Strategy == "" {
		c.Strategy = "spread"
	}
	if c.Refresh == 0 {
		c.Refresh = 100 * time.Millisecond
	}
	if c.Version == "" {
		c.Version = "test"
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- ClusterNode(ctx, c) }()
	return n
}

// stop ends the node and returns what ClusterNode returned; a node still
// running 20 s later fails the test.
func (n *testNode) stop(t *testing.T) error {
	t.Helper()
	n.cancel()
	select {
	case err := <-n.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("ClusterNode did not return after its context ended")
		return nil
	}
}

// runNode runs ClusterNode with cc until the test ends.
func runNode(t *testing.T, cc cluster.Config, api string, out io.Writer) {
	n := startNode(ClusterConfig{Cluster: cc, Hosts: []string{"tcp://" + api}, Stdout: out})
	t.Cleanup(func() { n.stop(t) })
}

// waitStatus polls GET url until it answers want.
func waitStatus(t *testing.T, url string, want int) string {
	t.Helper()
	var code int
	var body string
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, body, err = call("GET", url, ""); err == nil && code == want {
			return body
		}
	}
	t.Fatalf("GET %s: %d %q %v; want %d", url, code, body, err, want)
	return ""
}

// TestClusterNodeAutoLock: shoal init --autolock prints the unlock key; the
// manager started again serves the locked API on its listener (info says
// locked, the rest 503) and, once given the right key, the full API on the
// same listener by the time the unlock call returns.
func TestClusterNodeAutoLock(t *testing.T) {
	sim, err := enginesim.Start(enginesim.Options{Containers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	api := freeAddr(t)
	cc := cluster.Config{Init: true, AutoLock: true, DataDir: t.TempDir(), ListenAddr: fmt.Sprintf("127.0.0.1:%d", freePorts(t)),
		AdvertiseAddr: "127.0.0.1", Engine: "tcp://" + sim.Addr()}
	var out syncBuffer
	t.Run("init", func(t *testing.T) { // its cleanup stops the node
		runNode(t, cc, api, &out)
		waitStatus(t, "http://"+api+"/containers/json", 200)
	})
	key := regexp.MustCompile(`SWMKEY-1-\S+`).FindString(out.String())
	if key == "" || !strings.Contains(out.String(), "docker swarm unlock") {
		t.Fatalf("init printed no unlock key:\n%s", out.String())
	}

	cc.Init = false
	runNode(t, cc, api, io.Discard)
	info := waitStatus(t, "http://"+api+"/info", 200)
	if !strings.Contains(info, `"LocalNodeState":"locked"`) {
		t.Fatalf("info of the restarted manager: %s", info)
	}
	if code, body, _ := call("GET", "http://"+api+"/containers/json", ""); code != 503 || !strings.Contains(body, "docker swarm unlock") {
		t.Fatalf("ps while locked: %d %s", code, body)
	}
	other := "SWMKEY-1-" + strings.Repeat("A", 43)
	if code, body, _ := call("POST", "http://"+api+"/swarm/unlock", `{"UnlockKey":"`+other+`"}`); code != 401 {
		t.Fatalf("unlock with a wrong key: %d %s", code, body)
	}
	if code, body, err := call("POST", "http://"+api+"/swarm/unlock", `{"UnlockKey":"`+key+`"}`); code != 200 {
		t.Fatalf("unlock: %d %s %v", code, body, err)
	}
	if code, body, err := call("GET", "http://"+api+"/containers/json", ""); code != 200 || !strings.HasPrefix(body, "[") {
		t.Fatalf("ps right after unlock: %d %s %v", code, body, err)
	}
	if code, body, _ := call("POST", "http://"+api+"/swarm/unlock", `{"UnlockKey":"`+key+`"}`); code != 409 {
		t.Fatalf("second unlock: %d %s", code, body)
	}
}
