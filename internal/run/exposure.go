package run

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
)

// Whoever reaches the Docker API controls every engine behind it as root.
// As dockerd 27+ does, shoal refuses to start with a TCP listener that
// anyone beyond this host could reach unless clients must prove who they
// are (--tlsverify), or the operator says loudly that they accept the risk.

// InsecureFlag is the opt-out, named in the refusal's message.
const InsecureFlag = "--insecure-no-tlsverify"

// Errors of the API's security checks; test with errors.Is.
var (
	// ErrInsecureAPI is a TCP listener beyond loopback without client
	// verification.
	ErrInsecureAPI = errors.New("run: insecure Docker API listener")
	// ErrTLSFlags is TLS files given without --tls or --tlsverify, which
	// would serve plain HTTP while the operator thinks it is TLS.
	ErrTLSFlags = errors.New("run: TLS files without --tls or --tlsverify")
)

// checkExposure applies the rules to the -H addresses: unix sockets and
// loopback TCP may be plain; any other TCP address needs --tlsverify
// unless insecure is set. It returns the addresses exposed without client
// verification (to warn about) when insecure allows them.
func checkExposure(hosts []string, f TLSFiles, insecure bool) ([]string, error) {
	if !f.On && !f.Verify && (f.CA != "" || f.Cert != "" || f.Key != "") {
		return nil, fmt.Errorf("%w: --tlscacert, --tlscert and --tlskey are used only with --tlsverify (or --tls); add --tlsverify, or drop them to serve plain HTTP", ErrTLSFlags)
	}
	var exposed []string
	for _, h := range hosts {
		host, ok := tcpHost(h)
		if !ok || f.Verify || isLoopback(host) {
			continue
		}
		if !insecure {
			return nil, refusal(h, f.On)
		}
		exposed = append(exposed, h)
	}
	return exposed, nil
}

// refusal says why the address is refused and how to fix it.
func refusal(h string, tlsOn bool) error {
	what := "without --tlsverify"
	if tlsOn {
		what = "with --tls but without --tlsverify (TLS without client verification authenticates no one)"
	}
	return fmt.Errorf("%w: refusing to serve the Docker API on %s %s: anyone who reaches it controls every engine as root; "+
		"use --tlsverify (in the built-in cluster no certificate files are needed; 'shoal cert create' issues client certificates), "+
		"or listen on 127.0.0.1 or a unix socket, or pass %s to accept the risk", ErrInsecureAPI, h, what, InsecureFlag)
}

// tcpHost is the host part of a TCP -H address; ok is false for unix
// sockets and for addresses listen will refuse anyway.
func tcpHost(h string) (string, bool) {
	if strings.HasPrefix(h, "unix://") {
		return "", false
	}
	host, _, err := net.SplitHostPort(strings.TrimPrefix(h, "tcp://"))
	return host, err == nil
}

// isLoopback says whether only this host can reach host: a loopback IP
// or "localhost". The unspecified address (0.0.0.0, ::, empty) listens on
// every interface; any other name may resolve anywhere.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// warnExposed says, on every start, which addresses serve the API to
// anyone who reaches them.
func warnExposed(log *slog.Logger, exposed []string) {
	for _, h := range exposed {
		log.Warn("INSECURE: serving the Docker API without client verification on "+h+
			": anyone who reaches it controls every engine as root", "addr", h, "opt_out", InsecureFlag)
	}
}

// checkAPISecurity is checkExposure, warning about what it lets through.
func checkAPISecurity(hosts []string, f TLSFiles, insecure bool, log *slog.Logger) error {
	exposed, err := checkExposure(hosts, f, insecure)
	if err != nil {
		return err
	}
	warnExposed(log, exposed)
	return nil
}
