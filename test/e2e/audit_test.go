package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/audit"
)

// TestAuditLogAndStreamCap drives a shoal with --audit-log and
// --max-streams-per-client 1 with the docker CLI: run -d, exec, an exec
// refused while an events stream holds the client's one stream (dockerd's
// 503 with the reason, at the exec create so that the CLI shows it), rm -f. The audit log then holds
// one line per call (two for the exec's hijacked stream), with the
// container's name and the refusal's message, and no reads.
func TestAuditLogAndStreamCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := startShoalT(t, "nodes://"+bed.Engines[0].TCPAddr, "--audit-log", path, "--max-streams-per-client", "1")
	ctx := ctxT(t, 2*time.Minute)
	if err := s.WaitNodes(ctx, 1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	docker := func(args ...string) (string, error) {
		return runDocker(ctx, dockerCmd{host: s.Host, args: args})
	}
	if out, err := docker("run", "-d", "--name", "audited", "-e", "PASSWORD=hunter2", "busybox", "sleep", "300"); err != nil {
		t.Fatalf("run: %v %s", err, out)
	}
	t.Cleanup(func() { docker("rm", "-f", "audited") })
	if out, err := docker("exec", "audited", "echo", "hi"); err != nil || strings.TrimSpace(out) != "hi" {
		t.Fatalf("exec: %q %v", out, err)
	}

	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.Addr+"/v1.41/events", nil)
	events, err := httpc.Do(req)
	if err != nil || events.StatusCode != 200 {
		t.Fatalf("events: %v %v", events, err)
	}
	const refusal = "too many simultaneous streams from 127.0.0.1: limit is 1 (--max-streams-per-client)"
	if out, err := docker("exec", "audited", "true"); err == nil || !strings.Contains(err.Error(), refusal) {
		t.Errorf("exec while events holds the one stream: %q %v; want the refusal %q", out, err, refusal)
	}
	events.Body.Close()
	if _, err := docker("ps"); err != nil {
		t.Fatal(err)
	}
	if out, err := docker("rm", "-f", "audited"); err != nil {
		t.Fatalf("rm: %v %s", err, out)
	}
	s.Stop() // writes what is queued

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "hunter2") {
		t.Errorf("an env value reached the audit log:\n%s", raw)
	}
	var got, waits []string
	for line := range strings.Lines(string(raw)) {
		var e audit.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if !strings.HasPrefix(e.Who.Name, "loopback client 127.0.0.1:") || e.Who.Role != "admin" || e.RequestID == "" {
			t.Errorf("who %+v, request %q in %s", e.Who, e.RequestID, line)
		}
		entry := strings.Join([]string{e.Action, e.Stream, http.StatusText(e.Status), e.Error}, " ")
		if e.Action == "container.wait" { // run -d's, ending as the start does: its place is racy
			waits = append(waits, entry)
			continue
		}
		got = append(got, entry)
		if e.Action == "container.create" && (e.Target != "audited" || e.Created == "") {
			t.Errorf("create: target %q, created %q", e.Target, e.Created)
		}
	}
	want := []string{
		"container.create  Created ",
		"container.start  No Content ",
		"container.exec.create  Created ",
		"container.exec.start start Switching Protocols ",
		"container.exec.start end Switching Protocols ",
		"container.exec.create  Service Unavailable " + refusal,
		"container.remove  No Content ",
	}
	// run -d waits for the start (the CLI reports an early exit): a stream.
	if strings.Join(waits, "|") != "container.wait start OK |container.wait end OK " {
		t.Errorf("run -d's wait: %q", waits)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\n%s\nwant\n%s\n(file:\n%s)", strings.Join(got, "\n"), strings.Join(want, "\n"), raw)
	}
}
