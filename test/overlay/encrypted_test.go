package overlay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// TestEncryptedNetwork creates an overlay network with --opt encrypted and
// a container on it on each node; they reach each other by name both
// ways, through the agents' TAP devices (no VXLAN device), while a raw
// capture on the underlay (the host end of node1's veth, which carries
// everything node1 sends and receives) shows the unique marker they
// serve never in clear, no VXLAN packet, and the tunnel's datagrams.
// A service's VIP on it answers across nodes. When node2's agent restarts, its TAP device goes and comes back, and
// the containers talk again.
func TestEncryptedNetwork(t *testing.T) {
	began := time.Now()
	c := startCluster(t)
	t.Logf("cluster up in %s", time.Since(began).Round(time.Millisecond))
	ctx := t.Context()
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c.docker(cctx, "service", "rm", "sweb")
		c.docker(cctx, "rm", "-f", "ea", "eb")
	})

	c.must(t, "network", "create", "-d", "overlay", "--attachable", "--opt", "encrypted", "appnet")
	if out := c.must(t, "network", "inspect", "appnet", "--format", "{{json .Options}}"); !strings.Contains(out, `"encrypted":""`) {
		t.Errorf("network inspect's Options %s, want encrypted as swarm mode shows it", out)
	}
	nodes := strings.Fields(c.must(t, "node", "ls", "--format", "{{.Hostname}}"))
	var rnd [12]byte
	rand.Read(rnd[:])
	marker := "shoal-secret-" + hex.EncodeToString(rnd[:])
	const size = 300000 // well over a frame: full-size frames must pass the tunnel's MTU
	for i, name := range []string{"ea", "eb"} {
		c.must(t, "run", "-d", "--name", name, "--network", "appnet", "-e", "constraint:node=="+nodes[i], "busybox", "httpd", "-f", "-p", "80", "-h", "/tmp")
		// The marker goes in on stdin, before the capture starts: the CLI
		// talks to the manager in clear, and an environment variable would
		// come back in every container inspect (docker exec makes one).
		script := fmt.Sprintf(`read m && echo "$m" > /tmp/mark && yes "$m" | head -c %d > /tmp/index.html`, size)
		cmd := exec.CommandContext(ctx, cli, "exec", "-i", name, "sh", "-c", script)
		cmd.Env = append(cmd.Environ(), "DOCKER_HOST="+c.host)
		cmd.Stdin = strings.NewReader(marker + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the marker into %s: %v %s", name, err, out)
		}
	}
	ms := c.members(t, "ea", "eb")
	if ms[0].Node == ms[1].Node || ms[0].IP == "" || ms[1].IP == "" {
		t.Fatalf("containers %+v: want one on each node, on appnet", ms)
	}
	for i := range bed.Engines {
		shoaltest.Eventually(t, 15*time.Second, "a TAP device and no VXLAN device on node "+fmt.Sprint(i+1), func() error {
			out, err := exec.CommandContext(ctx, "ip", "netns", "exec", bed.Engines[i].Netns, "ip", "-br", "link", "show").Output()
			if s := string(out); err != nil || !strings.Contains(s, "shy") || strings.Contains(s, "shx") {
				return fmt.Errorf("%v\n%s", err, s)
			}
			return nil
		})
	}

	t.Logf("containers up and TAP devices made at %s", time.Since(began).Round(time.Millisecond))
	cp := startCapture(t, bed.Engines[0].HostVeth, []byte(marker))
	both := func(what string) {
		t.Helper()
		for _, d := range [][2]string{{"ea", "eb"}, {"eb", "ea"}} {
			shoaltest.Eventually(t, 30*time.Second, d[0]+" gets "+d[1]+"'s page by name"+what, func() error {
				// only counts come back: the marker itself must not cross the underlay in clear
				out, err := c.docker(ctx, "exec", d[0], "sh", "-c", `wget -qO- http://`+d[1]+`/ | tee /tmp/got | wc -c; grep -c -x -f /tmp/mark /tmp/got`)
				if f := strings.Fields(out); err != nil || len(f) != 2 || f[0] != fmt.Sprint(size) || f[1] == "0" {
					return fmt.Errorf("%q %v", out, err)
				}
				return nil
			})
		}
	}
	both("")
	got := cp.stop()
	t.Logf("capture on %s: %d frames, %d UDP %d datagrams (%d bytes), %d UDP 4789", bed.Engines[0].HostVeth, got.frames, got.tunnel, 4790, got.tunnelBytes, got.vxlan)
	if got.clear > 0 {
		t.Errorf("the marker crossed the underlay in clear in %d frames", got.clear)
	}
	if got.vxlan > 0 {
		t.Errorf("%d VXLAN (UDP 4789) packets on the underlay", got.vxlan)
	}
	if got.tunnelBytes < 2*size {
		t.Errorf("the tunnel carried %d bytes, want the two pages (%d) at least: the capture saw too little to tell", got.tunnelBytes, 2*size)
	}

	// A service's VIP on the encrypted network: its task on node2, reached
	// from node1 (ARP for the VIP stays off the TAP devices).
	c.must(t, "service", "create", "-d", "--quiet", "--name", "sweb", "--stop-grace-period", "1s", "--network", "appnet",
		"--constraint", "node.hostname=="+nodes[1], "busybox", "nc", "-ll", "-p", "7000", "-e", "hostname")
	shoaltest.Eventually(t, 60*time.Second, "ea reaches sweb's task on node2 through its VIP", func() error {
		out, err := c.docker(ctx, "exec", "ea", "nc", "-w", "3", "sweb", "7000")
		if err != nil || strings.TrimSpace(out) == "" {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})
	t.Logf("the VIP answered at %s", time.Since(began).Round(time.Millisecond))

	// The worker's agent stops: its TAP device goes with it (the bridge
	// and eb stay); started again, it makes the TAP again.
	c.wrk.Stop()
	if out, _ := exec.CommandContext(ctx, "ip", "netns", "exec", bed.Engines[1].Netns, "ip", "-br", "link", "show").Output(); strings.Contains(string(out), "shy") || !strings.Contains(string(out), "shv") {
		t.Errorf("node2 with its agent stopped, want its bridge and no TAP device:\n%s", out)
	}
	if err := c.wrk.Restart(); err != nil {
		t.Fatal(err)
	}
	both(" after node2's agent restarted")
	t.Logf("test body took %s", time.Since(began).Round(time.Millisecond))
}

