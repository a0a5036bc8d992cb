package dockerapi

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// pprofHandler serves /debug/pprof/* (goroutine counts are how the e2e
// tests check that streams do not leak).
func pprofHandler(w http.ResponseWriter, r *http.Request) {
	switch name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r)
	}
}
