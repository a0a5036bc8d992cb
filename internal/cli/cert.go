package cli

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/cluster"
)

type certOpts struct {
	dataDir string
	name    string
	role    string
	scopes  []string
	expiry  time.Duration
	out     string
}

func newCertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Issue client certificates of the built-in cluster's CA",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newCertCreateCmd())
	return cmd
}

func newCertCreateCmd() *cobra.Command {
	o := &certOpts{}
	cmd := &cobra.Command{
		Use:   "create --name <user> --role admin|operator|viewer [flags]",
		Short: "Issue a client certificate for a user of the Docker API (run on a manager)",
		Long: `Issue a client certificate from the built-in cluster's CA, whose key is in
a manager's --data-dir: run this on a manager host, as the user shoal runs as.
The managers serving the API with --tlsverify accept it.

The certificate names the user (CN) and the role (OU shoal-admin,
shoal-operator or shoal-viewer); each --scope label=value limits it to the
objects carrying that label. --out receives ca.pem, cert.pem and key.pem
(readable by its owner only), the layout the docker CLI reads from
DOCKER_CERT_PATH. Existing files are never overwritten. Keep key.pem
secret: whoever holds it acts as the user until the certificate expires.`,
		Example: `  shoal cert create --name alice --role admin --out ~/.docker/shoal
  shoal cert create --name ci --role operator --scope com.example.team=web --expiry 168h --out ./ci-certs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCertCreate(o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "/var/lib/shoal", "the manager's data directory (holds the cluster's CA key)")
	f.StringVar(&o.name, "name", "", "user name, the certificate's CN (required)")
	f.StringVar(&o.role, "role", "", "admin, operator or viewer (required)")
	f.StringArrayVar(&o.scopes, "scope", nil, "limit the certificate to objects labelled label=value (repeatable)")
	f.DurationVar(&o.expiry, "expiry", ca.DefaultClientLifetime, "validity of the certificate")
	f.StringVar(&o.out, "out", "", "directory to write ca.pem, cert.pem and key.pem to (default ./<name>)")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

func runCertCreate(o *certOpts, stdout io.Writer) error {
	role, err := ca.ParseClientRole(o.role)
	if err != nil {
		return fmt.Errorf("--role: %w", err)
	}
	root, addr, err := cluster.LocalCA(o.dataDir)
	if err != nil {
		return err
	}
	c, err := root.IssueClient(ca.ClientRequest{Name: o.name, Role: role, Scopes: o.scopes, Lifetime: o.expiry})
	if err != nil {
		return err
	}
	out := o.out
	if out == "" {
		out = o.name
	}
	if out, err = filepath.Abs(out); err != nil {
		return err
	}
	if err := ca.SaveClientCert(out, root.CertPEM(), c); err != nil {
		return err
	}
	leaf, err := c.Leaf()
	if err != nil {
		return err
	}
	printCertUsage(stdout, leaf.Subject.OrganizationalUnit, leaf.NotAfter, o.name, addr, out)
	return nil
}

// printCertUsage tells the user how to point the docker CLI at a manager
// with the new certificate.
func printCertUsage(w io.Writer, ous []string, notAfter time.Time, name, addr, dir string) {
	fmt.Fprintf(w, "Client certificate for %s (%s), valid until %s, written to %s:\n",
		name, strings.Join(ous, ", "), notAfter.UTC().Format(time.RFC3339), dir)
	fmt.Fprintf(w, "  %s  %s  %s (keep it secret)\n\n", ca.ClientCAFile, ca.ClientCertFile, ca.ClientKeyFile)
	fmt.Fprintf(w, "To use it, with a manager serving the API with --tlsverify on port 2376:\n\n")
	fmt.Fprintf(w, "    export DOCKER_HOST=tcp://%s DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=%s\n", net.JoinHostPort(addr, "2376"), dir)
	fmt.Fprintf(w, "    docker info\n\n")
	fmt.Fprintf(w, "(use the port of the manager's -H tcp:// address; any manager of the cluster accepts the certificate)\n")
}
