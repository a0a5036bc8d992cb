package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

var (
	reSHA    = regexp.MustCompile(`sha256:[0-9a-f]{64}`)
	reID64   = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	reID12   = regexp.MustCompile(`\b[0-9a-f]{12}\b`)
	reNode   = regexp.MustCompile(`(^|[\s/"'=:,\[(])node[0-9]+/`)
	reIP     = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(:\d+)?\b`)
	reSpaces = regexp.MustCompile(`[ \t]+`)
	// CLI 20.10 sometimes logs this after a failed `run` (a client-side race).
	reClientNoise = regexp.MustCompile(`(?m)^time=.*msg="error waiting for container: context canceled"\n?`)
)

// norm makes output comparable between an engine and shoal: IDs, digests,
// the node prefix of names (node2/web → web), addresses and runs of spaces
// (table widths depend on name lengths).
func norm(s string) string {
	s = reClientNoise.ReplaceAllString(s, "")
	s = reSHA.ReplaceAllString(s, "sha256:<digest>")
	s = reID64.ReplaceAllString(s, "<id>")
	s = reID12.ReplaceAllString(s, "<id>")
	for i := 0; i < 2; i++ { // overlapping matches
		s = reNode.ReplaceAllString(s, "$1")
	}
	s = reIP.ReplaceAllString(s, "<ip>")
	s = reSpaces.ReplaceAllString(s, " ")
	return strings.TrimSpace(s)
}

// sortedLines normalises and sorts the lines of s (list order may differ
// across a pool).
func sortedLines(s string) string {
	ls := strings.Split(norm(s), "\n")
	sort.Strings(ls)
	return strings.Join(ls, "\n")
}

// cliResult is one CLI run.
type cliResult = shoaltest.CLIResult

// runCLI runs a docker CLI binary against host.
func runCLI(ctx context.Context, bin, host, stdin string, args ...string) cliResult {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = shoaltest.DockerEnv(host, cfgDir)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	return shoaltest.RunCmd(cmd)
}

// keyShape lists the JSON key paths of v down to depth levels, sorted: the
// shape of an answer without its values. Arrays contribute their first item.
func keyShape(data []byte, depth int) string {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		// JSON lines (docker ... --format '{{json .}}' of a list): all lines.
		var items []any
		dec := json.NewDecoder(bytes.NewReader(data))
		for {
			var it any
			if dec.Decode(&it) != nil {
				break
			}
			items = append(items, it)
		}
		if len(items) == 0 {
			return "not JSON: " + norm(string(data))
		}
		v = items
	}
	return shoaltest.KeyPaths(v, depth, dataKeyed)
}

func dataKeyed(p string) bool {
	for _, s := range []string{"Labels", "Networks", "Ports", "ExposedPorts", "Volumes", "Options", "Containers", "Attributes", "DriverOpts", "Plugins", "Runtimes", "Status", "Data"} {
		if strings.HasSuffix(p, "."+s) {
			return true
		}
	}
	return false
}

// keysOf returns the sorted top-level keys of a JSON object.
func keysOf(data []byte) []string {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return nil
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// apiResp is one raw HTTP call.
type apiResp struct {
	Status int
	Body   []byte
	Header http.Header
}

var httpc = &http.Client{Timeout: 60 * time.Second}

func api(ctx context.Context, tg target, method, path string, body any) apiResp {
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	case []byte:
		rd, ct = bytes.NewReader(b), "application/x-tar"
	default:
		j, _ := json.Marshal(b)
		rd, ct = bytes.NewReader(j), "application/json"
	}
	url := "http://" + strings.TrimPrefix(tg.Host, "tcp://") + path
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return apiResp{Status: -1, Body: []byte(err.Error())}
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return apiResp{Status: -1, Body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiResp{resp.StatusCode, b, resp.Header}
}

// errForm is the status and normalised message of an error answer.
func errForm(r apiResp) string {
	var m struct{ Message string }
	if json.Unmarshal(r.Body, &m) == nil && m.Message != "" {
		return fmt.Sprintf("%d %s", r.Status, norm(m.Message))
	}
	return fmt.Sprintf("%d %s", r.Status, norm(string(r.Body)))
}

func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}
