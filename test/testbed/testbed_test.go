package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func httpGet(t *testing.T, c *http.Client, url string) []byte {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body
}

func TestTwoEngines(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bed := MustStart(t, Options{
		Engines: 2,
		Labels:  []map[string]string{{"zone": "a", "storage": "ssd"}, {"zone": "b"}},
	})
	c := &http.Client{Timeout: 5 * time.Second}
	names := map[string]bool{}
	for i, e := range bed.Engines {
		addr := "http://" + strings.TrimPrefix(e.TCPAddr, "tcp://")
		if got := string(httpGet(t, c, addr+"/_ping")); got != "OK" {
			t.Fatalf("engine %d /_ping = %q", i, got)
		}
		var info struct {
			Name   string
			Labels []string
		}
		if err := json.Unmarshal(httpGet(t, c, addr+"/info"), &info); err != nil {
			t.Fatal(err)
		}
		if info.Name != e.Hostname {
			t.Errorf("engine %d: Name %q, want %q", i, info.Name, e.Hostname)
		}
		names[info.Name] = true
		for k, v := range e.Labels {
			found := false
			for _, l := range info.Labels {
				found = found || l == k+"="+v
			}
			if !found {
				t.Errorf("engine %d: label %s=%s missing from %v", i, k, v, info.Labels)
			}
		}
	}
	if len(names) != 2 {
		t.Errorf("hostnames not distinct: %v", names)
	}

	if err := bed.LoadBusybox(ctx, 0); err != nil {
		t.Fatal(err)
	}
	out, _, err := bed.Docker(ctx, bed.Engines[0].TCPAddr, "run", "--rm", "busybox", "echo", "hi")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "hi" {
		t.Fatalf("docker run output %q", out)
	}
	// A running container and its bridge network must be cleaned up too.
	if _, _, err := bed.Docker(ctx, bed.Engines[0].TCPAddr, "run", "-d", "--name", "sleeper", "busybox", "sleep", "600"); err != nil {
		t.Fatal(err)
	}

	// Network cut: engine 1 unreachable while its link is down.
	if err := bed.LinkDown(1); err != nil {
		t.Fatal(err)
	}
	short := &http.Client{Timeout: 500 * time.Millisecond}
	if _, err := short.Get("http://" + strings.TrimPrefix(bed.Engines[1].TCPAddr, "tcp://") + "/_ping"); err == nil {
		t.Errorf("engine 1 reachable with link down")
	}
	if err := bed.LinkUp(1); err != nil {
		t.Fatal(err)
	}

	dir := bed.Dir
	if err := bed.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	assertGone(t, bed, dir)
	if err := bed.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStopStartKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bed := MustStart(t, Options{Engines: 1, Hostnames: []string{"alpha"}})
	e := bed.Engines[0]
	if err := bed.Stop(0); err != nil {
		t.Fatal(err)
	}
	if pidAlive(e.PID) {
		t.Fatal("dockerd still alive after Stop")
	}
	if err := bed.Start(ctx, 0); err != nil {
		t.Fatal(err)
	}
	info, err := bed.Info(ctx, 0)
	if err != nil || info["Name"] != "alpha" {
		t.Fatalf("info after restart: %v %v", info["Name"], err)
	}
	cpid := containerdPID(e)
	pid := e.PID
	if err := bed.Kill(0); err != nil {
		t.Fatal(err)
	}
	if pidAlive(pid) || (cpid > 0 && pidAlive(cpid)) {
		t.Fatalf("Kill left dockerd %d / containerd %d", pid, cpid)
	}
	if err := bed.Start(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// Save and tear down through a loaded copy, as shoal-demo down does.
	dir := bed.Dir
	loaded, err := Load(dir + "/testbed.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := loaded.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, bed, dir)
}

func TestTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bed := MustStart(t, Options{Engines: 1, TLS: true})
	e := bed.Engines[0]
	out, _, err := bed.Docker(ctx, e.TLSAddr, "info", "--format", "{{.Name}}")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "node1" {
		t.Fatalf("docker info over TLS: %q", out)
	}
	// Without a client certificate the engine must refuse.
	if _, err := http.Get("https://" + strings.TrimPrefix(e.TLSAddr, "tcp://") + "/_ping"); err == nil {
		t.Fatal("TLS engine answered without client cert")
	}
}

func TestBusyboxTarDeterministic(t *testing.T) {
	d := t.TempDir()
	if err := BusyboxTar(d+"/a.tar", "busybox"); err != nil {
		t.Fatal(err)
	}
	if err := BusyboxTar(d+"/b.tar", "busybox"); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(d + "/a.tar")
	b, _ := os.ReadFile(d + "/b.tar")
	if string(a) != string(b) {
		t.Fatal("BusyboxTar is not deterministic")
	}
}

func assertGone(t *testing.T, bed *Bed, dir string) {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if strings.Contains(string(out), bed.ID) {
		t.Errorf("netns left: %s", out)
	}
	out, _ = exec.Command("ip", "-o", "link").CombinedOutput()
	if strings.Contains(string(out), bed.ID) {
		t.Errorf("links left: %s", out)
	}
	out, _ = exec.Command("iptables", "-w", "-S", "FORWARD").CombinedOutput()
	if strings.Contains(string(out), bed.ID) {
		t.Errorf("iptables rule left: %s", out)
	}
	if ms := MountsUnder(dir); len(ms) > 0 {
		t.Errorf("mounts left: %v", ms)
	}
	for _, p := range allPIDs() {
		if cl := cmdline(p); pidAlive(p) && strings.Contains(cl, dir) {
			t.Errorf("process left: %d %s", p, cl)
		}
	}
	if _, err := os.Stat(dir); err == nil && bed.OwnDir {
		t.Errorf("dir %s left", dir)
	}
	if _, err := os.Stat(bed.registryPath()); err == nil {
		t.Errorf("registry entry left")
	}
	_ = fmt.Sprint
}

// TestReap simulates a crashed run: every process of the Bed is SIGKILLed
// (leaving mounts, namespaces, links, the iptables rule) and Close is never
// called; Reap must remove it all and leave other Beds alone.
func TestReap(t *testing.T) {
	other := MustStart(t, Options{Engines: 1, Prefix: "tr"})
	bed := MustStart(t, Options{Engines: 1, Prefix: "tr"})
	if err := bed.killBedProcesses(); err != nil {
		t.Fatal(err)
	}
	if len(MountsUnder(bed.Dir)) == 0 {
		t.Log("note: no mounts left behind by SIGKILL")
	}
	// Pretend the Bed belongs to a dead process.
	openMu.Lock()
	delete(openBeds, bed.ID)
	openMu.Unlock()
	if err := Reap("tr"); err != nil {
		t.Fatal(err)
	}
	assertGone(t, bed, bed.Dir)
	if _, err := other.Info(context.Background(), 0); err != nil {
		t.Fatalf("Reap touched a live Bed: %v", err)
	}
	if !netnsExists(other.Engines[0].Netns) {
		t.Fatal("Reap removed a live Bed's namespace")
	}
}
