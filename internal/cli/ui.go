package cli

import "github.com/spf13/pflag"

// uiFlag adds --ui to a command that serves the Docker API (manage, and
// init/join as managers): the web console at /ui/, on by default.
func uiFlag(f *pflag.FlagSet, on *bool) {
	f.BoolVar(on, "ui", true, "serve the web console at /ui/ on the API addresses (same TLS, client certificates and roles as the API; --ui=false turns it off)")
}
