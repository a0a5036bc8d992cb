package run

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/shoal-dev/shoal/internal/audit"
	"github.com/shoal-dev/shoal/internal/authz"
	"github.com/shoal-dev/shoal/internal/dockerapi"
)

// audited wraps the API's handler in the audit log of c, outermost, so
// that it records every answer, refusals included; with no --audit-log it
// is h. Callers are named as policy identifies them. stop writes what is
// queued and closes the log: call it once the API server has stopped.
func audited(c audit.Config, policy *authz.Policy, h http.Handler, log *slog.Logger) (_ http.Handler, stop func(), err error) {
	if c.Who == nil {
		c.Who = func(r *http.Request) (string, string) {
			id := policy.Identify(r)
			return id.Name, id.Role.String()
		}
	}
	l, err := audit.Open(c, log)
	if err != nil {
		return nil, nil, fmt.Errorf("--audit-log: %w", err)
	}
	if l != nil {
		log.Info("auditing API calls", "path", c.Path, "reads", c.Reads)
	}
	return l.Handler(h), func() { _ = l.Close() }, nil
}

// streamLimiter is the API's cap on simultaneous long-lived calls.
func streamLimiter(lim dockerapi.Limits, log *slog.Logger) *dockerapi.StreamLimiter {
	return dockerapi.NewStreamLimiter(limitsOrDefault(lim), log)
}
