package cli

import (
	"github.com/spf13/pflag"

	"github.com/shoal-dev/shoal/internal/dockerapi"
)

// limitFlags adds the API server's connection and stream caps to a command that
// serves the Docker API (manage, and init/join as managers); l starts at
// the defaults.
func limitFlags(f *pflag.FlagSet, l *dockerapi.Limits) {
	*l = dockerapi.DefaultLimits()
	f.IntVar(&l.MaxConnsPerClient, "max-conns-per-client", l.MaxConnsPerClient,
		"API connections one client IP address may hold open; more are answered 503 and closed at once (0 = no cap; unix socket clients count only in --max-conns)")
	f.IntVar(&l.MaxConns, "max-conns", l.MaxConns,
		"API connections open in all; more are answered 503 and closed at once (0 = no cap)")
	f.IntVar(&l.MaxStreamsPerClient, "max-streams-per-client", l.MaxStreamsPerClient,
		"long-lived API calls (attach, exec, logs -f, events, stats, wait, build, load, pull, push, save, archive) one client IP address may have open; more get 503 (0 = no cap)")
	f.IntVar(&l.MaxStreams, "max-streams", l.MaxStreams,
		"long-lived API calls open in all; more get 503 (0 = no cap)")
}
