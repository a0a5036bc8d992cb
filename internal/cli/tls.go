package cli

import (
	"github.com/spf13/pflag"

	"github.com/shoal-dev/shoal/internal/run"
)

// apiTLSOpts are the Docker API's TLS flags, dockerd's names, and the
// loudly named opt-out of the refusal to serve TCP beyond loopback
// without client verification.
type apiTLSOpts struct {
	files    run.TLSFiles
	insecure bool
}

// apiTLSFlags adds them to a command that serves the API; builtIn says
// whether the built-in cluster's certificates stand in for the files.
func apiTLSFlags(f *pflag.FlagSet, o *apiTLSOpts, builtIn bool) {
	caHelp, certHelp, keyHelp := "CA certificate that client certificates must be signed by",
		"TLS certificate of the API server", "TLS key of the API server"
	verifyHelp := "serve with TLS and require client certificates signed by --tlscacert"
	if builtIn {
		verifyHelp = "serve with TLS and require client certificates of the cluster's CA ('shoal cert create'), or of --tlscacert"
		caHelp += " (default: the cluster's CA)"
		certHelp += " (default: this node's cluster certificate, renewed automatically)"
		keyHelp += " (default: this node's cluster key)"
	}
	f.BoolVar(&o.files.On, "tls", false, "serve the API with TLS (implied by --tlsverify); without --tlsverify clients are not authenticated, so only loopback addresses are accepted")
	f.BoolVar(&o.files.Verify, "tlsverify", false, verifyHelp)
	f.StringVar(&o.files.CA, "tlscacert", "", caHelp)
	f.StringVar(&o.files.Cert, "tlscert", "", certHelp)
	f.StringVar(&o.files.Key, "tlskey", "", keyHelp)
	f.BoolVar(&o.insecure, "insecure-no-tlsverify", false,
		"DANGEROUS: serve the API on TCP addresses beyond loopback without --tlsverify; anyone who reaches them controls every engine as root (logged as a warning at every start)")
}
