package run

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

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
}
