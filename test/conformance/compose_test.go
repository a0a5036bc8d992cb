package conformance

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCompose runs docker-compose 1.29.2 (testdata/compose.yml: web, client,
// writer on one network with a named volume) against both targets.
func TestCompose(t *testing.T) {
	conform(t, "compose", "app", func(r *rec) {
		ctx := ctxT(t, 3*time.Minute)
		dc := func(args ...string) cliResult {
			cmd := exec.CommandContext(ctx, compose, append([]string{"-p", "cnfapp", "-f", "testdata/compose.yml", "--no-ansi"}, args...)...)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "DOCKER_HOST=" + r.tg.Host, "DOCKER_CONFIG=" + cfgDir, "COMPOSE_INTERACTIVE_NO_CLI=1"}
			var o, e bytes.Buffer
			cmd.Stdout, cmd.Stderr = &o, &e
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				code = -1
			}
			if code != 0 {
				t.Logf("docker-compose %v on %s: exit %d\n%s", args, r.tg.Name, code, e.String())
			}
			return cliResult{Out: o.String(), Err: e.String(), Exit: code}
		}
		dc("down", "-v")
		defer dc("down", "-v")
		up := dc("up", "-d")
		r.add("up -d [exit]", itoa(up.Exit))
		r.add("ps --services", sortedLines(dc("ps", "--services").Out))
		ps := dc("ps")
		r.add("ps [exit, running count]", itoa(ps.Exit)+" "+itoa(strings.Count(ps.Out, " Up ")))
		var logs string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			logs = dc("logs", "--no-color", "client").Out
			if strings.Contains(logs, "fetched-ok") {
				break
			}
		}
		r.add("logs client: web reached by service name", itoa(btoi(strings.Contains(logs, "hello-compose") && strings.Contains(logs, "fetched-ok"))))
		wl := dc("logs", "--no-color", "writer")
		r.add("logs writer: volume written", itoa(btoi(strings.Contains(wl.Out, "written-"))))
		sc := dc("up", "-d", "--scale", "writer=2")
		r.add("up -d --scale writer=2 [exit]", itoa(sc.Exit))
		ps = dc("ps")
		r.add("ps after scale [running count]", itoa(strings.Count(ps.Out, " Up ")))
		time.Sleep(time.Second)
		wl = dc("exec", "-T", "--index=2", "writer", "cat", "/data/log")
		r.add("writer 2 shares the volume [exit, lines]", itoa(wl.Exit)+" "+itoa(strings.Count(wl.Out, "written-")))
		sc = dc("scale", "writer=1")
		r.add("scale writer=1 [exit]", itoa(sc.Exit))
		down := dc("down", "-v")
		r.add("down -v [exit]", itoa(down.Exit))
		left := runCLI(ctx, cli28, r.tg.Host, "", "ps", "-a", "--filter", "label=com.docker.compose.project=cnfapp", "-q")
		r.add("containers left after down", itoa(len(strings.Fields(left.Out))))
		nl := runCLI(ctx, cli28, r.tg.Host, "", "network", "ls", "--filter", "name=cnfapp", "-q")
		r.add("networks left after down", itoa(len(strings.Fields(nl.Out))))
		vl := runCLI(ctx, cli28, r.tg.Host, "", "volume", "ls", "--filter", "name=cnfapp", "-q")
		r.add("volumes left after down -v", itoa(len(strings.Fields(vl.Out))))
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
