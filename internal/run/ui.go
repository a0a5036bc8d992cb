package run

import "github.com/shoal-dev/shoal/internal/ui"

// mountUI serves the web console at /ui/ on the API's addresses, behind
// the same TLS, client certificates and roles as the API (on: --ui).
func (s *stack) mountUI(on bool) {
	if on {
		s.api.UI = ui.New(s.api, s.log)
	}
}
