package cli

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// serveAPI serves h on every listener until ctx ends or one fails, then
// shuts the server down (5 s grace) and calls stop.
func serveAPI(ctx context.Context, h http.Handler, listeners []net.Listener, log *slog.Logger, stop func()) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		log.Info("serving the Docker API", "addr", l.Addr().String())
		go func() { errc <- srv.Serve(l) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		log.Error("API server stopped", "error", err)
	}
	stop()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	srv.Close()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
