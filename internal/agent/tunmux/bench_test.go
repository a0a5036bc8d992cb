package tunmux

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/hashicorp/yamux"
)

// The manager's end of a tunnel over TLS on loopback, against a node's
// yamux: tunmux, and yamux's own client as managers ran it before
// (keepalive off), for comparison.
//
//	go test -run '^$' -bench . -benchmem ./internal/agent/tunmux/

// benchOpener opens a manager stream whose node side echoes (small) or
// sends size bytes and closes (bulk).
type benchOpener func(ctx context.Context) (net.Conn, error)

func benchSides(b *testing.B, f func(b *testing.B, open benchOpener)) {
	serve := func(node *yamux.Session) {
		for {
			st, err := node.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				var req [8]byte
				if _, err := io.ReadFull(st, req[:]); err != nil {
					return
				}
				n := int(req[0])<<24 | int(req[1])<<16 | int(req[2])<<8 | int(req[3])
				if n == 0 {
					st.Write(req[:]) // a small answer
					return
				}
				buf := make([]byte, 32<<10) // as the node's proxy copies
				for n > 0 {
					k, err := st.Write(buf[:min(n, len(buf))])
					if err != nil {
						return
					}
					n -= k
				}
			}()
		}
	}
	b.Run("tunmux", func(b *testing.B) {
		mc, nc := connPair(b, "tls")
		node, _ := yamux.Server(nc, nodeConfig())
		s := Client(mc, managerConfig())
		go s.Run(func(st *Stream) { st.Reset() })
		go serve(node)
		b.Cleanup(func() { s.Close(); node.Close() })
		f(b, func(ctx context.Context) (net.Conn, error) { return s.Open(ctx) })
	})
	b.Run("yamux", func(b *testing.B) {
		mc, nc := connPair(b, "tls")
		node, _ := yamux.Server(nc, nodeConfig())
		cfg := nodeConfig()
		cfg.EnableKeepAlive = false
		s, _ := yamux.Client(mc, cfg)
		go serve(node)
		b.Cleanup(func() { s.Close(); node.Close() })
		f(b, func(context.Context) (net.Conn, error) { return s.OpenStream() })
	})
}

func benchCall(b *testing.B, open benchOpener, size int) {
	var req [8]byte
	req[0], req[1], req[2], req[3] = byte(size>>24), byte(size>>16), byte(size>>8), byte(size)
	buf := make([]byte, 32<<10)
	for b.Loop() {
		c, err := open(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(req[:]); err != nil {
			b.Fatal(err)
		}
		got := 0
		for {
			n, err := c.Read(buf)
			got += n
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if want := max(size, 8); got != want {
			b.Fatalf("read %d bytes, want %d", got, want)
		}
		c.Close()
	}
	if size > 0 {
		b.SetBytes(int64(size))
	}
}

// BenchmarkCall: a stream opened, a small request, a small answer, closed
// (an engine call such as inspect).
func BenchmarkCall(b *testing.B) {
	benchSides(b, func(b *testing.B, open benchOpener) { benchCall(b, open, 0) })
}

// BenchmarkBulk: 4 MiB from the node (logs, cp, export).
func BenchmarkBulk(b *testing.B) {
	benchSides(b, func(b *testing.B, open benchOpener) { benchCall(b, open, 4<<20) })
}
