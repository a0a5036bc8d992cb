package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

type joinTokenOpts struct {
	host   string
	rotate bool
	quiet  bool
}

func newJoinTokenCmd() *cobra.Command {
	o := &joinTokenOpts{}
	cmd := &cobra.Command{
		Use:   "join-token [flags] worker|manager",
		Short: "Print (or rotate) the built-in cluster's join token for workers or managers",
		Long: `Ask a manager's Docker API (-H, default $DOCKER_HOST or tcp://127.0.0.1:2375)
for the join token of the role and print the 'shoal join' command that uses
it. With DOCKER_TLS_VERIFY set, TLS with the certificates in
$DOCKER_CERT_PATH (default ~/.docker), as the docker CLI. --rotate replaces the token first: the old one admits nobody new, while
nodes already in keep working.`,
		Example: `  shoal join-token worker
  shoal join-token -H tcp://10.0.0.1:2375 --rotate -q manager`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runJoinToken(cmd.Context(), o, args[0], cmd.OutOrStdout())
		},
	}
	def := os.Getenv("DOCKER_HOST")
	if def == "" {
		def = "tcp://127.0.0.1:2375"
	}
	f := cmd.Flags()
	f.StringVarP(&o.host, "host", "H", def, "a manager's Docker API (tcp://host:port or unix:///path)")
	f.BoolVar(&o.rotate, "rotate", false, "rotate the token before printing it")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print the token only")
	return cmd
}

// apiClient is a small client of shoal's Docker API for the CLI's own commands.
type apiClient struct {
	hc   *http.Client
	base string
}

func newAPIClient(host string) (*apiClient, error) {
	switch {
	case strings.HasPrefix(host, "unix://"):
		sock := strings.TrimPrefix(host, "unix://")
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
		return &apiClient{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}, base: "http://shoal"}, nil
	default:
		addr := strings.TrimPrefix(host, "tcp://")
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("-H %q: %v", host, err)
		}
		conf, err := dockerClientTLS()
		if err != nil || conf == nil {
			return &apiClient{hc: &http.Client{Timeout: 30 * time.Second}, base: "http://" + addr}, err
		}
		tr := &http.Transport{TLSClientConfig: conf}
		return &apiClient{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}, base: "https://" + addr}, nil
	}
}

func (c *apiClient) do(ctx context.Context, method, path string, q url.Values, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		var e struct{ Message string }
		if json.Unmarshal(b, &e) == nil && e.Message != "" {
			return fmt.Errorf("%s", e.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// errNoToken is the answer of a manager that hides the join tokens: it
// shows them to admin certificates only.
var errNoToken = errors.New("the manager sent no join token: join tokens are shown to admins only (a certificate with OU shoal-admin)")

func runJoinToken(ctx context.Context, o *joinTokenOpts, role string, w io.Writer) error {
	if role != "worker" && role != "manager" {
		return fmt.Errorf("unknown role %q: use worker or manager", role)
	}
	c, err := newAPIClient(o.host)
	if err != nil {
		return err
	}
	type swarmT struct {
		Version    struct{ Index uint64 }
		JoinTokens struct{ Worker, Manager string }
	}
	var sw swarmT
	if err := c.do(ctx, http.MethodGet, "/swarm", nil, &sw); err != nil {
		return err
	}
	if o.rotate {
		q := url.Values{"version": {fmt.Sprint(sw.Version.Index)}}
		if role == "worker" {
			q.Set("rotateWorkerToken", "true")
		} else {
			q.Set("rotateManagerToken", "true")
		}
		if err := c.do(ctx, http.MethodPost, "/swarm/update", q, nil); err != nil {
			return err
		}
		if err := c.do(ctx, http.MethodGet, "/swarm", nil, &sw); err != nil {
			return err
		}
		if !o.quiet {
			fmt.Fprintf(w, "Successfully rotated %s join token.\n\n", role)
		}
	}
	token := sw.JoinTokens.Worker
	if role == "manager" {
		token = sw.JoinTokens.Manager
	}
	if token == "" {
		return errNoToken
	}
	if o.quiet {
		fmt.Fprintln(w, token)
		return nil
	}
	var info struct{ Swarm struct{ NodeID string } }
	if err := c.do(ctx, http.MethodGet, "/info", nil, &info); err != nil {
		return err
	}
	var node struct{ ManagerStatus *struct{ Addr string } }
	if err := c.do(ctx, http.MethodGet, "/nodes/"+url.PathEscape(info.Swarm.NodeID), nil, &node); err != nil {
		return err
	}
	addr := ""
	if node.ManagerStatus != nil {
		addr = node.ManagerStatus.Addr
	}
	fmt.Fprintf(w, "To add a %s to this cluster, run the following command:\n\n    shoal join --token %s %s\n\n", role, token, addr)
	return nil
}
