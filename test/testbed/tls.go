package testbed

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// genTLS writes a CA, a server certificate valid for every engine IP,
// 127.0.0.1 and "localhost", and a client certificate.
func (b *Bed) genTLS() error {
	dir := filepath.Join(b.Dir, "tls")
	cdir := filepath.Join(dir, "client")
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		return err
	}
	now := time.Now().Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "shoal testbed CA " + b.ID},
		NotBefore:             now,
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(b.Gateway)}
	var names []string
	for _, e := range b.Engines {
		ips = append(ips, net.ParseIP(e.IP))
		names = append(names, e.Hostname)
	}
	names = append(names, "localhost")
	issue := func(serial int64, cn string, client bool) (certPEM, keyPEM []byte, err error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		t := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now,
			NotAfter:     now.Add(7 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		}
		if client {
			t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		} else {
			t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
			t.IPAddresses = ips
			t.DNSNames = names
		}
		der, err := x509.CreateCertificate(rand.Reader, t, caCert, &k.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), nil
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	caKD, _ := x509.MarshalECPrivateKey(caKey)
	caKeyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: caKD})
	srvCert, srvKey, err := issue(2, "shoal testbed engine", false)
	if err != nil {
		return err
	}
	cliCert, cliKey, err := issue(3, "shoal testbed client", true)
	if err != nil {
		return err
	}
	f := &TLSFiles{
		CACert:     filepath.Join(dir, "ca.pem"),
		CAKey:      filepath.Join(dir, "ca-key.pem"),
		ServerCert: filepath.Join(dir, "server-cert.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(cdir, "cert.pem"),
		ClientKey:  filepath.Join(cdir, "key.pem"),
		ClientDir:  cdir,
	}
	for _, w := range []struct {
		p string
		d []byte
	}{
		{f.CACert, caPEM}, {f.CAKey, caKeyPEM}, {f.ServerCert, srvCert}, {f.ServerKey, srvKey},
		{f.ClientCert, cliCert}, {f.ClientKey, cliKey}, {filepath.Join(cdir, "ca.pem"), caPEM},
	} {
		if err := os.WriteFile(w.p, w.d, 0o600); err != nil {
			return err
		}
	}
	b.TLS = f
	return nil
}

// ClientTLSConfig returns a tls.Config with the Bed's CA and client
// certificate (nil if the Bed has no TLS).
func (b *Bed) ClientTLSConfig() (*tls.Config, error) {
	if b.TLS == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(b.TLS.ClientCert, b.TLS.ClientKey)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(b.TLS.CACert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
