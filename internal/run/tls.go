package run

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/docker/go-connections/tlsconfig"
)

// TLSFiles are the TLS flags of one side (--tls* for the API, --engine-tls*
// for engines): whether TLS is on, whether peers are verified, and the files.
type TLSFiles struct {
	On, Verify    bool
	CA, Cert, Key string
}

// engineClient is the TLS to engines, nil for plain TCP.
func (f TLSFiles) engineClient() (*tls.Config, error) {
	if !f.On && !f.Verify && f.Cert == "" {
		return nil, nil
	}
	return tlsconfig.Client(tlsconfig.Options{
		CAFile:             f.CA,
		CertFile:           f.Cert,
		KeyFile:            f.Key,
		InsecureSkipVerify: !f.Verify,
	})
}

// server is the API's TLS, nil for plain TCP.
func (f TLSFiles) server() (*tls.Config, error) {
	if !f.On && !f.Verify {
		return nil, nil
	}
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("--tls/--tlsverify need --tlscert and --tlskey")
	}
	opts := tlsconfig.Options{CertFile: f.Cert, KeyFile: f.Key, ClientAuth: tls.NoClientCert}
	if f.Verify {
		if f.CA == "" {
			return nil, errors.New("--tlsverify needs --tlscacert")
		}
		opts.CAFile = f.CA
		opts.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tlsconfig.Server(opts)
}

// forward is the TLS a replica reaches the primary with: a client of the
// same API, with the managers' own certificate, verified against the CA.
func (f TLSFiles) forward() (*tls.Config, error) {
	if !f.On && !f.Verify {
		return nil, nil
	}
	return tlsconfig.Client(tlsconfig.Options{
		CAFile: f.CA, CertFile: f.Cert, KeyFile: f.Key, InsecureSkipVerify: f.CA == "",
	})
}

// clusterTLS is what the built-in cluster lends the API's TLS: this
// node's certificate (renewed in place) and the CA clients must chain to
// (read at each handshake, so a rotated root applies at once).
type clusterTLS interface {
	APICertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	APIClientCAs() *x509.CertPool
	VerifyAPIClient(tls.ConnectionState) error
}

// apiFiles are the certificate files given to the built-in cluster's API,
// loaded before the node starts so that a bad file stops it early.
type apiFiles struct {
	certs []tls.Certificate // --tlscert/--tlskey, nil: the node's certificate
	cas   *x509.CertPool    // --tlscacert, nil: the cluster's CA
}

func (f TLSFiles) loadAPIFiles() (apiFiles, error) {
	var a apiFiles
	if f.Cert != "" || f.Key != "" {
		if f.Cert == "" || f.Key == "" {
			return a, errors.New("API TLS: --tlscert and --tlskey go together")
		}
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return a, fmt.Errorf("API TLS: --tlscert/--tlskey: %w", err)
		}
		a.certs = []tls.Certificate{pair}
	}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return a, fmt.Errorf("API TLS: --tlscacert: %w", err)
		}
		a.cas = x509.NewCertPool()
		if !a.cas.AppendCertsFromPEM(pem) {
			return a, fmt.Errorf("API TLS: --tlscacert %s: no certificate", f.CA)
		}
	}
	return a, nil
}

// clusterServer is the API's TLS in the built-in cluster, nil for plain
// TCP. It needs no files: the node's certificate is served and clients
// must hold a certificate of the cluster's CA ('shoal cert create').
// Files given replace those: --tlscert/--tlskey the certificate served,
// --tlscacert the CA clients must chain to.
func (f TLSFiles) clusterServer(files apiFiles, cl clusterTLS) *tls.Config {
	if !f.On && !f.Verify {
		return nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: files.certs}
	if files.certs == nil {
		conf.GetCertificate = cl.APICertificate
	}
	if !f.Verify {
		return conf
	}
	conf.ClientAuth = tls.RequireAndVerifyClientCert
	conf.VerifyConnection = cl.VerifyAPIClient
	if files.cas != nil {
		conf.ClientCAs = files.cas
		return conf
	}
	base := conf.Clone()
	conf.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.ClientCAs = cl.APIClientCAs()
		return c, nil
	}
	return conf
}
