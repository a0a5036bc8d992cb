package run

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/dockerapi"
)

// The -H listeners share one connection limiter: a client over its cap on
// one listener is closed at once, while a connection within it is served.
func TestListenSharesConnLimits(t *testing.T) {
	lim := dockerapi.NewConnLimiter(dockerapi.Limits{MaxConnsPerClient: 1}, nil)
	ls, err := listen([]string{"tcp://127.0.0.1:0", "127.0.0.1:0"}, nil, lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeAll(ls) })
	accepted := make(chan struct{}, 4)
	for _, l := range ls {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
				accepted <- struct{}{}
			}
		}()
	}
	first, err := net.Dial("tcp", ls[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	<-accepted // counted before the second arrives
	second, err := net.Dial("tcp", ls[1].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = second.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("a second connection of one client on the other listener was not closed: %v", err)
	}
	first.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := first.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("the first connection was closed: %v", err)
	}
}
