package cli

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/go-connections/tlsconfig"
	"github.com/spf13/pflag"

	"github.com/shoal-dev/shoal/internal/ca"
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

// dockerClientTLS is the TLS the docker CLI would use from its environment:
// with DOCKER_TLS_VERIFY set, ca.pem, cert.pem and key.pem from
// DOCKER_CERT_PATH (default ~/.docker); nil without it.
func dockerClientTLS() (*tls.Config, error) {
	if os.Getenv("DOCKER_TLS_VERIFY") == "" {
		return nil, nil
	}
	dir := os.Getenv("DOCKER_CERT_PATH")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("DOCKER_TLS_VERIFY: %w", err)
		}
		dir = filepath.Join(home, ".docker")
	}
	conf, err := tlsconfig.Client(tlsconfig.Options{
		CAFile:   filepath.Join(dir, ca.ClientCAFile),
		CertFile: filepath.Join(dir, ca.ClientCertFile),
		KeyFile:  filepath.Join(dir, ca.ClientKeyFile),
	})
	if err != nil {
		return nil, fmt.Errorf("DOCKER_TLS_VERIFY with DOCKER_CERT_PATH %s: %w", dir, err)
	}
	return conf, nil
}