// capture counts, on one interface of the host namespace, the frames
// with the marker in clear, the VXLAN packets and the encrypted tunnel's
// datagrams and bytes (AF_PACKET: no tcpdump needed; the only UDP
// fragments on the underlay are the tunnel's).
type capture struct {
	fd       int
	done     chan struct{}
	stopping atomic.Bool
	mu       sync.Mutex
	stat     captureStats
}

type captureStats struct{ frames, clear, vxlan, tunnel, tunnelBytes int }

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func startCapture(t *testing.T, ifname string, mark []byte) *capture {
	t.Helper()
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	cp := &capture{fd: fd, done: make(chan struct{})}
	go cp.run(mark)
	t.Cleanup(func() { cp.stop() })
	return cp
}

// stop ends the capture and tells what it saw.
func (cp *capture) stop() captureStats {
	if !cp.stopping.Swap(true) {
		<-cp.done
		unix.Close(cp.fd)
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.stat
}

// run reads until stop.
func (cp *capture) run(mark []byte) {
	defer close(cp.done)
	buf := make([]byte, 1<<16)
	for !cp.stopping.Load() {
		n, _, err := unix.Recvfrom(cp.fd, buf, 0)
		if err != nil {
			continue // the timeout: look at stopping again
		}
		cp.count(buf[:n], mark)
	}
}

func (cp *capture) count(f, mark []byte) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.stat.frames++
	if bytes.Contains(f, mark) {
		cp.stat.clear++
	}
	// Ethernet, IPv4, UDP; a datagram of the tunnel carries up to 64 KiB,
	// in IP fragments: only the first has the UDP header
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 || f[14+9] != 17 {
		return
	}
	ip := f[14:]
	payload := ip[int(ip[0]&0x0f)*4:]
	if binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 { // a later fragment
		cp.stat.tunnelBytes += len(payload)
		return
	}
	udp := payload
	if len(udp) < 8 {
		return
	}
	switch binary.BigEndian.Uint16(udp[2:4]) {
	case 4789:
		cp.stat.vxlan++
	case 4790:
		cp.stat.tunnel++
		cp.stat.tunnelBytes += len(udp) - 8
	}
}
