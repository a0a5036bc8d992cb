package run

import (
	"crypto/tls"
	"errors"

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
