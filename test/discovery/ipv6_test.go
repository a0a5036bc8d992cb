package discovery

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// TestManageIPv6Engine: `shoal manage` takes an engine at a bracketed IPv6
// address (refused before as a malformed range) and runs a container on
// it. The testbed's engines listen on IPv4 only, so the engine is reached
// at [::1] through a byte-for-byte relay to engine 0.
func TestManageIPv6Engine(t *testing.T) {
	addr := relayIPv6(t, engineAddr(0))
	bad := shoaltest.Start(t, shoaltest.Options{Name: "manage-bad", NoWait: true,
		Args: []string{"manage", "nodes://tcp://" + addr + ",10.[0:65535].[0:65535].1:2375"}})
	if exited, code := bad.Wait(10 * time.Second); !exited || code != 1 || !strings.Contains(bad.Output(), "at most 65536") {
		t.Fatalf("manage over a list past the cap: exited %v, code %d, output:\n%s", exited, code, bad.Output())
	}
	m := startManager(t, "manager", "nodes://tcp://"+addr)
	shoaltest.Eventually(t, 15*time.Second, "engine at "+addr+" ready", func() error {
		got, err := m.nodes()
		if err != nil {
			return err
		}
		if !slices.Equal(got, []string{"::1/ready"}) {
			return fmt.Errorf("pool is %v", got)
		}
		return nil
	})
	if out, err := m.docker(t, "", "run", "--rm", "busybox", "echo", "hi"); err != nil || strings.TrimSpace(out) != "hi" {
		t.Fatalf("docker run: %q %v", out, err)
	}
}

// relayIPv6 listens on [::1] and relays every connection to target; it
// returns its [::1]:port.
func relayIPv6(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("listen on IPv6 loopback: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go relay(c, target)
		}
	}()
	return ln.Addr().String()
}

func relay(c net.Conn, target string) {
	defer c.Close()
	e, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer e.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(e, c)
	go pipe(c, e)
	<-done
	<-done
}
