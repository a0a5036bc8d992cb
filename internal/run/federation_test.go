package run

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/authz"
	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/cluster"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

// TestClusterNodeOverMember: a whole `shoal manage` cluster is the engine
// of a node of a built-in cluster (`shoal init --engine <member>`, as
// `shoal join --token ... --engine <member>` does for a worker: the node's
// tunnel carries the calls, so the member needs no port open to the
// upper cluster). The upper cluster knows it for a member, places by its
// leaves, and a constraint on a leaf's stacked name reaches that engine.
func TestClusterNodeOverMember(t *testing.T) {
	fleet, err := enginesim.StartFleet(2, func(i int) enginesim.Options {
		return enginesim.Options{Name: fmt.Sprintf("e%d", i+1)}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	member := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	mc := manageConfig([]string{"tcp://" + member}, fleet.NodesURI())
	mc.Name, mc.Labels = "siteA", map[string]string{"region": "eu"}
	go func() { done <- Manage(ctx, mc) }()
	defer func() { cancel(); <-done }()

	port, api := freePorts(t), freeAddr(t)
	n := startNode(ClusterConfig{
		Cluster: cluster.Config{
			Init: true, DataDir: t.TempDir(), ListenAddr: fmt.Sprintf("127.0.0.1:%d", port),
			AdvertiseAddr: "127.0.0.1", Engine: "tcp://" + member,
		},
		Hosts: []string{"tcp://" + api}, Name: "top",
	})
	defer func() { _ = n.stop(t) }()

	body := `{"Image":"busybox","Env":["constraint:node==siteA/e2","constraint:region==eu"]}`
	var last string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Post("http://"+api+"/v1.47/containers/create?name=web", "application/json", bytes.NewReader([]byte(body)))
		if err == nil {
			b := new(bytes.Buffer)
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			last = fmt.Sprint(resp.StatusCode, " ", b.String())
			if resp.StatusCode == http.StatusCreated {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("create through the upper cluster: %s; want 201", last)
		}
	}
	if all, _ := fleet.Engines[1].Count(); all != 1 {
		t.Errorf("e2 holds %d containers; want web", all)
	}
	if all, _ := fleet.Engines[0].Count(); all != 0 {
		t.Errorf("e1 holds %d containers; want none", all)
	}
	list, err := get("http://" + api + "/v1.47/containers/json?all=1")
	if err != nil || !strings.Contains(list, `"/siteA/e2/web"`) {
		t.Errorf("ps through the upper cluster: %s %v; want /siteA/e2/web", list, err)
	}
	info, err := get("http://" + api + "/v1.47/info")
	if err != nil || !strings.Contains(info, "shoal member: 2 nodes (2 healthy)") || !strings.Contains(info, `"Name":"top"`) {
		t.Errorf("info of the upper cluster: %s %v; want top, with siteA a member of 2 nodes", info, err)
	}
	nodes, err := get("http://" + api + "/v1.47/nodes")
	if err != nil || !strings.Contains(nodes, `"Message":"shoal member: 2 nodes (2 healthy)"`) {
		t.Errorf("node ls of the upper cluster: %s %v; want its node a member of 2 nodes", nodes, err)
	}
}

// TestMemberAnswersOnlyItsParent: the upper shoal reaches a member over
// mutual TLS (--engine-tlsverify with a client certificate), and a member
// whose --tlscacert is a CA that signed only its parent's certificate
// answers no one else.
func TestMemberAnswersOnlyItsParent(t *testing.T) {
	dir := t.TempDir()
	root, err := ca.NewRootCA("member-ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	server, err := root.IssueNode(ca.NodeRequest{NodeID: "siteA", Role: ca.RoleManager, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	parent, err := root.IssueClient(ca.ClientRequest{Name: "top", Role: ca.ClientRole(authz.OUAdmin)})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.pem", root.CertPEM())
	files := TLSFiles{On: true, Verify: true, CA: caFile, Cert: write("server.pem", server.CertPEM), Key: write("server-key.pem", server.KeyPEM)}
	clientFiles := TLSFiles{On: true, Verify: true, CA: caFile, Cert: write("top.pem", parent.CertPEM), Key: write("top-key.pem", parent.KeyPEM)}

	fleet, err := enginesim.StartFleet(2, func(i int) enginesim.Options { return enginesim.Options{Name: fmt.Sprintf("e%d", i+1)} })
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	member, top := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mc := manageConfig([]string{"tcp://" + member}, fleet.NodesURI())
	mc.Name, mc.TLS = "siteA", files
	tc := manageConfig([]string{"tcp://" + top}, "nodes://"+member)
	tc.Name, tc.EngineTLS = "top", clientFiles
	done := make(chan error, 2)
	go func() { done <- Manage(ctx, mc) }()
	go func() { done <- Manage(ctx, tc) }()
	defer func() { cancel(); <-done; <-done }()

	var info string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		info, err = get("http://" + top + "/v1.47/info")
		if err == nil && strings.Contains(info, "shoal member: 2 nodes (2 healthy)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("top's info: %s %v; want siteA a member of 2 healthy nodes, reached over TLS", info, err)
		}
	}
	// Anyone else: no certificate of that CA, no answer.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(root.CertPEM())
	stranger := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if resp, err := stranger.Get("https://" + member + "/v1.47/_shoal/nodes"); err == nil {
		resp.Body.Close()
		t.Errorf("a client without the parent's certificate got %d from the member; want the handshake refused", resp.StatusCode)
	}
}
