package run

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/dockerapi"
)

// listen opens each -H address: tcp://host:port, host:port, unix:///path.
// Every listener counts its connections in lim (nil: no caps). TCP
// listeners serve tlsConf when not nil (unix sockets stay plain, as
// dockerd's), refused handshakes logged to log.
func listen(hosts []string, tlsConf *tls.Config, lim *dockerapi.ConnLimiter, log *slog.Logger) ([]net.Listener, error) {
	refused := newRefusalLog(log)
	var out []net.Listener
	fail := func(err error) ([]net.Listener, error) {
		closeAll(out)
		return nil, err
	}
	for _, h := range hosts {
		var l net.Listener
		var err error
		switch {
		case strings.HasPrefix(h, "unix://"):
			p := strings.TrimPrefix(h, "unix://")
			if fi, serr := os.Stat(p); serr == nil && fi.Mode()&os.ModeSocket != 0 {
				os.Remove(p) // stale socket of an earlier run
			}
			l, err = net.Listen("unix", p)
			if err == nil {
				_ = os.Chmod(p, 0o660)
			}
			l = limitListener(l, err, lim)
		default:
			addr := strings.TrimPrefix(h, "tcp://")
			if _, _, serr := net.SplitHostPort(addr); serr != nil {
				return fail(fmt.Errorf("-H %q: %v", h, serr))
			}
			l, err = net.Listen("tcp", addr)
			l = limitListener(l, err, lim)
			if err == nil && tlsConf != nil {
				l = newHandshakeListener(l, tlsConf, refused, handshakeTimeout)
			}
		}
		if err != nil {
			return fail(fmt.Errorf("-H %q: %w", h, err))
		}
		out = append(out, l)
	}
	return out, nil
}

// limitListener wraps a listener just opened (err nil) in lim.
func limitListener(l net.Listener, err error, lim *dockerapi.ConnLimiter) net.Listener {
	if err != nil {
		return l
	}
	return lim.Listener(l)
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

// apiServer serves the Docker API on its listeners as a component.
type apiServer struct {
	handler   http.Handler
	listeners []net.Listener
	limits    dockerapi.Limits
	log       *slog.Logger
}

// Run serves until ctx ends or a listener fails, then shuts the server
// down (5 s grace). A listener's failure is the component's error.
func (s *apiServer) Run(ctx context.Context) error {
	srv := s.limits.HTTPServer(s.handler, s.log)
	errc := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		s.log.Info("serving the Docker API", "addr", l.Addr().String())
		go func() { errc <- srv.Serve(l) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		s.log.Error("API server stopped", "error", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	srv.Close()
	if err == nil && ctx.Err() == nil {
		return errAPIClosed
	}
	if errors.Is(err, http.ErrServerClosed) {
		return errAPIClosed
	}
	return err
}

// errAPIClosed says the API server stopped without an error of its own:
// shoal stops with it, and exits as after a signal.
var errAPIClosed = errors.New("run: API server closed")
