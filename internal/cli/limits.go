package cli

import (
	"github.com/spf13/pflag"

	"github.com/shoal-dev/shoal/internal/dockerapi"
)

// limitFlags adds the API server's connection caps to a command that
// serves the Docker API (manage, and init/join as managers); l starts at
// the defaults.
func limitFlags(f *pflag.FlagSet, l *dockerapi.Limits) {
	*l = dockerapi.DefaultLimits()
	f.IntVar(&l.MaxConnsPerClient, "max-conns-per-client", l.MaxConnsPerClient,
		"API connections one client IP address may hold open; more are closed at once (0 = no cap; unix socket clients count only in --max-conns)")
	f.IntVar(&l.MaxConns, "max-conns", l.MaxConns,
		"API connections open in all; more are closed at once (0 = no cap)")
}
