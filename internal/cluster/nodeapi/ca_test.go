package nodeapi

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
)

func TestCheckCAConfig(t *testing.T) {
	cases := []struct {
		name string
		cur  time.Duration
		spec swarm.CAConfig
		want error
	}{
		{"unchanged spec", 90 * 24 * time.Hour, swarm.CAConfig{NodeCertExpiry: 90 * 24 * time.Hour}, nil},
		{"no expiry: keep", time.Hour, swarm.CAConfig{}, nil},
		{"the minimum", 90 * 24 * time.Hour, swarm.CAConfig{NodeCertExpiry: time.Hour}, nil},
		{"below the minimum", 90 * 24 * time.Hour, swarm.CAConfig{NodeCertExpiry: time.Hour - time.Second}, ErrCertExpiryTooShort},
		{"negative", 90 * 24 * time.Hour, swarm.CAConfig{NodeCertExpiry: -time.Hour}, ErrCertExpiryTooShort},
		{"a short test expiry already in force", 20 * time.Second, swarm.CAConfig{NodeCertExpiry: 20 * time.Second}, nil},
		{"rotate to a given root", time.Hour, swarm.CAConfig{SigningCACert: "PEM", SigningCAKey: "KEY"}, ErrSigningCA},
		{"external CA", time.Hour, swarm.CAConfig{ExternalCAs: []*swarm.ExternalCA{{Protocol: swarm.ExternalCAProtocolCFSSL, URL: "https://ca"}}}, ErrExternalCA},
	}
	for _, c := range cases {
		err := CheckCAConfig(c.cur, c.spec)
		if !errors.Is(err, c.want) || (c.want != nil && !errdefs.IsInvalidArgument(err)) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if got := ErrCertExpiryTooShort.Error(); got != "rpc error: code = InvalidArgument desc = minimum certificate expiry time is: 1h0m0s" {
		t.Errorf("message %q is not dockerd's", got)
	}
}

func TestTLSInfo(t *testing.T) {
	roots := map[string]string{"d-old": "OLD", "d-both": "OLD+NEW"}
	if got := TLSInfo(nil, roots, "OLD"); got.TrustRoot != "OLD" || got.CertIssuerPublicKey != nil {
		t.Errorf("a node that has not reported: %+v", got)
	}
	nt := &NodeTLS{TrustDigest: "d-both", IssuerSubject: []byte("subj"), IssuerPublicKey: []byte("key")}
	want := swarm.TLSInfo{TrustRoot: "OLD+NEW", CertIssuerSubject: []byte("subj"), CertIssuerPublicKey: []byte("key")}
	if got := TLSInfo(nt, roots, "OLD"); !reflect.DeepEqual(got, want) {
		t.Errorf("reported: %+v", got)
	}
	if got := TLSInfo(&NodeTLS{TrustDigest: "unknown"}, roots, "OLD"); got.TrustRoot != "" {
		t.Errorf("roots the cluster does not know are shown as %q", got.TrustRoot)
	}
}

func TestUnconverged(t *testing.T) {
	key := []byte("new")
	nodes := []Node{
		{ID: "moved", TLS: &NodeTLS{IssuerPublicKey: key}},
		{ID: "old", TLS: &NodeTLS{IssuerPublicKey: []byte("old")}},
		{ID: "silent"},
		{ID: "left", Left: true},
	}
	if got := Unconverged(nodes, key); !reflect.DeepEqual(got, []string{"old", "silent"}) {
		t.Fatalf("unconverged = %v", got)
	}
	if !(&NodeTLS{TrustDigest: "a"}).Equal(&NodeTLS{TrustDigest: "a"}) || (&NodeTLS{}).Equal(nil) || !(*NodeTLS)(nil).Equal(nil) {
		t.Fatal("NodeTLS.Equal")
	}
}
